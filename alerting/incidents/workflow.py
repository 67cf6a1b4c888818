"""What people do to incidents: acknowledge, comment, assign, escalate, refer, resolve, close,
reopen; and how incidents are read back with their events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.escalation.timers import EscalationTimerRow, TimerKind, set_timer, stop_timer
from alerting.incidents.lifecycle import Action, Department, IncidentStatus, Resolution, next_status
from alerting.incidents.store import add_event, set_status
from alerting.incidents.tables import (
    IncidentDeviceRow,
    IncidentEventRow,
    IncidentRow,
    ReferralRow,
)
from alerting.incidents.views import IncidentDetail, IncidentView
from alerting.notify.tables import DeliveryRow
from alerting.routing.ladder import Ladder
from alerting.routing.router import RoutingPolicy
from core.clock import Clock

T = TypeVar("T")


EVENT_KIND = {
    Action.ACKNOWLEDGE: "acknowledged",
    Action.RESOLVE: "resolved",
    Action.CLOSE: "closed",
    Action.REOPEN: "reopened",
    Action.COMMENT: "commented",
    Action.ASSIGN: "assigned",
    Action.ESCALATE: "escalated_manually",
    Action.REFER: "referred",
    Action.VERIFY: "closed",
}


class IncidentNotFoundError(KeyError):
    pass


class IncidentDesk:
    """Human actions on incidents; each one is one transaction with one appended event."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        policy: RoutingPolicy | None = None,
    ) -> None:
        self._sm = sessionmaker
        self._clock = clock
        self._policy = policy or RoutingPolicy()

    async def _tx(
        self, fn: Callable[[AsyncSession], Awaitable[T]], session: AsyncSession | None = None
    ) -> T:
        """Run ``fn`` in a transaction of its own, or in the caller's ``session`` — then the
        caller commits, with whatever it adds (the API's audit row goes in the same commit)."""
        if session is not None:
            return await fn(session)
        async with self._sm.begin() as own:
            return await fn(own)

    async def _act(
        self,
        incident_id: int,
        action: Action,
        actor: str,
        note: str,
        then: Callable[[AsyncSession, IncidentRow, int], Awaitable[None]] | None = None,
        data: dict[str, object] | None = None,
        session: AsyncSession | None = None,
    ) -> IncidentView:
        async def run(s: AsyncSession) -> IncidentView:
            row = await s.get(IncidentRow, incident_id, with_for_update=True)
            if row is None:
                raise IncidentNotFoundError(incident_id)
            now = self._clock.now_ms()
            status = next_status(IncidentStatus(row.status), action)
            set_status(row, status, now)
            if then is not None:
                await then(s, row, now)
            add_event(
                s, row.id, now, EVENT_KIND[action], actor=actor, note=note, data=dict(data or {})
            )
            return IncidentView.of(row)

        return await self._tx(run, session)

    async def acknowledge(
        self, incident_id: int, actor: str, note: str = "", *, session: AsyncSession | None = None
    ) -> IncidentView:
        """Stop the ladder; reminders follow after the ladder's reminder deadline."""

        async def then(s: AsyncSession, row: IncidentRow, now: int) -> None:
            row.acknowledged_at_ms, row.acknowledged_by = now, actor
            row.assignee = row.assignee or actor
            timer = await s.get(EscalationTimerRow, row.id)
            if timer is None:
                return
            remind = Ladder.from_json(timer.ladder).remind_ms
            if remind:
                await set_timer(s, row.id, kind=TimerKind.REMINDER, due_at_ms=now + remind)
            else:
                await stop_timer(s, row.id)

        return await self._act(incident_id, Action.ACKNOWLEDGE, actor, note, then, session=session)

    async def comment(
        self, incident_id: int, actor: str, note: str, *, session: AsyncSession | None = None
    ) -> IncidentView:
        return await self._act(incident_id, Action.COMMENT, actor, note, session=session)

    async def assign(
        self,
        incident_id: int,
        actor: str,
        assignee: str,
        note: str = "",
        *,
        session: AsyncSession | None = None,
    ) -> IncidentView:
        async def then(_s: AsyncSession, row: IncidentRow, _now: int) -> None:
            row.assignee = assignee

        return await self._act(
            incident_id, Action.ASSIGN, actor, note, then, {"assignee": assignee}, session=session
        )

    async def escalate(
        self, incident_id: int, actor: str, note: str = "", *, session: AsyncSession | None = None
    ) -> IncidentView:
        """Page the next ladder step now instead of at its deadline (大事不出社区)."""

        async def then(s: AsyncSession, row: IncidentRow, now: int) -> None:
            timer = await s.get(EscalationTimerRow, row.id)
            ladder = None if timer else self._ladder(row)
            await set_timer(s, row.id, kind=TimerKind.STEP, due_at_ms=now, ladder=ladder, note=note)

        return await self._act(incident_id, Action.ESCALATE, actor, note, then, session=session)

    async def refer(
        self,
        incident_id: int,
        department: Department,
        actor: str,
        note: str = "",
        *,
        session: AsyncSession | None = None,
    ) -> IncidentView:
        """Record that the incident was handed to a department (部门联动)."""
        department = Department(department)

        async def then(s: AsyncSession, row: IncidentRow, now: int) -> None:
            s.add(
                ReferralRow(
                    incident_id=row.id,
                    department=department.value,
                    actor=actor,
                    at_ms=now,
                    note=note,
                )
            )

        return await self._act(
            incident_id,
            Action.REFER,
            actor,
            note,
            then,
            {"department": department.value},
            session=session,
        )

    async def resolve(
        self,
        incident_id: int,
        actor: str,
        category: Resolution,
        note: str = "",
        *,
        inform_household: bool = False,
        session: AsyncSession | None = None,
    ) -> IncidentView:
        """Resolve with a category (required); optionally tell the household the outcome."""
        if category is None:
            raise ValueError("a resolution category is required")
        category = Resolution(category)

        async def then(s: AsyncSession, row: IncidentRow, now: int) -> None:
            row.resolution, row.resolved_by, row.resolved_at_ms = category.value, actor, now
            await stop_timer(s, row.id)
            if inform_household and row.household_id:
                await set_timer(
                    s,
                    row.id,
                    kind=TimerKind.OUTCOME,
                    due_at_ms=now,
                    note=note,
                    ladder=Ladder("outcome", ()),
                )

        return await self._act(
            incident_id,
            Action.RESOLVE,
            actor,
            note,
            then,
            {"category": category.value, "inform_household": inform_household},
            session=session,
        )

    async def close(
        self,
        incident_id: int,
        actor: str,
        note: str = "",
        category: Resolution | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> IncidentView:
        """Close after verification (核查); an auto-resolved safety incident gets its category."""

        async def then(_s: AsyncSession, row: IncidentRow, now: int) -> None:
            if category is not None:
                row.resolution = Resolution(category).value
            if row.resolution is None:
                raise ValueError("a resolution category is required to close")
            row.closed_at_ms = now

        return await self._act(incident_id, Action.CLOSE, actor, note, then, session=session)

    async def reopen(
        self, incident_id: int, actor: str, note: str = "", *, session: AsyncSession | None = None
    ) -> IncidentView:
        """Back to open; the ladder starts again from its first step (a new round)."""

        async def then(s: AsyncSession, row: IncidentRow, now: int) -> None:
            row.round += 1
            row.resolution = row.resolved_by = None
            row.resolved_at_ms = row.closed_at_ms = None
            row.acknowledged_at_ms = row.acknowledged_by = None
            await stop_timer(s, row.id)
            await s.flush()
            ladder = self._ladder(row)
            if ladder.steps:
                await set_timer(
                    s, row.id, kind=TimerKind.STEP, due_at_ms=now, ladder=ladder, next_step=0
                )

        return await self._act(incident_id, Action.REOPEN, actor, note, then, session=session)

    def _ladder(self, row: IncidentRow) -> Ladder:
        return self._policy.ladder_for({k: str(v) for k, v in (row.labels or {}).items()})

    # ------------------------------------------------------------------ reading

    async def get(self, incident_id: int) -> IncidentDetail:
        """One incident with its events, referrals, attached devices and deliveries."""
        async with self._sm() as s:
            row = await s.get(IncidentRow, incident_id)
            if row is None:
                raise IncidentNotFoundError(incident_id)

            async def rows(model: type[T], order: object) -> list[T]:
                stmt = select(model).where(model.incident_id == incident_id)  # type: ignore[attr-defined]
                return list((await s.execute(stmt.order_by(order))).scalars())  # type: ignore[arg-type]

            return IncidentDetail.of(
                row,
                await rows(IncidentEventRow, IncidentEventRow.id),
                await rows(ReferralRow, ReferralRow.id),
                await rows(IncidentDeviceRow, IncidentDeviceRow.id),
                await rows(DeliveryRow, DeliveryRow.id),
            )

    async def list(
        self,
        *,
        site: str | None = None,
        statuses: set[IncidentStatus] | None = None,
        grid_ids: set[str] | None = None,
        limit: int = 100,
    ) -> list[IncidentView]:
        """Newest first; ``grid_ids`` scopes a grid worker to their own grids."""
        stmt = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(limit)
        if site is not None:
            stmt = stmt.where(IncidentRow.site == site)
        if statuses:
            stmt = stmt.where(IncidentRow.status.in_([s.value for s in statuses]))
        if grid_ids is not None:
            stmt = stmt.where(IncidentRow.grid_id.in_(grid_ids))
        async with self._sm() as s:
            return [IncidentView.of(r) for r in (await s.execute(stmt)).scalars()]
