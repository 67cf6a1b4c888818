"""Device commands with acknowledgements: send, wait for cmd_ack and confirming telemetry,
retry with backoff, and fail loudly (the incident escalates at once) when unconfirmed.

A command is one durable row (``device_command``); the loop in :meth:`CommandDesk.run_loop`
resends or fails what is due, so a restart resumes every pending command. Commands of a site
beyond its rate (alerting/commands/rate.py: a storm's thousands of power cuts) are ``held``:
recorded with the reason on the incident's timeline and sent in order as the rate allows, with
no attempt spent while they wait; urgent commands (a life-safety rule's, a person's) never wait. Rules send
commands through :meth:`CommandDesk.run_action` (an ``ActionRunner``), people through the API
(:meth:`CommandDesk.create` inside the API's audited transaction, then :meth:`send`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.commands.rate import CommandRate, SiteBuckets
from alerting.commands.tables import (
    OPEN_STATUSES,
    PENDING_STATUSES,
    CommandStatus,
    DeviceCommandRow,
)
from alerting.escalation.timers import EscalationTimerRow, TimerKind
from alerting.incidents.actions import (
    ActionOutcome,
    ActionRequest,
    ActionRunner,
    CommandPublisher,
)
from alerting.incidents.lifecycle import IncidentStatus
from alerting.incidents.store import SYSTEM, add_event
from alerting.incidents.tables import IncidentRow
from alerting.models import AlertTransition, Severity
from alerting.scope import OwnedSites, every_site
from core import topics
from core.clock import Clock
from core.readings import DeviceContext, Reading
from device_profiles import CommandSpec

log = logging.getLogger(__name__)

#: What the incident timeline and the escalation say when a command is not confirmed.
UNCONFIRMED = "断电/关阀未确认 — 请现场处置"

CommandsOf = Callable[[str], Mapping[str, CommandSpec]]  # device type -> its commands
# A held command whose row is still not visible this long after it was made was rolled back.
ORPHAN_S = 10.0


class CommandRefused(ValueError):
    """The command does not exist for that device (or lacks its port): a 422, not a retry."""


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    """``ack_timeout_ms``: how long an attempt waits for cmd_ack and confirming telemetry;
    ``attempts``: sends in all; a refused attempt is retried after ``retry_ms`` ×
    ``backoff`` ** (attempt - 1), a silent one after its timeout × the same factor."""

    ack_timeout_ms: int = 30_000
    retry_ms: int = 5_000
    attempts: int = 3
    backoff: float = 2.0

    def factor(self, attempt: int) -> float:
        return float(self.backoff ** max(0, attempt - 1))


class CommandDesk(ActionRunner):
    """Owns the device_command rows: creates, sends, resends, confirms and fails them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        commands_of: CommandsOf,
        publish: CommandPublisher | None,
        policy: CommandPolicy | None = None,
        *,
        escalate: Callable[[], None] | None = None,
        rate: CommandRate | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        connected: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__(publish)
        self._sessions = sessions
        self._clock = clock
        self._commands_of = commands_of
        self._policy = policy or CommandPolicy()
        self._escalate = escalate or (lambda: None)
        self._limits = rate or CommandRate()
        self._buckets = SiteBuckets(self._limits, monotonic)
        self._monotonic = monotonic
        # Held commands are released only while the broker connection is up: one released
        # into a dead connection would wait its whole ack timeout, out of its turn.
        self._connected = connected
        # Held commands per site, in the order they go out: (cmd_id, made at, monotonic).
        self._held: dict[str, collections.deque[tuple[str, float]]] = {}
        self._last_due: dict[str, int] = {}  # the latest expected send time queued per site
        # Devices with a command on the wire: their telemetry may confirm it.
        self._watching: dict[tuple[str, str], int] = {}
        self._inbox: asyncio.Queue[Reading] = asyncio.Queue()
        self._wake = asyncio.Event()
        # In a cluster, the sites whose due commands this instance resends (gateway/cluster).
        self.owned_sites: OwnedSites = every_site
        self._queued_sites: frozenset[str] | None = None  # whose held queues are in memory

    # -- the hot path: cheap, synchronous --------------------------------------------------
    def observe(self, reading: Reading, ctx: DeviceContext) -> None:
        """Take a device's cmd_ack, and its telemetry while it has an open command."""
        if reading.kind == "cmd_ack" or (
            reading.kind == "telemetry" and (ctx.site, ctx.device_id) in self._watching
        ):
            self._inbox.put_nowait(reading)
            self._wake.set()

    # -- creating and sending ----------------------------------------------------------------
    def commands_of(self, device_type: str) -> Mapping[str, CommandSpec]:
        """The commands a device type takes (from its native profile)."""
        return self._commands_of(device_type)

    def spec(self, device_type: str, command: str, port: int | None) -> CommandSpec:
        spec = self.commands_of(device_type).get(command)
        if spec is None:
            raise CommandRefused(f"a {device_type} device has no command {command!r}")
        if port is not None and not spec.port:
            raise CommandRefused(f"{command} takes no port")
        return spec

    async def create(
        self,
        s: AsyncSession,
        ctx: DeviceContext,
        command: str,
        *,
        port: int | None = None,
        incident_id: int | None = None,
        actor: str = SYSTEM,
        urgent: bool | None = None,
    ) -> DeviceCommandRow:
        """Add a command (and its timeline event) in the caller's transaction; send it with
        :meth:`send` once that transaction has committed. Over the site's rate it is held
        (sent in order later) unless ``urgent`` (default: asked for by a person)."""
        spec = self.spec(ctx.device_type, command, port)
        now = self._clock.now_ms()
        await self._supersede(s, ctx, command, port, now)
        if urgent is None:
            urgent = actor != SYSTEM
        # Behind a queue a command waits its turn even if a token is free: order is kept.
        hold = not urgent and (bool(self._held.get(ctx.site)) or not self._buckets.take(ctx.site))
        row = DeviceCommandRow(
            id=uuid.uuid4().hex[:16],
            site=ctx.site,
            device_id=ctx.device_id,
            device_type=ctx.device_type,
            command=command,
            port=port if spec.port else None,
            confirm=dict(spec.confirm),
            incident_id=incident_id,
            requested_by=actor,
            status=CommandStatus.SENT.value,
            attempts=1,
            acked=False,
            state_seen=False,
            created_at_ms=now,
            due_at_ms=now + self._policy.ack_timeout_ms,
            error="",
        )
        if hold:
            self._hold(row, now)
        s.add(row)
        if incident_id is not None:
            note = f"{spec.label}" + (f"（{port}号口）" if row.port is not None else "")
            if hold:
                ahead = len(self._held.get(ctx.site, ())) - 1
                note += (
                    f"：限速排队（本站每秒最多{self._limits.max_per_s:g}条命令，前面{ahead}条，"
                    f"预计{max(0, row.due_at_ms - now) / 1000:.0f}秒后发出）"
                )
            kind = "command_held" if hold else "command_sent"
            add_event(s, incident_id, now, kind, actor=actor, note=note, data=_data(row))
        if not hold:
            self._watch(row)
        return row

    def _hold(self, row: DeviceCommandRow, now: int) -> None:
        """Queue ``row`` behind its site's earlier held commands: no attempt spent yet."""
        step = 1000 / self._limits.max_per_s if self._limits.max_per_s > 0 else 0
        due = max(now, self._last_due.get(row.site, 0)) + max(1, int(step))
        self._last_due[row.site] = due
        row.status, row.attempts, row.due_at_ms = CommandStatus.HELD.value, 0, due
        self._held.setdefault(row.site, collections.deque()).append((row.id, self._monotonic()))
        self._wake.set()

    def _watch(self, row: DeviceCommandRow) -> None:
        key = (row.site, row.device_id)
        self._watching[key] = self._watching.get(key, 0) + 1

    @property
    def held(self) -> int:
        """Commands waiting for their site's rate."""
        return sum(len(q) for q in self._held.values())

    async def send(self, row: DeviceCommandRow) -> bool:
        """Publish one attempt; a failed publish is left to the loop's retry. A held command
        is not published: the loop sends it when its turn comes."""
        if self._publish is None or row.status == CommandStatus.HELD.value:
            return False
        payload: dict[str, Any] = {
            "cmd_id": row.id,
            "command": row.command,
            "ts": self._clock.now_ms(),
        }
        if row.port is not None:
            payload["port"] = row.port
        if row.incident_id is not None:
            payload["incident_id"] = row.incident_id
        topic = topics.command(row.site, row.device_type, row.device_id)
        try:
            await self._publish(topic, json.dumps(payload).encode(), 1)
        except Exception as exc:  # the loop resends it when it is due
            log.warning("command %s to %s not published: %s", row.id, topic, exc)
            return False
        return True

    async def issue(
        self,
        ctx: DeviceContext,
        command: str,
        *,
        port: int | None = None,
        incident_id: int | None = None,
        actor: str = SYSTEM,
        urgent: bool | None = None,
    ) -> DeviceCommandRow:
        """Create, commit and send a command (or leave it held for its turn)."""
        async with self._sessions.begin() as s:
            row = await self.create(
                s, ctx, command, port=port, incident_id=incident_id, actor=actor, urgent=urgent
            )
        await self.send(row)
        return row

    async def run_action(
        self, action: str, transition: AlertTransition, ctx: DeviceContext, incident_id: int
    ) -> ActionOutcome:
        """A firing rule's action (e.g. close the valve) as a tracked command."""
        raw = transition.labels.get("port")
        port = int(raw) if raw is not None and raw.isdigit() else None
        # A life-safety rule's command (a gas valve at a gas alarm) never waits behind a storm.
        urgent = transition.severity is Severity.CRITICAL
        try:
            row = await self.issue(ctx, action, port=port, incident_id=incident_id, urgent=urgent)
        except CommandRefused as exc:
            return ActionOutcome(action, ok=False, error=str(exc))
        return self._outcome(action, ctx, row)

    async def run_actions(self, work: list[ActionRequest]) -> list[ActionOutcome]:
        """A batch of firing rules' actions (a storm's power cuts): every command created in
        one transaction (one commit, not one per device), then sent or left held."""
        created: list[DeviceCommandRow | CommandRefused] = []
        async with self._sessions.begin() as s:
            for action, t, ctx, incident_id in work:
                raw = t.labels.get("port")
                try:
                    created.append(
                        await self.create(
                            s,
                            ctx,
                            action,
                            port=int(raw) if raw is not None and raw.isdigit() else None,
                            incident_id=incident_id,
                            urgent=t.severity is Severity.CRITICAL,
                        )
                    )
                except CommandRefused as exc:
                    created.append(exc)
        outcomes = []
        for (action, _, ctx, _), row in zip(work, created, strict=True):
            if isinstance(row, CommandRefused):
                outcomes.append(ActionOutcome(action, ok=False, error=str(row)))
                continue
            await self.send(row)
            outcomes.append(self._outcome(action, ctx, row))
        return outcomes

    def _outcome(self, action: str, ctx: DeviceContext, row: DeviceCommandRow) -> ActionOutcome:
        topic = topics.command(ctx.site, ctx.device_type, ctx.device_id)
        held = row.status == CommandStatus.HELD.value
        return ActionOutcome(
            action,
            True,
            topic,
            {"cmd_id": row.id, "command": action},
            error="held: over the site's command rate" if held else "",
            queued=held,
            recorded=True,
        )

    # -- the loop ----------------------------------------------------------------------------
    async def load(self, sites: frozenset[str] | None = None) -> None:
        """Remember which devices have open commands and which wait their turn, in order
        (after a restart; with ``sites``, only theirs: a partition taken over)."""
        async with self._sessions() as s:
            stmt = (
                select(
                    DeviceCommandRow.id,
                    DeviceCommandRow.site,
                    DeviceCommandRow.device_id,
                    DeviceCommandRow.status,
                    DeviceCommandRow.due_at_ms,
                )
                .where(DeviceCommandRow.status.in_(PENDING_STATUSES))
                .order_by(DeviceCommandRow.due_at_ms, DeviceCommandRow.created_at_ms)
            )
            if sites is not None:
                stmt = stmt.where(DeviceCommandRow.site.in_(sites))
            for cmd_id, site, device_id, status, due in await s.execute(stmt):
                if status == CommandStatus.HELD.value:
                    self._held.setdefault(site, collections.deque()).append(
                        (cmd_id, self._monotonic())
                    )
                    self._last_due[site] = max(self._last_due.get(site, 0), due)
                else:
                    self._watching[(site, device_id)] = self._watching.get((site, device_id), 0) + 1

    async def run_loop(self, stop: asyncio.Event, *, tick_s: float = 0.5) -> None:
        """Handle answers as they come and look at due commands every ``tick_s``."""
        while not stop.is_set():
            try:
                while not self._inbox.empty():
                    await self.handle(self._inbox.get_nowait())
                await self.release()
                await self.due(self._clock.now_ms())
            except Exception:
                log.exception("command loop failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_turn_s(tick_s))
            self._wake.clear()

    def _next_turn_s(self, tick_s: float) -> float:
        """Until the next held command may go (at least 0.1 s: a few go per transaction)."""
        waits = [self._buckets.wait_s(site) for site, q in self._held.items() if q]
        return min(tick_s, max(0.1, min(waits))) if waits else tick_s

    async def _follow_owned_sites(self) -> None:
        """In a cluster: the held queues of sites this instance took over are read from the
        database (their old owner held them), those of sites it gave up are dropped."""
        owned = self.owned_sites()
        if owned is None or owned == self._queued_sites:
            return
        # At start every site's queue was loaded: the owned ones are already in memory.
        taken = owned - self._queued_sites if self._queued_sites is not None else frozenset()
        for site in [site for site in self._held if site not in owned]:
            del self._held[site]
        for key in [key for key in self._watching if key[0] not in owned]:
            del self._watching[key]
        self._queued_sites = owned
        if taken:
            await self.load(taken)

    async def release(self) -> int:
        """Send the held commands whose turn has come, in order per site; returns how many."""
        await self._follow_owned_sites()
        plan = {
            site: [cmd_id for cmd_id, _ in list(q)[: self._buckets.available(site)]]
            for site, q in self._held.items()
            if q
        }
        plan = {site: ids for site, ids in plan.items() if ids}
        if not plan or not self._connected():
            return 0
        now, mono = self._clock.now_ms(), self._monotonic()
        released: list[DeviceCommandRow] = []
        async with self._sessions.begin() as s:
            found = {
                row.id: row
                for row in (
                    await s.execute(
                        select(DeviceCommandRow).where(
                            DeviceCommandRow.id.in_([i for ids in plan.values() for i in ids])
                        )
                    )
                ).scalars()
            }
            for site, ids in plan.items():
                queue, sent = self._held[site], 0
                for cmd_id in ids:
                    row = found.get(cmd_id)
                    if row is None and mono - queue[0][1] < ORPHAN_S:
                        break  # its transaction has not committed yet: keep the order
                    queue.popleft()
                    if row is None or row.status != CommandStatus.HELD.value:
                        continue  # rolled back, or superseded while it waited
                    waited_s = (now - row.created_at_ms) / 1000
                    row.status, row.attempts = CommandStatus.SENT.value, 1
                    row.due_at_ms = now + self._policy.ack_timeout_ms
                    self._event(
                        s,
                        row,
                        now,
                        "command_sent",
                        f"{self._label(row)}：排队{waited_s:.0f}秒后发出",
                    )
                    self._watch(row)
                    released.append(row)
                    sent += 1
                self._buckets.take(site, sent)
        for row in released:
            await self.send(row)
        return len(released)

    def _label(self, row: DeviceCommandRow) -> str:
        spec = self.commands_of(row.device_type).get(row.command)
        label = spec.label if spec is not None else row.command
        return label + (f"（{row.port}号口）" if row.port is not None else "")

    async def handle(self, reading: Reading) -> None:
        """A cmd_ack, or telemetry that may confirm an open command of its device."""
        now = self._clock.now_ms()
        async with self._sessions.begin() as s:
            stmt = select(DeviceCommandRow).where(
                DeviceCommandRow.site == reading.site,
                DeviceCommandRow.device_id == reading.device_id,
                DeviceCommandRow.status.in_(OPEN_STATUSES),
            )
            if reading.kind == "cmd_ack":
                stmt = stmt.where(DeviceCommandRow.id == str(reading.fields.get("cmd_id")))
            for row in (await s.execute(stmt)).scalars():
                if reading.kind == "cmd_ack":
                    self._acked(s, row, reading, now)
                elif _confirms(row, reading.fields):
                    row.state_seen = True
                if row.acked and row.state_seen and row.status in OPEN_STATUSES:
                    self._finish(s, row, CommandStatus.CONFIRMED, now)
                    self._event(s, row, now, "command_confirmed", "设备已确认")

    def _acked(self, s: AsyncSession, row: DeviceCommandRow, reading: Reading, now: int) -> None:
        row.ack_state = str(reading.fields.get("state", ""))[:32] or None
        if reading.fields.get("ok") is True:
            row.acked, row.status = True, CommandStatus.ACKNOWLEDGED.value
            row.state_seen = row.state_seen or not row.confirm
            self._event(s, row, now, "command_acked", f"设备回执：{row.ack_state or '已执行'}")
            return
        self._event(s, row, now, "command_refused", f"设备拒绝执行（{row.ack_state or '无状态'}）")
        row.error = f"refused by the device (state {row.ack_state!r})"
        row.due_at_ms = now + int(self._policy.retry_ms * self._policy.factor(row.attempts))

    async def due(self, now_ms: int) -> int:
        """Resend or fail every open command whose time has come; returns how many."""
        stmt = (
            select(DeviceCommandRow)
            .where(
                DeviceCommandRow.status.in_(OPEN_STATUSES),
                DeviceCommandRow.due_at_ms <= now_ms,
            )
            .order_by(DeviceCommandRow.due_at_ms)
            .limit(100)
            .with_for_update(skip_locked=True)
        )
        if (sites := self.owned_sites()) is not None:
            stmt = stmt.where(DeviceCommandRow.site.in_(sites))
        async with self._sessions.begin() as s:
            rows = list((await s.execute(stmt)).scalars())
            resend: list[DeviceCommandRow] = []
            failed = False
            for row in rows:
                if row.attempts < self._policy.attempts:
                    row.attempts += 1
                    row.acked = False
                    wait = self._policy.ack_timeout_ms * self._policy.factor(row.attempts)
                    row.due_at_ms = now_ms + int(wait)
                    note = f"第{row.attempts}次发送（共{self._policy.attempts}次）"
                    self._event(s, row, now_ms, "command_retry", note)
                    resend.append(row)
                else:
                    failed = True
                    row.error = row.error or "no acknowledgement and confirming telemetry"
                    self._finish(s, row, CommandStatus.FAILED, now_ms)
                    self._event(s, row, now_ms, "command_failed", UNCONFIRMED)
                    await _escalate_now(s, row, now_ms)
        for row in resend:
            await self.send(row)
        if failed:
            self._escalate()
        return len(rows)

    # -- helpers -------------------------------------------------------------------------------
    async def _supersede(
        self, s: AsyncSession, ctx: DeviceContext, command: str, port: int | None, now: int
    ) -> None:
        """A different command to the same device and port (restore after a cut) ends the
        earlier one; the same command again is tracked on its own."""
        rows = await s.execute(
            select(DeviceCommandRow).where(
                DeviceCommandRow.site == ctx.site,
                DeviceCommandRow.device_id == ctx.device_id,
                DeviceCommandRow.status.in_(PENDING_STATUSES),
            )
        )
        for row in rows.scalars():
            if row.port == port and row.command != command:
                self._finish(s, row, CommandStatus.SUPERSEDED, now)
                self._event(s, row, now, "command_superseded", "被新的命令取代")

    def _finish(
        self, s: AsyncSession, row: DeviceCommandRow, status: CommandStatus, now: int
    ) -> None:
        was_open = row.status in OPEN_STATUSES
        row.status, row.finished_at_ms = status.value, now
        if not was_open:
            return  # a held command was never watched
        key = (row.site, row.device_id)
        left = self._watching.get(key, 1) - 1
        if left > 0:
            self._watching[key] = left
        else:
            self._watching.pop(key, None)

    def _event(
        self, s: AsyncSession, row: DeviceCommandRow, now: int, kind: str, note: str
    ) -> None:
        if row.incident_id is not None:
            add_event(s, row.incident_id, now, kind, note=note, data=_data(row))


def _data(row: DeviceCommandRow) -> dict[str, Any]:
    return {
        "cmd_id": row.id,
        "command": row.command,
        "port": row.port,
        "device_id": row.device_id,
        "attempts": row.attempts,
        "status": row.status,
        "state": row.ack_state,
        "requested_by": row.requested_by,
    }


def _confirms(row: DeviceCommandRow, fields: Mapping[str, Any]) -> bool:
    if row.port is not None and fields.get("port") != row.port:
        return False
    return all(k in fields and fields[k] == v for k, v in row.confirm.items())


async def _escalate_now(s: AsyncSession, row: DeviceCommandRow, now: int) -> None:
    """An unconfirmed command moves the incident's ladder to its next step now."""
    if row.incident_id is None:
        return
    incident = await s.get(IncidentRow, row.incident_id)
    timer = await s.get(EscalationTimerRow, row.incident_id, with_for_update=True)
    if incident is None or timer is None or timer.kind != TimerKind.STEP:
        return
    if incident.status == IncidentStatus.OPEN.value and timer.due_at_ms > now:
        timer.due_at_ms = now
        add_event(s, row.incident_id, now, "escalating", note=f"{row.command}: {UNCONFIRMED}")
