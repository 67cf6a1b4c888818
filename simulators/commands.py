"""Simulated devices obey their commands: execute, answer cmd_ack, report the new state.

What a command does is read from the device's native profile: its ``confirm`` values are the
telemetry the device reports once the command took effect (a closed valve reports
``valve: closed``), so a new device type needs no code here. A scenario role can make a device
``refuse`` (it answers ``ok: false`` and its state stays) or stay ``silent`` (no answer).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any, Literal

from core import topics

log = logging.getLogger(__name__)

Obedience = Literal["obey", "refuse", "silent"]
Send = Callable[[str, dict[str, Any]], Awaitable[None]]  # (kind, fields)


@cache
def command_effects(device_type: str) -> dict[str, dict[str, Any]]:
    """Command -> the telemetry values that show it took effect (from the native profile)."""
    try:
        registry = importlib.import_module("device_profiles").load_profiles()
        profile = registry.profile_for(device_type)
    except Exception:  # optional dependency, or a type without a profile: no commands
        return {}
    return {name: dict(spec.confirm) for name, spec in profile.commands.items()}


@cache
def profile_events(device_type: str) -> frozenset[str]:
    try:
        registry = importlib.import_module("device_profiles").load_profiles()
        return frozenset(registry.profile_for(device_type).events.names)
    except Exception:
        return frozenset()


class CommandResponder:
    """Answers one device's commands the way its role says (obey, refuse, silent)."""

    def __init__(
        self,
        device_type: str,
        send: Send,
        obedience: Obedience = "obey",
        *,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.device_type = device_type
        self.obedience = obedience
        self._send = send
        self.state: dict[str, Any] = dict(state or {})
        self.received: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def observe(self, fields: dict[str, Any]) -> None:
        """Keep the state fields the device reports (what a refusal says is still so)."""
        watched = {k for effect in command_effects(self.device_type).values() for k in effect}
        self.state.update({k: v for k, v in fields.items() if k in watched})

    def on_message(self, topic: str, payload: bytes) -> None:
        """The link's handler: parse the command and answer it in a task of its own."""
        try:
            command = json.loads(payload)
        except ValueError:
            log.warning("not a command on %s: %r", topic, payload[:80])
            return
        if not isinstance(command, dict):
            return
        self.received.append(command)
        task = asyncio.get_running_loop().create_task(self.answer(command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def answer(self, command: dict[str, Any]) -> None:
        cmd_id, name, port = command.get("cmd_id"), command.get("command"), command.get("port")
        if self.obedience == "silent" or not isinstance(cmd_id, str):
            return
        effect = command_effects(self.device_type).get(str(name))
        if effect is None or self.obedience == "refuse":
            key = next(iter(effect or {}), None)
            shown = self.state.get(key, "unchanged") if key else "unchanged"
            await self._send("cmd_ack", {"cmd_id": cmd_id, "ok": False, "state": str(shown)})
            return
        self.state.update(effect)
        shown = next(iter(effect.values()), "done") if effect else "done"
        await self._send("cmd_ack", {"cmd_id": cmd_id, "ok": True, "state": str(shown)})
        if effect:
            fields = dict(effect)
            if port is not None:
                fields = {"port": port, **fields}
            await self._send("telemetry", fields)
        if name == "self_test" and "self_test" in profile_events(self.device_type):
            await self._send("event", {"event": "self_test"})

    async def settle(self) -> None:
        """Wait for answers still being sent."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def command_topic(site: str, device_type: str, device_id: str) -> str:
    return topics.command(site, device_type, device_id)
