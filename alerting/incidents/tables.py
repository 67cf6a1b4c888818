"""Relational tables of the incident store: incidents, their append-only events, silences,
referrals and the devices folded into an outage incident. (Deliveries live with notify,
escalation timers with escalation.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, Mapper, mapped_column, relationship

from core.db import Base, IdType


class IncidentRow(Base):
    __tablename__ = "incident"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(32), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(300), index=True)
    # dedupe_key while open/acknowledged, NULL afterwards: the database itself keeps one active
    # incident per key, also with several gateway instances on one PostgreSQL.
    active_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="alert")  # alert | building_outage
    rule_id: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(200))
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    device_type: Mapped[str] = mapped_column(String(16))
    grid_id: Mapped[str] = mapped_column(String(64), index=True)
    building_id: Mapped[str | None] = mapped_column(String(64), index=True)
    household_id: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(200), default="")
    severity: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    alert_firing: Mapped[bool] = mapped_column(Boolean, default=True)
    auto_resolve: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    repeat_count: Mapped[int] = mapped_column(Integer, default=0)
    reading_ts_ms: Mapped[int | None] = mapped_column(BigInteger)
    reading_seq: Mapped[int | None] = mapped_column(BigInteger)
    acknowledged_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    assignee: Mapped[str | None] = mapped_column(String(64))
    resolved_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolution: Mapped[str | None] = mapped_column(String(32))
    closed_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    round: Mapped[int] = mapped_column(Integer, default=0)  # +1 on every reopen
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The household's risk tier at opening, the acknowledgement deadline it set and the
    # household card (facts, family contacts) the page shows.
    risk_tier: Mapped[str | None] = mapped_column(String(16))
    ack_due_ms: Mapped[int | None] = mapped_column(BigInteger)
    household_card: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What the responder needs, as known when it opened (alerting/incidents/card.py).
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Every rule of the incident's hazard that fired into it: [{rule, title, at_ms, value}].
    reasons: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class IncidentEventRow(Base):
    """One change of an incident; rows are only ever inserted (see the guard below)."""

    __tablename__ = "incident_event"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    # Never loaded; it makes every flush write the incident first (its id may have been
    # drawn ahead and the row still unwritten: core.db.IdReserve).
    incident: Mapped[IncidentRow] = relationship(lazy="raise")
    at_ms: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AppendOnlyError(RuntimeError):
    """An attempt to change or delete an incident event."""


def _refuse(_mapper: Mapper[Any], _conn: Any, target: IncidentEventRow) -> None:
    raise AppendOnlyError(f"incident events are append-only (event {target.id})")


event.listen(IncidentEventRow, "before_update", _refuse)
event.listen(IncidentEventRow, "before_delete", _refuse)


class IncidentDeviceRow(Base):
    """A device whose alert was folded into a grouped incident (flood control)."""

    __tablename__ = "incident_device"
    __table_args__ = (UniqueConstraint("incident_id", "dedupe_key"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    # Never loaded; it makes every flush write the incident first (its id may have been
    # drawn ahead and the row still unwritten: core.db.IdReserve).
    incident: Mapped[IncidentRow] = relationship(lazy="raise")
    device_id: Mapped[str | None] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(128))
    dedupe_key: Mapped[str] = mapped_column(String(300), index=True)
    attached_at_ms: Mapped[int] = mapped_column(BigInteger)
    cleared_at_ms: Mapped[int | None] = mapped_column(BigInteger)


class SilenceRow(Base):
    """A maintenance window: no paging for one device, building or grid until ``ends_at_ms``."""

    __tablename__ = "silence"
    __table_args__ = (Index("ix_silence_match", "site", "matcher", "value"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(32))
    matcher: Mapped[str] = mapped_column(String(16))  # device | building | grid
    value: Mapped[str] = mapped_column(String(64))
    starts_at_ms: Mapped[int] = mapped_column(BigInteger)
    ends_at_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text, default="")


class ReferralRow(Base):
    __tablename__ = "referral"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    department: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
