"""Relational tables of the incident store: incidents, their append-only events, silences,
deliveries, escalation timers, referrals and the devices folded into an outage incident."""

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
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from core.db import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
IdType = BigInteger().with_variant(Integer(), "sqlite")


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


class IncidentEventRow(Base):
    """One change of an incident; rows are only ever inserted (see the guard below)."""

    __tablename__ = "incident_event"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
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


class DeliveryRow(Base):
    """One notification to one person on one channel; the idempotency key makes it happen once."""

    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    step: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # page | reminder | outcome
    person_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending|sending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    lease_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    sent_at_ms: Mapped[int | None] = mapped_column(BigInteger)


class EscalationTimerRow(Base):
    """The next escalation of one active incident: durable, so a restart resumes it."""

    __tablename__ = "escalation_timer"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # step | reminder | outcome
    due_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    next_step: Mapped[int] = mapped_column(Integer, default=0)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    ladder: Mapped[dict[str, Any]] = mapped_column(JSON)  # snapshot taken when it opened
    note: Mapped[str] = mapped_column(Text, default="")


class ReferralRow(Base):
    __tablename__ = "referral"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    department: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
