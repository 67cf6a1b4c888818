"""The API audit trail: every change made through the API, with its actor (table ``api_audit``)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import JSON, BigInteger, String, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, IdType

AUDIT_TABLE = "api_audit"


class AuditRow(Base):
    __tablename__ = AUDIT_TABLE

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    site: Mapped[str | None] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(80), index=True)
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)  # e.g. "device.create"
    target: Mapped[str] = mapped_column(String(300), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | denied | failed
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")


def record(
    session: AsyncSession,
    *,
    at_ms: int,
    actor: str,
    role: str,
    action: str,
    target: str = "",
    site: str | None = None,
    detail: dict[str, Any] | None = None,
    outcome: str = "ok",
) -> AuditRow:
    """Add one audit row to ``session`` (committed with the change it describes)."""
    row = AuditRow(
        at_ms=at_ms,
        site=site,
        actor=actor,
        role=role,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail or {},
    )
    session.add(row)
    return row


def change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The detail of an update: each changed field's value before and after."""
    return {
        "before": {k: before.get(k) for k in after},
        "after": after,
    }


class Actor(Protocol):
    """Who made a change (the API's Principal: a person or a service token)."""

    @property
    def actor(self) -> str: ...
    @property
    def role(self) -> str: ...


def record_by(
    session: AsyncSession,
    who: Actor,
    at_ms: int,
    action: str,
    *,
    target: str = "",
    site: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditRow:
    """:func:`record` a change made by ``who`` (an API caller)."""
    return record(
        session,
        at_ms=at_ms,
        actor=who.actor,
        role=who.role,
        action=action,
        target=target,
        site=site,
        detail=detail,
    )
