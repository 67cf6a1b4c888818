"""Rule state per device: bytes the rule engine holds for a mixed fleet (tracemalloc).

    .venv/bin/python benchmarks/rule_state_memory.py [devices]

Registers a community's mix (35 % smoke, 10 % SOS, 15 % gates, 40 % charger ports), feeds
each device one quiet reading of its type (so every timer and rate-of-rise window is live),
and prints the engine's allocations divided by the device count. The bar is 1 KiB a device.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.rules import RuleEngine, load_rules
from core.readings import DeviceContext, Reading

MIX = (("smoke", 35), ("sos", 10), ("gate", 15), ("charger", 40))
QUIET = {
    "smoke": {"smoke_dbm": 0.02, "temp_c": 23.5, "battery_pct": 87, "rssi_dbm": -97},
    "sos": {"battery_pct": 64, "rssi_dbm": -88},
    "gate": {"door_open": False, "battery_pct": 90},
    "charger": {"port": 1, "state": "charging", "power_w": 398.5, "temp_c": 36.2, "leak_ma": 0.4},
}


def type_of(i: int) -> str:
    """The mix by device number: of every 100, 35 smoke, 10 SOS, 15 gates, 40 chargers."""
    slot, acc = i % 100, 0
    for name, share in MIX:
        acc += share
        if slot < acc:
            return name
    return MIX[-1][0]


def fleet(n: int) -> list[DeviceContext]:
    out = []
    for i in range(n):
        device_type = type_of(i)
        out.append(
            DeviceContext(
                site="demo",
                device_id=f"{device_type[:2].upper()}-{i:06d}",
                device_type=device_type,  # type: ignore[arg-type]
                grid_id=f"g{i % 4}",
                building_id=f"b{i % 200}",
                household_id=f"h{i // 3}" if device_type in ("sos", "gate") else None,
                household_flags=frozenset(),
                location=f"b{i % 200}",
            )
        )
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    devices = fleet(n)
    rules = load_rules()
    now = 1_764_043_200_000
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    engine = RuleEngine(rules, grace_ms=300_000)
    for ctx in devices:
        engine.register_device(ctx, now)
    engine.start(now)
    for i, ctx in enumerate(devices):
        reading = Reading(
            site="demo",
            device_type=ctx.device_type,
            device_id=ctx.device_id,
            kind="telemetry",
            ts_ms=now + 1000,
            seq=i,
            fields=QUIET[ctx.device_type],  # type: ignore[arg-type]
        )
        engine.on_reading(reading, ctx, now + 1000)
    gc.collect()
    after = tracemalloc.take_snapshot()
    # What the engine holds, not the contexts (the registry owns those) nor the readings.
    held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"{n:,} devices (35% smoke, 10% SOS, 15% gates, 40% charger ports): rule engine "
          f"holds {held / 2**20:.1f} MiB, {held / n:.0f} bytes per device "
          f"({'within' if held / n <= 1024 else 'OVER'} the 1 KiB bar)")
    del engine


if __name__ == "__main__":
    main()
