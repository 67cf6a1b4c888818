"""Incidents: filtered lists, detail with timeline and readings, and every human action."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from alerting.incidents.tables import IncidentRow
from api import audit
from api.deps import CurrentPerson, GridScope, Principal, ServicesDep, SessionDep
from api.incident_view import (
    actions_for,
    check_assignee,
    count,
    publish,
    readings_around,
    scoped_incident,
    timeline,
)
from api.schemas import (
    IncidentAssign,
    IncidentComment,
    IncidentDetail,
    IncidentEventPublic,
    IncidentNote,
    IncidentPublic,
    IncidentRefer,
    IncidentResolve,
    IncidentsPublic,
    IncidentStatus,
    Severity,
)
from api.services import ApiServices

router = APIRouter(prefix="/incidents", tags=["incidents"])
ARRIVED = "[到场]"


@router.get("", response_model=IncidentsPublic)
async def list_incidents(
    scope: GridScope,
    session: SessionDep,
    status_: Annotated[list[IncidentStatus] | None, Query(alias="status")] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    grid: Annotated[str | None, Query(max_length=100)] = None,
    site: Annotated[str | None, Query(max_length=32)] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    assignee: Annotated[str | None, Query(max_length=64)] = None,
    since_ms: Annotated[int | None, Query(ge=0)] = None,
    until_ms: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> IncidentsPublic:
    """Newest first; ``status`` and ``severity`` may repeat; times filter ``opened_at_ms``."""
    q = select(IncidentRow).where(scope.where(IncidentRow.site, IncidentRow.grid_id))
    for column, value in (
        (IncidentRow.grid_id, grid),
        (IncidentRow.site, site),
        (IncidentRow.device_id, device_id),
        (IncidentRow.assignee, assignee),
    ):
        if value is not None:
            q = q.where(column == value)
    if status_:
        q = q.where(IncidentRow.status.in_(status_))
    if severity:
        q = q.where(IncidentRow.severity.in_(severity))
    if since_ms is not None:
        q = q.where(IncidentRow.opened_at_ms >= since_ms)
    if until_ms is not None:
        q = q.where(IncidentRow.opened_at_ms < until_ms)
    total = await count(session, q)
    rows = await session.scalars(
        q.order_by(IncidentRow.opened_at_ms.desc(), IncidentRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return IncidentsPublic(data=[IncidentPublic.model_validate(r) for r in rows], count=total)


@router.get("/{incident_id}", response_model=IncidentDetail)
async def get_incident(
    incident_id: int,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> IncidentDetail:
    row = await scoped_incident(session, scope, incident_id)
    events = await timeline(session, incident_id)
    return IncidentDetail(
        incident=IncidentPublic.model_validate(row),
        timeline=[IncidentEventPublic.model_validate(e) for e in events],
        readings=await readings_around(services.timeseries, row),
        allowed_actions=actions_for(principal, row),
    )


Call = Callable[[ApiServices, int, str], Awaitable[Any]]


async def _act(
    action: str,
    incident_id: int,
    call: Call,
    principal: Principal,
    scope: GridScope,
    services: ApiServices,
    session: SessionDep,
    detail: dict[str, Any],
) -> IncidentPublic:
    row = await scoped_incident(session, scope, incident_id)
    if action not in actions_for(principal, row):
        code = status.HTTP_403_FORBIDDEN if action == "assign" else status.HTTP_409_CONFLICT
        raise HTTPException(code, f"cannot {action} an incident that is {row.status}")
    try:
        await call(services, incident_id, principal.actor)
    except LookupError as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"incident '{incident_id}' not found"
        ) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit.record(
        session,
        at_ms=services.clock.now_ms(),
        actor=principal.actor,
        role=principal.role,
        action=f"incident.{action}",
        target=str(incident_id),
        site=row.site,
        detail=detail,
    )
    await session.commit()
    row = await scoped_incident(session, scope, incident_id)
    publish(services.live, row)
    return IncidentPublic.model_validate(row)


@router.post("/{incident_id}/acknowledge", response_model=IncidentPublic)
async def acknowledge(
    incident_id: int,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    body: IncidentNote | None = None,
) -> IncidentPublic:
    note = body.note if body else ""
    return await _act(
        "acknowledge",
        incident_id,
        lambda s, i, a: s.incidents.acknowledge(i, a, note),
        principal,
        scope,
        services,
        session,
        {"note": note},
    )


@router.post("/{incident_id}/comment", response_model=IncidentPublic)
async def comment(
    incident_id: int,
    body: IncidentComment,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> IncidentPublic:
    return await _act(
        "comment",
        incident_id,
        lambda s, i, a: s.incidents.comment(i, a, body.note),
        principal,
        scope,
        services,
        session,
        {"note": body.note},
    )


@router.post("/{incident_id}/assign", response_model=IncidentPublic)
async def assign(
    incident_id: int,
    body: IncidentAssign,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> IncidentPublic:
    await check_assignee(session, await scoped_incident(session, scope, incident_id), body.assignee)
    return await _act(
        "assign",
        incident_id,
        lambda s, i, a: s.incidents.assign(i, a, body.assignee, body.note),
        principal,
        scope,
        services,
        session,
        body.model_dump(),
    )


@router.post("/{incident_id}/arrive", response_model=IncidentPublic)
async def arrive(
    incident_id: int,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    body: IncidentNote | None = None,
) -> IncidentPublic:
    """The worker is on site (到场): recorded on the timeline as a comment marked ``[到场]``."""
    note = f"{ARRIVED} {body.note}".strip() if body else ARRIVED
    return await _act(
        "comment",
        incident_id,
        lambda s, i, a: s.incidents.comment(i, a, note),
        principal,
        scope,
        services,
        session,
        {"note": note, "arrived": True},
    )


@router.post("/{incident_id}/escalate", response_model=IncidentPublic)
async def escalate(
    incident_id: int,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    body: IncidentNote | None = None,
) -> IncidentPublic:
    note = body.note if body else ""
    return await _act(
        "escalate",
        incident_id,
        lambda s, i, a: s.incidents.escalate(i, a, note),
        principal,
        scope,
        services,
        session,
        {"note": note},
    )


@router.post("/{incident_id}/resolve", response_model=IncidentPublic)
async def resolve(
    incident_id: int,
    body: IncidentResolve,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> IncidentPublic:
    return await _act(
        "resolve",
        incident_id,
        lambda s, i, a: s.incidents.resolve(i, a, body.category, body.note),
        principal,
        scope,
        services,
        session,
        body.model_dump(mode="json"),
    )


@router.post("/{incident_id}/reopen", response_model=IncidentPublic)
async def reopen(
    incident_id: int,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    body: IncidentNote | None = None,
) -> IncidentPublic:
    note = body.note if body else ""
    return await _act(
        "reopen",
        incident_id,
        lambda s, i, a: s.incidents.reopen(i, a, note),
        principal,
        scope,
        services,
        session,
        {"note": note},
    )


@router.post("/{incident_id}/refer", response_model=IncidentPublic)
async def refer(
    incident_id: int,
    body: IncidentRefer,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> IncidentPublic:
    return await _act(
        "refer",
        incident_id,
        lambda s, i, a: s.incidents.refer(i, body.department, a, body.note),
        principal,
        scope,
        services,
        session,
        body.model_dump(mode="json"),
    )
