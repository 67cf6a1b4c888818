"""Silences: maintenance windows that stop paging for a device, building or grid."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import select

from alerting.incidents.silences import Matcher
from alerting.incidents.tables import SilenceRow
from api import audit
from api.crud import check_site
from api.deps import Dispatcher, GridScope, ServicesDep, SessionDep, not_found
from api.errors import FieldError
from api.schemas import DB_INT_MAX, SilenceCreate, SilencePublic
from gateway.registry.tables import Building, Device, Grid

router = APIRouter(prefix="/silences", tags=["silences"])


async def _target_exists(session: SessionDep, body: SilenceCreate) -> None:
    found: Device | Grid | Building | None
    if body.matcher == "device":
        found = await session.get(Device, (body.site, body.value))
    elif body.matcher == "grid":
        found = await session.get(Grid, body.value)
    else:
        found = await session.get(Building, body.value)
    if found is None or found.site != body.site:
        raise FieldError("value", f"no {body.matcher} '{body.value}' in site '{body.site}'")


@router.get("", response_model=list[SilencePublic])
async def list_silences(
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    active: Annotated[bool, Query(description="only those in force now")] = True,
) -> list[SilenceRow]:
    """Silences of the caller's site (grid-bound people see those of their grids)."""
    q = select(SilenceRow).order_by(SilenceRow.id.desc())
    if scope.sites is not None:
        q = q.where(SilenceRow.site.in_(sorted(scope.sites)))
    if active:
        now = services.clock.now_ms()
        q = q.where(SilenceRow.starts_at_ms <= now, SilenceRow.ends_at_ms > now)
    rows = list(await session.scalars(q))
    if scope.grids is not None:
        rows = [r for r in rows if r.matcher == "grid" and r.value in scope.grids]
    return rows


@router.post("", response_model=SilencePublic, status_code=201)
async def create_silence(
    body: SilenceCreate, principal: Dispatcher, services: ServicesDep, session: SessionDep
) -> SilenceRow:
    check_site(principal, body.site)
    await _target_exists(session, body)
    now = services.clock.now_ms()
    starts = body.starts_at_ms if body.starts_at_ms is not None else now
    ends = (
        body.ends_at_ms if body.ends_at_ms is not None else starts + (body.duration_s or 0) * 1000
    )
    if ends <= starts:
        raise FieldError("ends_at_ms", "must be after starts_at_ms")
    try:
        created = await services.silences.create(
            site=body.site,
            matcher=Matcher(body.matcher),
            value=body.value,
            starts_at_ms=starts,
            ends_at_ms=ends,
            actor=principal.actor,
            reason=body.reason,
        )
    except ValueError as exc:
        raise FieldError("ends_at_ms", str(exc)) from exc
    silence_id = created.id
    audit.record(
        session,
        at_ms=now,
        actor=principal.actor,
        role=principal.role,
        action="silence.create",
        target=str(silence_id),
        site=body.site,
        detail=body.model_dump(),
    )
    await session.commit()
    row = await session.get(SilenceRow, silence_id)
    if row is None:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "silence was not stored")
    return row


@router.delete("/{silence_id}", status_code=204)
async def expire_silence(
    silence_id: Annotated[int, Path(ge=1, le=DB_INT_MAX)],
    principal: Dispatcher,
    services: ServicesDep,
    session: SessionDep,
) -> None:
    """End a silence now (it stays on record)."""
    row = await session.get(SilenceRow, silence_id)
    if row is None or not principal.sees_site(row.site):
        raise not_found("silence", silence_id)
    await services.silences.expire(silence_id)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "silence.expire",
        target=str(silence_id),
        site=row.site,
    )
    await session.commit()
