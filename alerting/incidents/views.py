"""Read-only views of incident rows, and the JSON incident a worker's app receives."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

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
from alerting.notify.tables import UNSENT, DeliveryKind, DeliveryRow, DeliveryStatus

#: The note prefix of an "arrived on site" (到场) comment.
ARRIVED_MARK = "[到场]"
#: Timeline kinds that page people: the first ladder step, and each step after it.
PAGING_KINDS = ("notified", "escalated")

Delivered = Literal["delivered", "sending", "failed", "no_channel"]
#: A provider took the page (and maybe a receipt came back since).
TOOK = frozenset({DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ})


class PagedPerson(BaseModel):
    """Someone a ladder step paged, and whether any page reached them: ``delivered`` (a
    provider took it), ``sending``, ``failed`` (every attempt failed) or ``no_channel`` (no
    configured way to reach them: the page went nowhere)."""

    model_config = ConfigDict(frozen=True)

    person_id: str
    name: str
    role: str
    step: int
    at_ms: int
    delivery: Delivered
    channels: list[str] = []
    error: str | None = None
    # What a receipt says of the best of their pages: "delivered" (the phone got it) or
    # "read" (they opened it); None while no receipt came (see GET …/deliveries per channel).
    receipt: Literal["delivered", "read"] | None = None


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
    # The situation around it (see :func:`with_situation`; defaults when only the row is read).
    title_en: str | None = None  # the rule's English title, for the English screens
    ack_deadline_ms: int | None = None  # when it should be acknowledged by (None: no deadline)
    escalations: int = 0  # ladder steps paged after the first one
    arrived_at_ms: int | None = None  # the first 到场 (on site)
    arrived_by: str | None = None
    paged: list[PagedPerson] = []
    risk_tier: str | None = None
    ack_due_ms: int | None = None
    household_card: dict[str, Any] | None = None
    # What the responder needs (alerting/incidents/card.py): what, where, household, guidance.
    card: dict[str, Any] | None = None
    # Every rule of the incident's hazard that fired into it (one incident per hazard).
    reasons: list[dict[str, Any]] | None = None

    @classmethod
    def of(cls, row: IncidentRow) -> IncidentView:
        return cls.model_validate(row)

    def with_situation(
        self,
        events: Iterable[IncidentEventRow],
        deliveries: Iterable[DeliveryRow],
        ack_deadline_s: Mapping[str, int],
        title_en: str | None = None,
    ) -> Self:
        """This view with its deadline, escalations, arrival and who was paged, from its
        timeline events and deliveries (either may hold other incidents' rows too)."""
        mine = sorted(
            (e for e in events if e.incident_id == self.id), key=lambda e: (e.at_ms, e.id)
        )
        sent = [d for d in deliveries if d.incident_id == self.id and d.kind == DeliveryKind.PAGE]
        deadline = ack_deadline_s.get(self.severity.value, 0)
        arrived = next(
            (e for e in mine if e.kind == "commented" and e.note.startswith(ARRIVED_MARK)), None
        )
        return self.model_copy(
            update={
                "title_en": title_en,
                # the deadline the incident was opened with (a red household's is shorter)
                "ack_deadline_ms": self.ack_due_ms
                or (self.opened_at_ms + deadline * 1000 if deadline > 0 else None),
                "escalations": sum(e.kind == "escalated" for e in mine),
                "arrived_at_ms": arrived.at_ms if arrived else None,
                "arrived_by": arrived.actor if arrived else None,
                "paged": _paged(mine, sent),
            }
        )


def _paged(events: list[IncidentEventRow], deliveries: list[DeliveryRow]) -> list[PagedPerson]:
    """Each person paged (first time only), with how their pages went."""
    out: dict[str, PagedPerson] = {}
    for e in events:
        if e.kind not in PAGING_KINDS:
            continue
        data = dict(e.data or {})
        who = data.get("paged") or [{"person": p} for p in data.get("people", [])]
        for p in who:
            pid = str(p.get("person", ""))
            if not pid or pid in out:
                continue
            rows = [d for d in deliveries if d.person_id == pid]
            statuses = {d.status for d in rows}
            state: Delivered
            if statuses & TOOK:
                state = "delivered"
            elif statuses & set(UNSENT):
                state = "sending"
            elif rows:
                state = "failed"
            else:
                state = "no_channel"
            errors = [d.last_error for d in rows if d.last_error]
            out[pid] = PagedPerson(
                person_id=pid,
                name=str(p.get("name") or ""),
                role=str(p.get("role") or ""),
                step=int(data.get("step", 0)),
                at_ms=e.at_ms,
                delivery=state,
                channels=sorted({d.channel for d in rows}),
                error=errors[-1] if errors and state != "delivered" else None,
                receipt="read"
                if DeliveryStatus.READ in statuses
                else "delivered"
                if DeliveryStatus.DELIVERED in statuses
                else None,
            )
    return list(out.values())


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
    id: int = 0
    role: str = ""
    provider_ref: str | None = None
    sent_at_ms: int | None = None
    delivered_at_ms: int | None = None
    read_at_ms: int | None = None
    updated_at_ms: int = 0

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
            r.id,
            r.role,
            r.provider_ref,
            r.sent_at_ms,
            r.delivered_at_ms,
            r.read_at_ms,
            r.updated_at_ms,
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
        "risk_tier": v.risk_tier,
        "ack_due": v.ack_due_ms,
        "household": v.household_card,
        "card": v.card,
        "reasons": [{"rule": r.get("rule"), "title": r.get("title")} for r in v.reasons or []],
    }
