"""Access gate: a residential building's daily rhythm (morning and evening peaks), some denials."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING

from simulators.devices import Emission, every, heartbeat_s, poisson_times

if TYPE_CHECKING:
    from simulators.device import SimulatedDevice

#: Relative passage rate per local hour: quiet nights, 7-9 h leaving for work and school,
#: a lunchtime bump, 17-20 h coming home.
DAILY_RHYTHM = (
    0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 1.2, 3.0, 3.2, 1.2, 0.8, 1.0,
    1.3, 0.9, 0.7, 0.8, 1.2, 2.6, 3.4, 2.8, 1.6, 1.0, 0.5, 0.2,
)
ENTRANCE_PASSES_PER_DAY = 240.0
HOUSEHOLD_PASSES_PER_DAY = 6.0
DENIED_SHARE = 0.03
CREDENTIALS = ("card", "face", "qr", "pin")
CREDENTIAL_WEIGHTS = (0.35, 0.45, 0.15, 0.05)


def _passages(dev: SimulatedDevice, start_ms: int) -> Iterator[Emission]:
    per_day = HOUSEHOLD_PASSES_PER_DAY if dev.spec.household else ENTRANCE_PASSES_PER_DAY
    rng = dev.rng
    for t in poisson_times(rng, start_ms, per_day, DAILY_RHYTHM):
        credential = rng.choices(CREDENTIALS, CREDENTIAL_WEIGHTS)[0]
        if rng.random() < DENIED_SHARE:
            yield t, "event", {"event": "access_denied", "credential": credential}
            continue
        yield t, "event", {"event": "access_granted", "credential": credential}
        # BACnet/Axis doors: a few seconds open, well inside the 30 s held-open limit
        yield t + rng.uniform(3, 12), "event", {"event": "door_closed"}


def _heartbeats(dev: SimulatedDevice) -> Iterator[Emission]:
    for t in every(0.0, heartbeat_s("gate"), dev.rng):
        yield t, "telemetry", {"door_open": False, "battery_pct": int(dev.battery_pct)}


def behaviour(dev: SimulatedDevice, start_ms: int) -> Iterator[Emission]:
    """Check-in telemetry merged with passages (entrances busy, household doors a few a day)."""
    yield from heapq.merge(_heartbeats(dev), _passages(dev, start_ms), key=lambda e: e[0])
