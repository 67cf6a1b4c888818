"""Small persistence helpers of the incident store: events, status, lookup by key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.lifecycle import ACTIVE_STATUSES, IncidentStatus
from alerting.incidents.tables import IncidentEventRow, IncidentRow

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
