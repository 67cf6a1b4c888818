"""Reading incidents for the API: scoped queries, the timeline, readings around an incident."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.tables import IncidentEventRow, IncidentRow
from alerting.incidents.views import ARRIVED_MARK, PAGING_KINDS
from alerting.notify.tables import DeliveryKind, DeliveryRow
from api.deps import Scope, not_found
from api.errors import FieldError
from api.schemas import IncidentPublic, ReadingBucket
from api.services import ApiServices
from gateway.live import LiveHub
from gateway.registry.tables import Person, PersonGrid
from gateway.storage import TimeSeriesQuery

log = logging.getLogger(__name__)
AROUND_MS = 15 * 60_000
BUCKET_MS = 60_000


async def scoped_incident(session: AsyncSession, scope: Scope, incident_id: int) -> IncidentRow:
    """The incident if the caller's scope covers it; 404 otherwise (existence never leaks)."""
    row = await session.get(IncidentRow, incident_id, populate_existing=True)
    if row is None or not scope.sees(row.site, row.grid_id):
        raise not_found("incident", incident_id)
    return row


async def timeline(session: AsyncSession, incident_id: int) -> Sequence[IncidentEventRow]:
    q = select(IncidentEventRow).where(IncidentEventRow.incident_id == incident_id)
    return (await session.scalars(q.order_by(IncidentEventRow.at_ms, IncidentEventRow.id))).all()


async def readings_around(ts: TimeSeriesQuery, row: IncidentRow) -> list[ReadingBucket]:
    """Numeric readings of the incident's device in the quarter hour either side of it."""
    if row.device_id is None:
        return []
    start, end = row.opened_at_ms - AROUND_MS, row.opened_at_ms + AROUND_MS
    out: list[ReadingBucket] = []
    try:
        latest = await ts.last(row.site, row.device_id)
        for name, (_ts, value) in sorted(latest.items()):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            for b in await ts.range(row.site, row.device_id, name, start, end, BUCKET_MS):
                out.append(ReadingBucket(field=name, **b._asdict()))
    except Exception:  # storage down: the incident still shows, without its readings
        log.warning("readings around incident %s unavailable", row.id, exc_info=False)
    return out


async def check_assignee(session: AsyncSession, row: IncidentRow, assignee: str) -> None:
    """The assignee must be an active person who may see this incident."""
    person = await session.get(Person, assignee)
    ok = person is not None and person.active and person.site == row.site
    if ok and person is not None and person.role in ("grid_worker", "building_leader"):
        grids = set(
            await session.scalars(
                select(PersonGrid.grid_id).where(PersonGrid.person_id == assignee)
            )
        )
        ok = row.grid_id in grids
    if not ok:
        raise FieldError(
            "assignee", f"'{assignee}' is not someone who answers for grid '{row.grid_id}'"
        )


def publish(live: LiveHub, row: IncidentRow | IncidentPublic) -> None:
    data = (
        row if isinstance(row, IncidentPublic) else IncidentPublic.model_validate(row)
    ).model_dump()
    live.publish("incident", row.site, row.grid_id, data)


async def incident_views(
    services: ApiServices, session: AsyncSession, rows: Sequence[IncidentRow]
) -> list[IncidentPublic]:
    """The read model of these incidents with their situation: acknowledgement deadline,
    escalations, arrival on site and who was paged with how each page went (two queries)."""
    ids = [r.id for r in rows]
    if not ids:
        return []
    events = (
        await session.scalars(
            select(IncidentEventRow).where(
                IncidentEventRow.incident_id.in_(ids),
                (IncidentEventRow.kind.in_(PAGING_KINDS))
                | (
                    (IncidentEventRow.kind == "commented")
                    & IncidentEventRow.note.startswith(ARRIVED_MARK, autoescape=True)
                ),
            )
        )
    ).all()
    deliveries = (
        await session.scalars(
            select(DeliveryRow).where(
                DeliveryRow.incident_id.in_(ids), DeliveryRow.kind == DeliveryKind.PAGE.value
            )
        )
    ).all()
    # Grouped once: each incident then reads only its own rows (a list may hold hundreds).
    by_incident: dict[int, tuple[list[IncidentEventRow], list[DeliveryRow]]] = {
        i: ([], []) for i in ids
    }
    for e in events:
        by_incident[e.incident_id][0].append(e)
    for d in deliveries:
        by_incident[d.incident_id][1].append(d)
    deadlines = services.config.ack_deadline_s
    rules = services.rules.rules.by_id
    return [
        IncidentPublic.model_validate(r).with_situation(
            *by_incident[r.id], deadlines, getattr(rules.get(r.rule_id), "title_en", None)
        )
        for r in rows
    ]


async def incident_view(
    services: ApiServices, session: AsyncSession, row: IncidentRow
) -> IncidentPublic:
    return (await incident_views(services, session, [row]))[0]


async def count(session: AsyncSession, q: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(q.subquery())) or 0)


async def publish_incident(services: ApiServices, incident_id: int) -> None:
    """Publish an incident's current state on the hub (for the pipeline after ``apply``)."""
    async with services.sessions() as session:
        row = await session.get(IncidentRow, incident_id)
        if row is not None:
            publish(services.live, await incident_view(services, session, row))
