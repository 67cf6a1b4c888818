"""E-bike charging pile: evening and night sessions per port with ramp, taper, float and heat.

Per-port physics, one step per heartbeat (1 min by default):
- soft start: current ramps to the constant-current level (2-3 A) over about 2 minutes;
- constant current while the pack voltage climbs (48 V pack: 50.5 -> 58.5 V; 60 V: x1.25);
- taper (constant voltage): current decays exponentially until about 0.3 A;
- float: a trickle under 20 W ("判满小于20W", domain.md 4.3), then auto-stop ("充满自停");
- the pile stops any session at 8 h (group-standard guidance);
- port temperature follows power with a first-order lag.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulators.clock import local_hour
from simulators.devices import Emission, heartbeat_s, indoor_temp

if TYPE_CHECKING:
    import random

    from simulators.device import SimulatedDevice

#: Arrivals per idle port per day, shaped by hour: people plug in after work and overnight.
ARRIVAL_RHYTHM = (
    0.6, 0.4, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.5, 0.4, 0.4, 0.5,
    0.6, 0.5, 0.4, 0.5, 0.7, 1.6, 2.6, 3.2, 3.0, 2.4, 1.6, 1.0,
)
ARRIVALS_PER_DAY = 0.8
MAX_SESSION_S = 8 * 3600
FLOAT_TIME_S = 3600
TAPER_TAU_S = 50 * 60
THERMAL_TAU_S = 15 * 60
DEGREES_PER_WATT = 0.1
PACK_AH = 20.0


@dataclass
class Port:
    """One port's session state."""

    number: int
    state: str = "idle"
    scale: float = 1.0  # 1.0 = 48 V pack, 1.25 = 60 V pack
    cc_amps: float = 0.0
    soc: float = 0.0
    elapsed: float = 0.0
    phase_t: float = 0.0
    amps: float = 0.0
    volts: float = 0.0
    energy_wh: float = 0.0
    temp_c: float = 25.0
    pickup_at: float = 0.0


def _start(port: Port, rng: random.Random) -> None:
    port.state, port.elapsed, port.phase_t, port.energy_wh = "charging", 0.0, 0.0, 0.0
    port.scale = rng.choice((1.0, 1.0, 1.25))
    port.cc_amps = rng.uniform(2.0, 3.0)
    port.soc = rng.uniform(0.3, 0.65)


def _step(port: Port, dt: float) -> str | None:
    """Advance one charging port by ``dt`` seconds; return "session_end" when it stops."""
    port.elapsed += dt
    port.phase_t += dt
    if port.state == "charging" and port.soc < 0.85:
        port.amps = port.cc_amps * min(1.0, port.elapsed / 120)
        port.soc += port.amps * dt / 3600 / PACK_AH
        port.volts = port.scale * (50.5 + 8.0 * min(1.0, port.soc / 0.85))
        if port.soc >= 0.85:
            port.phase_t = 0.0
    elif port.state == "charging":
        port.volts = port.scale * 58.8
        port.amps = port.cc_amps * math.exp(-port.phase_t / TAPER_TAU_S)
        if port.amps < 0.3:
            port.state, port.phase_t = "float", 0.0
    elif port.state == "float":
        port.volts, port.amps = port.scale * 55.2, 0.22
        if port.phase_t >= FLOAT_TIME_S:
            port.state = "full"
    port.energy_wh += port.volts * port.amps * dt / 3600
    if port.state == "full" or port.elapsed >= MAX_SESSION_S:
        port.state, port.amps = "full", 0.0
        return "session_end"
    return None


def port_fields(port: Port, leak_ma: float) -> dict[str, Any]:
    """Telemetry fields of one port (rounded as a pile reports them)."""
    return {
        "port": port.number,
        "state": port.state,
        "voltage_v": round(port.volts, 1),
        "current_a": round(port.amps, 2),
        "power_w": round(port.volts * port.amps, 1),
        "energy_wh": round(port.energy_wh, 1),
        "temp_c": round(port.temp_c, 1),
        "leak_ma": round(leak_ma, 1),
    }


def behaviour(dev: SimulatedDevice, start_ms: int) -> Iterator[Emission]:
    """Every heartbeat: one telemetry message per port; session_start/_end events between."""
    rng = dev.rng
    dt = heartbeat_s("charger")
    ports = [Port(n) for n in range(1, dev.spec.ports + 1)]
    t = rng.uniform(0, dt)
    while True:
        now_ms = start_ms + int(t * 1000)
        ambient = indoor_temp(now_ms, dev.temp_bias, rng)
        hour = int(local_hour(now_ms)) % 24
        for port in ports:
            yield from _advance(port, t, dt, hour, ambient, rng)
        t += dt


def _advance(
    port: Port, t: float, dt: float, hour: int, ambient: float, rng: random.Random
) -> Iterator[Emission]:
    if port.state == "idle":
        chance = ARRIVALS_PER_DAY * ARRIVAL_RHYTHM[hour] / sum(ARRIVAL_RHYTHM) * 24 * dt / 86_400
        if rng.random() < chance:
            _start(port, rng)
            yield t, "event", {"event": "session_start", "port": port.number}
    elif port.state in ("charging", "float"):
        if _step(port, dt) == "session_end":
            port.pickup_at = t + rng.uniform(1, 10) * 3600
            yield t, "event", {"event": "session_end", "port": port.number,
                               "energy_wh": round(port.energy_wh, 1)}
    elif port.state == "full" and t >= port.pickup_at:
        port.state, port.volts = "unplugged", 0.0
    elif port.state == "unplugged":
        port.state = "idle"
    target = ambient + DEGREES_PER_WATT * port.volts * port.amps
    port.temp_c += (target - port.temp_c) * (1 - math.exp(-dt / THERMAL_TAU_S))
    leak = rng.uniform(0.2, 1.5) if port.amps > 0 else rng.uniform(0.0, 0.2)
    yield t, "telemetry", port_fields(port, leak)
