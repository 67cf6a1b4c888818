"""Household gas detector with a shut-off valve: hourly check-in, clean-air noise, the valve
open, a sensor life that counts down, a monthly self-test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from simulators.devices import Emission, every, heartbeat_s, rssi

if TYPE_CHECKING:
    from simulators.device import SimulatedDevice

#: Clean kitchen air reads 0-1 %LEL on a catalytic/semiconductor sensor (zero drift).
CLEAN_AIR_LEL = 0.3
#: A typical rated sensor life of 5 years; a device starts somewhere inside it.
SENSOR_LIFE_DAYS = 5 * 365
SELF_TEST_EVERY_S = 30 * 86_400


def gas_reading(dev: SimulatedDevice, days_left: int) -> dict[str, Any]:
    """One check-in: concentration noise, CO near zero, valve open, mains, signal."""
    rng = dev.rng
    return {
        "gas_lel_pct": round(min(1.0, max(0.0, rng.gauss(CLEAN_AIR_LEL, 0.15))), 1),
        "co_ppm": round(max(0.0, rng.gauss(1.5, 0.8)), 1),
        "valve": "open",
        "power": "mains",
        "battery_pct": int(dev.battery_pct),
        "rssi_dbm": rssi(rng, dev.rssi_centre),
        "sensor_days_left": max(0, days_left),
    }


def behaviour(dev: SimulatedDevice, start_ms: int) -> Iterator[Emission]:
    """Check-ins at the profile's interval; sensor end of life and self-test events."""
    interval = heartbeat_s("gas")
    start_days = int(dev.rng.uniform(30, SENSOR_LIFE_DAYS))
    next_test = dev.rng.uniform(0, SELF_TEST_EVERY_S)
    expired_sent = False
    for t in every(0.0, interval, dev.rng):
        days_left = start_days - int(t // 86_400)
        yield t, "telemetry", gas_reading(dev, days_left)
        if days_left <= 0 and not expired_sent:
            expired_sent = True
            yield t + 1, "event", {"event": "sensor_expired"}
        if t >= next_test:
            next_test += SELF_TEST_EVERY_S
            yield t + 2, "event", {"event": "self_test"}
