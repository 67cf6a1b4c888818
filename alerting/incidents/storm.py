"""Alert storms: many devices of one site raising the same rule at once make ONE incident.

A firmware push or a wrong threshold can put thousands of charger ports over one rule within
a minute. Paging each would bury the duty officer and the grid workers, and opening thousands
of incidents one by one would hold the alert worker for minutes. So, like Alertmanager's
``group_by: [site, rule]``:

- the first alert of a rule in a site opens and pages at once, as always;
- while another alert of the same rule and site opened within ``window_ms``, a new one
  (not life-safety) holds its first page ``group_wait_ms`` — a storm may be forming;
- when more than ``threshold`` devices raised it within the window, one storm incident
  opens (and pages, once, through the normal ladder); the held incidents are folded into it
  before they page, and every later device of the storm is attached to it: one row per
  device on the incident, no page. Each person is paged once per storm, plus the ladder's own
  escalation if nobody acknowledges it.

Life-safety (critical) rules are never grouped and never hold a page: eleven smoke alarms
in a minute are a fire to fight, and each detector's household must be reached (a site may
opt in with ``group_critical``). Their work also goes first in the alert worker
(alerting/pipeline.py), so a storm of other rules never delays them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.escalation.timers import stop_timer
from alerting.incidents.lifecycle import IncidentStatus
from alerting.incidents.store import add_event, set_status
from alerting.incidents.tables import IncidentDeviceRow, IncidentRow
from alerting.models import AlertTransition, Severity

STORM_KIND = "storm"


@dataclass(frozen=True, slots=True)
class StormLimits:
    threshold: int = 10
    window_ms: int = 60_000


@dataclass(frozen=True, slots=True)
class StormControl:
    """Storm grouping limits: defaults, and per rule id where a rule needs its own."""

    threshold: int = 10
    window_ms: int = 60_000
    group_wait_ms: int = 10_000
    per_rule: Mapping[str, StormLimits] = field(default_factory=dict)
    group_critical: bool = False

    def applies(self, severity: Severity) -> bool:
        return self.group_critical or severity is not Severity.CRITICAL

    def limits(self, rule_id: str) -> StormLimits:
        return self.per_rule.get(rule_id) or StormLimits(self.threshold, self.window_ms)

    def holds_first_page(self, severity: Severity) -> bool:
        return severity is not Severity.CRITICAL and self.group_wait_ms > 0

    @staticmethod
    def key(site: str, rule_id: str) -> str:
        return f"{STORM_KIND}:{site}:{rule_id}"


async def recent_alerts(
    session: AsyncSession, site: str, rule_id: str, since_ms: int
) -> list[IncidentRow]:
    """Active per-device incidents of this rule and site opened since ``since_ms``."""
    stmt = (
        select(IncidentRow)
        .where(
            IncidentRow.site == site,
            IncidentRow.rule_id == rule_id,
            IncidentRow.kind == "alert",
            IncidentRow.active_key.is_not(None),
            IncidentRow.opened_at_ms >= since_ms,
        )
        .order_by(IncidentRow.id)
    )
    return list((await session.execute(stmt)).scalars())


async def count_recent(session: AsyncSession, site: str, rule_id: str, since_ms: int) -> int:
    stmt = select(func.count(IncidentRow.id)).where(
        IncidentRow.site == site,
        IncidentRow.rule_id == rule_id,
        IncidentRow.kind == "alert",
        IncidentRow.active_key.is_not(None),
        IncidentRow.opened_at_ms >= since_ms,
    )
    return int((await session.execute(stmt)).scalar_one())


# Links of storms to the devices of a batch, looked up at once (:func:`prefetch_links`) for
# :func:`join` to answer from within the transaction; keyed (storm incident id, dedupe key).
_LINKS = "storm.links"


async def prefetch_links(session: AsyncSession, storm_ids: list[int], keys: set[str]) -> None:
    """Which of these alert keys each storm already lists, in one query for a whole batch."""
    if not storm_ids or not keys:
        return
    known: dict[tuple[int, str], IncidentDeviceRow | None] = session.info.setdefault(_LINKS, {})
    rows = await session.scalars(
        select(IncidentDeviceRow).where(
            IncidentDeviceRow.incident_id.in_(storm_ids),
            IncidentDeviceRow.dedupe_key.in_(keys),
        )
    )
    known.update(dict.fromkeys([(i, k) for i in storm_ids for k in keys]))
    for link in rows:
        known[(link.incident_id, link.dedupe_key)] = link


async def _link(session: AsyncSession, storm: IncidentRow, key: str) -> IncidentDeviceRow | None:
    known: dict[tuple[int, str], IncidentDeviceRow | None] | None = session.info.get(_LINKS)
    if known is not None and (storm.id, key) in known:
        return known[(storm.id, key)]
    stmt = select(IncidentDeviceRow).where(
        IncidentDeviceRow.incident_id == storm.id, IncidentDeviceRow.dedupe_key == key
    )
    return (await session.execute(stmt)).scalar_one_or_none()


def _add_link(session: AsyncSession, link: IncidentDeviceRow) -> None:
    session.add(link)
    known = session.info.get(_LINKS)
    if known is not None:
        known[(link.incident_id, link.dedupe_key)] = link


async def join(session: AsyncSession, storm: IncidentRow, t: AlertTransition, now_ms: int) -> bool:
    """Attach a device's alert to the storm; False if it was attached already (a repeat)."""
    link = await _link(session, storm, t.dedupe_key)
    storm.last_seen_ms = storm.updated_at_ms = now_ms
    storm.alert_firing = True
    if link is not None:
        repeat = link.cleared_at_ms is None
        link.cleared_at_ms = None
        storm.repeat_count += 1
        add_event(
            session,
            storm.id,
            now_ms,
            "repeated" if repeat else "device_attached",
            actor=f"rule:{t.rule_id}",
            data={"device": t.device_id, "value": t.value},
        )
        return not repeat
    _add_link(
        session,
        IncidentDeviceRow(
            incident_id=storm.id,
            device_id=t.device_id,
            rule_id=t.rule_id,
            dedupe_key=t.dedupe_key,
            attached_at_ms=now_ms,
        ),
    )
    storm.repeat_count += 1
    add_event(
        session,
        storm.id,
        now_ms,
        "device_attached",
        actor=f"rule:{t.rule_id}",
        data={"device": t.device_id, "value": t.value, "seq": t.reading_seq},
    )
    return True


async def fold(session: AsyncSession, storm: IncidentRow, device: IncidentRow, now_ms: int) -> None:
    """Move a per-device incident of the storm into it: its held page never goes out."""
    _add_link(
        session,
        IncidentDeviceRow(
            incident_id=storm.id,
            device_id=device.device_id,
            rule_id=device.rule_id,
            dedupe_key=device.dedupe_key,
            attached_at_ms=device.opened_at_ms,
        ),
    )
    set_status(device, IncidentStatus.RESOLVED, now_ms)
    device.resolved_by = "system"
    device.resolved_at_ms = now_ms
    await stop_timer(session, device.id)
    add_event(
        session,
        device.id,
        now_ms,
        "merged",
        note=f"folded into alert storm #{storm.id}",
        data={"into": storm.id},
    )
    add_event(
        session,
        storm.id,
        now_ms,
        "device_attached",
        data={"device": device.device_id, "rule": device.rule_id, "from": device.id},
    )
