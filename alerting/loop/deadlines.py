"""Deadlines of the loop: hazards' rectification deadlines (reminder before, escalation when
overdue) and departments' reply deadlines. Each overdue item escalates through the incident's
escalation timer, so the escalation loop pages the community with the ladder it already has."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.incidents.store import add_event
from alerting.incidents.tables import IncidentRow
from alerting.loop.desk import HOUR_MS, LoopDesk
from alerting.loop.hazard import HazardState
from alerting.loop.tables import CaseRow, DeptReferralRow
from alerting.scope import OwnedSites, every_site
from core.clock import Clock

log = logging.getLogger(__name__)
ACTIVE = ("open", "acknowledged")


class LoopWatch:
    """Looks at the loop's deadlines every tick; ``tick(now_ms)`` is what tests call."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        desk: LoopDesk,
        on_escalated: Callable[[], None] | None = None,
        owned_sites: OwnedSites = every_site,
    ) -> None:
        self._owned = owned_sites
        self._sm = sessions
        self._clock = clock
        self._desk = desk
        self._on_escalated = on_escalated

    async def run(self, stop: asyncio.Event, *, tick_s: float = 30.0) -> None:
        while not stop.is_set():
            try:
                await self.tick(self._clock.now_ms())
            except Exception:  # the next tick tries again; an alarm path never waits on this
                log.exception("loop deadlines: tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_s)

    async def tick(self, now_ms: int) -> int:
        """Remind, mark overdue and escalate what is due; returns how many changed."""
        async with self._sm.begin() as s:
            changed = await self._hazards(s, now_ms) + await self._referrals(s, now_ms)
        if changed and self._on_escalated is not None:
            self._on_escalated()
        return changed

    def _scope(self) -> list[ColumnElement[bool]]:
        sites = self._owned()
        return [] if sites is None else [IncidentRow.site.in_(sites)]

    async def _hazards(self, s: AsyncSession, now_ms: int) -> int:
        lead = int(self._desk.config.hazard_remind_before_h * HOUR_MS)
        rows = await s.execute(
            select(CaseRow, IncidentRow)
            .join(IncidentRow, IncidentRow.id == CaseRow.incident_id)
            .where(
                CaseRow.hazard.is_(True),
                CaseRow.deadline_ms.is_not(None),
                CaseRow.deadline_ms - lead <= now_ms,
                CaseRow.hazard_state.not_in([HazardState.RECTIFIED.value]),
                CaseRow.overdue_at_ms.is_(None),
                IncidentRow.status.in_(ACTIVE),
                *self._scope(),
            )
            .with_for_update(skip_locked=True)
        )
        n = 0
        for case, row in rows.all():
            assert case.deadline_ms is not None
            if case.deadline_ms <= now_ms:
                case.hazard_state, case.overdue_at_ms = HazardState.OVERDUE.value, now_ms
                add_event(
                    s,
                    row.id,
                    now_ms,
                    "hazard_overdue",
                    note="整改期限已过 (rectification deadline passed)",
                    data={"deadline_ms": case.deadline_ms},
                )
                await self._desk.escalate_overdue(s, row, now_ms)
            elif case.reminded_at_ms is None:
                case.reminded_at_ms = now_ms
                add_event(
                    s,
                    row.id,
                    now_ms,
                    "hazard_deadline_near",
                    note="整改期限将至 (deadline near)",
                    data={"deadline_ms": case.deadline_ms},
                )
                await self._desk.remind(s, row, now_ms)
            else:
                continue
            n += 1
        return n

    async def _referrals(self, s: AsyncSession, now_ms: int) -> int:
        rows = await s.execute(
            select(DeptReferralRow, IncidentRow)
            .join(IncidentRow, IncidentRow.id == DeptReferralRow.incident_id)
            .where(
                DeptReferralRow.status.in_(("sent", "accepted")),
                DeptReferralRow.due_at_ms <= now_ms,
                DeptReferralRow.overdue_at_ms.is_(None),
                *self._scope(),
            )
            .with_for_update(skip_locked=True)
        )
        n = 0
        for ref, row in rows.all():
            ref.overdue_at_ms = now_ms
            dept = self._desk.config.department(ref.department)
            add_event(
                s,
                row.id,
                now_ms,
                "referral_overdue",
                note=f"{dept.name if dept else ref.department} 未按期回复 (no reply by due)",
                data={"referral": ref.id, "department": ref.department},
            )
            await self._desk.escalate_overdue(s, row, now_ms)
            n += 1
        return n
