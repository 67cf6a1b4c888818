"""Device actions a rule asks for, e.g. cut a charger port's power on over-temperature."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from alerting.models import AlertTransition
from core import topics
from core.readings import DeviceContext

log = logging.getLogger(__name__)

# (topic, payload, qos): shared with the gateway's MQTT session, like the app notifier.
CommandPublisher = Callable[[str, bytes, int], Awaitable[None]]

SUPPORTED = {"cut_power": ("charger",)}


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    action: str
    ok: bool
    topic: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    # The runner put it on the incident timeline itself (a tracked command).
    recorded: bool = False


def command_for(
    action: str, transition: AlertTransition, device_type: str, incident_id: int
) -> tuple[str, dict[str, Any]]:
    """The topic and payload of ``action`` (pure); raises ValueError if it cannot be sent."""
    types = SUPPORTED.get(action)
    if types is None:
        raise ValueError(f"unsupported action {action!r}")
    if device_type not in types or not transition.device_id:
        raise ValueError(f"{action} needs a {'/'.join(types)} device, not {device_type!r}")
    payload: dict[str, Any] = {"action": action, "incident_id": incident_id}
    port = transition.labels.get("port")
    if port is not None:
        payload["port"] = int(port) if port.isdigit() else port
    return topics.command(transition.site, device_type, transition.device_id), payload


class ActionRunner:
    """Publishes device commands; without a publisher every action is recorded as not sent."""

    def __init__(self, publish: CommandPublisher | None = None) -> None:
        self._publish = publish

    async def run_action(
        self, action: str, transition: AlertTransition, ctx: DeviceContext, incident_id: int
    ) -> ActionOutcome:
        """Run one action of a firing rule for the device ``ctx``."""
        return await self.run(action, transition, ctx.device_type, incident_id)

    async def run(
        self, action: str, transition: AlertTransition, device_type: str, incident_id: int
    ) -> ActionOutcome:
        try:
            topic, payload = command_for(action, transition, device_type, incident_id)
        except ValueError as exc:
            return ActionOutcome(action, ok=False, error=str(exc))
        if self._publish is None:
            return ActionOutcome(action, False, topic, payload, "no command publisher configured")
        try:
            await self._publish(topic, json.dumps(payload).encode(), 1)
        except Exception as exc:  # recorded on the incident; the incident itself goes on
            log.warning("action %s on %s failed: %s", action, topic, exc)
            return ActionOutcome(action, False, topic, payload, f"{type(exc).__name__}: {exc}")
        return ActionOutcome(action, True, topic, payload)
