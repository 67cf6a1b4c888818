"""The community's monthly ledger (台账): JSON, CSV, and monthly trend figures."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import AfterValidator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.tables import IncidentRow
from api import labels
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
from api.labels import Lang
from api.paged import in_turns, incidents_opened
from api.schemas import LedgerPublic, LedgerRow, TrendPoint
from api.services import ApiServices
from gateway.registry.ledger import spreadsheet_safe
from gateway.registry.tables import Building, Grid, Person, Site

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
    code = principal.site_or(site)
    if code is None:
        raise FieldError("site", "required: you see several sites (name one with ?site=)")
    row = await session.get(Site, code)
    if row is None or not principal.sees_site(code):
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
    rules = services.rules.rules.by_id
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
                title_en=getattr(rules.get(i.rule_id), "title_en", None),
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
    lang: Annotated[Lang, Query(description="zh (default): Chinese headers and values; en")] = "zh",
) -> Response:
    """The month's ledger for a spreadsheet: headers and values in words (``lang``), times in
    the site's time zone (named in the header), grids, buildings and people by name."""
    report = await _ledger(services, session, principal, site, month)
    names = await _names(session, report.site)
    zone = await session.get(Site, report.site)
    tz = zone.timezone if zone is not None else "Asia/Shanghai"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    head = labels.header(lang)
    where = labels.zone_name(tz, _utc_offset(tz), lang)
    head[[c for c, _, _ in labels.LEDGER_COLUMNS].index("opened_at")] += (
        f"（{where}）" if lang == "zh" else f" ({where})"
    )
    writer.writerow(head)
    async for part in in_turns(report.rows):
        for r in part:
            writer.writerow([_cell(c, r, names, lang) for c, _, _ in labels.LEDGER_COLUMNS])
    name = f"ledger-{report.site}-{report.month}.csv"
    # A BOM so that spreadsheet programs read the Chinese text as UTF-8.
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _names(session: AsyncSession, site: str) -> dict[str, str]:
    """Grid, building and person ids of a site → names (ids are distinct across the three)."""
    out: dict[str, str] = {}
    for table in (Grid, Building, Person):
        for key, value in await session.execute(
            select(table.id, table.name).where(table.site == site)
        ):
            out[key] = value
    return out


def _utc_offset(tz: str) -> str:
    minutes = int((datetime.now(ZoneInfo(tz)).utcoffset() or timedelta()).total_seconds() // 60)
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    return f"{sign}{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")


def _cell(column: str, row: LedgerRow, names: dict[str, str], lang: labels.Lang) -> object:
    if column == "grid":
        value: object = names.get(row.grid_id, row.grid_id)
    elif column == "building":
        value = names.get(row.building_id, row.building_id) if row.building_id else None
    elif column == "handled_by":
        value = names.get(row.handled_by, row.handled_by) if row.handled_by else None
    elif column == "title" and lang == "en":
        value = row.title_en or row.title
    elif column in ("ack_min", "resolve_min"):
        seconds = row.ack_s if column == "ack_min" else row.resolve_s
        value = None if seconds is None else f"{seconds / 60:.1f}"
    else:
        value = labels.value(column, getattr(row, column), lang)
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
