"""The one ledger (台账) of device incidents and reported matters together, and the figures a
community reports: per grid and per worker, counts, times (median, p90), on-time rates,
整改完成率, overdue hazards, share closed within the grid, false-alarm rate, satisfaction.

Self-tests (info severity / device test) and offline alerts merged into a building outage are
not incidents people worked, so they are left out.

On time: acknowledged within the severity's acknowledgement deadline; on site within an hour
(critical and major) or a day (minor); resolved within a day — for a hazard, rectified by its
own deadline."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from statistics import median

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.tables import IncidentEventRow, IncidentRow
from alerting.loop.desk import LoopDesk
from alerting.loop.tables import CaseRow
from api.figures import local_time
from api.paged import incidents_opened

HOUR_S = 3600
ARRIVE_S = {"critical": HOUR_S, "major": HOUR_S, "minor": 24 * HOUR_S, "info": 24 * HOUR_S}
RESOLVE_S = 24 * HOUR_S


class LoopLedgerRow(BaseModel):
    id: int
    opened_at: str
    grid_id: str
    building_id: str | None
    location: str
    source: str
    category: str
    tier: str | None
    title: str
    severity: str
    status: str
    worker: str | None
    hazard: bool
    hazard_state: str | None
    deadline: str | None
    ack_s: float | None
    arrive_s: float | None
    resolve_s: float | None
    ack_on_time: bool | None
    arrive_on_time: bool | None
    resolve_on_time: bool | None
    overdue: bool
    resolution: str | None
    verified_by: str | None
    rating: str | None


class LoopFigures(BaseModel):
    incidents: int = 0
    closed: int = 0
    closed_within_grid_share: float | None = None
    ack_median_s: float | None = None
    ack_p90_s: float | None = None
    arrive_median_s: float | None = None
    arrive_p90_s: float | None = None
    resolve_median_s: float | None = None
    resolve_p90_s: float | None = None
    ack_on_time_rate: float | None = None
    arrive_on_time_rate: float | None = None
    resolve_on_time_rate: float | None = None
    hazards: int = 0
    hazards_rectified: int = 0
    rectification_rate: float | None = None  # 整改完成率
    overdue_hazards: int = 0
    false_alarm_rate: float | None = None
    ratings: int = 0
    satisfaction: float | None = None  # (满意 + 基本满意) / rated
    by_source: dict[str, int] = {}
    by_category: dict[str, int] = {}


class LoopLedgerPublic(BaseModel):
    site: str
    month: str
    summary: LoopFigures
    by_grid: dict[str, LoopFigures]
    by_worker: dict[str, LoopFigures]
    rows: list[LoopLedgerRow]


def _secs(start: int, end: int | None) -> float | None:
    return None if end is None else round((end - start) / 1000, 1)


def _p90(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest rank


def _rate(flags: Iterable[bool | None]) -> float | None:
    known = [f for f in flags if f is not None]
    return round(sum(known) / len(known), 4) if known else None


def ledger_row(
    row: IncidentRow,
    case: CaseRow | None,
    desk: LoopDesk,
    ack_deadline: Mapping[str, int],
    tz: str,
) -> LoopLedgerRow:
    ack = _secs(row.opened_at_ms, row.acknowledged_at_ms)
    arrive = _secs(row.opened_at_ms, case.arrived_at_ms if case else None)
    fix = _secs(row.opened_at_ms, row.resolved_at_ms)
    hazard = bool(case and case.hazard)
    deadline = case.deadline_ms if case and hazard else None
    if hazard and deadline is not None:
        done_at = case.rectified_at_ms if case else None
        resolve_on_time: bool | None = None if done_at is None else done_at <= deadline
    else:
        resolve_on_time = None if fix is None else fix <= RESOLVE_S
    ack_limit = ack_deadline.get(row.severity, 0)
    return LoopLedgerRow(
        id=row.id,
        opened_at=local_time(row.opened_at_ms, tz),
        grid_id=row.grid_id,
        building_id=row.building_id,
        location=row.location,
        source=case.source if case else "device",
        category=(case.case_category if case and case.case_category else row.device_type),
        tier=desk.effective_tier(row, case),
        title=row.title,
        severity=row.severity,
        status=row.status,
        worker=row.resolved_by or row.assignee or row.acknowledged_by,
        hazard=hazard,
        hazard_state=case.hazard_state if case else None,
        deadline=local_time(deadline, tz) if deadline else None,
        ack_s=ack,
        arrive_s=arrive,
        resolve_s=fix,
        ack_on_time=None if ack is None or ack_limit <= 0 else ack <= ack_limit,
        arrive_on_time=None if arrive is None else arrive <= ARRIVE_S.get(row.severity, HOUR_S),
        resolve_on_time=resolve_on_time,
        overdue=bool(case and case.overdue_at_ms),
        resolution=row.resolution,
        verified_by=case.verified_by if case else None,
        rating=case.rating if case else None,
    )


def figures(rows: Sequence[LoopLedgerRow]) -> LoopFigures:
    closed = [r for r in rows if r.status == "closed"]
    resolved = [r for r in rows if r.resolution is not None]
    hazards = [r for r in rows if r.hazard]
    rated = [r for r in rows if r.rating]
    times = {
        k: [getattr(r, k) for r in rows if getattr(r, k) is not None]
        for k in ("ack_s", "arrive_s", "resolve_s")
    }
    return LoopFigures(
        incidents=len(rows),
        closed=len(closed),
        closed_within_grid_share=_rate(r.tier == "grid" for r in closed),
        ack_median_s=median(times["ack_s"]) if times["ack_s"] else None,
        ack_p90_s=_p90(times["ack_s"]),
        arrive_median_s=median(times["arrive_s"]) if times["arrive_s"] else None,
        arrive_p90_s=_p90(times["arrive_s"]),
        resolve_median_s=median(times["resolve_s"]) if times["resolve_s"] else None,
        resolve_p90_s=_p90(times["resolve_s"]),
        ack_on_time_rate=_rate(r.ack_on_time for r in rows),
        arrive_on_time_rate=_rate(r.arrive_on_time for r in rows),
        resolve_on_time_rate=_rate(r.resolve_on_time for r in rows),
        hazards=len(hazards),
        hazards_rectified=sum(r.hazard_state == "rectified" for r in hazards),
        rectification_rate=_rate(r.hazard_state == "rectified" for r in hazards),
        overdue_hazards=sum(r.overdue for r in hazards),
        false_alarm_rate=_rate(r.resolution == "false_alarm" for r in resolved),
        ratings=len(rated),
        satisfaction=_rate(r.rating in ("satisfied", "basically_satisfied") for r in rated),
        by_source=dict(Counter(r.source for r in rows)),
        by_category=dict(Counter(r.category for r in rows)),
    )


async def ledger_items(
    session: AsyncSession, site: str, start: int, end: int
) -> list[tuple[IncidentRow, CaseRow | None]]:
    """The month's incidents people worked, with their case records."""
    rows = await incidents_opened(session, start, end, IncidentRow.site == site)
    ids = [r.id for r in rows]
    cases: dict[int, CaseRow] = {}
    merged: set[int] = set()
    for chunk in range(0, len(ids), 500):
        part = ids[chunk : chunk + 500]
        cases.update(
            (c.incident_id, c)
            for c in await session.scalars(select(CaseRow).where(CaseRow.incident_id.in_(part)))
        )
        merged |= set(
            await session.scalars(
                select(IncidentEventRow.incident_id).where(
                    IncidentEventRow.incident_id.in_(part), IncidentEventRow.kind == "merged"
                )
            )
        )
    return [
        (r, cases.get(r.id))
        for r in rows
        if r.id not in merged and r.severity != "info" and r.resolution != "device_test"
    ]
