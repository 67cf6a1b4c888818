"""Incidents: filtered lists, detail with timeline and readings, and every human action."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, status
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.lifecycle import Action, allowed_actions
from alerting.incidents.lifecycle import IncidentStatus as Status
from alerting.incidents.tables import IncidentRow
from alerting.incidents.views import ARRIVED_MARK
from api import audit
from api import loop_actions as loop
from api.deps import (
    DISPATCHERS,
    CurrentPerson,
    GridScope,
    Principal,
    Scope,
    ServicesDep,
    SessionDep,
)
from api.incident_view import (
    check_assignee,
    count,
    incident_view,
    incident_views,
    publish,
    readings_around,
    scoped_incident,
    timeline,
)
from api.loop_schemas import (
    HazardStep,
    IncidentArrive,
    IncidentSilence,
    IncidentTriage,
    IncidentVerify,
    LoopRefer,
)
from api.schemas import (
    DB_INT_MAX,
    EPOCH_MS_MAX,
    IncidentAssign,
    IncidentComment,
    IncidentDetail,
    IncidentEventPublic,
    IncidentNote,
    IncidentPublic,
    IncidentResolve,
    IncidentsPublic,
    IncidentStatus,
    Severity,
)
from api.services import ApiServices

router = APIRouter(prefix="/incidents", tags=["incidents"])
ARRIVED = ARRIVED_MARK
VERIFIERS = frozenset({"admin", "secretary", "duty_staff"})
IncidentId = Annotated[int, Path(ge=1, le=DB_INT_MAX)]


@router.get("", response_model=IncidentsPublic)
async def list_incidents(
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    status_: Annotated[list[IncidentStatus] | None, Query(alias="status")] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    grid: Annotated[str | None, Query(max_length=100)] = None,
    site: Annotated[str | None, Query(max_length=32)] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    assignee: Annotated[str | None, Query(max_length=64)] = None,
    since_ms: Annotated[int | None, Query(ge=0, le=EPOCH_MS_MAX)] = None,
    until_ms: Annotated[int | None, Query(ge=0, le=EPOCH_MS_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
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
    return IncidentsPublic(data=await incident_views(services, session, list(rows)), count=total)


@router.get("/{incident_id}", response_model=IncidentDetail)
async def get_incident(
    incident_id: IncidentId,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> IncidentDetail:
    row = await scoped_incident(session, scope, incident_id)
    events = await timeline(session, incident_id)
    return IncidentDetail(
        incident=await incident_view(services, session, row),
        timeline=[IncidentEventPublic.model_validate(e) for e in events],
        readings=await readings_around(services.timeseries, row),
        allowed_actions=actions_for(principal, row),
    )


# -- actions ------------------------------------------------------------------------------------
# Every action a person takes on an incident is one row of ACTIONS: its path, the lifecycle
# transition it makes (which statuses allow it: alerting.incidents.lifecycle), who may take it,
# its request body and the desk call. One endpoint per row is generated below; each runs the
# change and its audit row in one transaction and publishes the incident to the live board.

Run = Callable[[ApiServices, int, str, Any, AsyncSession], Awaitable[object]]
# Sent after the commit (a referral to its department, the result to residents): services,
# incident id, the base URL links in the message point to.
After = Callable[[ApiServices, int, str], Awaitable[None]]


@dataclass(frozen=True)
class IncidentAction:
    name: str  # the path segment and the audit action ``incident.<name>``
    transition: Action  # the lifecycle action it is (allowed only in the statuses it fits)
    body: type[BaseModel]  # the request body; optional when every field has a default
    run: Run
    summary: str
    roles: frozenset[str] | None = None  # None: anyone whose scope covers the incident
    audit: Callable[[Any], dict[str, Any]] = lambda body: body.model_dump(mode="json")
    after: After | None = None


ACTIONS = (
    IncidentAction(
        "acknowledge",
        Action.ACKNOWLEDGE,
        IncidentNote,
        lambda sv, i, who, b, s: sv.incidents.acknowledge(i, who, b.note, session=s),
        "Acknowledge: stop the ladder (reminders follow)",
    ),
    IncidentAction(
        "comment",
        Action.COMMENT,
        IncidentComment,
        lambda sv, i, who, b, s: sv.incidents.comment(i, who, b.note, session=s),
        "Add a note to the timeline",
    ),
    IncidentAction(
        "assign",
        Action.ASSIGN,
        IncidentAssign,
        lambda sv, i, who, b, s: sv.incidents.assign(i, who, b.assignee, b.note, session=s),
        "Hand the incident to a person who answers for its grid",
        roles=DISPATCHERS,
    ),
    IncidentAction(
        "arrive",
        Action.ARRIVE,
        IncidentArrive,
        loop.arrive,
        "On site (到场): its time is kept, so the ledger measures time to arrive",
        audit=lambda b: {"note": f"{ARRIVED} {b.note}".strip(), "arrived": True},
    ),
    IncidentAction(
        "escalate",
        Action.ESCALATE,
        IncidentNote,
        lambda sv, i, who, b, s: sv.incidents.escalate(i, who, b.note, session=s),
        "Page the next ladder step now (大事不出社区)",
    ),
    IncidentAction(
        "resolve",
        Action.RESOLVE,
        IncidentResolve,
        lambda sv, i, who, b, s: sv.incidents.resolve(i, who, b.category, b.note, session=s),
        "Resolve with a category",
    ),
    IncidentAction(
        "reopen",
        Action.REOPEN,
        IncidentNote,
        lambda sv, i, who, b, s: sv.incidents.reopen(i, who, b.note, session=s),
        "Back to open: the ladder starts again",
    ),
    IncidentAction(
        "refer",
        Action.REFER,
        LoopRefer,
        loop.refer,
        "Hand to a department (部门联动): it is sent the incident and a reply link",
        roles=DISPATCHERS,
        after=loop.after_refer,
    ),
    IncidentAction(
        "triage",
        Action.TRIAGE,
        IncidentTriage,
        loop.triage,
        "研判: the grid handles it (grid) or the community takes it over (community)",
        roles=DISPATCHERS,
    ),
    IncidentAction(
        "hazard",
        Action.HAZARD,
        HazardStep,
        loop.hazard,
        "A step of a hazard's rectification: notice, rectifying, reinspect (photo), rectified",
    ),
    IncidentAction(
        "verify",
        Action.VERIFY,
        IncidentVerify,
        loop.verify,
        "核查: passed closes the incident (residents hear the result); not passed reopens it",
        roles=VERIFIERS,
        after=loop.after_verify,
    ),
    IncidentAction(
        "close",
        Action.CLOSE,
        IncidentVerify,
        loop.verify,
        "Close after verification (核查) — the same as verify with passed=true",
        roles=VERIFIERS,
        after=loop.after_verify,
    ),
    IncidentAction(
        "silence",
        Action.SILENCE,
        IncidentSilence,
        loop.silence,
        "Maintenance window on the incident's device (life-safety alarms still page)",
        roles=DISPATCHERS,
    ),
)


def actions_for(principal: Principal, row: IncidentRow) -> list[str]:
    """The lifecycle actions this person may take on this incident now."""
    denied = {
        a.transition for a in ACTIONS if a.roles is not None and principal.role not in a.roles
    }
    return [a.value for a in allowed_actions(Status(row.status)) if a not in denied]


async def _take(
    action: IncidentAction,
    incident_id: int,
    body: BaseModel,
    principal: Principal,
    scope: Scope,
    services: ApiServices,
    session: AsyncSession,
    base_url: str = "",
) -> IncidentPublic:
    row = await scoped_incident(session, scope, incident_id)
    if action.transition.value not in actions_for(principal, row):
        forbidden = action.roles is not None and principal.role not in action.roles
        code = status.HTTP_403_FORBIDDEN if forbidden else status.HTTP_409_CONFLICT
        raise HTTPException(code, f"cannot {action.name} an incident that is {row.status}")
    if isinstance(body, IncidentAssign):
        await check_assignee(session, row, body.assignee)
    try:
        await action.run(services, incident_id, principal.actor, body, session)
    except LookupError as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"incident '{incident_id}' not found"
        ) from exc
    except ValueError as exc:
        await session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        f"incident.{action.name}",
        target=str(incident_id),
        site=row.site,
        detail=action.audit(body),
    )
    await session.commit()  # the change and its audit row together
    if action.after is not None:
        await action.after(services, incident_id, base_url)
    row = await scoped_incident(session, scope, incident_id)
    view = await incident_view(services, session, row)
    publish(services.live, view)
    return view


def _endpoint(action: IncidentAction) -> Callable[..., Awaitable[IncidentPublic]]:
    async def endpoint(
        incident_id: int,
        principal: Principal,
        scope: Scope,
        services: ApiServices,
        session: AsyncSession,
        request: Request,
        body: BaseModel | None = None,
    ) -> IncidentPublic:
        taken = body if body is not None else action.body()
        base = str(request.base_url)
        return await _take(action, incident_id, taken, principal, scope, services, session, base)

    # FastAPI reads the parameters' types from the signature: give each endpoint its own body.
    required = any(f.is_required() for f in action.body.model_fields.values())
    body_type: Any = action.body if required else Annotated[action.body | None, Body()]
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            _param("incident_id", IncidentId),
            _param("principal", CurrentPerson),
            _param("scope", GridScope),
            _param("services", ServicesDep),
            _param("session", SessionDep),
            _param("request", Request),
            _param("body", body_type, default=inspect.Parameter.empty if required else None),
        ],
        return_annotation=IncidentPublic,
    )
    endpoint.__name__ = action.name
    return endpoint


def _param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(name, kind, annotation=annotation, default=default)


for _action in ACTIONS:
    router.add_api_route(
        f"/{{incident_id}}/{_action.name}",
        _endpoint(_action),
        methods=["POST"],
        response_model=IncidentPublic,
        summary=_action.summary,
        name=f"incident_{_action.name}",
    )
