"""Elderly call button: hourly check-in, rare presses (most cancelled by the elder), battery drain."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from simulators.devices import Emission, every, heartbeat_s, poisson_times, rssi

if TYPE_CHECKING:
    from simulators.device import SimulatedDevice

#: A CR2032 pendant checked every 16-24 h lasts about a year (VESTA-079, domain.md 2).
DRAIN_PER_DAY = 100 / 365
PRESSES_PER_DAY = 1 / 120
#: Presses happen while awake; none in the small hours.
AWAKE = (0.1,) * 6 + (1.0,) * 16 + (0.3,) * 2
ACCIDENTAL = 0.6


def _presses(dev: SimulatedDevice, start_ms: int) -> Iterator[Emission]:
    for t in poisson_times(dev.rng, start_ms, PRESSES_PER_DAY, AWAKE):
        yield t, "event", {"event": "button_pressed"}
        if dev.rng.random() < ACCIDENTAL:
            # VESTA-079: holding the button 8 s sends a cancel code
            yield t + dev.rng.uniform(8, 25), "event", {"event": "cancel"}


def _heartbeats(dev: SimulatedDevice) -> Iterator[Emission]:
    last = 0.0
    for t in every(0.0, heartbeat_s("sos"), dev.rng):
        dev.drain((t - last) / 86_400 * DRAIN_PER_DAY)
        last = t
        fields: dict[str, Any] = {"battery_pct": int(dev.battery_pct),
                                  "rssi_dbm": rssi(dev.rng, dev.rssi_centre)}
        yield t, "telemetry", fields


def behaviour(dev: SimulatedDevice, start_ms: int) -> Iterator[Emission]:
    """Hourly telemetry merged with rare button presses."""
    yield from heapq.merge(_heartbeats(dev), _presses(dev, start_ms), key=lambda e: e[0])
