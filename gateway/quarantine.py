"""Quarantine: every rejected message is kept with its reason, counted, and can be inspected."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core import topics
from core.db import Base
from core.readings import Reading, Rejection, RejectReason
from gateway.registry.tables import Device

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
    # Whose staff may read the row: the native topic's site, or a vendor device's registered
    # site; None when unknown (then only those who see every site may read it).
    site: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)


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
        # (site or None, reason) -> rows written by this process; counted when stored, once
        # a vendor device's site is known.
        self.site_counts: Counter[tuple[str | None, str]] = Counter()
        self._since_trim = 0

    def add(self, received_ms: int, topic: str, payload: bytes, rejection: Rejection) -> None:
        self.counts[rejection.reason.value] += 1
        self._pending.append(QuarantineEntry(received_ms, topic, rejection, payload))

    def refuse(self, received_ms: int, reading: Reading, why: str) -> None:
        """Keep a decoded reading the time-series store refused, in the native wire shape."""
        r = reading
        topic = topics.uplink(r.site, r.device_type, r.device_id, r.kind)
        body: dict[str, object] = {"ts": r.ts_ms, "seq": r.seq, **r.fields}
        if r.event is not None:
            body["event"] = r.event
        # stdlib json, not orjson: the value the store refused may be one orjson refuses too
        payload = json.dumps(body, default=repr, ensure_ascii=False)
        rejection = Rejection(RejectReason.UNSTORABLE, why, topic, r.device_id)
        self.add(received_ms, topic, payload.encode("utf-8", "backslashreplace"), rejection)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Persist what was collected; raises (and keeps the entries) if the database fails."""
        if not self._pending:
            return
        entries, self._pending = self._pending, []
        rows: list[dict[str, Any]] = [
            {
                "received_ms": e.received_ms,
                "topic": _text(e.topic, 1024),
                "reason": e.rejection.reason.value,
                "detail": _text(e.rejection.detail, 1024),
                "device_id": None if e.rejection.device_id is None else _text(
                    e.rejection.device_id, 128
                ),
                "payload": e.payload[:KEEP_PAYLOAD_BYTES],
                "payload_size": len(e.payload),
                "site": topics.site_of(e.topic),
            }
            for e in entries
        ]
        try:
            async with self._sessions.begin() as session:
                await _vendor_sites(session, rows)
                await session.execute(insert(QuarantinedMessage), rows)
                self._since_trim += len(rows)
                if self._since_trim >= max(self._keep_rows // 10, 100):
                    await self._trim(session)
                    self._since_trim = 0
        except Exception:
            self._pending = entries + self._pending
            raise
        self.site_counts.update((r["site"], r["reason"]) for r in rows)

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


async def _vendor_sites(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Vendor topics name no site: a row naming a registered vendor identity gets its site."""
    wanted = sorted({r["device_id"] for r in rows if r["site"] is None and r["device_id"]})
    found: dict[str | None, str] = {}
    for i in range(0, len(wanted), 500):  # bound the statement's parameters under a flood
        q = select(Device.vendor_identity, Device.site).where(
            Device.vendor_identity.in_(wanted[i : i + 500])
        )
        found.update((vendor, site) for vendor, site in await session.execute(q))
    for r in rows:
        if r["site"] is None and r["device_id"] in found:
            r["site"] = found[r["device_id"]]


def _text(value: str, limit: int) -> str:
    """What every database's text column takes: no NUL (PostgreSQL refuses it), no lone
    surrogate, at most ``limit`` characters. A hostile topic must not stop the quarantine."""
    value = value[:limit]
    if value.isascii() and "\x00" not in value:
        return value
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
