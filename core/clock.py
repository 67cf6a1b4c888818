"""The injectable clock: "now" is passed in, never read deep inside the pipeline."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock time in epoch milliseconds."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start_ms: int = 1_764_000_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms

    def set(self, ms: int) -> None:
        self._now = ms


class CompressedClock:
    """Simulated time running ``speed`` times faster than real time, for scenario runs.

    ``now_ms() = start_ms + monotonic elapsed × speed``: a day of absence timers passes in
    seconds when the gateway and a simulator follow the same clock. ``start_ms`` defaults to
    wall-clock now; pass a time of day to play a night-time scenario. ``set_speed`` changes
    the pace from now on without a jump (time never goes backwards).
    """

    def __init__(self, speed: float = 1.0, start_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.start_ms = SystemClock().now_ms() if start_ms is None else start_ms
        self._t0 = time.monotonic()

    def now_ms(self) -> int:
        return self.start_ms + int((time.monotonic() - self._t0) * self.speed * 1000)

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        t = time.monotonic()
        self.start_ms += int((t - self._t0) * self.speed * 1000)
        self._t0 = t
        self.speed = speed


class AnchoredClock:
    """Simulated time that any process can compute from wall-clock time: ``now_ms() =
    sim_ms + (wall now - wall_ms) × speed``.

    The demo's compressed world (``safety-gateway demo --rate N``): the gateway, its fleet
    and a scenario played against it read the same anchor (``GET /api/v1/clock``) and agree on
    "now" without talking; a restart continues from the same anchor, so time never goes back.
    """

    def __init__(self, speed: float = 1.0, wall_ms: int | None = None,
                 sim_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        now = SystemClock().now_ms()
        self.speed = speed
        self.wall_ms = now if wall_ms is None else wall_ms
        self.sim_ms = self.wall_ms if sim_ms is None else sim_ms

    def now_ms(self) -> int:
        return self.sim_ms + int((time.time_ns() // 1_000_000 - self.wall_ms) * self.speed)

    def rebased(self, speed: float) -> AnchoredClock:
        """The same "now", running at ``speed`` from here on."""
        wall = time.time_ns() // 1_000_000
        return AnchoredClock(speed, wall, self.sim_ms + int((wall - self.wall_ms) * self.speed))
