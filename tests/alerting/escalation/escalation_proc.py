"""A minimal gateway process for the SIGKILL test: opens a critical incident (``open``) or only
resumes (``resume``), then runs the escalation loop on the wall clock until killed."""

from __future__ import annotations

import asyncio
import sys

import httpx

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents import IncidentService
from alerting.notify.stages import DeliveryPipeline
from alerting.notify.webhook import WebhookNotifier
from alerting.routing import ChannelKind, RoutingPolicy, Shift, default_ladders
from core.clock import SystemClock
from core.db import Base, make_engine, make_sessionmaker
from tests.alerting.incidents.incident_support import ctx, directory, transition


async def main(mode: str, db_url: str, hook_url: str, deadline_ms: int) -> None:
    engine = make_engine(db_url)
    if mode == "open":
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
    sm = make_sessionmaker(engine)
    clock = SystemClock()
    policy = RoutingPolicy(ladders=default_ladders(critical_ms=deadline_ms))
    async with httpx.AsyncClient(timeout=5) as client:
        pipeline = DeliveryPipeline(sm, clock, {ChannelKind.WEBHOOK: WebhookNotifier(client)})
        people = directory(url=hook_url, kinds=(ChannelKind.WEBHOOK,))
        now = clock.now_ms()  # the roster must cover the wall clock here
        people.roster = [Shift("demo", "duty1", now - 3_600_000, now + 3_600_000)]
        scheduler = EscalationScheduler(sm, clock, people, pipeline)
        if mode == "open":
            c = ctx()
            await IncidentService(sm, clock, policy=policy).apply(
                transition("smoke.alarm", c, clock.now_ms()), c
            )
        print("running", flush=True)
        await scheduler.run(asyncio.Event(), tick_s=0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
