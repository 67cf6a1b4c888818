"""Fencing on a real PostgreSQL: when two instances briefly both believe they own a partition,
the database lets exactly one of them act — a stale owner's escalation step is refused by its
lease epoch, and a second open of the same alarm becomes a repeat of the one incident."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents import IncidentService
from alerting.incidents.tables import IncidentEventRow, IncidentRow
from alerting.notify.stages import DeliveryPipeline
from alerting.notify.tables import DeliveryRow
from alerting.routing import ChannelKind, RoutingPolicy, default_ladders
from alerting.scope import SiteFence
from core.clock import ManualClock
from core.db import make_engine, make_sessionmaker
from gateway.cluster.lease import LeaseManager
from gateway.cluster.partitions import VENDOR, partition_of
from gateway.migrations import runner as migrate
from tests.alerting.incidents.incident_support import (
    MIN,
    SITE,
    T0,
    RecordingNotifier,
    ctx,
    directory,
    transition,
)


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    await migrate.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    yield engine
    await engine.dispose()


def manager(db: AsyncEngine, name: str) -> LeaseManager:
    async def partitions() -> list[str]:
        return [SITE, VENDOR]

    return LeaseManager(db, name, partitions, lease_s=1.0, renew_s=0.3)


def fence_of(lease: LeaseManager) -> SiteFence:
    async def fence(session: AsyncSession, site: str) -> None:
        await lease.check(await session.connection(), partition_of(site, "site"))

    return fence


def scheduler(
    sm: async_sessionmaker[AsyncSession], clock: ManualClock, lease: LeaseManager, sent: RecordingNotifier
) -> EscalationScheduler:
    pipeline = DeliveryPipeline(sm, clock, {ChannelKind.WEBHOOK: sent}, instance=lease.instance_id)
    people = directory(kinds=(ChannelKind.WEBHOOK,))
    return EscalationScheduler(sm, clock, people, pipeline, fence=fence_of(lease))


async def count(sm: async_sessionmaker[AsyncSession], kind: str) -> int:
    async with sm() as s:
        return int(
            await s.scalar(select(func.count()).where(IncidentEventRow.kind == kind)) or 0
        )


async def test_a_stale_owner_s_escalation_step_is_refused_and_the_owner_runs_it_once(
    db: AsyncEngine,
) -> None:
    sm = make_sessionmaker(db)
    clock = ManualClock(T0)
    a, b = manager(db, "a"), manager(db, "b")
    await a.cycle()
    assert a.owns(SITE)
    sent_a, sent_b = RecordingNotifier(), RecordingNotifier()
    esc_a, esc_b = scheduler(sm, clock, a, sent_a), scheduler(sm, clock, b, sent_b)
    policy = RoutingPolicy(ladders=default_ladders(critical_ms=2 * MIN))
    c = ctx()
    await IncidentService(sm, clock, policy=policy).apply(transition("smoke.alarm", c, T0), c)
    assert await esc_a.due(T0) == 1  # step 0 by the owner
    assert await count(sm, "notified") == 1

    # a stalls past its lease; b takes the partition over (a still believes it owns it).
    await asyncio.sleep(1.2)
    await b.cycle()
    assert b.owns(SITE) and a.owns(SITE)
    clock.advance(2 * MIN + 1)
    assert await esc_a.due(clock.now_ms()) == 0  # refused by the lease epoch
    assert await count(sm, "escalated") == 0
    assert sent_a.people(step="1") == []
    assert await esc_b.due(clock.now_ms()) == 1  # the owner runs step 1 ...
    assert await esc_a.due(clock.now_ms()) == 0  # ... once
    assert await esc_b.due(clock.now_ms()) == 0
    assert await count(sm, "escalated") == 1
    assert sent_b.people(step="1") and sent_a.people(step="1") == []


async def test_two_instances_opening_one_alarm_make_one_incident_paged_once(
    db: AsyncEngine,
) -> None:
    """The alarm path is not fenced by the epoch on purpose: an alarm a stale owner has
    received may already be acknowledged to the broker, so refusing it could lose it. The
    unique active key makes the second open a repeat and the deliveries' idempotency keys
    make each page one row, so both instances acting gives one incident and one page each."""
    sm = make_sessionmaker(db)
    clock = ManualClock(T0)
    policy = RoutingPolicy(ladders=default_ladders(critical_ms=2 * MIN))
    c = ctx()
    t = transition("smoke.alarm", c, T0)
    results = await asyncio.gather(
        IncidentService(sm, clock, policy=policy).apply(t, c),
        IncidentService(sm, clock, policy=policy).apply(t, c),
    )
    assert all(r is not None for r in results)
    async with sm() as s:
        assert await s.scalar(select(func.count()).select_from(IncidentRow)) == 1
    assert await count(sm, "opened") == 1
    assert await count(sm, "repeated") == 1
    sent = RecordingNotifier()
    a, b = manager(db, "a"), manager(db, "b")
    await a.cycle()
    await b.cycle()
    owner = a if a.owns(SITE) else b
    esc_1, esc_2 = scheduler(sm, clock, owner, sent), scheduler(sm, clock, owner, sent)
    await asyncio.gather(esc_1.due(T0), esc_2.due(T0))
    async with sm() as s:
        keys = list((await s.execute(select(DeliveryRow.idempotency_key))).scalars())
    assert keys and len(keys) == len(set(keys))
    assert len(sent.sent) == len(keys)  # each page sent once
    assert await count(sm, "notified") == 1
