"""Read-only views of incident rows, and the JSON incident a worker's app receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from alerting.incidents.lifecycle import IncidentStatus, Resolution
from alerting.incidents.tables import (
    IncidentDeviceRow,
    IncidentEventRow,
    IncidentRow,
    ReferralRow,
    SilenceRow,
)
from alerting.models import Category, Severity
from alerting.notify.tables import DeliveryRow


@dataclass(frozen=True, slots=True)
class EventView:
    at_ms: int
    actor: str
    kind: str
    note: str
    data: dict[str, Any]

    @classmethod
    def of(cls, row: IncidentEventRow) -> EventView:
        return cls(row.at_ms, row.actor, row.kind, row.note, dict(row.data or {}))


class IncidentView(BaseModel):
    """The one read model of an incident: what the API returns, the live board receives and a
    worker's page is made from (:func:`incident_message`)."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: int
    site: str
    kind: str
    dedupe_key: str
    rule_id: str
    subject: str
    device_id: str | None
    device_type: str
    grid_id: str
    building_id: str | None
    household_id: str | None
    location: str
    severity: Severity
    category: Category
    title: str
    status: IncidentStatus
    alert_firing: bool
    opened_at_ms: int
    updated_at_ms: int
    acknowledged_at_ms: int | None
    acknowledged_by: str | None
    assignee: str | None
    resolved_at_ms: int | None
    resolved_by: str | None
    resolution: Resolution | None
    repeat_count: int
    reading_ts_ms: int | None
    reading_seq: int | None
    # What the responder needs (alerting/incidents/card.py): what, where, household, guidance.
    card: dict[str, Any] | None = None
    # Every rule of the incident's hazard that fired into it (one incident per hazard).
    reasons: list[dict[str, Any]] | None = None

    @classmethod
    def of(cls, row: IncidentRow) -> IncidentView:
        return cls.model_validate(row)


@dataclass(frozen=True, slots=True)
class DeliveryView:
    idempotency_key: str
    step: str
    kind: str
    person_id: str
    channel: str
    status: str
    attempts: int
    last_error: str | None

    @classmethod
    def of(cls, r: DeliveryRow) -> DeliveryView:
        return cls(
            r.idempotency_key,
            r.step,
            r.kind,
            r.person_id,
            r.channel,
            r.status,
            r.attempts,
            r.last_error,
        )


@dataclass(frozen=True, slots=True)
class IncidentDetail:
    incident: IncidentView
    events: list[EventView] = field(default_factory=list)
    referrals: list[tuple[str, str, int, str]] = field(
        default_factory=list
    )  # dept, actor, at, note
    devices: list[tuple[str | None, str, int, int | None]] = field(default_factory=list)
    deliveries: list[DeliveryView] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        row: IncidentRow,
        events: list[IncidentEventRow],
        referrals: list[ReferralRow],
        devices: list[IncidentDeviceRow],
        deliveries: list[DeliveryRow],
    ) -> IncidentDetail:
        return cls(
            IncidentView.of(row),
            [EventView.of(e) for e in events],
            [(r.department, r.actor, r.at_ms, r.note) for r in referrals],
            [(d.device_id, d.rule_id, d.attached_at_ms, d.cleared_at_ms) for d in devices],
            [DeliveryView.of(d) for d in deliveries],
        )


@dataclass(frozen=True, slots=True)
class SilenceView:
    id: int
    site: str
    matcher: str
    value: str
    starts_at_ms: int
    ends_at_ms: int
    created_by: str
    reason: str

    @classmethod
    def of(cls, r: SilenceRow) -> SilenceView:
        return cls(
            r.id, r.site, r.matcher, r.value, r.starts_at_ms, r.ends_at_ms, r.created_by, r.reason
        )


def incident_message(v: IncidentView) -> dict[str, Any]:
    """The JSON incident of the downlink contract (one per MQTT message / webhook call)."""
    return {
        "id": v.id,
        "site": v.site,
        "device": v.device_id,
        "device_type": v.device_type,
        "location": v.location,
        "building": v.building_id,
        "grid": v.grid_id,
        "type": v.rule_id,
        "severity": v.severity.value,
        "category": v.category.value,
        "title": v.title,
        "status": v.status.value,
        "opened_at": v.opened_at_ms,
        "ts": v.reading_ts_ms,
        "seq": v.reading_seq,
        "card": v.card,
        "reasons": [{"rule": r.get("rule"), "title": r.get("title")} for r in v.reasons or []],
    }
