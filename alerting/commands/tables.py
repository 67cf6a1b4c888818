"""The device command table: one durable row per command, so a restart forgets none."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, IdType


class CommandStatus(StrEnum):
    """``held`` (over its site's command rate: waiting in order to be sent; no attempt spent)
    → ``sent`` (waiting for the device's cmd_ack) → ``acknowledged`` (waiting for telemetry
    that shows the new state) → ``confirmed``; or ``failed`` once its attempts are spent, or
    ``superseded`` by a later command to the same device and port."""

    HELD = "held"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    SUPERSEDED = "superseded"


OPEN_STATUSES = (CommandStatus.SENT.value, CommandStatus.ACKNOWLEDGED.value)
#: Not finished: on the wire (open) or waiting for its turn (held).
PENDING_STATUSES = (CommandStatus.HELD.value, *OPEN_STATUSES)


class DeviceCommandRow(Base):
    """One downlink command and how it went; ``id`` is the ``cmd_id`` on the wire."""

    __tablename__ = "device_command"
    __table_args__ = (Index("ix_device_command_device", "site", "device_id", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    site: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(64))
    device_type: Mapped[str] = mapped_column(String(16))
    command: Mapped[str] = mapped_column(String(64))
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Telemetry values that confirm it (from the device profile, copied when it was sent).
    confirm: Mapped[dict[str, Any]] = mapped_column(JSON)
    incident_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("incident.id"), nullable=True, index=True
    )
    requested_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    acked: Mapped[bool] = mapped_column(Boolean, default=False)
    state_seen: Mapped[bool] = mapped_column(Boolean, default=False)
    ack_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    # When the loop looks at it next: resend, or give up. A held command: when it is expected
    # to go out (increasing per site, so the queue's order survives a restart).
    due_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    finished_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
