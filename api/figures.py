"""Response figures over incidents: counts, mean time to acknowledge/resolve, deadlines met."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from statistics import fmean
from zoneinfo import ZoneInfo

from alerting.incidents.lifecycle import IncidentStatus
from alerting.incidents.tables import IncidentRow
from api.schemas import GridStats

DONE = ("resolved", "closed")


def unacknowledged(row: IncidentRow) -> bool:
    """待确认, the one definition the header, every grid card and every site card count: open
    and nobody has acknowledged it yet (未结 = open or acknowledged, ``ACTIVE_STATUSES``)."""
    return row.status == IncidentStatus.OPEN.value


def ack_seconds(row: IncidentRow) -> float | None:
    if row.acknowledged_at_ms is None:
        return None
    return (row.acknowledged_at_ms - row.opened_at_ms) / 1000


def resolve_seconds(row: IncidentRow) -> float | None:
    if row.resolved_at_ms is None:
        return None
    return (row.resolved_at_ms - row.opened_at_ms) / 1000


def within_deadline(row: IncidentRow, deadlines_s: Mapping[str, int]) -> bool | None:
    """Acknowledged (or resolved) within its severity's deadline; None if it has no deadline."""
    deadline = deadlines_s.get(row.severity, 0)
    if deadline <= 0:
        return None
    return _handled_within(ack_seconds(row), resolve_seconds(row), deadline)


def _handled_within(ack_s: float | None, resolve_s: float | None, deadline_s: int) -> bool:
    """The first of acknowledgement and resolution came within the deadline."""
    handled = [t for t in (ack_s, resolve_s) if t is not None]
    return bool(handled) and min(handled) <= deadline_s


def grid_stats(
    grid_id: str, rows: Iterable[IncidentRow], deadlines_s: Mapping[str, int]
) -> GridStats:
    # One pass, each column read once: ORM attribute reads dominate over thousands of rows,
    # and this runs on the event loop the alarm path shares (see api/paged.py).
    count = done = 0
    acks: list[float] = []
    fixes: list[float] = []
    timed: list[bool] = []
    by_type: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    for r in rows:
        count += 1
        opened, severity = r.opened_at_ms, r.severity
        ack_ms, fix_ms = r.acknowledged_at_ms, r.resolved_at_ms
        ack = None if ack_ms is None else (ack_ms - opened) / 1000
        fix = None if fix_ms is None else (fix_ms - opened) / 1000
        if ack is not None:
            acks.append(ack)
        if fix is not None:
            fixes.append(fix)
        deadline = deadlines_s.get(severity, 0)
        if deadline > 0:
            timed.append(_handled_within(ack, fix, deadline))
        if r.status in DONE:
            done += 1
        by_type[r.device_type] += 1
        by_rule[r.rule_id] += 1
        by_severity[severity] += 1
    return GridStats(
        grid_id=grid_id,
        incidents=count,
        by_type=dict(by_type),
        by_rule=dict(by_rule),
        by_severity=dict(by_severity),
        acknowledged=len(acks),
        resolved=done,
        mean_ack_s=round(fmean(acks), 1) if acks else None,
        mean_resolve_s=round(fmean(fixes), 1) if fixes else None,
        within_deadline_share=round(sum(timed) / len(timed), 4) if timed else None,
        resolution_rate=round(done / count, 4) if count else None,
    )


def month_bounds(month: str, tz: str) -> tuple[int, int]:
    """``"2026-11"`` in the site's time zone → ``[start_ms, end_ms)``."""
    year, mon = (int(p) for p in month.split("-"))
    zone = ZoneInfo(tz)
    start = datetime(year, mon, 1, tzinfo=zone)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def previous_months(month: str, count: int) -> list[str]:
    year, mon = (int(p) for p in month.split("-"))
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{mon:02d}")
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
    return out[::-1]


def local_month(now_ms: int, tz: str) -> str:
    return datetime.fromtimestamp(now_ms / 1000, ZoneInfo(tz)).strftime("%Y-%m")


def local_time(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
