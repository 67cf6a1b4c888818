"""Behaviour models: each device type as an endless, time-ordered stream of emissions.

A behaviour is ``behaviour(device, start_ms) -> Iterator[Emission]``; ``Emission`` is
``(offset_s, kind, fields)`` with ``offset_s`` simulated seconds after ``start_ms`` (non-decreasing)
and ``fields`` the canonical payload without ``ts``/``seq`` (the device adds those).
"""

from __future__ import annotations

import importlib
import math
import random
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from simulators.clock import local_hour

if TYPE_CHECKING:
    from simulators.device import SimulatedDevice

Emission = tuple[float, str, dict[str, Any]]
Behaviour = Callable[["SimulatedDevice", int], Iterator[Emission]]

#: Check-in intervals when device_profiles is not importable (the native profiles' values).
DEFAULT_HEARTBEAT_S = {
    "smoke": 86_400.0, "sos": 3_600.0, "gate": 300.0, "charger": 60.0, "gas": 3_600.0,
}


@cache
def heartbeat_s(device_type: str) -> float:
    """The profile's heartbeat interval in seconds (device_profiles if present, else defaults)."""
    try:
        registry = importlib.import_module("device_profiles").load_profiles()
        return float(registry.profile_for(device_type).heartbeat.interval.total_seconds())
    except Exception:  # optional dependency: fall back to the documented defaults
        return DEFAULT_HEARTBEAT_S[device_type]


def indoor_temp(epoch_ms: int, bias: float, rng: random.Random) -> float:
    """Indoor air, 18-30 °C: warmest mid-afternoon, coolest before dawn, plus sensor noise."""
    hour = local_hour(epoch_ms)
    value = 24.0 + bias + 3.5 * math.sin(2 * math.pi * (hour - 9) / 24) + rng.gauss(0, 0.2)
    return round(min(30.0, max(18.0, value)), 1)


def rssi(rng: random.Random, centre: float) -> int:
    """Received signal in dBm around the device's own level (walls, floors, cell load)."""
    return int(min(-50, max(-135, rng.gauss(centre, 3))))


def poisson_times(
    rng: random.Random, start_ms: int, per_day: float, weights: tuple[float, ...]
) -> Iterator[float]:
    """Event offsets (s) of a Poisson process whose hourly rate follows ``weights`` (24 values).

    Thinning: draw at the peak rate, keep each draw with probability weight(hour) / peak.
    """
    mean = sum(weights) / 24
    peak = max(weights)
    rate = per_day / 86_400 * peak / mean
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        hour = int(local_hour(start_ms + int(t * 1000))) % 24
        if rng.random() < weights[hour] / peak:
            yield t


def every(start: float, interval: float, rng: random.Random, jitter: float = 0.01) -> Iterator[
    float
]:
    """Periodic offsets with a little clock drift, the first one staggered in ``[0, interval)``."""
    t = start + rng.uniform(0, interval)
    while True:
        yield t
        t += interval * rng.uniform(1 - jitter, 1 + jitter)


#: Device type -> the module of its behaviour model (a module of this package with a
#: ``behaviour`` function). A new device type is a module and a line here.
BEHAVIOURS: dict[str, str] = {
    "smoke": "simulators.devices.smoke",
    "sos": "simulators.devices.sos",
    "gate": "simulators.devices.gate",
    "charger": "simulators.devices.charger",
    "gas": "simulators.devices.gas",
}


def behaviour_for(device_type: str) -> Behaviour:
    """The behaviour model of a device type."""
    found: Behaviour = importlib.import_module(BEHAVIOURS[device_type]).behaviour
    return found
