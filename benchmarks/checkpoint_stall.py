"""How long a rule-state checkpoint of a big fleet holds the event loop.

    .venv/bin/python benchmarks/checkpoint_stall.py --devices 100000

Every charger port heard once (its offline timer's last-seen time refreshed), then the
checkpoint's rows built in one go (as before 2026-12-04) and in slices (what ``persist``
does), with the garbage collector tuned as the gateway tunes it: the longest stretch the event loop had no turn, measured by a task that runs
whenever it can.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "alerting" / "rules"))

from rules_support import FLEET, T0, ctx, reading  # noqa: E402

from alerting.rules import RuleEngine, load_rules  # noqa: E402
from gateway.runtime import tune_gc  # noqa: E402


def heard_fleet(devices: int) -> RuleEngine:
    engine = RuleEngine(load_rules(), grace_ms=0, store=None, checkpoint_ms=60_000)
    fleet = [ctx(f"CP-{i:06d}", "charger") for i in range(devices)]
    for device in fleet:
        engine.register_device(device, T0)
    engine.start(T0)
    for device in fleet:
        FLEET[device.device_id] = device
        r = reading(device.device_id, "telemetry", T0 + 1000, port=1, temp_c=30, leak_ma=0,
                    power_w=200)
        list(engine.on_reading(r, device, T0 + 1000))
    tune_gc()  # as the running gateway has it: the fleet's objects out of the collector's way
    return engine


async def longest_gap(work: object) -> tuple[float, int]:
    """(longest time without a loop turn in ms, rows) while ``work`` runs."""
    gaps = [0.0]
    stop = False

    async def watcher() -> None:
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps[0] = max(gaps[0], now - last)
            last = now

    task = asyncio.create_task(watcher())
    await asyncio.sleep(0)
    rows = await work  # type: ignore[misc]
    stop = True
    await task
    return 1000 * gaps[0], len(rows)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    args = ap.parse_args()
    engine = heard_fleet(args.devices)

    async def one_go() -> list[object]:
        return list(engine.checkpoint_snapshot(T0 + 2000))

    gap, rows = await longest_gap(one_go())
    print(f"{args.devices:,} devices, one go: {rows - 1:,} states, loop held {gap:.0f} ms")
    engine = heard_fleet(args.devices)
    gap, rows = await longest_gap(engine.checkpoint_snapshot_yielding(T0 + 2000))
    print(f"{args.devices:,} devices, sliced: {rows - 1:,} states, loop held at most {gap:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
