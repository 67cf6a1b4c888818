"""The gateway's per-message CPU without the broker: ``Ingest.handle`` → decode → registry →
dedupe → status board + rule engine (as ``Gateway._on_reading`` wires them) → line protocol.

The same payloads the C load generator sends (smoke telemetry, random temperature), so the
figure is the Python floor under ``ingest_bench.py``'s "gateway CPU per message" (which adds
the MQTT parse, PUBACKs, the HTTP write to InfluxDB and the event loop).

    .venv/bin/python benchmarks/hotpath_bench.py [messages] [devices] [--profile] [--memory]
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.rules import RuleEngine, load_rules
from core.readings import DeviceContext, Reading
from device_profiles import load_profiles
from gateway.ingest import Ingest
from gateway.live import LiveHub
from gateway.status import DeviceStatusBoard
from gateway.storage.lineprotocol import LineEncoder


class _Clock:
    def __init__(self) -> None:
        self.now = int(time.time() * 1000)

    def now_ms(self) -> int:
        return self.now


class _Quarantine:
    pending = 0

    def add(self, *args: Any) -> None:
        raise AssertionError(f"unexpected rejection: {args[-1]}")


def payloads(n: int, devices: int, t0: int) -> list[tuple[str, bytes]]:
    rnd = random.Random(1)
    seqs = [1000] * devices
    out = []
    for i in range(n):
        d = i % devices
        seqs[d] += 1
        body = (
            f'{{"ts":{t0 + i // 25},"seq":{seqs[d]},"smoke_dbm":0.0{10 + rnd.randrange(40)},'
            f'"temp_c":{18 + rnd.randrange(12)}.{rnd.randrange(10)},'
            f'"battery_pct":{30 + rnd.randrange(70)},"rssi_dbm":-{75 + rnd.randrange(35)}}}'
        )
        out.append((f"safety/demo/smoke/SD-LG-{d + 1:06d}/telemetry", body.encode()))
    return out


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 200_000
    devices = int(args[1]) if len(args) > 1 else 1000
    clock = _Clock()
    profiles = load_profiles()
    ctxs = {
        ("demo", f"SD-LG-{d:06d}"): DeviceContext(
            site="demo",
            device_id=f"SD-LG-{d:06d}",
            device_type="smoke",
            grid_id=f"g{d % 4 + 1}",
            building_id=f"b{d % 20 + 1:02d}",
            location=f"{d % 20 + 1}号楼",
        )
        for d in range(1, devices + 1)
    }
    engine = RuleEngine(load_rules(), grace_ms=0)
    for c in ctxs.values():
        engine.register_device(c, clock.now)
    engine.start(clock.now)
    board = DeviceStatusBoard(profiles, LiveHub())
    encoder = LineEncoder()

    def on_reading(reading: Reading, ctx: DeviceContext, now_ms: int) -> None:  # = Gateway._on_reading
        board.update(reading, ctx)
        if engine.on_reading(reading, ctx, now_ms):
            raise AssertionError("benchmark readings must not change alerts")

    async def build() -> Ingest:
        return Ingest(
            profiles,
            lambda r: ctxs.get((r.site, r.device_id)),
            _Quarantine(),  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            clock,
            on_reading=on_reading,
            batch_size=10**9,
        )

    ingest = asyncio.run(build())
    msgs = payloads(n, devices, clock.now)
    warm = msgs[: devices * 2]
    for topic, payload in warm:
        ingest.handle(topic, payload, 1, 1)
    encoder.encode(ingest._batch)
    ingest._batch.clear()
    ingest._acks.clear()
    msgs = msgs[devices * 2 :]
    tracing = "--memory" in sys.argv
    if tracing:
        tracemalloc.start()
        heap0 = tracemalloc.get_traced_memory()[0]
        snap0 = tracemalloc.take_snapshot()
    prof = cProfile.Profile() if "--profile" in sys.argv else None
    if prof:
        prof.enable()
    # CPU time per chunk of 10,000 messages; the box is shared, so the best chunk is the
    # figure (what the code costs) and the median says how noisy the run was.
    chunks: list[float] = []
    handle = ingest.handle
    chunk = 10_000
    for base in range(0, len(msgs) - chunk + 1, chunk):
        start = time.process_time()
        for i in range(base, base + chunk):
            topic, payload = msgs[i]
            clock.now += i & 1  # ~2 messages per ms: about 2,000 msg/s per 1,000 devices
            handle(topic, payload, 1, i & 0xFFFF)
            if len(ingest._batch) >= 5000:
                encoder.encode(ingest._batch)
                ingest._batch.clear()
                ingest._acks.clear()
        chunks.append((time.process_time() - start) / chunk)
    if prof:
        prof.disable()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if tracing:
        current, _peak = tracemalloc.get_traced_memory()
        print(f"python heap after the run: {current / 2**20:.1f} MiB "
              f"(after warm-up: {heap0 / 2**20:.1f} MiB); top growth:")
        for stat in tracemalloc.take_snapshot().compare_to(snap0, "lineno")[:8]:
            print(f"  {stat}")
    print(f"peak RSS of this process: {rss_mib:.0f} MiB")
    chunks.sort()
    print(f"hot path (CPU): {len(chunks) * chunk} smoke telemetry messages, {devices} devices: "
          f"best {chunks[0] * 1e6:.2f} / median {chunks[len(chunks) // 2] * 1e6:.2f} µs/message "
          "(ingest + status + rules + line protocol)")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
