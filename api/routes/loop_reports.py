"""The monthly ledger of the whole loop (device incidents and reported matters together) as
JSON, CSV and an Excel workbook (a summary sheet plus one sheet per grid)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncSession

from api import labels
from api.deps import Principal, ReportReader, ServicesDep, SessionDep
from api.figures import local_month, month_bounds
from api.loop_ledger import (
    LoopFigures,
    LoopLedgerPublic,
    LoopLedgerRow,
    figures,
    ledger_items,
    ledger_row,
)
from api.routes.reports import Month, SiteQ, _site
from api.services import ApiServices
from gateway.registry.ledger import spreadsheet_safe
from gateway.registry.service import Registry

router = APIRouter(prefix="/reports", tags=["reports"])
Filter = Annotated[str | None, Query(max_length=100)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _build(
    services: ApiServices,
    session: AsyncSession,
    principal: Principal,
    site: str | None,
    month: str | None,
    filters: dict[str, str | None],
) -> LoopLedgerPublic:
    if services.loop is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the closed loop is not set up")
    site_row = await _site(session, principal, site)
    month = month or local_month(services.clock.now_ms(), site_row.timezone)
    start, end = month_bounds(month, site_row.timezone)
    desk = services.loop.desk
    rows = [
        ledger_row(r, c, desk, services.config.ack_deadline_s, site_row.timezone)
        for r, c in await ledger_items(session, site_row.code, start, end)
    ]
    rows = [r for r in rows if all(v is None or getattr(r, k) == v for k, v in filters.items())]
    grids: dict[str, list[LoopLedgerRow]] = defaultdict(list)
    workers: dict[str, list[LoopLedgerRow]] = defaultdict(list)
    for r in rows:
        grids[r.grid_id].append(r)
        if r.worker:
            workers[r.worker].append(r)
    return LoopLedgerPublic(
        site=site_row.code,
        month=month,
        summary=figures(rows),
        by_grid={g: figures(v) for g, v in sorted(grids.items())},
        by_worker={w: figures(v) for w, v in sorted(workers.items())},
        rows=rows,
    )


async def _ledger(
    principal: ReportReader,
    services: ServicesDep,
    session: SessionDep,
    site: SiteQ = None,
    month: Month = None,
    grid: Filter = None,
    source: Filter = None,
    category: Filter = None,
    tier: Filter = None,
    status_: Annotated[str | None, Query(alias="status", max_length=16)] = None,
) -> LoopLedgerPublic:
    filters = {
        "grid_id": grid,
        "source": source,
        "category": category,
        "tier": tier,
        "status": status_,
    }
    return await _build(services, session, principal, site, month, filters)


# The month's ledger as the query names it (site, month, filters), for every format below.
LedgerReport = Annotated[LoopLedgerPublic, Depends(_ledger)]


@router.get("/loop-ledger", response_model=LoopLedgerPublic)
async def loop_ledger(report: LedgerReport) -> LoopLedgerPublic:
    """台账: filterable by grid, source, category, tier and status; figures per grid and worker."""
    return report


@router.get("/loop-ledger.csv", response_class=Response)
async def loop_ledger_csv(
    report: LedgerReport,
    lang: Annotated[
        labels.Lang, Query(description="zh (default): Chinese headers and values; en")
    ] = "zh",
) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_loop_header(lang))
    for r in report.rows:
        writer.writerow(_loop_cells(r, lang))
    name = f"loop-ledger-{report.site}-{report.month}.csv"
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _loop_header(lang: labels.Lang) -> list[str]:
    return [
        labels.LOOP_LEDGER_COLUMNS[f][0 if lang == "zh" else 1] for f in LoopLedgerRow.model_fields
    ]


def _loop_cells(row: LoopLedgerRow, lang: labels.Lang) -> list[object]:
    # People read these (codes become words); text people typed is never a formula in Excel.
    cells: list[object] = []
    for column, value in row.model_dump().items():
        if isinstance(value, bool) or column in labels.VALUES:
            value = labels.value(column, value, lang)
        cells.append(
            spreadsheet_safe(value) if isinstance(value, str) else ("" if value is None else value)
        )
    return cells


SUMMARY_HEAD = ["范围", *(labels.LOOP_FIGURE_COLUMNS[f] for f in LoopFigures.model_fields)]


def _figure_cells(f: LoopFigures) -> list[object]:
    return [
        "，".join(f"{labels.value(name.removeprefix('by_'), k, 'zh')} {v}" for k, v in value.items())
        if isinstance(value, dict)
        else value
        for name, value in zip(
            LoopFigures.model_fields, f.model_dump().values(), strict=True
        )
    ]


def workbook(report: LoopLedgerPublic, registry: Registry | None = None) -> bytes:
    """汇总 (summary: the whole site, then each grid and worker) and one sheet per grid, with
    the names people know (grids and workers by name, not by id)."""

    def grid_name(grid_id: str) -> str:
        g = registry.grid(grid_id) if registry is not None else None
        return g.name if g is not None else grid_id

    def person_name(person_id: str) -> str:
        p = registry.person(person_id) if registry is not None else None
        return p.name if p is not None else person_id

    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = "汇总"
    summary.append(SUMMARY_HEAD)
    summary.append(["全部", *_figure_cells(report.summary)])
    for grid, f in report.by_grid.items():
        summary.append([f"网格 {grid_name(grid)}", *_figure_cells(f)])
    for worker, f in report.by_worker.items():
        summary.append([f"处置人 {person_name(worker)}", *_figure_cells(f)])
    used: set[str] = set()
    for grid in report.by_grid:
        # Excel sheet names: at most 31 characters, none of []:*?/\ and unique.
        title = "".join(c for c in grid_name(grid) if c not in "[]:*?/\\")[:28] or "grid"
        while title in used or title == "汇总":
            title = f"{title[:26]}-{len(used)}"
        used.add(title)
        sheet = wb.create_sheet(title)
        sheet.append(_loop_header("zh"))
        for r in report.rows:
            if r.grid_id == grid:
                sheet.append(_loop_cells(r, "zh"))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@router.get("/loop-ledger.xlsx", response_class=Response)
async def loop_ledger_xlsx(report: LedgerReport, services: ServicesDep) -> Response:
    name = f"loop-ledger-{report.site}-{report.month}.xlsx"
    return Response(
        workbook(report, services.registry),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
