"""Escalation timers: one durable row per active incident saying when its ladder looks next.

Written in the same transaction as the incident change that starts, re-aims or stops them,
so a crash can never leave an open incident without its escalation.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alerting.routing.ladder import Ladder
from core.db import Base

if TYPE_CHECKING:
    from alerting.incidents.tables import IncidentRow


class TimerKind(StrEnum):
    """What happens when the timer is due: the next ladder ``step``, a ``reminder`` to whoever
    acknowledged, or the ``outcome`` told to the household."""

    STEP = "step"
    REMINDER = "reminder"
    OUTCOME = "outcome"


class EscalationTimerRow(Base):
    """The next escalation of one active incident: durable, so a restart resumes it."""

    __tablename__ = "escalation_timer"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), primary_key=True)
    # Never loaded; it makes every flush write the incident first (its id may have been
    # drawn ahead and the row still unwritten: core.db.IdReserve).
    incident: Mapped[IncidentRow] = relationship(lazy="raise")
    kind: Mapped[str] = mapped_column(String(16))  # a TimerKind
    due_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    next_step: Mapped[int] = mapped_column(Integer, default=0)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    ladder: Mapped[dict[str, Any]] = mapped_column(JSON)  # snapshot taken when it opened
    note: Mapped[str] = mapped_column(Text, default="")


async def set_timer(
    session: AsyncSession,
    incident_id: int,
    *,
    kind: TimerKind,
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
    session: AsyncSession, incident_id: int, *, kind: TimerKind, due_at_ms: int, ladder: Ladder
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
