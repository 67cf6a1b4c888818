"""The cluster's two tables: one lease row per partition and one row per live instance.

Times are the database server's (``now()`` in the statements of gateway/cluster/lease.py), so
instances whose clocks disagree still agree on whether a lease has expired.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class PartitionLease(Base):
    """Who owns a partition until when; ``epoch`` grows on every change of owner and is the
    fencing token the owner's writes check (gateway/cluster/fence.py)."""

    __tablename__ = "partition_lease"

    partition: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    acquired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    renewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class GatewayInstance(Base):
    """A running instance: its heartbeat counts it among the live ones for the fair share."""

    __tablename__ = "gateway_instance"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
