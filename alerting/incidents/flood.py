"""Flood control: many devices of one building going offline together make one outage incident.

When ``threshold`` devices of a building go offline within ``window_ms``, one "building outage"
incident opens; the devices' own offline incidents are folded into it (each device's alert is
kept as an attached row and an event), and later offline devices of that building attach to it
while it is open. Per-device offline incidents wait ``window_ms`` before their first page, so
the devices that start an outage page nobody on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.escalation.timers import stop_timer
from alerting.incidents.lifecycle import IncidentStatus, Resolution
from alerting.incidents.store import add_event, set_status
from alerting.incidents.tables import IncidentDeviceRow, IncidentRow
from alerting.models import AlertTransition, Severity

OUTAGE_RULE = "building_outage"


@dataclass(frozen=True, slots=True)
class FloodControl:
    threshold: int = 5
    window_ms: int = 120_000
    severity: Severity = Severity.MAJOR
    offline_suffix: str = ".offline"

    def is_offline(self, t: AlertTransition) -> bool:
        return t.rule_id.endswith(self.offline_suffix)

    @staticmethod
    def outage_key(site: str, building_id: str) -> str:
        return f"{OUTAGE_RULE}:{site}:{building_id}"


def attach(session: AsyncSession, outage: IncidentRow, t: AlertTransition, now_ms: int) -> None:
    session.add(
        IncidentDeviceRow(
            incident_id=outage.id,
            device_id=t.device_id,
            rule_id=t.rule_id,
            dedupe_key=t.dedupe_key,
            attached_at_ms=now_ms,
        )
    )
    outage.repeat_count += 1
    outage.last_seen_ms = now_ms
    outage.updated_at_ms = now_ms
    add_event(
        session,
        outage.id,
        now_ms,
        "device_attached",
        actor=f"rule:{t.rule_id}",
        data={"device": t.device_id, "rule": t.rule_id},
    )


async def attached_open(
    session: AsyncSession, dedupe_key: str
) -> tuple[IncidentRow, IncidentDeviceRow] | None:
    """The active grouped incident holding this alert, with the attachment, if any."""
    stmt = (
        select(IncidentRow, IncidentDeviceRow)
        .join(IncidentDeviceRow, IncidentDeviceRow.incident_id == IncidentRow.id)
        .where(
            IncidentDeviceRow.dedupe_key == dedupe_key,
            IncidentDeviceRow.cleared_at_ms.is_(None),
            IncidentRow.active_key.is_not(None),
        )
        .limit(1)
    )
    found = (await session.execute(stmt)).first()
    return (found[0], found[1]) if found else None


async def recent_offline(
    session: AsyncSession, flood: FloodControl, site: str, building_id: str, now_ms: int
) -> list[IncidentRow]:
    stmt = (
        select(IncidentRow)
        .where(
            IncidentRow.site == site,
            IncidentRow.building_id == building_id,
            IncidentRow.kind == "offline",
            IncidentRow.active_key.is_not(None),
            IncidentRow.opened_at_ms >= now_ms - flood.window_ms,
        )
        .order_by(IncidentRow.id)
    )
    return list((await session.execute(stmt)).scalars())


async def fold(
    session: AsyncSession, outage: IncidentRow, device: IncidentRow, now_ms: int
) -> None:
    """Move a per-device offline incident into the outage: it stops paging and is resolved."""
    session.add(
        IncidentDeviceRow(
            incident_id=outage.id,
            device_id=device.device_id,
            rule_id=device.rule_id,
            dedupe_key=device.dedupe_key,
            attached_at_ms=device.opened_at_ms,
        )
    )
    set_status(device, IncidentStatus.RESOLVED, now_ms)
    device.resolution = Resolution.DEVICE_FAULT.value
    device.resolved_by = "system"
    device.resolved_at_ms = now_ms
    await stop_timer(session, device.id)
    add_event(
        session,
        device.id,
        now_ms,
        "merged",
        note=f"folded into building outage #{outage.id}",
        data={"into": outage.id},
    )
    add_event(
        session,
        outage.id,
        now_ms,
        "device_attached",
        data={"device": device.device_id, "rule": device.rule_id, "from": device.id},
    )


async def detach(
    session: AsyncSession, dedupe_key: str, now_ms: int
) -> tuple[IncidentRow, bool] | None:
    """A folded device came back: (its outage, whether every device of it is back now)."""
    found = await attached_open(session, dedupe_key)
    if found is None:
        return None
    outage, link = found
    link.cleared_at_ms = now_ms
    add_event(session, outage.id, now_ms, "device_cleared", data={"device": link.device_id})
    await session.flush()
    still = await session.execute(
        select(IncidentDeviceRow.id).where(
            IncidentDeviceRow.incident_id == outage.id, IncidentDeviceRow.cleared_at_ms.is_(None)
        )
    )
    return outage, still.first() is None
