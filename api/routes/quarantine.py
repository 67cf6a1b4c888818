"""Quarantine: rejected messages with their reasons, and counts per reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from api.deps import ServicesDep, SessionDep, SiteWideReader
from api.schemas import QuarantinedPublic
from core.readings import RejectReason
from gateway.quarantine import QuarantinedMessage

router = APIRouter(prefix="/quarantine", tags=["quarantine"])


@router.get("", response_model=list[QuarantinedPublic])
async def list_quarantined(
    services: ServicesDep,
    _: SiteWideReader,
    reason: Annotated[RejectReason | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[QuarantinedPublic]:
    """Newest first; payloads shown as text (undecodable bytes replaced)."""
    rows = await services.quarantine.recent(
        reason=reason.value if reason else None, limit=limit, offset=offset
    )
    return [
        QuarantinedPublic.model_validate(r).model_copy(
            update={"payload_text": r.payload.decode("utf-8", "replace")}
        )
        for r in rows
    ]


@router.get("/reasons")
async def reasons(_: SiteWideReader) -> list[str]:
    """Every reason a message can be quarantined for."""
    return [r.value for r in RejectReason]


@router.get("/counts")
async def counts(
    services: ServicesDep, session: SessionDep, _: SiteWideReader
) -> dict[str, dict[str, int]]:
    """``since_start``: counted by this process (never capped); ``stored``: rows kept."""
    stored = await session.execute(
        select(QuarantinedMessage.reason, func.count()).group_by(QuarantinedMessage.reason)
    )
    return {
        "since_start": dict(services.quarantine.counts),
        "stored": {str(reason): int(n) for reason, n in stored.all()},
    }
