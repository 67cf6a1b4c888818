"""Changes made by the other instances, from PostgreSQL LISTEN/NOTIFY: every instance's board
follows the incidents of every partition, and a released partition wakes the lease cycle.

The database announces each committed incident change (a trigger of migration 0016_cluster,
payload ``"{incident_id} {application_name}"``; each instance names its connections with its
instance id); changes this instance made itself are already on its board and are skipped.
Notifications are coalesced per incident for a moment, so a burst of repeats is one read.
LISTEN needs a connection of its own that stays open: one asyncpg connection, reconnected
with backoff; while it is down the boards of this instance miss other instances' changes
(a board reloads its list on reconnect) and partitions are still taken at the lease cycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import make_url

from core.db import ALARM_POOL_SUFFIX

log = logging.getLogger(__name__)

INCIDENTS = "incident_changed"
LEASES = "partition_lease"
#: The registry (sites, devices, people) was edited through another instance's API.
REGISTRY = "registry_changed"


class ClusterFeed:
    def __init__(
        self,
        url: str,
        instance_id: str,
        *,
        on_lease_change: Callable[[], None],
        coalesce_s: float = 0.2,
    ) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._me = instance_id[:63]
        self._on_lease_change = on_lease_change
        # Set once the API exists: publish one incident on this instance's live hub.
        self.on_incident: Callable[[int], Awaitable[None]] | None = None
        # Set by the gateway: re-read the registry another instance changed.
        self.on_registry_change: Callable[[], None] = lambda: None
        self._coalesce_s = coalesce_s
        self._pending: set[int] = set()
        self._wake = asyncio.Event()
        self.received = 0
        self.connected = False

    def _incident(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        incident, _, origin = payload.partition(" ")
        # This instance's own alarm pool names itself "<instance>-alarms" (core.db).
        if origin.removesuffix(ALARM_POOL_SUFFIX) == self._me or not incident.isdigit():
            return
        self.received += 1
        self._pending.add(int(incident))
        self._wake.set()

    def _registry(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self._me:
            self.on_registry_change()

    def _lease(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self._me:
            self._on_lease_change()

    async def run(self, stop: asyncio.Event) -> None:
        publisher = asyncio.create_task(self._publish(stop))
        backoff = 0.5
        try:
            while not stop.is_set():
                try:
                    conn = await asyncpg.connect(self._dsn, timeout=10)
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("live feed: database unreachable (%s); retrying", exc)
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                backoff = 0.5
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                try:
                    await conn.add_listener(INCIDENTS, self._incident)
                    await conn.add_listener(LEASES, self._lease)
                    await conn.add_listener(REGISTRY, self._registry)
                    self.connected = True
                    waits = {asyncio.ensure_future(lost.wait()), asyncio.ensure_future(stop.wait())}
                    while not (stop.is_set() or lost.is_set()):
                        # A quiet connection could die unnoticed: look at it now and then.
                        _, pending = await asyncio.wait(waits, timeout=15, return_when=asyncio.FIRST_COMPLETED)
                        if not pending:
                            break
                        if not (stop.is_set() or lost.is_set()):
                            await conn.execute("SELECT 1")
                    for task in waits:
                        task.cancel()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("live feed: connection lost (%s); reconnecting", exc)
                finally:
                    self.connected = False
                    if not conn.is_closed():
                        await conn.close(timeout=2)
        finally:
            publisher.cancel()

    async def _publish(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._wake.wait()
            await asyncio.sleep(self._coalesce_s)
            self._wake.clear()
            ids, self._pending = self._pending, set()
            if self.on_incident is None:
                continue
            for incident_id in sorted(ids):
                try:
                    await self.on_incident(incident_id)
                except Exception:
                    log.exception("live feed: incident %s could not be published", incident_id)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
