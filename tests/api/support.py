"""Builds the API over a real database with the sample community (api and browser tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

import alerting.incidents.tables
import api.audit
import gateway.quarantine  # noqa: F401 - registers its table on Base
from alerting.incidents import IncidentService, SilenceService
from alerting.loop.config import load_loop_config
from alerting.loop.desk import LoopDesk
from alerting.loop.messages import LoopMessenger
from alerting.loop.services import LoopServices
from alerting.models import AlertState, AlertTransition, Category, Severity
from alerting.routing.directory import InMemoryDirectory
from alerting.routing.router import route_test
from alerting.rules import load_rules
from api.rule_control import RuleSetControl
from api.services import ApiConfig, ApiServices
from core.clock import Clock
from core.db import Base, make_engine, make_sessionmaker
from gateway.live import LiveHub
from gateway.migrations.runner import upgrade
from gateway.quarantine import Quarantine
from gateway.registry import Registry, apply, load_community_yaml
from gateway.sample import demo_community_path
from gateway.storage.embedded import EmbeddedStore

DEMO_PASSWORD = "yangguang-demo"
SECRET = "test-secret-key-that-is-long-enough-0123456789"
SERVICE_TOKEN = "svc-token-for-the-integration-tests-0123456789"
METRICS_TOKEN = "metrics-token-for-the-scraper-tests-0123456789"
SITE = "demo"
G1_DEVICE = "smk-b01-u1-f1"  # grid g1, building b01
G2_DEVICE = "smk-b04-u1-f1"  # grid g2
USERS = {
    "admin": "admin",
    "secretary": "secretary-guo",
    "duty": "duty-sun",
    "worker_g1": "zhang-min",
    "worker_g2": "wang-fang",
    "leader_b01": "leader-b01",
}


async def prepare_db(url: str) -> None:
    """Migrate, create the tables not yet in migrations, load the sample community."""
    assert alerting.incidents.tables
    assert api.audit
    await upgrade(url)
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = make_sessionmaker(engine)
        async with sessions() as session:
            await apply(session, load_community_yaml(demo_community_path()))
            await session.commit()
    finally:
        await engine.dispose()


@dataclass
class Env:
    """What a test drives: the services behind the API and the pieces it pokes directly."""

    engine: AsyncEngine
    services: ApiServices
    incident_service: IncidentService
    registry: Registry
    store: EmbeddedStore
    clock: Clock

    async def open_incident(
        self,
        device_id: str = G1_DEVICE,
        *,
        rule_id: str = "smoke.alarm",
        severity: Severity = Severity.CRITICAL,
        title: str = "烟感报警",
    ) -> int:
        """Open an incident the way the pipeline does: an alert transition into the service."""
        ctx = self.registry.context(SITE, device_id)
        assert ctx is not None, device_id
        now = self.clock.now_ms()
        change = await self.incident_service.apply(
            AlertTransition(
                rule_id=rule_id,
                subject=device_id,
                site=SITE,
                device_id=device_id,
                state=AlertState.FIRING,
                severity=severity,
                category=Category.SAFETY,
                title=title,
                at_ms=now,
                dedupe_key=f"{rule_id}:{SITE}:{device_id}",
                reading_ts_ms=now,
                reading_seq=1,
            ),
            ctx,
        )
        assert change is not None
        async with self.services.sessions() as session:
            row = await session.get(alerting.incidents.tables.IncidentRow, change.incident_id)
            assert row is not None
            from api.incident_view import publish

            publish(self.services.live, row)
        return change.incident_id

    async def close(self) -> None:
        await self.store.close()
        await self.engine.dispose()


async def build_env(url: str, tmp_path: Path, clock: Clock, health: Any = None) -> Env:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    registry = Registry(sessions)
    await registry.load()
    store = EmbeddedStore(tmp_path / "timeseries.db")
    incidents = IncidentService(sessions, clock)
    directory = InMemoryDirectory()

    async def default_health() -> dict[str, dict[str, Any]]:
        return {"database": {"status": "ok"}, "mqtt": {"status": "ok", "detail": "test"}}

    def tester(ctx: Any, **kw: Any) -> Any:
        return route_test(directory, ctx, **kw)

    services = ApiServices(
        sessions=sessions,
        incidents=incidents,
        silences=SilenceService(sessions, clock),
        rules=RuleSetControl(load_rules()),
        quarantine=Quarantine(sessions),
        timeseries=store,
        live=LiveHub(),
        clock=clock,
        config=ApiConfig(
            secret_key=SECRET,
            service_tokens={"integration": SERVICE_TOKEN},
            metrics_token=METRICS_TOKEN,
        ),
        health=health or default_health,
        metrics=CollectorRegistry(),
        registry=registry,
        route_tester=tester,
        loop=LoopServices(  # the shipped departments; no channel to send on (tests add one)
            LoopDesk(load_loop_config()), LoopMessenger({}), tmp_path / "photos"
        ),
    )
    return Env(engine, services, incidents, registry, store, clock)
