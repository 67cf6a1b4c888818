"""The rule engine: per-device alert state in memory, deadline heap for timers, restart-safe.

Persistence contract (the caller owns all I/O):

1. At start: ``engine.restore(await store.load_all())``, ``register_device(ctx, now)`` for
   every registry device (absence timers start for devices that never speak), then
   ``engine.start(now)`` opens the start-up grace period.
2. ``on_reading``/``tick`` return transitions and mark changed states dirty. The caller acts
   on the transitions (opens the incidents) and then awaits ``engine.persist()``: saving first
   would let a crash in between forget an alarm (a restored firing alert is never re-emitted),
   while acting first can at worst repeat a transition after a restart, which the incident
   service's one-open-incident-per-``dedupe_key`` rule counts as a repeat. Quiet readings only
   accumulate dirty keys; flush them on a short period (e.g. every second), never per reading.
3. If ``save`` fails, ``engine.mark_dirty(...)`` puts the keys back (``persist`` does it).
4. What only refreshes — an absence rule's last-seen time, moved by every message of a device —
   is never a prompt write: it stays in memory and ``persist`` checkpoints it every
   ``checkpoint_ms``, a device's time only once its stored copy is ``REFRESH_REWRITE_MS`` old
   (so a fleet heard every few seconds is not rewritten every minute); a clean stop writes it
   all with ``checkpoint(now, clean=True)``. See ``start`` for why a crash in between is safe.

Device ids are assumed unique within one gateway.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from alerting.models import AlertState, AlertTransition
from alerting.rules.alert_state import EMPTY, RuleState
from alerting.rules.evaluators import (
    DEVICE_EVALUATORS,
    eval_absence,
    eval_correlation,
    location_key,
)
from alerting.rules.loader import RuleSet
from alerting.rules.schema import AbsenceRule, CorrelationRule, DeviceRule, RequireAlive
from alerting.state import AlertStateStore, StateChange, StateKey
from core.readings import DeviceContext, Reading

log = logging.getLogger(__name__)
_Step = tuple[
    DeviceRule, Callable[..., tuple[RuleState, list[AlertTransition]]], str | None, frozenset[str]
]
_UNKNOWN_CTX_RETRY_MS = 60_000
#: The marker row that says whether the state was last written by a clean stop.
MARKER: StateKey = ("_engine", "checkpoint")
# Kinds whose in-window samples are worth a DB write per change; rate-of-rise samples live a
# minute and are rebuilt after a restart, so only their status changes are saved.
_SAVE_SAMPLES = frozenset({"count_in_window", "correlation"})
# States serialised between two turns of the event loop at a checkpoint: 100,000 devices'
# last-seen times are about half a second of work, which an alarm must not wait behind.
CHECKPOINT_SLICE = 2000
# A periodic checkpoint rewrites a refreshed last-seen time only when its stored copy is older
# than this. After a crash the offline timers restart at the start anyway (see ``start``); the
# stored time is then only read as "when was this device last heard" by ``require_alive``
# (windows of hours), so being up to this much (plus one checkpoint) behind costs nothing
# there, and a big fleet's checkpoint writes a tenth of its devices instead of all of them.
REFRESH_REWRITE_MS = 10 * 60_000


class RuleEngine:
    """Evaluates readings as they arrive and timers when ``tick`` is called."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        grace_ms: int,
        store: AlertStateStore | None = None,
        checkpoint_ms: int = 60_000,
    ) -> None:
        self.rules = rules
        self._grace_ms = grace_ms
        self._store = store
        self._not_before = 0
        self._states: dict[StateKey, RuleState] = {}
        self._dirty: dict[StateKey, int] = {}
        # Absence states whose last-seen time moved since the last checkpoint (no prompt write).
        self._refreshed: set[StateKey] = set()
        # When each refreshed-only state was last written by a checkpoint (or read at start; a
        # new timer gets a time spread back over REFRESH_REWRITE_MS, see register_device).
        self._written_ms: dict[StateKey, int] = {}
        self._checkpoint_ms = checkpoint_ms
        self._next_checkpoint = 0
        # None: nothing stored yet; False: the last run did not stop cleanly (see ``start``).
        self._clean_stop: bool | None = None
        self._marker: dict[str, Any] | None = None
        self.checkpoints = 0
        self._heap: list[tuple[int, str, str]] = []
        self._scheduled: dict[StateKey, int] = {}
        self._ctx: dict[str, DeviceContext] = {}
        self._households: dict[str, set[str]] = {}
        self._seen: dict[str, int] = {}
        self._plans: dict[tuple[str, str, str | None], tuple[_Step, ...]] = {}
        # Devices taken over from another instance: no absence alert before this time.
        self._grace_until: dict[str, int] = {}

    def replace_rules(self, rules: RuleSet) -> None:
        """Swap in an edited rule set (e.g. a rule disabled from the API); state is kept."""
        self.rules = rules
        self._plans.clear()

    # ------------------------------------------------------------------ lifecycle

    def start(self, now_ms: int) -> None:
        """Open the start-up grace: no absence alert fires before ``now + grace``.

        After a crash the stored last-seen times are only as fresh as the last checkpoint:
        a device may have been heard a moment before the crash and not since. So every
        offline timer that is not firing restarts at ``now`` (as if the device had just been
        heard), and fires no earlier than the end of the grace. That is safe both ways:
        - no false offline: a device's true deadline is its last message (before the crash,
          so before ``now``) plus the timeout, which is earlier than ``now + timeout``;
        - no missed offline beyond grace + timeout: a device that died before the crash (or
          never speaks again) fires at the latest ``now + max(grace, timeout)``.
        Firing alerts are saved promptly (a transition), so they are restored exactly. After
        a clean stop everything was written and the stored deadlines are kept as they are.
        """
        self._not_before = now_ms + self._grace_ms
        if self._clean_stop is False:
            for key, state in self._states.items():
                spec = self.rules.by_id.get(key[0])
                if (
                    isinstance(spec, AbsenceRule)
                    and state.status != "firing"
                    and state.last_ms is not None
                    and state.last_ms < now_ms
                ):
                    due = now_ms + spec.for_
                    self._states[key] = state._replace(last_ms=now_ms, due_ms=due)
                    self._schedule(key, due)
        # Until the next clean stop, what is stored is "not clean": a crash is recognised.
        self._marker = {"clean": False, "at": now_ms}
        self._next_checkpoint = now_ms + self._checkpoint_ms

    def restore(self, stored: Mapping[StateKey, Mapping[str, Any]]) -> None:
        """Load persisted states (no transitions are emitted; firing stays firing)."""
        stored = dict(stored)
        marker = stored.pop(MARKER, None)
        if marker is not None:
            self._clean_stop = bool(marker.get("clean"))
        elif stored:
            self._clean_stop = False  # states written by a run that never checkpointed
        for (rule_id, subject), data in stored.items():
            spec = self.rules.by_id.get(rule_id)
            try:
                state = RuleState.from_json(data)
            except ValueError:
                log.warning("dropping corrupt alert state %s:%s", rule_id, subject)
                spec = None
            if spec is None:  # rule removed or row corrupt: delete the row on next save
                self._dirty[(rule_id, subject)] = 0
                continue
            key = (rule_id, subject)
            self._states[key] = state
            if isinstance(spec, AbsenceRule) and state.last_ms is not None:
                self._written_ms[key] = state.last_ms
                device = subject.split("#", 1)[0]
                self._seen[device] = max(self._seen.get(device, 0), state.last_ms)
            self._schedule(key, state.due_ms)

    # ------------------------------------------------------------------ partitions (cluster)

    async def adopt(self, devices: Iterable[DeviceContext], sites: Iterable[str], now_ms: int) -> int:
        """Take over a partition's devices from the database (another instance ran them):
        their stored states, then as after a crash (see ``start``) every offline timer not
        firing restarts at ``now`` and fires no earlier than the start-up grace from now.
        Returns how many states were loaded."""
        devices = list(devices)
        ids = {d.device_id for d in devices}
        prefixes = tuple(f"{site}." for site in sites)
        stored = await self._store.load_all() if self._store is not None else {}
        mine = {
            k: v
            for k, v in stored.items()
            if k != MARKER and (k[1].split("#", 1)[0] in ids or k[1].startswith(prefixes))
        }
        self.restore(mine)
        not_before = now_ms + self._grace_ms
        for ctx in devices:
            self._grace_until[ctx.device_id] = not_before
            self.register_device(ctx, now_ms)
        for key, state in list(self._states.items()):
            spec = self.rules.by_id.get(key[0])
            if (
                key in mine
                and isinstance(spec, AbsenceRule)
                and state.status != "firing"
                and state.last_ms is not None
                and state.last_ms < now_ms
            ):
                due = now_ms + spec.for_
                self._states[key] = state._replace(last_ms=now_ms, due_ms=due)
                self._refreshed.add(key)
                self._schedule(key, due)
        return len(mine)

    def give_up(
        self, device_ids: Iterable[str], sites: Iterable[str], now_ms: int
    ) -> list[StateChange]:
        """Forget a partition's devices (handed to another instance); returns their states
        to save first when the hand-over is clean (nothing is saved when the lease was lost:
        the new owner's states must not be overwritten)."""
        ids = set(device_ids)
        prefixes = tuple(f"{site}." for site in sites)

        def ours(key: StateKey) -> bool:
            return key != MARKER and (key[1].split("#", 1)[0] in ids or key[1].startswith(prefixes))

        keys = {k for k in self._states if ours(k)} | {k for k in self._dirty if ours(k)}
        changes = []
        for key in keys:
            state = self._states.pop(key, None)
            data = None if state is None or state.is_blank() else state.to_json()
            changes.append(StateChange(key[0], key[1], data, now_ms))
            self._dirty.pop(key, None)
            self._refreshed.discard(key)
            self._written_ms.pop(key, None)
            self._scheduled.pop(key, None)
        for device in ids:
            ctx = self._ctx.pop(device, None)
            if ctx is not None and ctx.household_id:
                self._households.get(ctx.household_id, set()).discard(device)
            self._seen.pop(device, None)
            self._grace_until.pop(device, None)
        return changes

    async def save(self, changes: list[StateChange]) -> None:
        """Write these states now (a partition handed over)."""
        if self._store is not None and changes:
            await self._store.save(changes)

    async def load(self) -> None:
        """``restore`` from the configured store."""
        if self._store is not None:
            self.restore(await self._store.load_all())

    def register_device(self, ctx: DeviceContext, now_ms: int) -> None:
        """Know a device (labels, household) and start absence timers it does not have yet;
        a running one follows a changed window (a household's no-activity hours)."""
        self._remember(ctx)
        for spec in self.rules.absence_rules(ctx.device_type):
            key = (spec.id, ctx.device_id)
            known = self._states.get(key)
            if known is not None:
                if known.status != "firing" and known.last_ms is not None:
                    due = known.last_ms + spec.window_ms(ctx)
                    if due != known.due_ms:
                        self._states[key] = known._replace(due_ms=due)
                        self._schedule(key, due)
                continue
            if spec.applies_to(ctx):
                state = RuleState(last_ms=now_ms, due_ms=now_ms + spec.window_ms(ctx))
                self._states[key] = state
                # A new timer only refreshes: a crash before the checkpoint restarts it anyway
                # (every start registers the devices again). Its first write is spread over
                # the rewrite interval, so a fleet registered at once (a first start, a ledger
                # imported) is not one checkpoint of every device.
                self._refreshed.add(key)
                self._written_ms.setdefault(key, now_ms - hash(key) % REFRESH_REWRITE_MS)
                self._schedule(key, state.due_ms)

    # ------------------------------------------------------------------ evaluation

    def on_reading(
        self, reading: Reading, ctx: DeviceContext, now_ms: int
    ) -> list[AlertTransition]:
        """Evaluate one reading against the rules of its device type; returns transitions."""
        device = reading.device_id
        known = self._ctx.get(device)
        if known is not ctx and known != ctx:
            self._remember(ctx)
        if reading.kind != "status" or reading.fields.get("online") is True:
            self._seen[device] = now_ms
        out: list[AlertTransition] = []
        states = self._states
        plan_key = (reading.device_type, reading.kind, reading.event)
        plan = self._plans.get(plan_key)
        if plan is None:
            plan = self._plan(plan_key)
        for spec, evaluate, part, flags in plan:
            if flags and not flags <= ctx.household_flags:
                continue
            subject = device
            if part is not None and part in reading.fields:
                subject = f"{device}#{reading.fields[part]}"
            key = (spec.id, subject)
            old = states.get(key, EMPTY)
            new, found = evaluate(spec, old, reading, ctx, now_ms, subject)
            if new is not old:
                self._put(spec, key, old, new, now_ms)
            if found:
                out.extend(found)
        if out:
            out.extend(self._correlate(out, now_ms))
        return out

    def tick(self, now_ms: int) -> list[AlertTransition]:
        """Run every timer due at ``now_ms`` (durations, absences, holds, windows)."""
        out: list[AlertTransition] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            due, rule_id, subject = heapq.heappop(heap)
            key = (rule_id, subject)
            if self._scheduled.get(key) != due:
                continue  # superseded by an earlier entry
            del self._scheduled[key]
            state = self._states.get(key)
            if state is None or state.due_ms is None:
                continue
            if state.due_ms > now_ms:
                self._schedule(key, state.due_ms)
                continue
            out.extend(self._run_timer(key, state, now_ms))
        if out:
            out.extend(self._correlate(out, now_ms))
        return out

    def next_due_ms(self) -> int | None:
        """When ``tick`` next has work (for a caller that sleeps until then)."""
        return self._heap[0][0] if self._heap else None

    # ------------------------------------------------------------------ persistence

    def dirty_snapshot(self) -> list[StateChange]:
        """Changed states since the last snapshot (``state=None``: delete); clears the set."""
        changes = []
        for (rule_id, subject), at in self._dirty.items():
            state = self._states.get((rule_id, subject))
            data = None if state is None or state.is_blank() else state.to_json()
            changes.append(StateChange(rule_id, subject, data, at))
        self._dirty.clear()
        return changes

    def mark_dirty(self, changes: Iterable[StateChange]) -> None:
        """Put keys back after a failed save; the current state is taken next time."""
        for change in changes:
            self._dirty.setdefault((change.rule_id, change.subject), change.updated_ms)

    def checkpoint_snapshot(self, now_ms: int, *, clean: bool = False) -> list[StateChange]:
        """The refreshed-only states (last-seen times) and the marker; clears the set."""
        refreshed, self._refreshed = self._refreshed, set()
        return [*self._refreshed_rows(refreshed, now_ms), self._mark(now_ms, clean)]

    async def checkpoint_snapshot_yielding(
        self, now_ms: int, *, clean: bool = False, coarse: bool = False
    ) -> list[StateChange]:
        """``checkpoint_snapshot`` in slices of ``CHECKPOINT_SLICE`` states with the event loop
        running between them. Keys refreshed meanwhile go to the next checkpoint.

        ``coarse``: a stored last-seen time less than ``REFRESH_REWRITE_MS`` old is not
        rewritten; its key waits for a later checkpoint."""
        refreshed, self._refreshed = self._refreshed, set()
        keys = list(refreshed)
        changes: list[StateChange] = []
        for start in range(0, len(keys), CHECKPOINT_SLICE):
            if start:
                await asyncio.sleep(0)
            part = keys[start : start + CHECKPOINT_SLICE]
            changes.extend(self._refreshed_rows(part, now_ms, coarse=coarse and not clean))
        changes.append(self._mark(now_ms, clean))
        return changes

    def _refreshed_rows(
        self, keys: Iterable[StateKey], now_ms: int, *, coarse: bool = False
    ) -> list[StateChange]:
        changes = []
        written = self._written_ms
        fresh_after = now_ms - REFRESH_REWRITE_MS
        for key in keys:
            if key in self._dirty:
                continue  # written with the dirty ones
            state = self._states.get(key)
            if state is None or state.is_blank():
                written.pop(key, None)
                changes.append(StateChange(key[0], key[1], None, now_ms))
                continue
            if coarse and written.get(key, fresh_after) > fresh_after:
                self._refreshed.add(key)  # the stored copy is recent enough: later
                continue
            written[key] = now_ms
            changes.append(StateChange(key[0], key[1], state.to_json(), now_ms))
        return changes

    def _mark(self, now_ms: int, clean: bool) -> StateChange:
        self._marker = {"clean": clean, "at": now_ms}
        return StateChange(MARKER[0], MARKER[1], self._marker, now_ms)

    async def persist(self, now_ms: int | None = None) -> int:
        """Save the dirty states (transitions, pending timers) to the configured store, and
        every ``checkpoint_ms`` the refreshed ones too; returns how many rows were written.
        Without ``now_ms`` only the dirty states are saved."""
        if self._store is None:
            return 0
        changes = self.dirty_snapshot()
        if now_ms is not None and now_ms >= self._next_checkpoint:
            self._next_checkpoint = now_ms + self._checkpoint_ms
            changes.extend(await self.checkpoint_snapshot_yielding(now_ms, coarse=True))
            self.checkpoints += 1
        await self._save(changes)
        return len(changes)

    async def checkpoint(self, now_ms: int, *, clean: bool = False) -> int:
        """Write everything now; ``clean=True`` at a clean stop (the next start then keeps
        the stored deadlines exactly)."""
        if self._store is None:
            return 0
        changes = self.dirty_snapshot()
        changes.extend(await self.checkpoint_snapshot_yielding(now_ms, clean=clean))
        self.checkpoints += 1
        await self._save(changes)
        return len(changes)

    async def _save(self, changes: list[StateChange]) -> None:
        assert self._store is not None
        try:
            await self._store.save(changes)
        except BaseException:
            self.mark_dirty(c for c in changes if (c.rule_id, c.subject) != MARKER)
            raise

    def forget(self, rule_id: str, subject: str, now_ms: int) -> None:
        """Back to ok for one alert, so the next reading that crosses the rule fires again.

        For when acting on a firing transition failed: the alert must not stay "firing" with
        no incident behind it, which would swallow the device's next alarm as a repeat.
        """
        key = (rule_id, subject)
        self._written_ms.pop(key, None)
        if self._states.pop(key, None) is not None:
            self._dirty[key] = now_ms

    def state(self, rule_id: str, subject: str) -> RuleState:
        return self._states.get((rule_id, subject), EMPTY)

    def firing(self) -> list[tuple[StateKey, RuleState]]:
        """Every alert currently firing (for the duty board after a restart)."""
        return [(k, s) for k, s in self._states.items() if s.status == "firing"]

    # ------------------------------------------------------------------ internals

    def _plan(self, key: tuple[str, str, str | None]) -> tuple[_Step, ...]:
        """Per (type, kind, event): the rules with their evaluator, partition field and flags."""
        steps = []
        for spec in self.rules.for_reading(key[0], key[1], key[2]):  # type: ignore[arg-type]
            flags = spec.match.household_flags if spec.match else frozenset()
            part = None if isinstance(spec, AbsenceRule) else spec.partition_by
            steps.append((spec, DEVICE_EVALUATORS[spec.kind], part, flags))
        plan = tuple(steps)
        if len(self._plans) < 10_000:  # unknown event names must not grow it forever
            self._plans[key] = plan
        return plan

    def _remember(self, ctx: DeviceContext) -> None:
        old = self._ctx.get(ctx.device_id)
        if old is not None and old.household_id:
            self._households.get(old.household_id, set()).discard(ctx.device_id)
        self._ctx[ctx.device_id] = ctx
        if ctx.household_id:
            self._households.setdefault(ctx.household_id, set()).add(ctx.device_id)

    def _put(
        self,
        spec: DeviceRule | CorrelationRule,
        key: StateKey,
        old: RuleState,
        new: RuleState,
        now_ms: int,
    ) -> None:
        # Runs for every reading that moves a state (a rate-of-rise window, an absence
        # deadline), so ``is_blank`` and ``_schedule`` are inlined.
        status, due = new.status, new.due_ms
        blank = (
            status == "ok"
            and due is None
            and new.last_ms is None
            and not new.samples
            and not new.hits
        )
        if blank:
            self._states.pop(key, None)
        else:
            self._states[key] = new
        if due is not None and due != old.due_ms:
            current = self._scheduled.get(key)
            if current is None or due < current:
                self._scheduled[key] = due
                heapq.heappush(self._heap, (due, key[0], key[1]))
        kind = spec.kind
        if status != old.status or kind in _SAVE_SAMPLES:
            self._dirty[key] = now_ms
        elif kind == "absence":
            # last_ms moves on every message: kept in memory, written by a checkpoint
            # (``start`` explains why a crash before it is safe).
            self._refreshed.add(key)
        elif due != old.due_ms or blank:
            self._dirty[key] = now_ms

    def _schedule(self, key: StateKey, due: int | None) -> None:
        if due is None:
            return
        current = self._scheduled.get(key)
        if current is None or due < current:
            self._scheduled[key] = due
            heapq.heappush(self._heap, (due, key[0], key[1]))

    def _run_timer(self, key: StateKey, state: RuleState, now_ms: int) -> list[AlertTransition]:
        spec = self.rules.by_id.get(key[0])
        if spec is None or not spec.enabled:
            return []
        if isinstance(spec, CorrelationRule):
            new, found = eval_correlation(spec, state, None, None, now_ms, key[1])
        else:
            ctx = self._ctx.get(key[1].split("#", 1)[0])
            if ctx is None:  # restored before register_device: try again shortly
                log.warning("alert timer %s:%s waits for its device context", *key)
                new, found = state._replace(due_ms=now_ms + _UNKNOWN_CTX_RETRY_MS), []
            elif isinstance(spec, AbsenceRule):
                alive = spec.require_alive is None or self._peer_alive(
                    ctx, spec.require_alive, now_ms
                )
                new, found = eval_absence(
                    spec,
                    state,
                    None,
                    ctx,
                    now_ms,
                    key[1],
                    not_before=max(self._not_before, self._grace_until.get(ctx.device_id, 0)),
                    peers_alive=alive,
                )
            else:
                new, found = DEVICE_EVALUATORS[spec.kind](spec, state, None, ctx, now_ms, key[1])
        if new.due_ms is not None and new.due_ms <= now_ms:  # an evaluator must move on
            new = new._replace(due_ms=now_ms + 1_000)
        if new is not state:
            self._put(spec, key, state, new, now_ms)
        return found

    def _peer_alive(self, ctx: DeviceContext, need: RequireAlive, now_ms: int) -> bool:
        for device in self._households.get(ctx.household_id or "", ()):
            peer = self._ctx[device]
            seen = self._seen.get(device)
            if (
                peer.device_type == need.device_type
                and seen is not None
                and now_ms - seen <= need.within
            ):
                return True
        return False

    def _correlate(self, found: list[AlertTransition], now_ms: int) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        for tr in found:
            if tr.state is not AlertState.FIRING:
                continue
            for spec in self.rules.correlations_for(tr.rule_id):
                ctx = self._ctx.get(tr.device_id or "")
                where = None if ctx is None else location_key(ctx, spec.by)
                if ctx is None or where is None:
                    continue
                key = (spec.id, where)
                old = self._states.get(key, EMPTY)
                new, more = eval_correlation(spec, old, tr, ctx, now_ms, where)
                if new is not old:
                    self._put(spec, key, old, new, now_ms)
                out.extend(more)
        return out
