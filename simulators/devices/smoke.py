"""Smoke detector: daily heartbeat, sensor noise, slow battery drain, monthly self-test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from simulators.devices import Emission, every, heartbeat_s, indoor_temp, rssi

if TYPE_CHECKING:
    from simulators.device import SimulatedDevice

#: A 3-year primary lithium cell (product manuals, domain.md 1.2): about 0.09 % a day.
DRAIN_PER_DAY = 100 / (3 * 365)
#: Clean air reads 0.01-0.05 dB/m; GB 4715 thresholds start at 0.05 (type A) / 0.15 (type B).
CLEAN_AIR_DBM = 0.025
LOW_BATTERY_PCT = 15
SELF_TEST_EVERY_S = 30 * 86_400


def smoke_reading(dev: SimulatedDevice, ts_ms: int) -> dict[str, float | int]:
    """One heartbeat's fields: obscuration with noise, room temperature, battery, signal."""
    rng = dev.rng
    return {
        "smoke_dbm": round(min(0.05, max(0.01, rng.gauss(CLEAN_AIR_DBM, 0.007))), 3),
        "temp_c": indoor_temp(ts_ms, dev.temp_bias, rng),
        "battery_pct": int(dev.battery_pct),
        "rssi_dbm": rssi(rng, dev.rssi_centre),
    }


def behaviour(dev: SimulatedDevice, start_ms: int) -> Iterator[Emission]:
    """Heartbeat telemetry at the profile's interval; low-battery and self-test events."""
    interval = heartbeat_s("smoke")
    next_test = dev.rng.uniform(0, SELF_TEST_EVERY_S)
    low_sent = False
    last = 0.0
    for t in every(0.0, interval, dev.rng):
        dev.drain((t - last) / 86_400 * DRAIN_PER_DAY)
        last = t
        yield t, "telemetry", smoke_reading(dev, start_ms + int(t * 1000))
        if dev.battery_pct < LOW_BATTERY_PCT and not low_sent:
            low_sent = True
            yield t + 1, "event", {"event": "low_battery", "battery_pct": int(dev.battery_pct)}
        if t >= next_test:
            next_test += SELF_TEST_EVERY_S
            yield t + 2, "event", {"event": "self_test"}
