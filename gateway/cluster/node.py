"""One gateway instance's share of a cluster: starts and stops the work of each partition its
leases give it (gateway/cluster/lease.py).

A partition's work is its MQTT sessions, the rule state of its devices and the timed work
(escalations, device commands, loop deadlines) of its sites, which the schedulers read through
``owned_sites`` at every tick.

The MQTT client ids belong to the partition, not to the instance (``{client_id}-p-{partition}``
and ``…-alarms``), with persistent sessions: while a partition has no owner the broker queues
its QoS 1 messages, and the next owner, connecting with the same client id, gets them and the
ones that were in flight unacknowledged. A session of a partition given up is closed and never
reconnects, so two instances do not take the client id from each other in turn.

The vendor formats' topics carry no site, so they form one partition of their own (``_vendor``):
its owner receives every vendor device's messages and runs those devices' rules, whatever their
site; their incidents' escalations are run by the owner of the device's site. A deployment
with much vendor traffic therefore has one instance doing all of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from alerting.pipeline import AlertPipeline
from alerting.rules.engine import RuleEngine
from core import topics
from core.clock import Clock
from core.readings import DeviceContext
from gateway.cluster.feed import ClusterFeed
from gateway.cluster.lease import LeaseManager
from gateway.cluster.partitions import VENDOR, partition_of, partitions_for, sites_of
from gateway.ingest import Ingest
from gateway.mqtt import MqttSession
from gateway.registry.service import Registry
from gateway.registry.tables import Site
from gateway.settings import Settings

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


@dataclass
class _Running:
    sites: frozenset[str]
    sessions: list[MqttSession] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)


class ClusterNode:
    def __init__(self, settings: Settings, db: AsyncEngine, registry: Registry, clock: Clock) -> None:
        self._settings = settings
        self._mode = settings.cluster.partitions
        self._registry = registry
        self._clock = clock
        self._sites: list[str] = []
        self._running: dict[str, _Running] = {}
        self._owned: frozenset[str] = frozenset()
        # Every MQTT session of the owned partitions (health reads it as it changes).
        self.sessions: list[MqttSession] = []
        self.lease = LeaseManager(
            db,
            settings.cluster.instance(),
            self._partitions,
            lease_s=settings.cluster.lease_s,
            renew_s=settings.cluster.renew_s,
            start_work=self._start,
            stop_work=self._stop,
        )
        self._db = db
        self.feed = ClusterFeed(
            settings.database.url, self.lease.instance_id, on_lease_change=self.lease.wake
        )

    def bind(
        self,
        *,
        engine: RuleEngine,
        ingest: Ingest,
        alerts: AlertPipeline,
        vendor_filters: list[str],
        poke: Callable[[], None],
        spawn: Spawn,
    ) -> None:
        """The stages the partitions' work runs on (built after the node)."""
        self._engine = engine
        self._ingest = ingest
        self._alerts = alerts
        self._vendor = vendor_filters
        self._poke = poke
        self._spawn = spawn

    # -- what this instance owns ---------------------------------------------------------------
    def owned_sites(self) -> frozenset[str] | None:
        return self._owned

    async def fence(self, session: AsyncSession, site: str) -> None:
        """The escalation's fence (alerting.scope.SiteFence): our lease on ``site``'s
        partition, at our epoch, checked and share-locked in the step's transaction."""
        await self.lease.check(await session.connection(), partition_of(site, self._mode))

    async def announce_registry_change(self) -> None:
        """Tell the other instances to re-read the registry (edited through our API): the
        owner of a site must know a device added here before its first message."""
        async with self._db.begin() as conn:
            await conn.execute(
                text("SELECT pg_notify('registry_changed', :me)"),
                {"me": self.lease.instance_id[:63]},
            )

    def partition_of_device(self, ctx: DeviceContext) -> str:
        if self._registry.vendor_identity(ctx.site, ctx.device_id) is not None:
            return VENDOR
        return partition_of(ctx.site, self._mode)

    def owns_device(self, ctx: DeviceContext) -> bool:
        return self.partition_of_device(ctx) in self._running

    def bulk_sessions(self) -> list[MqttSession]:
        """The telemetry sessions (paused while alarms are turned into pages)."""
        return [m for r in self._running.values() for m in r.sessions if not m.client_id.endswith("-alarms")]

    async def _partitions(self) -> list[str]:
        async with self._db.connect() as conn:
            self._sites = list((await conn.execute(select(Site.code))).scalars())
        return partitions_for(self._sites, self._mode)

    # -- starting and stopping a partition's work ----------------------------------------------
    async def _start(self, partition: str, epoch: int) -> None:
        sites = sites_of(partition, self._sites, self._mode)
        if any(self._registry.site(s) is None for s in sites):
            await self._registry.refresh()  # a site added through another instance
        running = self._running[partition] = _Running(sites)
        self._owned = self._owned | sites
        devices = [
            ctx for ctx in self._registry.devices() if self.partition_of_device(ctx) == partition
        ]
        running.devices = [d.device_id for d in devices]
        loaded = await self._engine.adopt(devices, sites, self._clock.now_ms())
        for client_id, filters, elsewhere in self._plan(partition, sites):
            session = MqttSession(
                self._settings.mqtt.model_copy(update={"shared_group": None}),
                filters,
                client_id=client_id,
            )
            session.on_message = self._ingest.connection(session.ack, owned_elsewhere=elsewhere)
            running.sessions.append(session)
            self.sessions.append(session)
            running.tasks.append(self._spawn(session.run(), f"mqtt {client_id}"))
        log.info(
            "partition %s (epoch %d): %d site(s), %d device(s), %d alert state(s) loaded",
            partition,
            epoch,
            len(sites),
            len(devices),
            loaded,
        )
        self._poke()  # its escalations due now run at once

    def _plan(
        self, partition: str, sites: frozenset[str]
    ) -> list[tuple[str, list[str], Callable[[str], bool] | None]]:
        base = f"{self._settings.mqtt.client_id}-p-{partition}"
        if partition == VENDOR:
            return [(base, list(self._vendor), None)] if self._vendor else []
        if not sites:
            return []
        everything = [f"{topics.ROOT}/{site}/#" for site in sorted(sites)]
        if not self._settings.mqtt.priority_connection:
            return [(base, everything, None)]
        events = [f"{topics.ROOT}/{site}/+/+/event" for site in sorted(sites)]
        # As with one gateway: events are the alarm session's, whose own persistent session
        # holds its copy; the bulk session only acknowledges them.
        return [(base, everything, topics.is_native_event), (f"{base}-alarms", events, None)]

    async def _stop(self, partition: str, lost: bool) -> None:
        running = self._running.pop(partition, None)
        if running is None:
            return
        for session in running.sessions:
            session.pause_reading()
        try:
            # The alarms among what was received open their incidents first (at shutdown the
            # alert worker has stopped already, so this is done here, not waited for).
            await self._alerts.drain()
        except Exception:
            log.exception("partition %s: alert transitions not all handled", partition)
        try:
            # What was received is stored and acknowledged before the session closes; the
            # rest stays queued at the broker for the next owner.
            await self._ingest.flush()
        except Exception:
            log.exception("partition %s: flush failed; the broker keeps what is unacknowledged", partition)
        for session in running.sessions:
            await session.close()
            if session in self.sessions:
                self.sessions.remove(session)
        self._owned = frozenset(s for r in self._running.values() for s in r.sites)
        changes = self._engine.give_up(running.devices, running.sites, self._clock.now_ms())
        if not lost:
            await self._engine.save(changes)
        for task in running.tasks:
            if not task.done():
                task.cancel()
        log.info("partition %s: work stopped (%s)", partition, "lost" if lost else "handed over")

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.feed.run(stop), name="cluster-feed")
            tg.create_task(self.lease.run(stop), name="partition-leases")
