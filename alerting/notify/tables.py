"""The delivery log: one row per page to one person on one channel (notify owns it)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, IdType

if TYPE_CHECKING:
    from alerting.incidents.tables import IncidentRow


class DeliveryStatus(StrEnum):
    """``pending`` → ``sending`` (claimed, with a lease) → ``sent`` (the provider accepted it)
    → ``delivered`` (a receipt says it reached the phone) → ``read`` (the person opened it);
    or ``failed`` (every attempt failed, the provider refused it, or a critical page had no
    receipt in time; the ladder moves on). A late receipt still marks a failed page delivered."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class DeliveryKind(StrEnum):
    """Why a person is paged: a ladder step, a reminder after acknowledging, or the outcome
    told to the household (结果反馈)."""

    PAGE = "page"
    REMINDER = "reminder"
    OUTCOME = "outcome"


#: Reached the person (a receipt said so).
REACHED = (DeliveryStatus.DELIVERED, DeliveryStatus.READ)

#: Deliveries nobody has finished yet: sent again after a restart once their lease ends.
UNSENT = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


class DeliveryRow(Base):
    """One notification to one person on one channel; the idempotency key makes it happen once."""

    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    # Never loaded; it makes every flush write the incident first (its id may have been
    # drawn ahead and the row still unwritten: core.db.IdReserve).
    incident: Mapped[IncidentRow] = relationship(lazy="raise")
    step: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # a DeliveryKind
    person_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), index=True)  # a DeliveryStatus
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    lease_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    # The gateway instance that claimed it (its MQTT client id): after a crash the same
    # instance sends its own claimed rows again at once instead of waiting out the lease.
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    # The incident as the page carries it (downlink contract), as it was when planned.
    message: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sent_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    # The provider's id for the message (Alibaba BizId / CallId, Tencent SerialNo, WeCom
    # msgid): how a status report finds its delivery.
    provider_ref: Mapped[str | None] = mapped_column(String(128), index=True)
    # Proves a read receipt (POST /api/v1/deliveries/{id}/receipt) comes from the page itself.
    receipt_token: Mapped[str | None] = mapped_column(String(64))
    delivered_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    read_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    # A critical page with no receipt by then counts as not delivered: the ladder moves on.
    receipt_due_ms: Mapped[int | None] = mapped_column(BigInteger, index=True)
