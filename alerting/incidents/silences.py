"""Silences (maintenance windows): no paging for a device, building or grid until an end time.

A silence never hides an incident: it is opened and recorded as usual, only its
notifications wait until the silence ends (checked at each escalation step). A life-safety
alarm (fire, SOS, gas, a door forced at an elderly household) is never held back: it pages as
usual and carries a "设备维护中" mark instead (:func:`life_safety`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from sqlalchemy import ScalarSelect, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.incidents.tables import SilenceRow
from alerting.incidents.views import SilenceView
from core.clock import Clock

# Rules whose alarm means a life at risk: a maintenance window never mutes them.
_LIFE_SAFETY_RULES = ("smoke.alarm", "smoke.obscuration", "smoke.heat", "smoke.multi", "sos.")
_ELDERLY_FLAGS = ("elderly_alone", "elderly")


def life_safety(labels: Mapping[str, object], rule_id: str) -> bool:
    """Fire, SOS, gas, or a door forced at an elderly household: always pages."""
    if rule_id.startswith(_LIFE_SAFETY_RULES) or "gas" in rule_id:
        return True
    if rule_id == "gate.door_forced":
        flags = str(labels.get("household_flags", "")).split(",")
        return any(f in _ELDERLY_FLAGS for f in flags)
    return False


class Matcher(StrEnum):
    DEVICE = "device"
    BUILDING = "building"
    GRID = "grid"


def _covering(
    site: str, device_id: str | None, building_id: str | None, grid_id: str | None, now_ms: int
) -> Select[SilenceRow] | None:
    """The silences covering this place at ``now_ms``, the longest-lasting first."""
    pairs = [(Matcher.DEVICE, device_id), (Matcher.BUILDING, building_id), (Matcher.GRID, grid_id)]
    terms = [(SilenceRow.matcher == m.value) & (SilenceRow.value == v) for m, v in pairs if v]
    if not terms:
        return None
    return (
        select(SilenceRow)
        .where(
            SilenceRow.site == site,
            SilenceRow.starts_at_ms <= now_ms,
            SilenceRow.ends_at_ms > now_ms,
            or_(*terms),
        )
        .order_by(SilenceRow.ends_at_ms.desc())
        .limit(1)
    )


# The alarm path asks for an incident's key and its place's silence in one query
# (:func:`covering_silence_id`); the answer is kept in the session for that transaction.
_KNOWN = "silences.covering"


def covering_silence_id(
    site: str, device_id: str | None, building_id: str | None, grid_id: str | None, now_ms: int
) -> ScalarSelect[int] | None:
    """The id of the silence :func:`active_silence` would find, as a scalar subquery."""
    stmt = _covering(site, device_id, building_id, grid_id, now_ms)
    return None if stmt is None else stmt.with_only_columns(SilenceRow.id).scalar_subquery()


def remember_silence(
    session: AsyncSession, place: tuple[str, str | None, str | None, str | None, int], found: bool
) -> None:
    """Whether a silence covers ``place`` (site, device, building, grid, at), as looked up
    together with something else; :func:`active_silence` then asks again only if one does."""
    session.info.setdefault(_KNOWN, {})[place] = found


async def active_silence(
    session: AsyncSession,
    *,
    site: str,
    device_id: str | None,
    building_id: str | None,
    grid_id: str | None,
    now_ms: int,
) -> SilenceRow | None:
    """The silence covering this place at ``now_ms`` that lasts longest, if any."""
    known: dict[object, bool] = session.info.get(_KNOWN, {})
    if known.get((site, device_id, building_id, grid_id, now_ms)) is False:
        return None
    stmt = _covering(site, device_id, building_id, grid_id, now_ms)
    if stmt is None:
        return None
    return (await session.execute(stmt)).scalar_one_or_none()


class SilenceService:
    """Create, list and end silences; every silence needs an end time."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sm = sessionmaker
        self._clock = clock

    async def create(
        self,
        *,
        site: str,
        matcher: Matcher,
        value: str,
        ends_at_ms: int,
        actor: str,
        reason: str = "",
        starts_at_ms: int | None = None,
    ) -> SilenceView:
        now = self._clock.now_ms()
        start = now if starts_at_ms is None else starts_at_ms
        if ends_at_ms <= max(start, now):
            raise ValueError("a silence must end in the future and after it starts")
        if not value:
            raise ValueError(f"a {matcher.value} silence needs a {matcher.value} id")
        row = SilenceRow(
            site=site,
            matcher=Matcher(matcher).value,
            value=value,
            starts_at_ms=start,
            ends_at_ms=ends_at_ms,
            created_by=actor,
            created_at_ms=now,
            reason=reason,
        )
        async with self._sm.begin() as session:
            session.add(row)
        return SilenceView.of(row)

    async def list(self, site: str | None = None, *, active_only: bool = True) -> list[SilenceView]:
        stmt = select(SilenceRow).order_by(SilenceRow.id)
        if site is not None:
            stmt = stmt.where(SilenceRow.site == site)
        if active_only:
            stmt = stmt.where(SilenceRow.ends_at_ms > self._clock.now_ms())
        async with self._sm() as session:
            return [SilenceView.of(r) for r in (await session.execute(stmt)).scalars()]

    async def expire(self, silence_id: int) -> SilenceView:
        """End a silence now (it stays listed as history)."""
        async with self._sm.begin() as session:
            row = await session.get(SilenceRow, silence_id)
            if row is None:
                raise KeyError(f"no silence {silence_id}")
            row.ends_at_ms = min(row.ends_at_ms, self._clock.now_ms())
            return SilenceView.of(row)
