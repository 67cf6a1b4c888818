"""The community's monthly ledger (台账): JSON, CSV, and monthly trend figures."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import AfterValidator
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.tables import IncidentRow
from api.deps import Principal, ReportReader, ServicesDep, SessionDep
from api.errors import FieldError
from api.figures import (
    ack_seconds,
    grid_stats,
    local_month,
    local_time,
    month_bounds,
    previous_months,
    resolve_seconds,
    within_deadline,
)
from api.paged import in_turns, incidents_opened
from api.schemas import LedgerPublic, LedgerRow, TrendPoint
from api.services import ApiServices
from gateway.registry.ledger import spreadsheet_safe
from gateway.registry.tables import Site

router = APIRouter(prefix="/reports", tags=["reports"])


def _calendar_month(month: str | None) -> str | None:
    # Year 0 and the months whose end is past year 9999 have no datetime (were a 500).
    if month is not None and not 1970 <= int(month[:4]) <= 9998:
        raise ValueError("month must be between 1970-01 and 9998-12")
    return month


Month = Annotated[
    str | None,
    Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM, 1970-01 to 9998-12"),
    AfterValidator(_calendar_month),
]
SiteQ = Annotated[str | None, Query(max_length=32)]


async def _site(session: AsyncSession, principal: Principal, site: str | None) -> Site:
    code = site or principal.site
    if code is None:
        raise FieldError("site", "required for admins and service tokens")
    row = await session.get(Site, code)
    if row is None or (principal.site is not None and code != principal.site):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"site '{code}' not found")
    return row


async def _rows(session: AsyncSession, site: str, start: int, end: int) -> list[IncidentRow]:
    return await incidents_opened(session, start, end, IncidentRow.site == site)


async def _ledger(
    services: ApiServices,
    session: AsyncSession,
    principal: Principal,
    site: str | None,
    month: str | None,
) -> LedgerPublic:
    row = await _site(session, principal, site)
    month = month or local_month(services.clock.now_ms(), row.timezone)
    start, end = month_bounds(month, row.timezone)
    incidents = await _rows(session, row.code, start, end)
    deadlines = services.config.ack_deadline_s
    rows: list[LedgerRow] = []
    async for part in in_turns(incidents):
        rows.extend(
            LedgerRow(
                id=i.id,
                opened_at=local_time(i.opened_at_ms, row.timezone),
                grid_id=i.grid_id,
                building_id=i.building_id,
                location=i.location,
                device_id=i.device_id,
                device_type=i.device_type,
                title=i.title,
                severity=i.severity,
                status=i.status,
                handled_by=i.resolved_by or i.acknowledged_by or i.assignee,
                ack_s=ack_seconds(i),
                resolve_s=resolve_seconds(i),
                resolution=i.resolution,
                within_deadline=within_deadline(i, deadlines),
            )
            for i in part
        )
    totals = grid_stats("*", incidents, deadlines)
    await asyncio.sleep(0)
    # The rows are validated models already; validating the list again is one more long stretch.
    return LedgerPublic.model_construct(site=row.code, month=month, totals=totals, rows=rows)


@router.get("/ledger", response_model=LedgerPublic)
async def ledger(
    principal: ReportReader,
    services: ServicesDep,
    session: SessionDep,
    site: SiteQ = None,
    month: Month = None,
) -> Response:
    """What happened where, who handled it, how fast and how it was resolved, for one month."""
    report = await _ledger(services, session, principal, site, month)
    # Already a validated model: dumped once here rather than re-validated against the
    # response model in one long stretch (thousands of rows; see api/paged.py).
    return Response(report.model_dump_json(), media_type="application/json")


@router.get("/ledger.csv", response_class=Response)
async def ledger_csv(
    principal: ReportReader,
    services: ServicesDep,
    session: SessionDep,
    site: SiteQ = None,
    month: Month = None,
) -> Response:
    report = await _ledger(services, session, principal, site, month)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(LedgerRow.model_fields), lineterminator="\n")
    writer.writeheader()
    async for part in in_turns(report.rows):
        for r in part:
            writer.writerow({k: _cell(v) for k, v in r.model_dump().items()})
    name = f"ledger-{report.site}-{report.month}.csv"
    # A BOM so that spreadsheet programs read the Chinese text as UTF-8.
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _cell(value: object) -> object:
    # Text may come from people (locations, titles, resolutions): never a formula in Excel.
    if value is None:
        return ""
    return spreadsheet_safe(value) if isinstance(value, str) else value


@router.get("/trend", response_model=list[TrendPoint])
async def trend(
    principal: ReportReader,
    services: ServicesDep,
    session: SessionDep,
    site: SiteQ = None,
    month: Month = None,
    months: Annotated[int, Query(ge=1, le=36)] = 6,
) -> list[TrendPoint]:
    """Monthly figures for the ``months`` months ending with ``month``."""
    row = await _site(session, principal, site)
    last = month or local_month(services.clock.now_ms(), row.timezone)
    out = []
    for m in previous_months(last, months):
        start, end = month_bounds(m, row.timezone)
        incidents = await _rows(session, row.code, start, end)
        out.append(
            TrendPoint(month=m, stats=grid_stats("*", incidents, services.config.ack_deadline_s))
        )
    return out
