"""Quarantine: rejected messages with their reasons, and counts per reason, scoped by site.

A row's site is its native topic's or its vendor device's (gateway/quarantine.py); staff see
their site's rows only, and rows whose site is unknown only those who see every site.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from api.deps import ServicesDep, SessionDep, SiteWideReader, scope_of
from api.schemas import DB_INT_MAX, QuarantinedPublic
from core.readings import RejectReason
from gateway.quarantine import QuarantinedMessage

router = APIRouter(prefix="/quarantine", tags=["quarantine"])


@router.get("", response_model=list[QuarantinedPublic])
async def list_quarantined(
    session: SessionDep,
    principal: SiteWideReader,
    reason: Annotated[RejectReason | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> list[QuarantinedPublic]:
    """Newest first; payloads shown as text (undecodable bytes replaced)."""
    scope = await scope_of(principal, session)
    q = select(QuarantinedMessage).where(scope.where(QuarantinedMessage.site, None))
    if reason is not None:
        q = q.where(QuarantinedMessage.reason == reason.value)
    q = q.order_by(QuarantinedMessage.id.desc()).limit(limit).offset(offset)
    return [
        QuarantinedPublic.model_validate(r).model_copy(
            update={"payload_text": r.payload.decode("utf-8", "replace")}
        )
        for r in await session.scalars(q)
    ]


@router.get("/reasons")
async def reasons(_: SiteWideReader) -> list[str]:
    """Every reason a message can be quarantined for."""
    return [r.value for r in RejectReason]


@router.get("/counts")
async def counts(
    services: ServicesDep, session: SessionDep, principal: SiteWideReader
) -> dict[str, dict[str, int]]:
    """``since_start``: counted by this process (never capped; for one site's staff, counted
    as their rows are stored); ``stored``: rows kept."""
    scope = await scope_of(principal, session)
    stored = await session.execute(
        select(QuarantinedMessage.reason, func.count())
        .where(scope.where(QuarantinedMessage.site, None))
        .group_by(QuarantinedMessage.reason)
    )
    q = services.quarantine
    if scope.sites is None:
        since_start = dict(q.counts)
    else:
        since_start = {}
        for (site, reason), n in q.site_counts.items():
            if scope.sees_site(site):
                since_start[reason] = since_start.get(reason, 0) + n
    return {
        "since_start": since_start,
        "stored": {str(reason): int(n) for reason, n in stored.all()},
    }
