"""Wiring: builds every stage from Settings and runs them in one TaskGroup. Nothing else
constructs services."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from alerting.commands import CommandDesk, CommandPolicy, CommandRate
from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents.service import IncidentService
from alerting.incidents.storm import StormControl, StormLimits
from alerting.incidents.tables import IncidentRow
from alerting.notify.base import Notifier
from alerting.notify.email import EmailNotifier, SmtpConfig
from alerting.notify.mqtt import MqttNotifier
from alerting.notify.sms import SmsNotifier
from alerting.notify.stages import DeliveryPipeline, RetryPolicy
from alerting.notify.tables import DeliveryRow
from alerting.notify.webhook import WebhookNotifier, generic_json, wecom_markdown
from alerting.notify.webpush import WebPushNotifier, load_vapid, public_key
from alerting.pipeline import AlertPipeline
from alerting.routing.directory import ChannelKind
from alerting.routing.ladder import default_ladders
from alerting.routing.router import RoutingPolicy
from alerting.rules.engine import RuleEngine
from alerting.rules.loader import RuleSet, load_rules
from alerting.rules.overrides import (
    apply_overrides,
    apply_tunings,
    load_overrides,
    load_tunings,
)
from alerting.scope import every_site, no_fence
from alerting.state import SqlAlertStateStore
from core import topics
from core.clock import Clock, SystemClock
from core.db import (
    IdReserve,
    keep_wal_short,
    make_alarm_engine,
    make_engine,
    make_sessionmaker,
    sqlite_path,
    warm,
)
from core.readings import DeviceContext, Reading
from device_profiles import ProfileRegistry, load_profiles
from gateway.cluster.lease import ShuttingDown
from gateway.cluster.node import ClusterNode
from gateway.directory import RegistryDirectory
from gateway.health import HealthReport
from gateway.ingest import Ingest
from gateway.live import LiveHub
from gateway.loop import LoopWiring, build_loop
from gateway.migrations import runner as migrate
from gateway.mqtt import MqttSession
from gateway.notifiers import china_notifiers, confirming_channels
from gateway.quarantine import Quarantine
from gateway.registry.loader import apply_if_changed, load_community_cached
from gateway.registry.service import Registry
from gateway.runtime import tune_gc
from gateway.settings import Settings
from gateway.status import DeviceStatusBoard
from gateway.storage import TimeSeriesStore, TimeSeriesWriter, build_store
from gateway.storage.spool import SpoolingWriter

log = logging.getLogger(__name__)
#: The advisory lock instances take to apply community files one at a time.
COMMUNITY_LOCK = 0x5AFE_C0
#: One line per component as the gateway stops (INFO; the demo prints them as they come).
stopped_log = logging.getLogger("gateway.stopped")


@dataclass
class Gateway:
    """The running service; tests start one with their own Settings and clock."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Built in start():
    profiles: ProfileRegistry = field(init=False)
    registry: Registry = field(init=False)
    store: TimeSeriesStore = field(init=False)
    writer: TimeSeriesWriter = field(init=False)
    quarantine: Quarantine = field(init=False)
    rules: RuleSet = field(init=False)
    engine: RuleEngine = field(init=False)
    incidents: IncidentService = field(init=False)
    escalation: EscalationScheduler = field(init=False)
    loop: LoopWiring = field(init=False)
    alerts: AlertPipeline = field(init=False)
    ingest: Ingest = field(init=False)
    mqtt: MqttSession = field(init=False)
    live: LiveHub = field(default_factory=LiveHub)
    webpush: WebPushNotifier | None = field(default=None, init=False)
    # The alarm path's own PostgreSQL pool (core.db.make_alarm_engine); None on SQLite.
    alarm_db: AsyncEngine | None = field(default=None, init=False)
    # Incident and delivery ids drawn ahead for the alarm path (core.db.IdReserve); PostgreSQL.
    ids: IdReserve | None = field(default=None, init=False)
    status: DeviceStatusBoard = field(init=False)
    commands: CommandDesk = field(init=False)
    cluster: ClusterNode | None = field(default=None, init=False)
    _peer_refresh: bool = field(default=False, init=False)
    _chores: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    api_port: int = 0

    async def start(self) -> None:
        """Open the stores, load the registry, rules and state, build the pipeline."""
        # What start-up allocates lives as long as the process (the registry, rules, rule
        # state; with 100,000 devices millions of objects, the YAML parser's nodes too), and
        # each full collection meanwhile walked all of it again, once more as it grew: seconds
        # of a 100,000-device start (benchmarks/startup.py). Collected once, at the end.
        enabled = gc.isenabled()
        gc.disable()
        try:
            await self._start()
        finally:
            if enabled:
                gc.enable()

    async def _start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        await migrate.upgrade(s.database.url)
        instance = s.cluster.instance() if s.cluster.enabled else None
        self.db = make_engine(s.database.url, application_name=instance)
        self.sessions = make_sessionmaker(self.db)
        self.alarm_db = make_alarm_engine(s.database.url, application_name=instance)
        if self.alarm_db is not None:
            await warm(self.alarm_db)
            self.ids = IdReserve(self.sessions, [IncidentRow.__tablename__, DeliveryRow.__tablename__])
            await self.ids.fill()
        await self._apply_community_files()
        self.registry = Registry(self.sessions, on_load=self._registry_loaded)
        await self.registry.load()
        if s.cluster.enabled:
            self.cluster = ClusterNode(s, self.db, self.registry, self.clock)
            self.cluster.feed.on_registry_change = self._registry_changed_elsewhere
        self.profiles = load_profiles(s.profiles_dir)
        self.quarantine = Quarantine(self.sessions, s.ingest.quarantine_keep)
        self._build_storage()
        self.status = DeviceStatusBoard(self.profiles, self.live)
        await self._build_alerting()
        self.ingest = Ingest(
            self.profiles,
            self._lookup,
            self.quarantine,
            self.writer,
            self.clock,
            on_reading=self._on_reading,
            settled=self.alerts.settled,
            batch_size=s.ingest.batch_size,
            flush_interval_ms=s.ingest.flush_interval_ms,
            future_tolerance_ms=s.ingest.future_tolerance_s * 1000,
        )
        self.sessions_mqtt = self._mqtt_sessions()
        if self.cluster is not None:
            self.cluster.bind(
                engine=self.engine,
                ingest=self.ingest,
                alerts=self.alerts,
                vendor_filters=self._vendor_filters(),
                poke=self.escalation.poke,
                spawn=self._spawn,
            )
        self.health = HealthReport(
            self.sessions_mqtt,
            self.ingest,
            self.quarantine,
            self.alerts,
            self.spool,
            s.timeseries.backend,
            self.cluster,
        )

    async def _apply_community_files(self) -> None:
        """Each site's community file; on PostgreSQL under a transaction-scoped advisory lock,
        so instances starting together apply them one after another, not into each other."""
        files = self.settings.all_community_files()
        if not files:
            return
        s = self.settings
        tiers = s.alerting.risk_tiers.keys()
        specs = [(path, load_community_cached(path, s.data_dir, tiers=tiers)) for path in files]
        async with self.sessions.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": COMMUNITY_LOCK}
                )
            for path, spec in specs:
                applied = await apply_if_changed(session, spec)
                log.info(
                    "community file %s %s",
                    path,
                    "applied"
                    if applied
                    else "unchanged since last applied; edits made on the screens kept",
                )

    def _vendor_filters(self) -> list[str]:
        return [t for t in self.profiles.subscriptions() if not t.startswith(topics.ROOT + "/")]

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task in the running TaskGroup (a partition's MQTT sessions)."""
        try:
            return self._tasks.create_task(work, name=name)
        except RuntimeError:
            # The task group is shutting down (the gateway stops): nothing new starts.
            work.close()
            raise ShuttingDown(name) from None

    def _mqtt_sessions(self) -> list[MqttSession]:
        """The broker connections: with ``mqtt.priority_connection``, events (alarms) and the
        vendor formats come in on a connection of their own, so an alarm never queues behind a
        backlog of telemetry; the bulk connection takes everything under ``safety/`` so that
        malformed topics are still seen and quarantined, and only acknowledges the events
        (the alarm connection's own persistent session holds its copy)."""
        s = self.settings
        vendor = self._vendor_filters()
        status_topic = topics.gateway_status(s.site)
        if self.cluster is not None:
            # The partitions' sessions come and go with the leases (gateway/cluster/node.py);
            # this instance's own connection only publishes pages and commands, and keeps no
            # session at the broker once it is gone.
            session = MqttSession(
                s.mqtt.model_copy(update={"session_expiry_s": 0}),
                [],
                client_id=f"{s.mqtt.client_id}-{s.cluster.instance()}",
            )
            session.on_message = self.ingest.connection(session.ack)
            self.mqtt = self.mqtt_out = session
            return [session]
        if s.mqtt.priority_connection:
            plan = [
                (s.mqtt.client_id, [topics.ALL], status_topic),
                (s.mqtt.alarm_client_id, [topics.ALL_EVENTS, *vendor], None),
            ]
        else:
            plan = [(s.mqtt.client_id, [topics.ALL, *vendor], status_topic)]
        sessions = []
        for i, (client_id, filters, status) in enumerate(plan):
            session = MqttSession(s.mqtt, filters, client_id=client_id, status_topic=status)
            # With two connections, native events are the alarm connection's to handle.
            elsewhere = topics.is_native_event if len(plan) == 2 and i == 0 else None
            session.on_message = self.ingest.connection(session.ack, owned_elsewhere=elsewhere)
            sessions.append(session)
        self.mqtt = sessions[0]
        # Notifications go out on the quieter connection.
        self.mqtt_out = sessions[-1]
        return sessions

    def _build_storage(self) -> None:
        ts = self.settings.timeseries
        if ts.backend == "embedded" and not ts.embedded_path.is_absolute():
            ts = ts.model_copy(update={"embedded_path": self.settings.data_dir / ts.embedded_path})
        self.store = build_store(ts)
        if ts.backend == "embedded":
            self.writer = self.store
            self.spool: SpoolingWriter | None = None
        else:
            spool_dir = (
                ts.spool_dir
                if ts.spool_dir.is_absolute()
                else self.settings.data_dir / ts.spool_dir
            )
            self.spool = SpoolingWriter(
                self.store,
                spool_dir,
                max_bytes=ts.spool_max_bytes,
                max_age_s=ts.spool_max_age_s,
                clock=self.clock,
                write_timeout_s=ts.write_timeout_s,
                refused=lambda reading, why: self.quarantine.refuse(
                    self.clock.now_ms(), reading, why
                ),
            )
            self.writer = self.spool

    async def _build_alerting(self) -> None:
        s = self.settings
        known: dict[str, list[str]] = {
            p.device_type: list(p.events.names)
            for p in self.profiles.profiles()
            if p.codec == "native"
        }
        self.rules = apply_tunings(
            apply_overrides(
                load_rules(s.alerting.rules_dir, known_events=known),
                await load_overrides(self.sessions),
            ),
            await load_tunings(self.sessions),
        )
        self.engine = RuleEngine(
            self.rules,
            grace_ms=s.alerting.startup_grace_s * 1000,
            store=SqlAlertStateStore(self.sessions),
            checkpoint_ms=s.alerting.state_checkpoint_s * 1000,
        )
        now = self.clock.now_ms()
        if self.cluster is None:
            await self.engine.load()
            for ctx in self.registry.devices():
                self.engine.register_device(ctx, now)
        # In a cluster the devices come with their partitions (ClusterNode: engine.adopt).
        self.engine.start(now)
        owned = self.cluster.owned_sites if self.cluster is not None else every_site
        self.http = httpx.AsyncClient(timeout=10)
        notifiers = self._notifiers()
        self.directory = directory = RegistryDirectory(self.registry, notifiers.keys(), self.clock)
        pipeline = DeliveryPipeline(
            self.sessions,
            self.clock,
            notifiers,
            retry=RetryPolicy(attempts=s.notify.max_attempts),
            # Claims of deliveries name the instance: in a cluster, each its own.
            instance=s.cluster.instance() if s.cluster.enabled else s.mqtt.client_id,
            receipt_timeout_ms=s.notify.receipt_timeout_s * 1000,
            confirming=confirming_channels(s.notify),
        )
        self.policy = routing_policy(s)
        self.escalation = EscalationScheduler(
            self.sessions,
            self.clock,
            directory,
            pipeline,
            voice_device_types=frozenset(s.notify.voice_device_types),
            owned_sites=owned,
            fence=self.cluster.fence if self.cluster is not None else no_fence,
        )
        self.loop = build_loop(
            s, self.sessions, self.clock, notifiers, self.escalation.poke, owned_sites=owned
        )
        storm = s.alerting.storm
        self.commands = self._command_desk()
        self.commands.owned_sites = owned
        await self.commands.load()
        self.incidents = IncidentService(
            self.sessions,
            self.clock,
            policy=self.policy,
            actions=self.commands,
            storm=StormControl(
                threshold=storm.threshold,
                window_ms=storm.window_s * 1000,
                group_wait_ms=storm.group_wait_s * 1000,
                per_rule={
                    rule: StormLimits(limits.threshold, limits.window_s * 1000)
                    for rule, limits in storm.rules.items()
                },
                group_critical=storm.group_critical,
            )
            if storm.enabled
            else None,
            tiers=s.alerting.tier_policy(),
        )
        self.alerts = AlertPipeline(
            self.sessions,
            self.engine,
            self.incidents,
            self.escalation,
            self.clock,
            self.registry.context,
            tick_interval_ms=s.alerting.tick_interval_ms,
            hold_bulk=self._hold_bulk,
            alarm_sessions=make_sessionmaker(self.alarm_db) if self.alarm_db else None,
            ids=self.ids,
        )

    def _registry_loaded(self) -> None:
        """After a registry change made through the API: the rule engine learns new devices
        and households' changed no-activity windows (not before it exists, at start)."""
        engine: RuleEngine | None = getattr(self, "engine", None)
        if engine is None:
            return
        now = self.clock.now_ms()
        for ctx in self.registry.devices():
            if self.cluster is None or self.cluster.owns_device(ctx):
                engine.register_device(ctx, now)
        if self.cluster is not None and not self._peer_refresh:
            self._background(self.cluster.announce_registry_change(), "announce registry change")

    def _registry_changed_elsewhere(self) -> None:
        self._background(self._refresh_for_peer(), "registry refresh")

    async def _refresh_for_peer(self) -> None:
        self._peer_refresh = True  # their change: not announced back
        try:
            await self.registry.refresh()
        finally:
            self._peer_refresh = False

    def _background(self, work: Coroutine[Any, Any, None], what: str) -> None:
        async def logged() -> None:
            try:
                await work
            except Exception:
                log.exception("%s failed", what)

        task = asyncio.get_running_loop().create_task(logged(), name=what)
        self._chores.add(task)  # held until done, or the loop may drop it
        task.add_done_callback(self._chores.discard)

    def _command_desk(self) -> CommandDesk:
        c = self.settings.alerting.commands
        natives = {
            p.device_type: p.commands for p in self.profiles.profiles() if p.codec == "native"
        }
        return CommandDesk(
            self.sessions,
            self.clock,
            lambda device_type: natives.get(device_type, {}),
            self._publish_command,
            CommandPolicy(
                ack_timeout_ms=int(c.ack_timeout_s * 1000),
                retry_ms=int(c.retry_s * 1000),
                attempts=c.attempts,
                backoff=c.backoff,
            ),
            escalate=self.escalation.poke,
            rate=CommandRate(c.max_per_s, c.burst),
            connected=lambda: hasattr(self, "mqtt_out") and self.mqtt_out.connected.is_set(),
        )

    def _notifiers(self) -> dict[ChannelKind, Notifier]:
        n = self.settings.notify
        found: dict[ChannelKind, Notifier] = {
            ChannelKind.APP: MqttNotifier(self._publish_confirmed),
            ChannelKind.WEBHOOK: WebhookNotifier(self.http, generic_json),
            ChannelKind.WECOM: WebhookNotifier(self.http, wecom_markdown, robot=True),
        }
        if n.sms_gateway_url:
            found[ChannelKind.SMS] = SmsNotifier(self.http, n.sms_gateway_url)
        if n.smtp_host:
            found[ChannelKind.EMAIL] = EmailNotifier(
                SmtpConfig(
                    host=n.smtp_host,
                    port=n.smtp_port,
                    sender=n.smtp_from,
                    starttls=n.smtp_starttls,
                    username=n.smtp_username,
                    password=n.smtp_password.get_secret_value() if n.smtp_password else None,
                )
            )
        found.update(china_notifiers(n, self.http, self.registry, self.clock))
        self.push_public_key: str | None = None
        if n.webpush:
            key_file = n.vapid_key_file
            vapid = load_vapid(
                key_file if key_file.is_absolute() else self.settings.data_dir / key_file
            )
            self.push_public_key = public_key(vapid)
            self.webpush = WebPushNotifier(
                self.sessions, vapid, n.vapid_subject, self.clock, ttl_s=n.webpush_ttl_s
            )
            found[ChannelKind.WEBPUSH] = self.webpush
        return found

    # -- callbacks between stages --------------------------------------------------------------
    def _lookup(self, reading: Reading) -> DeviceContext | None:
        if reading.site:
            return self.registry.context(reading.site, reading.device_id)
        return self.registry.resolve_vendor(reading.device_id)

    def _hold_bulk(self, hold: bool) -> None:
        """While alarms are turned into pages (at most MAX_HOLD_S at a time): pause the
        telemetry connection (the alarm connection keeps reading) and the cyclic garbage
        collector, whose runs stop the loop for 15–55 ms under load (measured with gc
        callbacks during benchmarks/alarm_latency.py)."""
        if hold:
            gc.disable()
        else:
            gc.enable()
        if self.cluster is not None:
            for session in self.cluster.bulk_sessions():
                if hold:
                    session.pause_reading()
                else:
                    session.resume_reading()
            return
        if len(self.sessions_mqtt) < 2:
            return
        if hold:
            self.mqtt.pause_reading()
        else:
            self.mqtt.resume_reading()

    def _on_reading(self, reading: Reading, ctx: DeviceContext, now_ms: int) -> None:
        self.status.update(reading, ctx)
        self.commands.observe(reading, ctx)
        self.alerts.on_reading(reading, ctx, now_ms)

    async def _publish_confirmed(self, topic: str, payload: bytes, qos: int) -> None:
        await self.mqtt_out.publish_confirmed(topic, payload, qos)

    async def _publish_command(self, topic: str, payload: bytes, qos: int) -> None:
        await self.mqtt_out.publish_confirmed(topic, payload, qos)

    # -- running -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Start everything and run until cancelled; then shut down cleanly, flushing."""
        await self.start()
        tune_gc()
        stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tasks = tg
                if self.cluster is not None:
                    tg.create_task(self.cluster.run(stop), name="partition-leases")
                for session in self.sessions_mqtt:
                    tg.create_task(session.run(), name=f"mqtt {session.client_id}")
                tg.create_task(self.ingest.run(), name="ingest-flush")
                tg.create_task(self.alerts.run_worker(), name="alert-worker")
                tg.create_task(self.alerts.run_timers(), name="alert-timers")
                tg.create_task(self.alerts.run_escalation(stop), name="escalation")
                tg.create_task(self.loop.watch.run(stop), name="loop-deadlines")
                tg.create_task(self.commands.run_loop(stop), name="device-commands")
                if self.spool is not None:
                    tg.create_task(self.spool.replay(), name="spool-replay")
                if (db_file := sqlite_path(self.settings.database.url)) is not None:
                    tg.create_task(keep_wal_short(db_file), name="db-checkpoint")
                tg.create_task(self._serve_api(), name="api")
        finally:
            stop.set()
            await self._shutdown()

    async def _serve_api(self) -> None:
        from api.app import create_app
        from api.server import serve

        def started(port: int) -> None:
            self.api_port = port
            self.ready.set()

        streams: list[int] = []
        services = self.api_services()
        app = create_app(services)
        if self.cluster is not None:
            from api.incident_view import publish_incident

            # Incidents changed by the other instances, on this instance's board too.
            self.cluster.feed.on_incident = lambda incident_id: publish_incident(
                services, incident_id
            )
        try:
            await serve(
                app,
                self.settings.api.host,
                self.settings.api.port,
                started,
                lambda: streams.append(self.live.close()),
            )
        finally:
            if streams:
                stopped_log.info("API and board stopped (%d live page(s) closed)", streams[0])

    async def _shutdown(self) -> None:
        """Stop receiving, store what was received, acknowledge it, then close the stores.

        Bounded by ``shutdown_timeout_s``: past it, what is not stored stays unacknowledged
        at the broker, which delivers it again to the next run."""
        try:
            async with asyncio.timeout(self.settings.shutdown_timeout_s):
                await self._finish_work()
        except TimeoutError:
            log.error(  # noqa: TRY400 - the timeout is the news, its traceback is not
                "shutdown: not everything was stored within %.0f s; the broker keeps the "
                "unacknowledged messages for the next run",
                self.settings.shutdown_timeout_s,
            )
        # Each close bounded: a store or peer that never answers must not keep the process
        # (or a supervisor waiting on it) from exiting.
        await _close_within("time-series writer", self.writer.close())
        await _close_within("HTTP client", self.http.aclose())
        if self.webpush is not None:
            await _close_within("web push client", self.webpush.aclose())
        await _close_within("database", self.db.dispose())
        if self.alarm_db is not None:
            await _close_within("alarm database", self.alarm_db.dispose())
        stopped_log.info("stores closed")

    async def _finish_work(self) -> None:
        with contextlib.suppress(Exception):
            # Pages on their way out get their broker's acknowledgement before MQTT closes.
            if left := await self.escalation.finish_sending(3.0):
                log.warning("%d deliveries still sending at shutdown; resent after restart", left)
        if self.cluster is not None:
            # Every partition handed over now (stored, acknowledged, rule state saved), so the
            # other instances take them at their next renewal rather than after the lease.
            await self.cluster.lease.release_all()
            stopped_log.info("partitions handed over")
        for session in self.sessions_mqtt:
            with contextlib.suppress(Exception):
                await session.close()
        stopped_log.info("MQTT sessions closed")
        with contextlib.suppress(Exception):
            await self.alerts.drain()
        try:
            await self.ingest.flush()
        except Exception:
            log.exception("final flush failed; the broker keeps the unacknowledged messages")
        with contextlib.suppress(Exception):
            await self.engine.checkpoint(self.clock.now_ms(), clean=True)
        stopped_log.info("readings stored and acknowledged; alert state saved")

    def api_services(self) -> Any:
        from functools import partial

        from alerting.incidents.silences import SilenceService
        from alerting.routing.router import route_test
        from api.login_guard import LoginConfig
        from api.rule_control import PersistentRuleControl
        from api.services import ApiConfig, ApiServices

        a = self.settings.api
        esc = self.settings.alerting.escalation
        return ApiServices(
            sessions=self.sessions,
            incidents=self.incidents,
            silences=SilenceService(self.sessions, self.clock),
            rules=PersistentRuleControl(
                self.rules, self.sessions, self.clock, self.engine.replace_rules
            ),
            quarantine=self.quarantine,
            timeseries=self.store,
            live=self.live,
            clock=self.clock,
            config=ApiConfig(
                secret_key=a.secret_key.get_secret_value(),
                token_ttl_s=a.token_ttl_s,
                refresh_ttl_s=a.refresh_ttl_s,
                service_tokens={k: v.get_secret_value() for k, v in a.service_tokens.items()},
                metrics_token=a.metrics_token.get_secret_value() if a.metrics_token else None,
                login=LoginConfig(**a.login.model_dump()),
                ack_deadline_s={
                    "critical": esc.critical_ack_s,
                    "major": esc.major_ack_s,
                    "minor": esc.minor_ack_s,
                    "info": 0,
                },
            ),
            health=self.health.components_async,
            metrics=self.health.metrics(),
            listen_incidents=self.alerts.listen,
            token_clock=SystemClock() if hasattr(self.clock, "speed") else None,
            registry=self.registry,
            route_tester=partial(route_test, self.directory, policy=self.policy),
            device_status=self.status.get,
            receipt_secret=(
                n.receipt_secret.get_secret_value()
                if (n := self.settings.notify).receipt_secret
                else None
            ),
            poke_escalation=self.escalation.poke,
            loop=self.loop.services,
            risk_tiers=self.settings.alerting.tier_policy().tiers,
            push_public_key=self.push_public_key,
            push_allow_http=self.settings.notify.webpush_allow_http,
            device_types=frozenset(self.profiles.device_types()),
            commands=self.commands,
        )


def routing_policy(settings: Settings) -> RoutingPolicy:
    """The default route tree with ladders escalating after the configured deadlines."""
    esc = settings.alerting.escalation
    return RoutingPolicy(
        ladders=default_ladders(
            esc.critical_ack_s * 1000, esc.major_ack_s * 1000, esc.minor_ack_s * 1000
        )
    )


CLOSE_TIMEOUT_S = 5.0


async def _close_within(what: str, closing: Coroutine[Any, Any, object]) -> None:
    """Await one close at shutdown for at most CLOSE_TIMEOUT_S; a failure is logged, not raised."""
    try:
        await asyncio.wait_for(closing, CLOSE_TIMEOUT_S)
    except TimeoutError:
        log.warning("shutdown: closing the %s took over %.0f s; left", what, CLOSE_TIMEOUT_S)
    except Exception as exc:  # shutting down: report it and go on closing the rest
        log.warning("shutdown: closing the %s failed: %s", what, exc)
