"""Quarantine: every rejected message is kept with its reason, counted, and can be inspected."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from gateway.envelope import Rejection

log = logging.getLogger(__name__)

# A hostile flood must not fill the disk: payloads are kept up to this size (the full size is
# recorded), and the table keeps the newest rows. The per-reason counts are never capped.
KEEP_PAYLOAD_BYTES = 1024


class QuarantinedMessage(Base):
    __tablename__ = "quarantined_message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    topic: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    received_ms: int
    topic: str
    rejection: Rejection
    payload: bytes


class Quarantine:
    """Collects rejections on the hot path (cheap) and writes them in batches."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], keep_rows: int = 10_000) -> None:
        self._sessions = sessions
        self._keep_rows = keep_rows
        self._pending: list[QuarantineEntry] = []
        self.counts: Counter[str] = Counter()
        self._since_trim = 0

    def add(self, received_ms: int, topic: str, payload: bytes, rejection: Rejection) -> None:
        self.counts[rejection.reason.value] += 1
        self._pending.append(QuarantineEntry(received_ms, topic, rejection, payload))

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Persist what was collected; raises (and keeps the entries) if the database fails."""
        if not self._pending:
            return
        entries, self._pending = self._pending, []
        rows = [
            {
                "received_ms": e.received_ms,
                "topic": e.topic[:1024],
                "reason": e.rejection.reason.value,
                "detail": e.rejection.detail[:1024],
                "device_id": e.rejection.device_id,
                "payload": e.payload[:KEEP_PAYLOAD_BYTES],
                "payload_size": len(e.payload),
            }
            for e in entries
        ]
        try:
            async with self._sessions.begin() as session:
                await session.execute(insert(QuarantinedMessage), rows)
                self._since_trim += len(rows)
                if self._since_trim >= max(self._keep_rows // 10, 100):
                    await self._trim(session)
                    self._since_trim = 0
        except Exception:
            self._pending = entries + self._pending
            raise

    async def _trim(self, session: AsyncSession) -> None:
        newest = await session.scalar(select(func.max(QuarantinedMessage.id)))
        if newest is not None and newest > self._keep_rows:
            await session.execute(
                delete(QuarantinedMessage).where(QuarantinedMessage.id <= newest - self._keep_rows)
            )

    async def recent(
        self, *, reason: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[QuarantinedMessage]:
        async with self._sessions() as session:
            q = select(QuarantinedMessage).order_by(QuarantinedMessage.id.desc())
            if reason:
                q = q.where(QuarantinedMessage.reason == reason)
            return list((await session.scalars(q.limit(limit).offset(offset))).all())
