"""Small persistence helpers shared by the incident service and the escalation scheduler."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.lifecycle import ACTIVE_STATUSES, IncidentStatus
from alerting.incidents.tables import EscalationTimerRow, IncidentEventRow, IncidentRow
from alerting.routing.ladder import Ladder

SYSTEM = "system"


def add_event(
    session: AsyncSession,
    incident_id: int,
    at_ms: int,
    kind: str,
    *,
    actor: str = SYSTEM,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        IncidentEventRow(
            incident_id=incident_id, at_ms=at_ms, actor=actor, kind=kind, note=note, data=data or {}
        )
    )


async def active_by_key(session: AsyncSession, key: str) -> IncidentRow | None:
    stmt = select(IncidentRow).where(IncidentRow.active_key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


def set_status(row: IncidentRow, status: IncidentStatus, now_ms: int) -> None:
    """Change status; ``active_key`` follows so the unique index sees only active incidents."""
    row.status = status.value
    row.updated_at_ms = now_ms
    row.active_key = row.dedupe_key if status in ACTIVE_STATUSES else None


async def set_timer(
    session: AsyncSession,
    incident_id: int,
    *,
    kind: str,
    due_at_ms: int,
    ladder: Ladder | None = None,
    next_step: int | None = None,
    note: str = "",
) -> EscalationTimerRow:
    """Create or re-aim the incident's one timer (the ladder snapshot is kept unless given)."""
    timer = await session.get(EscalationTimerRow, incident_id)
    if timer is None:
        if ladder is None:
            raise ValueError(f"incident {incident_id} has no ladder snapshot")
        timer = new_timer(session, incident_id, kind=kind, due_at_ms=due_at_ms, ladder=ladder)
    timer.kind = kind
    timer.due_at_ms = due_at_ms
    timer.note = note
    if ladder is not None:
        timer.ladder = ladder.to_json()
    if next_step is not None:
        timer.next_step = next_step
    return timer


def new_timer(
    session: AsyncSession, incident_id: int, *, kind: str, due_at_ms: int, ladder: Ladder
) -> EscalationTimerRow:
    """The timer of an incident created in this transaction (it cannot have one yet)."""
    timer = EscalationTimerRow(
        incident_id=incident_id,
        kind=kind,
        due_at_ms=due_at_ms,
        next_step=0,
        reminders_sent=0,
        note="",
        ladder=ladder.to_json(),
    )
    session.add(timer)
    return timer


async def stop_timer(session: AsyncSession, incident_id: int) -> None:
    await session.execute(
        delete(EscalationTimerRow).where(EscalationTimerRow.incident_id == incident_id)
    )
