"""Device actions a rule asks for, e.g. cut a charger port's power on over-temperature."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from alerting.models import AlertTransition
from core import topics
from core.readings import DeviceContext

log = logging.getLogger(__name__)

# (topic, payload, qos): shared with the gateway's MQTT session, like the app notifier.
CommandPublisher = Callable[[str, bytes, int], Awaitable[None]]
# (action, transition, device, incident id): one action a firing rule asks for.
ActionRequest = tuple[str, AlertTransition, DeviceContext, int]

SUPPORTED = {"cut_power": ("charger",)}


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    action: str
    ok: bool
    topic: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    # Over the command rate (a storm): recorded now, published by ``ActionRunner.run_queue``.
    queued: bool = False
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
    """Publishes device commands; without a publisher every action is recorded as not sent.

    With ``rate_per_s``, commands beyond that rate (a burst of ``burst`` allowed) are not
    published on the spot: a storm of thousands of charger ports must neither flood the
    devices' broker nor hold the alert worker. They wait in order in a queue that
    ``run_queue`` sends at the rate; each is recorded on its incident as queued, and a
    failed send is logged and counted (``failed``).
    """

    def __init__(
        self,
        publish: CommandPublisher | None = None,
        *,
        rate_per_s: float = 0.0,
        burst: int = 20,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._monotonic = monotonic
        self._last = monotonic()
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake = asyncio.Event()
        self.sent = 0
        self.queued = 0
        self.failed = 0

    @property
    def waiting(self) -> int:
        """Commands queued by the rate limit and not yet published."""
        return len(self._queue)

    def _take_token(self) -> bool:
        if self._rate <= 0:
            return True
        now = self._monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1 and not self._queue:
            self._tokens -= 1
            return True
        return False

    async def run_queue(self) -> None:
        """Publish the rate-limited commands, in order, at the configured rate."""
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._rate > 0:
                now = self._monotonic()
                self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
                self._last = now
                if self._tokens < 1:
                    await asyncio.sleep((1 - self._tokens) / self._rate)
                    continue
                self._tokens -= 1
            topic, body = self._queue.popleft()
            assert self._publish is not None
            try:
                await self._publish(topic, body, 1)
                self.sent += 1
            except Exception as exc:
                self.failed += 1
                log.warning("queued command to %s failed: %s", topic, exc)

    async def run_action(
        self, action: str, transition: AlertTransition, ctx: DeviceContext, incident_id: int
    ) -> ActionOutcome:
        """Run one action of a firing rule for the device ``ctx``."""
        return await self.run(action, transition, ctx.device_type, incident_id)

    async def run_actions(self, work: list[ActionRequest]) -> list[ActionOutcome]:
        """Several actions (a batch of a storm's transitions), one outcome each, in order."""
        return [await self.run_action(*w) for w in work]

    async def run(
        self, action: str, transition: AlertTransition, device_type: str, incident_id: int
    ) -> ActionOutcome:
        try:
            topic, payload = command_for(action, transition, device_type, incident_id)
        except ValueError as exc:
            return ActionOutcome(action, ok=False, error=str(exc))
        if self._publish is None:
            return ActionOutcome(action, False, topic, payload, "no command publisher configured")
        body = json.dumps(payload).encode()
        if not self._take_token():
            self._queue.append((topic, body))
            self.queued += 1
            self._wake.set()
            return ActionOutcome(
                action,
                True,
                topic,
                payload,
                f"over {self._rate:g} commands/s: queued, {len(self._queue)} waiting",
                queued=True,
            )
        try:
            await self._publish(topic, body, 1)
        except Exception as exc:  # recorded on the incident; the incident itself goes on
            log.warning("action %s on %s failed: %s", action, topic, exc)
            return ActionOutcome(action, False, topic, payload, f"{type(exc).__name__}: {exc}")
        self.sent += 1
        return ActionOutcome(action, True, topic, payload)
