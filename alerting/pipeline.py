"""The alert path end to end: readings → rule engine → incidents → escalation → notify.

``on_reading`` runs synchronously on ingest's hot path; only readings that change an alert's
state produce work, which goes on a queue the alert worker drains at once (never behind the
time-series batch). :meth:`AlertPipeline.apply` opens the incident and plans its first page in
one transaction and sends the page at once; the engine's state is saved after that, off the
alarm's critical path (a crash in between re-fires the rule on restart, and the open incident
counts it as a repeat). Whoever shows incidents (the API's live board) registers a listener.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents.service import ChangeKind, IncidentChange, IncidentService
from alerting.models import AlertState, AlertTransition, Severity
from alerting.rules.engine import RuleEngine
from core.clock import Clock
from core.db import IdDraw, IdReserve, draw_ids_from, dropped
from core.readings import DeviceContext, Reading

log = logging.getLogger(__name__)

MAX_HOLD_S = 2.0
# Ingest acknowledges a batch only once the alert work it set off is done; past this many
# queued non-critical transitions (a storm), it stops waiting for those (critical work it
# always waits for). A storm of threshold alerts is re-evaluated from the next reading after
# a crash; holding every acknowledgement behind thousands of them would stall telemetry.
STORM_BACKLOG = 200
# Non-critical transitions are handled up to this many per database transaction (a storm of
# thousands would otherwise cost three transactions each, on the loop that also ingests).
NORMAL_BATCH = 50
# After a device was attached to a storm (or a building outage), ingest stops waiting for
# non-critical alert work for this long: a storm's alerts are threshold crossings the next
# reading raises again after a crash, and tying every acknowledgement to them slowed ingest
# to 59 % of its rate on SQLite (benchmarks/fleet_bench.py --storm).
GROUPING_QUIET_S = 60.0

# The states that open, repeat or clear an incident; the others stay in the rule engine.
_ACTING = (AlertState.FIRING, AlertState.RESOLVED)

ContextLookup = Callable[[str, str], DeviceContext | None]
_Work = tuple[list[AlertTransition], DeviceContext | None]
#: Told of every incident change the alert path makes (after its transaction committed).
ChangeListener = Callable[[IncidentChange], None]


class AlertPipeline:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        engine: RuleEngine,
        incidents: IncidentService,
        escalation: EscalationScheduler,
        clock: Clock,
        context_of: ContextLookup,
        *,
        tick_interval_ms: int = 1000,
        hold_bulk: Callable[[bool], None] | None = None,
        alarm_sessions: async_sessionmaker[AsyncSession] | None = None,
        ids: IdReserve | None = None,
    ) -> None:
        self._sessions = sessions
        # Opening an incident and planning its first page: on a pool of its own where the
        # database is PostgreSQL (core.db.make_alarm_engine), so no ping precedes an alarm.
        self._alarm_sessions = alarm_sessions or sessions
        # Incident and delivery ids drawn ahead (PostgreSQL): see core.db.IdReserve.
        self._ids = ids
        self._engine = engine
        self._incidents = incidents
        self._escalation = escalation
        self._clock = clock
        self._context_of = context_of
        self._tick_s = tick_interval_ms / 1000
        self._listeners: list[ChangeListener] = []
        # Pauses telemetry reading while an alarm is being turned into pages (see _handle).
        self._hold_bulk = hold_bulk or (lambda _hold: None)
        # Two queues: life-safety (critical) work is always taken first, so an alarm never
        # waits behind a storm of thousands of charger transitions (see alerting/incidents/
        # storm.py), which the worker meanwhile takes one at a time, letting ingest run.
        self._urgent: collections.deque[_Work] = collections.deque()
        self._normal: collections.deque[_Work] = collections.deque()
        self._ready = asyncio.Event()
        self._release: asyncio.TimerHandle | None = None
        # Queued and handled counts, so ingest can wait for what its messages set off.
        self._queued = 0
        self._handled = 0
        self._queued_urgent = 0
        self._handled_urgent = 0
        self._progress = asyncio.Event()
        self._wake = asyncio.Event()
        self._grouping_until = 0.0  # loop time; see GROUPING_QUIET_S
        self.transitions = 0
        self.failures = 0

    def listen(self, listener: ChangeListener) -> None:
        """Be told of every incident change the alert path makes (e.g. the live board)."""
        self._listeners.append(listener)

    async def apply(self, t: AlertTransition, ctx: DeviceContext) -> IncidentChange | None:
        """Fold one transition into the incidents; a newly opened incident's first step is
        planned in the same transaction and sent as it commits (its deliveries come back in
        ``claimed``, already on their way)."""
        ids = IdDraw(self._ids) if self._ids is not None else None
        try:
            change = await self._fold(t, ctx, ids)
        except IntegrityError:
            # Another gateway instance opened the same key at the same moment: now a repeat.
            change = await self._fold(t, ctx, ids)
        except DBAPIError as exc:
            if not dropped(exc):
                raise
            # The database dropped the connection (a restart, a failover): the transaction
            # did nothing; once more on a fresh connection before giving up on this alarm,
            # under the ids its pages may already have named.
            log.warning("database connection lost while opening %s; retrying", t.dedupe_key)
            if ids is not None:
                ids.again()
            change = await self._fold(t, ctx, ids)
        return await self._incidents.run_actions(change, t, ctx)

    async def _fold(
        self, t: AlertTransition, ctx: DeviceContext, ids: IdDraw | None
    ) -> IncidentChange | None:
        """Open (or fold) in one transaction; a new incident's first pages are sent from
        inside it, while its commit is on its way."""
        committed: asyncio.Future[None] | None = None
        try:
            async with self._alarm_sessions.begin() as s:
                if ids is not None:
                    draw_ids_from(s, ids)  # rows written after the pages went out
                await self._incidents.look_ahead(s, t, ctx)
                change = await self._incidents.fold(s, t, ctx)
                if change is None or change.first_page is None:
                    return change
                row, timer = change.first_page
                claimed = await self._escalation.first_step(s, row, timer, self._clock.now_ms())
                if claimed:
                    # The rows' INSERTs (unless ids were drawn ahead and they are still to be
                    # written) and the commit are round trips, and the commit a disk flush
                    # (3–30 ms on a busy PostgreSQL): the pages go out meanwhile, recorded after.
                    committed = asyncio.get_running_loop().create_future()
                    self._escalation.send(claimed, committed)
                change = replace(change, claimed=tuple(claimed), first_page=None)
        except BaseException:
            if committed is not None:
                committed.set_exception(RuntimeError("the incident's transaction failed"))
            raise
        if committed is not None:
            committed.set_result(None)
        return change

    def on_reading(self, reading: Reading, ctx: DeviceContext, now_ms: int) -> None:
        transitions = self._engine.on_reading(reading, ctx, now_ms)
        if transitions:
            self._enqueue(transitions, ctx)

    def _enqueue(self, transitions: list[AlertTransition], ctx: DeviceContext | None) -> None:
        acting = [t for t in transitions if t.state in _ACTING]
        if len(acting) < len(transitions):
            # A duration starting or cancelled (pending, back to ok) changes no incident; the
            # engine keeps it and the coarse checkpoint saves it. Queued, 4,000 charger ports
            # starting their sessions at once kept the worker busy while a fire alarm waited.
            self.transitions += len(transitions) - len(acting)
            if not acting:
                return
            transitions = acting
        self._queued += 1
        if any(t.severity is Severity.CRITICAL for t in transitions):
            self._queued_urgent += 1
            self._urgent.append((transitions, ctx))
            # Telemetry pauses from now on, so the storm item under way finishes quickly.
            self._hold()
        else:
            self._normal.append((transitions, ctx))
        self._ready.set()

    async def settled(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far has been handled (incidents opened, first pages
        on their way). Ingest awaits this before acknowledging a batch, so an alarm whose
        message the broker forgets has already opened its incident. False on timeout (the
        worker is stuck: acknowledging anyway keeps telemetry flowing; the backlog is on
        /health)."""
        target, urgent = self._queued, self._queued_urgent
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        # Each queue is handled in order, so counts per queue say what is done.
        while self._handled_urgent < urgent or (
            self._handled - self._handled_urgent < target - urgent
            and len(self._normal) <= STORM_BACKLOG
            and loop.time() >= self._grouping_until
        ):
            self._progress.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)
        return True

    async def _handle_counted(
        self, transitions: list[AlertTransition], ctx: DeviceContext | None, urgent: bool = False
    ) -> None:
        try:
            await self._handle(transitions, ctx)
        finally:
            self._handled += 1
            self._handled_urgent += urgent
            self._progress.set()

    @property
    def backlog(self) -> int:
        return len(self._urgent) + len(self._normal)

    async def run_worker(self) -> None:
        while True:
            if not self._urgent and not self._normal:
                self._ready.clear()
                await self._ready.wait()
                continue
            if not self._urgent:
                # Not life-safety: telemetry keeps flowing around it (each database round
                # trip gives the loop back to ingest), in batches of one transaction each.
                take = min(len(self._normal), NORMAL_BATCH)
                await self._handle_batch([self._normal.popleft() for _ in range(take)])
                continue
            # Every database round trip of the alarm path waits for a turn of the event loop;
            # under heavy telemetry each turn is a chunk of ingest. Telemetry reading pauses
            # (TCP and the broker keep it; nothing is lost) until the pages are out, at most
            # MAX_HOLD_S at a time so a storm of alerts cannot stop ingest.
            self._hold()
            try:
                while self._urgent:
                    await self._handle_counted(*self._urgent.popleft(), urgent=True)
            finally:
                self._unhold()

    def _hold(self) -> None:
        if self._release is None:
            self._hold_bulk(True)
            self._release = asyncio.get_running_loop().call_later(MAX_HOLD_S, self._unhold)

    def _unhold(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None
            self._hold_bulk(False)

    async def drain(self) -> None:
        """Handle what is queued (used at shutdown)."""
        while self._urgent:
            await self._handle_counted(*self._urgent.popleft(), urgent=True)
        while self._normal:
            await self._handle_counted(*self._normal.popleft())

    def _target(self, t: AlertTransition, ctx: DeviceContext | None) -> DeviceContext | None:
        target = ctx if ctx is not None and t.device_id == ctx.device_id else None
        if target is None and t.device_id:
            target = self._context_of(t.site, t.device_id)
        if target is None and ctx is not None:
            target = ctx  # a correlation's location: route as the device that tipped it
        return target

    async def _handle_batch(self, items: list[_Work]) -> None:
        """Non-critical work in one transaction (incidents, first pages, action records);
        if anything in it fails, each item is handled on its own as usual."""
        if len(items) == 1:
            await self._handle_counted(*items[0])
            return
        pairs: list[tuple[AlertTransition, DeviceContext]] = []
        done = 0
        try:
            async with self._sessions.begin() as s:
                changes = []
                await self._incidents.prefetch(
                    s,
                    [
                        t
                        for transitions, _ in items
                        for t in transitions
                        if t.state in (AlertState.FIRING, AlertState.RESOLVED)
                    ],
                )
                for transitions, ctx in items:
                    if done:
                        # The embedded SQLite answers without giving the loop back: let
                        # ingest and the alarm connection have a turn between two items.
                        await asyncio.sleep(0)
                    if done and self._urgent:
                        break  # an alarm came in: commit what is done, it goes first
                    done += 1
                    for t in transitions:
                        if t.state not in (AlertState.FIRING, AlertState.RESOLVED):
                            continue
                        target = self._target(t, ctx)
                        if target is None:
                            continue
                        change = await self._incidents.fold(s, t, target)
                        if change is not None and change.first_page is not None:
                            row, timer = change.first_page
                            claimed = await self._escalation.first_step(
                                s, row, timer, self._clock.now_ms()
                            )
                            change = replace(change, claimed=tuple(claimed), first_page=None)
                        pairs.append((t, target))
                        changes.append(change)
        except Exception:
            # Every item gets its own try (and its own log line) on the usual path.
            for item in items:
                await self._handle_counted(*item)
            return
        self._normal.extendleft(reversed(items[done:]))  # after the alarm, in order
        try:
            acted = await self._incidents.device_actions_many(
                [(change, t, target) for (t, target), change in zip(pairs, changes, strict=True)]
            )
            async with self._sessions.begin() as s:
                for (t, _), change, outcomes in zip(pairs, changes, acted, strict=True):
                    if change is not None and outcomes:
                        self._incidents.record_actions(s, change, t, outcomes)
            paged = False
            for change in changes:
                if change is None:
                    continue
                self._note_grouping(change)
                if change.claimed:
                    self._escalation.send(list(change.claimed))
                else:
                    paged = paged or change.pages
                for listener in self._listeners:
                    listener(change)
            self.transitions += sum(len(transitions) for transitions, _ in items[:done])
            await self._persist()
            if paged:
                # Page now; a failure here is retried by the escalation loop's own tick.
                await self._escalation.due(self._clock.now_ms())
        except Exception:
            self.failures += 1
            log.exception("recording a batch of %d alert transitions failed", len(pairs))
        finally:
            self._handled += done
            self._progress.set()

    async def _handle(self, transitions: list[AlertTransition], ctx: DeviceContext | None) -> None:
        paged = False
        for t in transitions:
            self.transitions += 1
            if t.state not in (AlertState.FIRING, AlertState.RESOLVED):
                continue
            target = ctx if ctx is not None and t.device_id == ctx.device_id else None
            if target is None and t.device_id:
                target = self._context_of(t.site, t.device_id)
            if target is None and ctx is not None:
                target = ctx  # a correlation's location: route as the device that tipped it
            if target is None:
                log.error(
                    "alert %s for %s has no device in the registry; recorded only",
                    t.rule_id,
                    t.subject,
                )
                self.failures += 1
                continue
            try:
                change = await self.apply(t, target)
            except Exception:
                # Keep going: one broken incident must not stop the others. Safety first:
                # the failure is visible in the log, the metrics and /health, and the alert
                # goes back to ok so the device's next alarm opens an incident afresh.
                self.failures += 1
                log.exception("opening the incident for %s failed", t.dedupe_key)
                if t.state is AlertState.FIRING:
                    self._engine.forget(t.rule_id, t.subject, self._clock.now_ms())
                continue
            if change is not None:
                self._note_grouping(change)
                if not change.claimed:  # claimed pages were sent from inside apply()
                    paged = paged or change.pages
                for listener in self._listeners:
                    listener(change)
        await self._persist()
        if paged:
            # Page now rather than on the next escalation tick: latency is the point. A failure
            # here is retried by the escalation loop's own tick.
            try:
                await self._escalation.due(self._clock.now_ms())
            except Exception:
                self.failures += 1
                log.exception("paging right away failed; the escalation loop retries")

    def _note_grouping(self, change: IncidentChange) -> None:
        if change.kind is ChangeKind.ATTACHED:
            self._grouping_until = asyncio.get_running_loop().time() + GROUPING_QUIET_S

    async def _persist(self, now_ms: int | None = None) -> None:
        try:
            await self._engine.persist(now_ms)
        except Exception:
            self.failures += 1
            log.exception("saving alert state failed; it stays dirty and is retried")

    async def run_timers(self) -> None:
        """Durations and absence timers: tick when due, and flush quiet state every second."""
        last_persist = 0.0
        loop = asyncio.get_running_loop()
        while True:
            now = self._clock.now_ms()
            try:
                transitions = self._engine.tick(now)
            except Exception:
                # Timers must keep running for every other device: log, count, go on.
                self.failures += 1
                log.exception("evaluating timers failed")
                transitions = []
            if transitions:
                self._enqueue(transitions, None)
            if loop.time() - last_persist >= 1.0:
                await self._persist(now)  # and the coarse checkpoint when it is due
                last_persist = loop.time()
            due = self._engine.next_due_ms()
            wait = self._tick_s if due is None else min(self._tick_s, max(0.0, (due - now) / 1000))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.01))
            self._wake.clear()

    async def run_escalation(self, stop: asyncio.Event) -> None:
        await self._escalation.run(stop, tick_s=self._tick_s)
