"""Small persistence helpers of the incident store: events, status, lookup by key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ScalarSelect, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, object_session

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


# A transaction that folds a batch of alerts (a storm) looks up every key it will need in one
# query (:func:`prefetch_active`) instead of one query per alert; the answers live in the
# session's ``info`` for that transaction and follow what the transaction itself changes.
_ACTIVE = "incidents.active_by_key"


async def prefetch_active(session: AsyncSession, keys: set[str]) -> None:
    """Look up the active incidents of these keys at once, for :func:`active_by_key` to answer
    from within this session."""
    known: dict[str, IncidentRow | None] = session.info.setdefault(_ACTIVE, {})
    wanted = [k for k in keys if k not in known]
    if not wanted:
        return
    rows = (
        await session.scalars(select(IncidentRow).where(IncidentRow.active_key.in_(wanted)))
    ).all()
    known.update(dict.fromkeys(wanted))
    for row in rows:
        known[row.dedupe_key] = row


async def active_by_key_and(
    session: AsyncSession, key: str, also: ScalarSelect[Any]
) -> tuple[IncidentRow | None, Any]:
    """The active incident of ``key`` and the value of ``also``, in one round trip (the alarm
    path counts them); the incident is remembered for :func:`active_by_key`."""
    one = select(literal(1).label("one")).subquery()
    stmt = (
        select(IncidentRow, also.label("also"))
        .select_from(one)
        .outerjoin(IncidentRow, IncidentRow.active_key == key)
    )
    row, value = (await session.execute(stmt)).one()
    session.info.setdefault(_ACTIVE, {})[key] = row
    return row, value


def remember_active(session: AsyncSession | Session, row: IncidentRow) -> None:
    """A row this transaction opened (or made active again) under its key."""
    known = session.info.get(_ACTIVE)
    if known is not None and row.active_key is not None:
        known[row.active_key] = row


async def active_by_key(session: AsyncSession, key: str) -> IncidentRow | None:
    known: dict[str, IncidentRow | None] | None = session.info.get(_ACTIVE)
    if known is not None and key in known:
        row = known[key]
        # Closed or merged earlier in this same transaction: no longer the active one.
        return row if row is not None and row.active_key == key else None
    stmt = select(IncidentRow).where(IncidentRow.active_key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


def set_status(row: IncidentRow, status: IncidentStatus, now_ms: int) -> None:
    """Change status; ``active_key`` follows so the unique index sees only active incidents."""
    row.status = status.value
    row.updated_at_ms = now_ms
    row.active_key = row.dedupe_key if status in ACTIVE_STATUSES else None
    session = object_session(row)
    if session is not None:
        remember_active(session, row)
