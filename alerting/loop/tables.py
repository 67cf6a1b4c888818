"""Tables of the closed loop: each incident's case record (source, category, tier, hazard,
verification, rating), its photos and its department referrals."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, IdType


class CaseRow(Base):
    """The loop's record of one incident. A rule's incident gets one when the loop first
    touches it (triage, arrival, a referral); until then every reader takes it as a device
    incident with its rule's default tier — so the alarm path writes nothing more here."""

    __tablename__ = "incident_case"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), index=True, default="device")
    case_category: Mapped[str | None] = mapped_column(String(16))
    tier: Mapped[str | None] = mapped_column(String(16))
    triaged_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    triaged_by: Mapped[str | None] = mapped_column(String(64))
    unit_room: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    caller_name: Mapped[str] = mapped_column(String(64), default="")
    caller_phone: Mapped[str] = mapped_column(String(32), default="")
    arrived_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    arrived_by: Mapped[str | None] = mapped_column(String(64))
    # Hazard (隐患): rectification deadline, who must rectify, where it stands.
    hazard: Mapped[bool] = mapped_column(Boolean, default=False)
    hazard_state: Mapped[str | None] = mapped_column(String(16))
    deadline_ms: Mapped[int | None] = mapped_column(BigInteger, index=True)
    responsible_kind: Mapped[str | None] = mapped_column(String(16))
    responsible_name: Mapped[str] = mapped_column(String(100), default="")
    reminded_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    overdue_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    rectified_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    # Verification (核查) and feedback (结果反馈).
    verified_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    verified_by: Mapped[str | None] = mapped_column(String(64))
    feedback_sent_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    rating: Mapped[str | None] = mapped_column(String(16))
    rated_at_ms: Mapped[int | None] = mapped_column(BigInteger)


class PhotoRow(Base):
    """A photo kept with an incident (the file lives under the data directory)."""

    __tablename__ = "incident_photo"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    file_name: Mapped[str] = mapped_column(String(100))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column(BigInteger)


class DeptReferralRow(Base):
    """An incident handed to a department: sent, accepted, replied, or overdue."""

    __tablename__ = "dept_referral"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    department: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(
        String(16), default="sent"
    )  # sent|accepted|replied|declined
    due_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    accepted_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    replied_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    reply: Mapped[str] = mapped_column(Text, default="")
    overdue_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    sent_ok: Mapped[int] = mapped_column(Integer, default=0)
    send_errors: Mapped[str] = mapped_column(Text, default="")
