"""Simulated clock: real time or compressed (speed 60 = one simulated minute per real second)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone

#: Communities are in China (UTC+8, no daylight saving); daily rhythms use local time.
CHINA_TZ = timezone(timedelta(hours=8))


def wall_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


class SimClock:
    """Maps real elapsed time onto simulated epoch milliseconds.

    ``start_ms`` is the simulated time at ``start()``; ``speed`` is simulated seconds per real
    second. ``ts`` values in messages follow this clock, so a day of silence compresses to
    seconds; the clock also says which simulated time it reached.
    """

    def __init__(self, speed: float = 1.0, start_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.start_ms = wall_ms() if start_ms is None else start_ms
        self._t0 = time.monotonic()

    def start(self) -> None:
        """Restart the real-time origin (simulated time goes back to ``start_ms``)."""
        self._t0 = time.monotonic()

    def elapsed_s(self) -> float:
        """Simulated seconds since start."""
        return (time.monotonic() - self._t0) * self.speed

    def now_ms(self) -> int:
        """Simulated epoch milliseconds now."""
        return self.start_ms + int(self.elapsed_s() * 1000)

    def at_ms(self, offset_s: float) -> int:
        """Simulated epoch milliseconds of an offset (simulated seconds) from the start."""
        return self.start_ms + round(offset_s * 1000)

    def real_delay(self, offset_s: float) -> float:
        """Real seconds to wait until the simulated offset is reached (never negative)."""
        return max(0.0, (offset_s - self.elapsed_s()) / self.speed)

    async def sleep_until(self, offset_s: float) -> None:
        """Sleep (real time) until the simulated offset."""
        delay = self.real_delay(offset_s)
        if delay > 0:
            await asyncio.sleep(delay)


def anchored_start_ms(
    duration_s: float, speed: float, now_ms: int | None = None, time_of_day: str | None = None
) -> int:
    """Pick the simulated start so that no ``ts`` ever lies in the real future.

    A compressed run of ``duration_s`` simulated seconds takes ``duration_s / speed`` real
    seconds; starting ``duration_s - duration_s / speed`` in the past makes the last simulated
    step land at the real end (a gateway rejects future timestamps). ``time_of_day`` ("02:30",
    China time) moves the start back to the latest such moment before that bound, for scenarios
    that must happen at night or in a rush hour.
    """
    now = wall_ms() if now_ms is None else now_ms
    latest = now - int(max(0.0, duration_s - duration_s / speed) * 1000)
    if time_of_day is None:
        return latest
    hour, minute = (int(part) for part in time_of_day.split(":", 1))
    local = datetime.fromtimestamp(latest / 1000, CHINA_TZ)
    start = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if start > local:
        start -= timedelta(days=1)
    return int(start.astimezone(UTC).timestamp() * 1000)


def local_hour(epoch_ms: int) -> float:
    """Hour of day (0-24, fractional) in China time."""
    local = datetime.fromtimestamp(epoch_ms / 1000, CHINA_TZ)
    return local.hour + local.minute / 60 + local.second / 3600


def iso_local(epoch_ms: int) -> str:
    """Human-readable China time of an epoch-ms value."""
    return datetime.fromtimestamp(epoch_ms / 1000, CHINA_TZ).isoformat(timespec="seconds")
