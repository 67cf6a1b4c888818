"""Durable escalation: one timer row per active incident, processed when due, resumed on restart.

The timer table *is* the schedule, so a gateway killed while an incident waits for its
acknowledgement continues the ladder after a restart at the same times; deliveries planned
by a step are rows too, so a re-run step sends nobody twice. Timers are claimed with
``FOR UPDATE SKIP LOCKED`` so several instances on one PostgreSQL share the work.

Steps are kept on schedule: the next step is due a wait after the previous step's *due*
time, not after the moment it was processed. After a long outage the overdue steps run one
after another — nobody acknowledged for that long, so climbing the ladder is right.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from alerting.escalation.timers import EscalationTimerRow, TimerKind, stop_timer
from alerting.escalation.undelivered import Undelivered
from alerting.incidents.lifecycle import IncidentStatus
from alerting.incidents.silences import active_silence, life_safety
from alerting.incidents.store import add_event
from alerting.incidents.tables import IncidentRow
from alerting.incidents.views import IncidentView, incident_message
from alerting.notify.base import Delivery
from alerting.notify.stages import DeliveryPipeline, FailedDelivery
from alerting.notify.tables import DeliveryKind, DeliveryRow
from alerting.routing.directory import ChannelKind, Directory, Role
from alerting.routing.ladder import Ladder
from alerting.routing.router import Paged, RoutePlace, resolve_roles
from alerting.scope import NotOwner, OwnedSites, SiteFence, every_site, no_fence
from core.clock import Clock
from core.db import note_ids

log = logging.getLogger(__name__)


def step_token(round_: int, name: str) -> str:
    """The step part of an idempotency key; a reopened incident's new round gets new keys."""
    return name if round_ == 0 else f"{round_}.{name}"


class EscalationScheduler:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        directory: Directory,
        pipeline: DeliveryPipeline,
        *,
        batch: int = 100,
        voice_device_types: frozenset[str] = frozenset({"smoke", "sos"}),
        owned_sites: OwnedSites = every_site,
        fence: SiteFence = no_fence,
    ) -> None:
        self._owned = owned_sites
        self._fence = fence
        self._sm = sessionmaker
        self._clock = clock
        self._directory = directory
        self._pipeline = pipeline
        self._batch = batch
        # Critical incidents of these device types (fire, SOS) ring a phone after step 0.
        self._voice_types = voice_device_types
        self._lock = asyncio.Lock()  # one due() at a time per process (SQLite has no SKIP LOCKED)
        self._wake = asyncio.Event()
        self._undelivered = Undelivered(sessionmaker, clock, pipeline, self._deliver)
        # Pages going out as tasks of their own; finish_sending() waits for them at shutdown.
        self._sending: set[asyncio.Task[None]] = set()

    def poke(self) -> None:
        """Run the loop now instead of at the next tick (e.g. after a change that pages)."""
        self._wake.set()

    async def run(
        self, stop: asyncio.Event, *, tick_s: float = 1.0, leftovers_every_s: float = 15.0
    ) -> None:
        """The escalation loop the app runs in its TaskGroup: resend leftovers, then tick
        (every ``tick_s`` or when poked) until ``stop`` is set; every ``leftovers_every_s``
        look again for deliveries whose sender died (their lease ended)."""
        await self.deliver_pending()
        loop = asyncio.get_running_loop()
        last_look = loop.time()
        while not stop.is_set():
            try:
                await self.due(self._clock.now_ms())
                if loop.time() - last_look >= leftovers_every_s:
                    last_look = loop.time()
                    await self.resume_leftovers()
            except Exception:
                # The ladder must outlive any one failure: log it and try again next tick.
                log.exception("escalation tick failed; retrying")
            waits = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
            _, pending = await asyncio.wait(
                waits, timeout=tick_s, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            self._wake.clear()

    async def due(self, now_ms: int, *, max_rounds: int = 20) -> int:
        """Process every timer due at ``now_ms`` and send what they plan; returns steps run.

        Loops because a delivery that finally fails makes the next step due at once.
        """
        async with self._lock:
            return await self._due(now_ms, max_rounds)

    async def _due(self, now_ms: int, max_rounds: int) -> int:
        await self._undelivered.receipts_due(now_ms)
        total = 0
        for _ in range(max_rounds):
            stmt = (
                select(EscalationTimerRow.incident_id)
                .where(EscalationTimerRow.due_at_ms <= now_ms)
                .order_by(EscalationTimerRow.due_at_ms)
                .limit(self._batch)
            )
            if (sites := self._owned()) is not None:
                # A cluster: only the incidents of the partitions this instance owns.
                stmt = stmt.join(IncidentRow, IncidentRow.id == EscalationTimerRow.incident_id).where(
                    IncidentRow.site.in_(sites)
                )
            async with self._sm() as s:
                ids = list((await s.execute(stmt)).scalars())
            if not ids:
                break
            planned: list[DeliveryRow] = []
            for incident_id in ids:
                try:
                    ran, deliveries = await self._process(incident_id, now_ms)
                except StaleDataError:
                    # The incident changed while its step ran (acknowledged, folded into an
                    # outage): the transaction rolled back; the next tick reads it afresh.
                    log.info("escalation of incident %s changed under us; retried", incident_id)
                    continue
                except NotOwner as exc:
                    # Our lease on its partition is gone: the new owner runs this step (the
                    # transaction rolled back, the timer is untouched).
                    log.warning("escalation of incident %s left to its owner: %s", incident_id, exc)
                    continue
                total += ran
                planned += deliveries
            await self._deliver([row.id for row in planned])
        return total

    async def _process(self, incident_id: int, now_ms: int) -> tuple[int, list[DeliveryRow]]:
        async with self._sm.begin() as s:
            timer = (
                await s.execute(
                    select(EscalationTimerRow)
                    .where(
                        EscalationTimerRow.incident_id == incident_id,
                        EscalationTimerRow.due_at_ms <= now_ms,
                    )
                    .with_for_update(skip_locked=True)
                )
            ).scalar_one_or_none()
            incident = await s.get(IncidentRow, incident_id) if timer else None
            if timer is None or incident is None:
                return 0, []
            # A cluster: only the partition's owner at its current lease epoch may step (the
            # lease row stays share-locked until this commits, so no takeover slips between).
            await self._fence(s, incident.site)
            if timer.kind == TimerKind.OUTCOME:
                return 1, await self._outcome(s, timer, incident, now_ms)
            status = IncidentStatus(incident.status)
            if status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
                await stop_timer(s, incident_id)
                return 0, []
            silence = await active_silence(
                s,
                site=incident.site,
                device_id=incident.device_id,
                building_id=incident.building_id,
                grid_id=incident.grid_id,
                now_ms=now_ms,
            )
            if silence is not None and life_safety(incident.labels or {}, incident.rule_id):
                # A maintenance window never mutes a life at risk: page, marked (see silences).
                if timer.note != "maintenance":
                    add_event(
                        s,
                        incident_id,
                        now_ms,
                        "under_maintenance",
                        note="设备维护中 (device under maintenance): paged anyway",
                        data={"silence": silence.id, "until": silence.ends_at_ms},
                    )
                timer.note = "maintenance"
                silence = None
            if silence is not None:
                add_event(
                    s,
                    incident_id,
                    now_ms,
                    "suppressed",
                    note=silence.reason,
                    data={"silence": silence.id, "until": silence.ends_at_ms},
                )
                timer.due_at_ms = silence.ends_at_ms
                timer.note = "silenced"
                return 0, []
            if timer.note == "silenced" and not incident.alert_firing and timer.next_step == 0:
                add_event(
                    s,
                    incident_id,
                    now_ms,
                    "not_paged",
                    note="the alert cleared while silenced; nobody paged",
                )
                await stop_timer(s, incident_id)
                return 0, []
            if timer.kind == TimerKind.REMINDER:
                return 1, await self._remind(s, timer, incident, now_ms)
            return 1, await self._step(s, timer, incident, now_ms)

    async def first_step(
        self, s: AsyncSession, incident: IncidentRow, timer: EscalationTimerRow, now_ms: int
    ) -> list[Delivery]:
        """Step 0 inside the transaction that opened ``incident``, so the alarm path pages
        without a round through the loop; its deliveries come back claimed, ready to send.

        The step's rows (deliveries, its event, the timer as the step leaves it) are written in
        one flush at the end: one statement per table, no timer written and then updated. If
        the session drew every id ahead (core.db.IdReserve), nothing is written here: the
        pages can go out first and the commit writes the rows."""
        rows = await self._step(s, timer, incident, now_ms, claim=True)
        if incident.id is None or any(row.id is None for row in rows):
            undrawn = [row for row in rows if row.id is None]
            await s.flush()
            # The pages name these ids before the commit; a retry of a cut transaction reuses them.
            note_ids(s, DeliveryRow.__tablename__, [row.id for row in undrawn])
        return self._pipeline.deliveries(rows)

    def send(self, deliveries: list[Delivery], committed: Awaitable[None] | None = None) -> None:
        """Send what :meth:`first_step` claimed, each delivery as its own task, so one
        person's retries never hold up the next alarm. With ``committed``, the transaction
        that claimed them is still committing: they go out now and are recorded after it
        (:meth:`DeliveryPipeline.send`)."""
        for d in deliveries:
            self._start(self._pipeline.send(d, committed))

    async def deliver_pending(self) -> int:
        """Send every unsent delivery (those a crash left behind) and wait; returns how many."""
        ids = await self._pipeline.leftovers()
        await self._deliver(ids)
        return len(ids)

    async def resume_leftovers(self) -> int:
        """Start sending (as tasks) what nobody is sending: rows a crashed process had claimed,
        once their lease ends; returns how many were found."""
        ids = await self._pipeline.leftovers()
        for delivery_id in ids:
            self._start(self._pipeline.deliver_one(delivery_id))
        return len(ids)

    async def finish_sending(self, timeout_s: float) -> int:
        """Give the pages going out up to ``timeout_s`` to finish (shutdown); returns how many
        are still going. Those stay claimed and are sent again once their lease ends."""
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=timeout_s)
        return len(self._sending)

    async def _deliver(self, ids: list[int]) -> None:
        """Send these deliveries concurrently (each with its own retries) and act on failures."""
        for failed in await asyncio.gather(*(self._pipeline.deliver_one(i) for i in ids)):
            if failed is not None:
                await self.delivery_failed(failed)

    def _start(self, sending: Coroutine[Any, Any, FailedDelivery | None]) -> None:
        task = asyncio.get_running_loop().create_task(self._follow(sending))
        self._sending.add(task)  # kept until done: finish_sending() waits for these
        task.add_done_callback(self._sending.discard)

    async def _follow(self, sending: Coroutine[Any, Any, FailedDelivery | None]) -> None:
        try:
            failed = await sending
            if failed is not None:
                await self.delivery_failed(failed)
        except Exception:
            # The database is away: a row whose outcome was not recorded stays claimed and is
            # sent again once its lease ends; a failure not yet acted on, at the next step.
            log.exception("recording a page's outcome failed")

    async def _step(
        self,
        s: AsyncSession,
        timer: EscalationTimerRow,
        incident: IncidentRow,
        now_ms: int,
        *,
        claim: bool = False,
    ) -> list[DeliveryRow]:
        ladder = Ladder.from_json(timer.ladder)
        index = timer.next_step
        step = ladder.step(index)
        if step is None:
            await stop_timer(s, incident.id)
            add_event(s, incident.id, now_ms, "ladder_exhausted")
            return []
        paged = await resolve_roles(self._directory, step.targets, _place(incident), now_ms)
        rows = await self._pipeline.plan(
            s,
            incident.id,
            _message(incident),
            step=step_token(incident.round, str(index)),
            kind=DeliveryKind.PAGE,
            paged=paged,
            now_ms=now_ms,
            text=_step_text(timer.note),
            claim=claim,
            flush=not claim,
        )
        if index >= 1 and self._rings(incident):
            rows += await self._ring(s, incident, ladder, index, paged, now_ms)
        add_event(
            s,
            incident.id,
            now_ms,
            "notified" if index == 0 else "escalated",
            note=_who(paged) or "nobody to page for this step",
            data={
                "step": index,
                "roles": [r.value for r in step.targets],
                "people": [p.recipient.person_id for p in paged],
                # Names and roles as they were paged (a family contact is no registry person).
                "paged": [
                    {
                        "person": p.recipient.person_id,
                        "name": p.recipient.name,
                        "role": p.role.value,
                    }
                    for p in paged
                ],
            },
        )
        scheduled = timer.due_at_ms
        timer.next_step, timer.note = index + 1, ""
        following = ladder.step(index + 1)
        if incident.status == IncidentStatus.ACKNOWLEDGED.value and ladder.remind_ms:
            timer.kind, timer.due_at_ms = TimerKind.REMINDER, now_ms + ladder.remind_ms
        elif incident.status == IncidentStatus.OPEN.value and following is not None:
            timer.due_at_ms = scheduled + following.wait_ms
            if index + 1 >= len(ladder.steps) and timer.due_at_ms <= now_ms:
                # Repeats do not catch up after an outage: one now, the next a wait later.
                timer.due_at_ms = now_ms + following.wait_ms
        else:
            await stop_timer(s, incident.id)
        return rows

    def _rings(self, incident: IncidentRow) -> bool:
        return (
            incident.severity == "critical"
            and incident.device_type in self._voice_types
            and incident.status == IncidentStatus.OPEN.value
        )

    async def _ring(
        self,
        s: AsyncSession,
        incident: IncidentRow,
        ladder: Ladder,
        index: int,
        paged: list[Paged],
        now_ms: int,
    ) -> list[DeliveryRow]:
        """A critical fire / SOS still open after the first step: call this step's people
        and, the first time, those paged at step 0 — so a phone rings at 3 a.m."""
        people = list(paged)
        first = ladder.step(0)
        if index == 1 and first is not None:
            seen = {p.recipient.person_id for p in people}
            for p in await resolve_roles(self._directory, first.targets, _place(incident), now_ms):
                if p.recipient.person_id not in seen:
                    people.append(p)
        rows = await self._pipeline.plan(
            s,
            incident.id,
            _message(incident),
            step=step_token(incident.round, str(index)),
            kind=DeliveryKind.PAGE,
            paged=people,
            now_ms=now_ms,
            only=ChannelKind.VOICE,
        )
        if rows:
            add_event(
                s,
                incident.id,
                now_ms,
                "voice_call",
                note="still unacknowledged: calling " + ", ".join(sorted({r.person_id for r in rows})),
                data={"step": index, "people": sorted({r.person_id for r in rows})},
            )
        return rows

    async def _remind(
        self, s: AsyncSession, timer: EscalationTimerRow, incident: IncidentRow, now_ms: int
    ) -> list[DeliveryRow]:
        ladder = Ladder.from_json(timer.ladder)
        people = {p for p in (incident.acknowledged_by, incident.assignee) if p}
        paged = [
            Paged(Role.GRID_WORKER, r)
            for pid in sorted(people)
            if (r := await self._directory.person(pid)) is not None
        ]
        n = timer.reminders_sent + 1
        rows = await self._pipeline.plan(
            s,
            incident.id,
            _message(incident),
            step=step_token(incident.round, f"remind{n}"),
            kind=DeliveryKind.REMINDER,
            paged=paged,
            now_ms=now_ms,
        )
        add_event(s, incident.id, now_ms, "reminded", note=_who(paged), data={"reminder": n})
        timer.reminders_sent = n
        if ladder.remind_ms:
            timer.due_at_ms += ladder.remind_ms
        else:
            await stop_timer(s, incident.id)
        return rows

    async def _outcome(
        self, s: AsyncSession, timer: EscalationTimerRow, incident: IncidentRow, now_ms: int
    ) -> list[DeliveryRow]:
        """Tell the household how their incident ended (结果反馈)."""
        paged = await resolve_roles(self._directory, (Role.FAMILY,), _place(incident), now_ms)
        rows = await self._pipeline.plan(
            s,
            incident.id,
            _message(incident),
            step=step_token(incident.round, "outcome"),
            kind=DeliveryKind.OUTCOME,
            paged=paged,
            now_ms=now_ms,
            text=timer.note,
        )
        add_event(s, incident.id, now_ms, "household_informed", note=_who(paged))
        await stop_timer(s, incident.id)
        return rows

    async def delivery_failed(
        self, failed: FailedDelivery, *, now_ms: int | None = None, event: str = "delivery_failed"
    ) -> None:
        """A page that finally failed (or was not confirmed delivered in time): see
        :class:`~alerting.escalation.undelivered.Undelivered`."""
        await self._undelivered.failed(failed, now_ms=now_ms, event=event)


def _step_text(note: str) -> str:
    if note == "maintenance":
        return "设备维护中 (device under maintenance)"
    return "" if note == "silenced" else note


def _message(incident: IncidentRow) -> dict[str, Any]:
    return incident_message(IncidentView.of(incident))


def _place(incident: IncidentRow) -> RoutePlace:
    return RoutePlace(incident.site, incident.grid_id, incident.building_id, incident.household_id)


def _who(paged: list[Paged]) -> str:
    return ", ".join(f"{p.recipient.person_id} ({p.role.value})" for p in paged)
