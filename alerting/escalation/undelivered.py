"""When a page did not reach its person: a send that finally failed, a provider that refused
it, or — for a critical page — no delivery receipt in time.

For a critical incident the person's next channel is tried first (after an SMS, a voice call
to the same phone); once nothing the person was sent can still reach them, the ladder's next
step is paged now instead of at the acknowledgement deadline. Every decision is an event on
the incident's timeline, with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.escalation.timers import EscalationTimerRow, TimerKind
from alerting.incidents.lifecycle import IncidentStatus
from alerting.incidents.store import add_event
from alerting.incidents.tables import IncidentRow
from alerting.incidents.views import IncidentView, incident_message
from alerting.notify.receipts import RECEIPT_FAILED
from alerting.notify.stages import DeliveryPipeline, FailedDelivery
from alerting.notify.tables import REACHED, UNSENT, DeliveryKind, DeliveryRow, DeliveryStatus
from alerting.routing.directory import Channel, ChannelKind, Recipient, Role
from alerting.routing.router import Paged
from core.clock import Clock

Deliver = Callable[[list[int]], Awaitable[None]]


class Undelivered:
    """Acts on pages that did not arrive; ``deliver`` sends new deliveries (the scheduler's)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        pipeline: DeliveryPipeline,
        deliver: Deliver,
    ) -> None:
        self._sm = sessionmaker
        self._clock = clock
        self._pipeline = pipeline
        self._deliver = deliver

    async def failed(
        self, failed: FailedDelivery, *, now_ms: int | None = None, event: str = "delivery_failed"
    ) -> None:
        """A page that finally failed (or, critical, was not confirmed delivered in time):
        for a critical incident, try the person's next channel (a voice call to the same
        phone); once the person is unreachable on every channel, page the next step now
        instead of waiting for the acknowledgement deadline. The timeline says why."""
        now = self._clock.now_ms() if now_ms is None else now_ms
        calls: list[int] = []
        async with self._sm.begin() as s:
            rows = list(
                (
                    await s.execute(
                        select(DeliveryRow).where(
                            DeliveryRow.incident_id == failed.incident_id,
                            DeliveryRow.step == failed.step,
                            DeliveryRow.person_id == failed.person_id,
                        )
                    )
                ).scalars()
            )
            add_event(
                s,
                failed.incident_id,
                now,
                event,
                note=failed.error,
                data={"step": failed.step, "person": failed.person_id, "channel": failed.channel},
            )
            if failed.kind != DeliveryKind.PAGE:
                return
            incident = await s.get(IncidentRow, failed.incident_id)
            if incident is None or incident.status != IncidentStatus.OPEN.value:
                return
            critical = incident.severity == "critical"
            if critical:
                calls = await self._next_channel(s, incident, failed, rows, now)
            if not calls and not any(_alive(r, critical, now) for r in rows):
                await self._move_on(s, failed, now)
        if calls:
            await self._deliver(calls)

    async def _next_channel(
        self,
        s: AsyncSession,
        incident: IncidentRow,
        failed: FailedDelivery,
        rows: list[DeliveryRow],
        now_ms: int,
    ) -> list[int]:
        """The same person's next channel after an SMS that failed or was not delivered: a
        voice call to that phone, if voice is configured and not yet tried in this step."""
        if failed.channel != ChannelKind.SMS.value or not self._pipeline.can_send(ChannelKind.VOICE):
            return []
        if any(r.channel == ChannelKind.VOICE.value for r in rows):
            return []
        sms = next((r for r in rows if r.channel == ChannelKind.SMS.value), None)
        if sms is None:
            return []
        recipient = Recipient(failed.person_id, "", (Channel(ChannelKind.VOICE, sms.address),))
        planned = await self._pipeline.plan(
            s,
            incident.id,
            _message(incident),
            step=failed.step,
            kind=DeliveryKind.PAGE,
            paged=[Paged(Role(sms.role), recipient)],
            now_ms=now_ms,
            only=ChannelKind.VOICE,
        )
        add_event(
            s,
            incident.id,
            now_ms,
            "next_channel",
            note=f"{failed.person_id}: SMS not delivered; calling by voice",
            data={"step": failed.step, "person": failed.person_id, "channel": "voice"},
        )
        await s.flush()
        return [r.id for r in planned]

    async def _move_on(self, s: AsyncSession, failed: FailedDelivery, now: int) -> None:
        timer = await s.get(EscalationTimerRow, failed.incident_id, with_for_update=True)
        if timer is None or timer.kind != TimerKind.STEP or timer.due_at_ms <= now:
            return
        timer.due_at_ms = now
        add_event(
            s,
            failed.incident_id,
            now,
            "escalating",
            note=f"{failed.person_id} unreachable; next step now",
            data={"step": failed.step, "person": failed.person_id, "reason": failed.error},
        )

    async def receipts_due(self, now_ms: int) -> None:
        """Critical pages whose receipt did not come in time: not delivered, act on it."""
        async with self._sm() as s:
            ids = list(
                (
                    await s.execute(
                        select(DeliveryRow.id).where(
                            DeliveryRow.receipt_due_ms <= now_ms,
                            DeliveryRow.status == DeliveryStatus.SENT,
                        )
                    )
                ).scalars()
            )
        for delivery_id in ids:
            async with self._sm.begin() as s:
                row = await s.get(DeliveryRow, delivery_id, with_for_update=True)
                if row is None or row.status != DeliveryStatus.SENT or row.receipt_due_ms is None:
                    continue
                waited_s = (now_ms - (row.sent_at_ms or now_ms)) // 1000
                # A status report that said "not delivered" left its reason (see receipts).
                reason = (row.last_error or "").removeprefix(RECEIPT_FAILED)
                if not (row.last_error or "").startswith(RECEIPT_FAILED):
                    reason = f"no receipt after {waited_s} s"
                error = f"{row.channel} to {row.person_id} not delivered: {reason}"
                row.status, row.last_error = DeliveryStatus.FAILED, error
                row.receipt_due_ms, row.updated_at_ms = None, now_ms
                failed = FailedDelivery(
                    row.incident_id, row.step, row.kind, row.person_id, row.channel, error
                )
            await self.failed(failed, now_ms=now_ms, event="undelivered")


def _alive(row: DeliveryRow, critical: bool, now_ms: int) -> bool:
    """Might this delivery still reach its person? For a critical page only a receipt, or a
    send or receipt still awaited, counts; otherwise anything the provider took."""
    if not critical:
        return row.status != DeliveryStatus.FAILED
    if row.status in REACHED or row.status in UNSENT:
        return True
    return row.status == DeliveryStatus.SENT and (row.receipt_due_ms or 0) > now_ms


def _message(incident: IncidentRow) -> dict[str, Any]:
    return incident_message(IncidentView.of(incident))
