"""When a rule may raise: active windows (night-only) and quiet hours, in a local time zone."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator, model_validator

from core.zones import TimeZoneName

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MINUTE_MS = 60_000


class TimeWindow(BaseModel):
    """``start``–``end`` in local wall time; ``22:00``–``06:00`` runs over midnight.

    ``days`` are the days the window *starts* on (all days when empty).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    end: str
    days: frozenset[Weekday] = frozenset()

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a time of day HH:MM")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("start and end are equal: leave the schedule out for all day")
        return self

    def _minutes(self) -> tuple[int, int]:
        sh, sm = self.start.split(":")
        eh, em = self.end.split(":")
        return int(sh) * 60 + int(sm), int(eh) * 60 + int(em)

    def _day_ok(self, day: date) -> bool:
        return not self.days or WEEKDAYS[day.weekday()] in self.days

    def contains(self, local: datetime) -> bool:
        start, end = self._minutes()
        minute = local.hour * 60 + local.minute
        if start < end:
            return start <= minute < end and self._day_ok(local.date())
        if minute >= start:
            return self._day_ok(local.date())
        return minute < end and self._day_ok(local.date() - timedelta(days=1))

    def edges(self, day: date) -> tuple[time, time]:
        start, end = self._minutes()
        return time(start // 60, start % 60), time(end // 60, end % 60)


class Schedule(BaseModel):
    """A rule raises only inside one of ``active`` (if any) and outside every ``quiet`` window.

    Conditions that come due outside the schedule are held until it opens, so a quiet-hours
    rule reports in the morning rather than never.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: TimeZoneName = "Asia/Shanghai"
    active: tuple[TimeWindow, ...] = ()
    quiet: tuple[TimeWindow, ...] = ()
    _cache: dict[int, bool] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _some_window(self) -> Schedule:
        if not self.active and not self.quiet:
            raise ValueError("a schedule needs active or quiet windows")
        return self

    def is_active(self, now_ms: int) -> bool:
        """Whether the rule may raise at ``now_ms`` (cached per minute: this is on the hot path)."""
        minute = now_ms // _MINUTE_MS
        hit = self._cache.get(minute)
        if hit is None:
            if len(self._cache) > 1024:
                self._cache.clear()
            hit = self._compute(now_ms)
            self._cache[minute] = hit
        return hit

    def _compute(self, now_ms: int) -> bool:
        local = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(self.timezone))
        if self.active and not any(w.contains(local) for w in self.active):
            return False
        return not any(w.contains(local) for w in self.quiet)

    def next_active_ms(self, now_ms: int) -> int:
        """The first minute at or after ``now_ms`` at which the rule is active."""
        if self.is_active(now_ms):
            return now_ms
        tz = ZoneInfo(self.timezone)
        today = datetime.fromtimestamp(now_ms / 1000, tz).date()
        candidates: list[int] = []
        for offset in range(-1, 9):
            day = today + timedelta(days=offset)
            for window in self.active:
                candidates.append(_epoch_ms(day, window.edges(day)[0], tz))
            for window in self.quiet:
                end_day = (
                    day + timedelta(days=1) if window.edges(day)[1] <= window.edges(day)[0] else day
                )
                candidates.append(_epoch_ms(end_day, window.edges(day)[1], tz))
        for candidate in sorted(c for c in candidates if c > now_ms):
            if self._compute(candidate):
                return candidate
        return now_ms + 86_400_000  # unreachable for valid windows; re-check in a day


def _epoch_ms(day: date, at: time, tz: ZoneInfo) -> int:
    return int(datetime.combine(day, at, tzinfo=tz).timestamp() * 1000)


__all__ = ["WEEKDAYS", "Schedule", "TimeWindow"]
