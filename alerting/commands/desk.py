"""Device commands with acknowledgements: send, wait for cmd_ack and confirming telemetry,
retry with backoff, and fail loudly (the incident escalates at once) when unconfirmed.

A command is one durable row (``device_command``); the loop in :meth:`CommandDesk.run_loop`
resends or fails what is due, so a restart resumes every pending command. Rules send
commands through :meth:`CommandDesk.run_action` (an ``ActionRunner``), people through the API
(:meth:`CommandDesk.create` inside the API's audited transaction, then :meth:`send`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.commands.tables import OPEN_STATUSES, CommandStatus, DeviceCommandRow
from alerting.escalation.timers import EscalationTimerRow, TimerKind
from alerting.incidents.actions import ActionOutcome, ActionRunner, CommandPublisher
from alerting.incidents.lifecycle import IncidentStatus
from alerting.incidents.store import SYSTEM, add_event
from alerting.incidents.tables import IncidentRow
from alerting.models import AlertTransition
from alerting.scope import OwnedSites, every_site
from core import topics
from core.clock import Clock
from core.readings import DeviceContext, Reading
from device_profiles import CommandSpec

log = logging.getLogger(__name__)

#: What the incident timeline and the escalation say when a command is not confirmed.
UNCONFIRMED = "断电/关阀未确认 — 请现场处置"

CommandsOf = Callable[[str], Mapping[str, CommandSpec]]  # device type -> its commands


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
    ) -> None:
        super().__init__(publish)
        self._sessions = sessions
        self._clock = clock
        self._commands_of = commands_of
        self._policy = policy or CommandPolicy()
        self._escalate = escalate or (lambda: None)
        self._watching: dict[tuple[str, str], int] = {}
        self._inbox: asyncio.Queue[Reading] = asyncio.Queue()
        self._wake = asyncio.Event()
        # In a cluster, the sites whose due commands this instance resends (gateway/cluster).
        self.owned_sites: OwnedSites = every_site

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
    ) -> DeviceCommandRow:
        """Add a command (and its timeline event) in the caller's transaction; send it with
        :meth:`send` once that transaction has committed."""
        spec = self.spec(ctx.device_type, command, port)
        now = self._clock.now_ms()
        await self._supersede(s, ctx, command, port, now)
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
        s.add(row)
        if incident_id is not None:
            note = f"{spec.label}" + (f"（{port}号口）" if row.port is not None else "")
            add_event(s, incident_id, now, "command_sent", actor=actor, note=note, data=_data(row))
        key = (ctx.site, ctx.device_id)
        self._watching[key] = self._watching.get(key, 0) + 1
        return row

    async def send(self, row: DeviceCommandRow) -> bool:
        """Publish one attempt; a failed publish is left to the loop's retry."""
        if self._publish is None:
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
    ) -> DeviceCommandRow:
        """Create, commit and send a command."""
        async with self._sessions.begin() as s:
            row = await self.create(
                s, ctx, command, port=port, incident_id=incident_id, actor=actor
            )
        await self.send(row)
        return row

    async def run_action(
        self, action: str, transition: AlertTransition, ctx: DeviceContext, incident_id: int
    ) -> ActionOutcome:
        """A firing rule's action (e.g. close the valve) as a tracked command."""
        raw = transition.labels.get("port")
        port = int(raw) if raw is not None and raw.isdigit() else None
        try:
            row = await self.issue(ctx, action, port=port, incident_id=incident_id)
        except CommandRefused as exc:
            return ActionOutcome(action, ok=False, error=str(exc))
        topic = topics.command(ctx.site, ctx.device_type, ctx.device_id)
        return ActionOutcome(
            action, True, topic, {"cmd_id": row.id, "command": action}, recorded=True
        )

    # -- the loop ----------------------------------------------------------------------------
    async def load(self) -> None:
        """Remember which devices have open commands (after a restart)."""
        async with self._sessions() as s:
            rows = await s.execute(
                select(DeviceCommandRow.site, DeviceCommandRow.device_id).where(
                    DeviceCommandRow.status.in_(OPEN_STATUSES)
                )
            )
            for site, device_id in rows:
                self._watching[(site, device_id)] = self._watching.get((site, device_id), 0) + 1

    async def run_loop(self, stop: asyncio.Event, *, tick_s: float = 0.5) -> None:
        """Handle answers as they come and look at due commands every ``tick_s``."""
        while not stop.is_set():
            try:
                while not self._inbox.empty():
                    await self.handle(self._inbox.get_nowait())
                await self.due(self._clock.now_ms())
            except Exception:
                log.exception("command loop failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), tick_s)
            self._wake.clear()

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
                DeviceCommandRow.status.in_(OPEN_STATUSES),
            )
        )
        for row in rows.scalars():
            if row.port == port and row.command != command:
                self._finish(s, row, CommandStatus.SUPERSEDED, now)
                self._event(s, row, now, "command_superseded", "被新的命令取代")

    def _finish(
        self, s: AsyncSession, row: DeviceCommandRow, status: CommandStatus, now: int
    ) -> None:
        row.status, row.finished_at_ms = status.value, now
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
