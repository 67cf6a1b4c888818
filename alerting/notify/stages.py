"""Delivery as a chain of small stages: dedup → send with retry → record → escalate on failure.

* **dedup** (:meth:`DeliveryPipeline.plan`): one delivery row per idempotency key
  ``{incident_id}:{step}:{person_id}:{channel}``, written in the escalation step's own
  transaction; re-running a step after a restart finds the rows and adds none.
* **claim**: a row is sent by whoever moves it ``pending → sending`` (with a lease, so a
  crashed sender's rows are picked up again once the lease ends); a sent row is never resent.
* **retry**: exponential backoff with an injectable sleep; every attempt is recorded.
* **record**: every attempt and the outcome are stored; a delivery that finally fails is
  returned to the caller (the escalation scheduler, which sends), so it escalates instead of
  vanishing. The pipeline knows nothing of ladders.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.notify.base import Delivery, DeliveryError, Notifier
from alerting.notify.tables import REACHED, UNSENT, DeliveryKind, DeliveryRow, DeliveryStatus
from alerting.routing.directory import ChannelKind
from alerting.routing.router import Paged
from core.clock import Clock
from core.db import reserved_ids

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_s, self.base_s * self.factor ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    incident_id: int
    step: str
    kind: str
    person_id: str
    channel: str
    error: str


def idempotency_key(incident_id: int, step: str, person_id: str, channel: str) -> str:
    return f"{incident_id}:{step}:{person_id}:{channel}"


class DeliveryPipeline:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        notifiers: Mapping[ChannelKind, Notifier],
        *,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        lease_ms: int = 60_000,
        instance: str = "",
        receipt_timeout_ms: int | None = None,
        confirming: frozenset[ChannelKind] = frozenset(),
    ) -> None:
        self._sm = sessionmaker
        self._clock = clock
        self._notifiers = dict(notifiers)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._lease_ms = lease_ms
        # Who claims rows here (the gateway's MQTT client id, stable across restarts) and
        # since when: a row this instance claimed before it started was its previous run's,
        # cut short by a crash — sent again at once, not after its lease ends.
        self._instance = instance
        self._started_ms = clock.now_ms()
        # A critical page on a channel that sends receipts (``confirming``) must be confirmed
        # delivered within this time, or the escalation treats the person as not reached.
        self._receipt_timeout_ms = receipt_timeout_ms
        self._confirming = confirming

    # ------------------------------------------------------------------ dedup

    async def plan(
        self,
        session: AsyncSession,
        incident_id: int,
        message: dict[str, Any],
        *,
        step: str,
        kind: DeliveryKind,
        paged: Iterable[Paged],
        now_ms: int,
        text: str = "",
        claim: bool = False,
        only: ChannelKind | None = None,
        flush: bool = True,
    ) -> list[DeliveryRow]:
        """Add the rows of one step (inside the caller's transaction); returns its unsent rows.
        ``message`` is the incident as the downlink contract has it, kept with each row: a page
        sent again after a restart carries what was planned, and notify never reads incidents.

        With ``claim`` — the first step of an incident opened in this same transaction — no
        row of the step can exist yet, so none is looked up, and the rows are written already
        claimed by this process (leased), to go out the moment the transaction commits.

        Every channel of each person but voice, or with ``only`` that one channel (voice calls
        are planned on their own, see :class:`~alerting.routing.directory.ChannelKind`).
        Claimed rows can be left unflushed (``flush=False``), for the caller to write them
        together with the rest of its transaction; their ids are known once it has flushed,
        or at once if the session draws ids ahead (core.db.IdReserve).
        """
        lease = now_ms + self._lease_ms if claim else None
        wanted = self._rows(incident_id, message, step, kind, paged, now_ms, text, lease, only)
        if claim or not wanted:
            if claim and not flush:
                drawn = reserved_ids(session, DeliveryRow.__tablename__, len(wanted))
                for row, delivery_id in zip(wanted.values(), drawn or (), strict=False):
                    row.id = delivery_id
            session.add_all(wanted.values())
            if flush or not claim:
                await session.flush()
            return list(wanted.values())
        existing = await session.execute(
            select(DeliveryRow).where(DeliveryRow.idempotency_key.in_(list(wanted)))
        )
        rows = {r.idempotency_key: r for r in existing.scalars()}
        for key, row in wanted.items():
            if key not in rows:
                session.add(row)
                rows[key] = row
        await session.flush()
        return [r for r in rows.values() if r.status in UNSENT]

    def can_send(self, kind: ChannelKind) -> bool:
        return kind in self._notifiers

    @staticmethod
    def deliveries(rows: Iterable[DeliveryRow]) -> list[Delivery]:
        """What a notifier gets for each of these rows."""
        return [_delivery(r) for r in rows]

    def _rows(
        self,
        incident_id: int,
        message: dict[str, Any],
        step: str,
        kind: DeliveryKind,
        paged: Iterable[Paged],
        now_ms: int,
        text: str,
        lease_until_ms: int | None,
        only: ChannelKind | None = None,
    ) -> dict[str, DeliveryRow]:
        """One row per idempotency key: per person and channel of the step."""
        wanted: dict[str, DeliveryRow] = {}
        for p in paged:
            for ch in p.recipient.channels:
                if ch.kind is not only and (only is not None or ch.kind is ChannelKind.VOICE):
                    continue
                key = idempotency_key(incident_id, step, p.recipient.person_id, ch.kind.value)
                wanted.setdefault(
                    key,
                    DeliveryRow(
                        idempotency_key=key,
                        incident_id=incident_id,
                        message=message,
                        step=step,
                        kind=kind,
                        person_id=p.recipient.person_id,
                        role=p.role.value,
                        channel=ch.kind.value,
                        address=ch.address,
                        text=text,
                        status=DeliveryStatus.PENDING if lease_until_ms is None else DeliveryStatus.SENDING,
                        lease_until_ms=lease_until_ms,
                        claimed_by=self._instance if lease_until_ms is not None else None,
                        attempts=0,
                        created_at_ms=now_ms,
                        updated_at_ms=now_ms,
                        receipt_token=secrets.token_urlsafe(18),
                    ),
                )
        return wanted

    # ------------------------------------------------------------------ send

    async def leftovers(self) -> list[int]:
        """Deliveries nobody is sending: pending ones, and those whose sender's lease ended."""
        return await self._leftovers()

    async def deliver_one(self, delivery_id: int) -> FailedDelivery | None:
        """Claim one delivery and send it; ``None`` unless it finally failed (or someone else
        has it, then ``None`` too: that sender reports its outcome)."""
        d = await self._claim(delivery_id)
        return None if d is None else await self.send(d)

    def _unsent(self, now: int) -> ColumnElement[bool]:
        """Rows to (re)send: pending; or being sent by someone whose lease ended; or claimed
        by this instance's previous run, which died (no lease wait for those)."""
        sending = DeliveryRow.status == DeliveryStatus.SENDING
        return or_(
            DeliveryRow.status == DeliveryStatus.PENDING,
            sending & (DeliveryRow.lease_until_ms < now),
            sending
            & (DeliveryRow.claimed_by == self._instance)
            & (DeliveryRow.updated_at_ms < self._started_ms),
        )

    async def _leftovers(self) -> list[int]:
        stmt = select(DeliveryRow.id).where(self._unsent(self._clock.now_ms()))
        async with self._sm() as s:
            return list((await s.execute(stmt)).scalars())

    async def _claim(self, delivery_id: int) -> Delivery | None:
        now = self._clock.now_ms()
        async with self._sm.begin() as s:
            claimed = await s.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, self._unsent(now))
                .values(
                    status=DeliveryStatus.SENDING,
                    lease_until_ms=now + self._lease_ms,
                    claimed_by=self._instance,
                    updated_at_ms=now,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = await s.get(DeliveryRow, delivery_id)
            return None if row is None else _delivery(row)

    async def send(
        self, d: Delivery, committed: Awaitable[None] | None = None
    ) -> FailedDelivery | None:
        """Send one claimed delivery with retries and record every attempt; returns what
        failed for good (for the escalation to act on), ``None`` once the provider took it.

        ``committed``: the row was planned in a transaction still committing (the alarm path
        pages while its commit, a round trip and a disk flush, is on its way). The first
        attempt goes out at once; its outcome is recorded once the commit is done. If the
        commit failed there is no row to record in: the page went out anyway (safety first),
        and the alarm's retry or its next report opens the incident."""
        notifier = self._notifiers.get(d.channel)
        error = f"no notifier configured for channel {d.channel.value}"
        attempt = 0
        while notifier is not None:
            attempt += 1
            try:
                ref = await notifier.send(d)
                took = True
            except DeliveryError as exc:
                took, error, permanent = False, str(exc), exc.permanent
            except Exception as exc:  # a notifier bug must not lose the delivery
                took, error, permanent = False, f"{type(exc).__name__}: {exc}", False
                log.warning("notifier %s raised for %s: %s", d.channel, d.idempotency_key, error)
            if committed is not None:
                if not await _landed(committed, d):
                    return None
                committed = None
            if took:
                await self._record(
                    d.id,
                    DeliveryStatus.SENT,
                    attempt_error=None,
                    provider_ref=ref,
                    receipt_due=self._receipt_due(d),
                )
                return None
            await self._record(d.id, DeliveryStatus.SENDING, attempt_error=error)
            if permanent or attempt >= self._retry.attempts:
                break
            await self._sleep(self._retry.backoff_s(attempt))
        if committed is not None and not await _landed(committed, d):
            return None
        await self._record(d.id, DeliveryStatus.FAILED, attempt_error=error, count=False)
        log.warning("delivery %s failed for good: %s", d.idempotency_key, error)
        return FailedDelivery(d.incident_id, d.step, d.kind, d.person_id, d.channel.value, error)

    # ------------------------------------------------------------------ record

    def _receipt_due(self, d: Delivery) -> bool:
        """Must this page be confirmed delivered in time? Critical pages on a channel that
        sends receipts (SMS, voice, the app once it reports)."""
        return (
            self._receipt_timeout_ms is not None
            and d.kind == DeliveryKind.PAGE
            and d.incident.get("severity") == "critical"
            and d.channel in self._confirming
        )

    async def _record(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        *,
        attempt_error: str | None,
        count: bool = True,
        provider_ref: str | None = None,
        receipt_due: bool = False,
    ) -> None:
        now = self._clock.now_ms()
        values: dict[str, object] = {"status": status, "updated_at_ms": now}
        if provider_ref:
            values["provider_ref"] = provider_ref[:128]
        if receipt_due and self._receipt_timeout_ms is not None:
            values["receipt_due_ms"] = now + self._receipt_timeout_ms
        if count:
            values["attempts"] = DeliveryRow.attempts + 1
        if attempt_error is not None:
            values["last_error"] = attempt_error[:2000]
        if status is DeliveryStatus.SENT:
            values["sent_at_ms"] = now
            values["lease_until_ms"] = None
        elif status is DeliveryStatus.SENDING:
            # Still ours: each attempt renews the lease, so it ends soon after a crash (and
            # the page is sent again by whoever finds it) but never under a live sender.
            values["lease_until_ms"] = now + self._lease_ms
        async with self._sm.begin() as s:
            q = update(DeliveryRow).where(DeliveryRow.id == delivery_id)
            if status is DeliveryStatus.SENT:
                # A status report can beat the provider's own answer back to us: never
                # overwrite "delivered" with "sent".
                q = q.where(DeliveryRow.status.not_in(REACHED))
            await s.execute(q.values(**values))


def _delivery(row: DeliveryRow) -> Delivery:
    return Delivery(
        row.id,
        row.idempotency_key,
        row.incident_id,
        DeliveryKind(row.kind),
        row.step,
        row.person_id,
        row.role,
        ChannelKind(row.channel),
        row.address,
        row.text,
        # Planned before the snapshot was kept (an upgrade mid-page): at least the id.
        dict(row.message) if row.message else {"id": row.incident_id},
        row.receipt_token or "",
    )


async def _landed(committed: Awaitable[None], d: Delivery) -> bool:
    """Did the transaction that planned ``d`` commit (see :meth:`DeliveryPipeline.send`)?"""
    try:
        await committed
    except Exception:
        log.warning(
            "page %s went out, but the transaction that planned it did not commit: the page "
            "is not on record (the alarm's retry or next report opens the incident)",
            d.idempotency_key,
        )
        return False
    return True
