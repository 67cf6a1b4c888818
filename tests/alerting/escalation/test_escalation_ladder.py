"""The escalation ladder over real SQLite and PostgreSQL with a hand-moved clock, including a
restart between steps and a delivery that finally fails."""

from __future__ import annotations

from sqlalchemy import select

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents import IncidentService, Resolution
from alerting.models import Severity
from alerting.notify.stages import DeliveryPipeline, RetryPolicy
from alerting.notify.tables import DeliveryRow
from alerting.routing.directory import ChannelKind
from core.clock import ManualClock
from tests.alerting.incidents.incident_support import (
    MIN,
    T0,
    RecordingNotifier,
    ctx,
    directory,
    no_sleep,
    open_db,
    transition,
)


def stack(sm, clock, notifier=None):  # type: ignore[no-untyped-def]
    notifier = notifier or RecordingNotifier()
    pipeline = DeliveryPipeline(
        sm, clock, {ChannelKind.APP: notifier}, sleep=no_sleep, retry=RetryPolicy(attempts=3)
    )
    scheduler = EscalationScheduler(sm, clock, directory(), pipeline)
    return IncidentService(sm, clock), scheduler, notifier


async def test_critical_sos_ladder_ack_stops_it_then_reminders(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler, notifier = stack(sm, clock)
        c = ctx("SOS-1", "sos")
        change = await service.apply(transition("sos.button", c, T0), c)
        assert change is not None
        assert change.pages
        await scheduler.due(T0)
        assert notifier.people("0") == ["bl1", "duty1", "fam1", "gw1"]
        await scheduler.due(T0 + 2 * MIN - 1)
        assert notifier.people("1") == []
        await scheduler.due(T0 + 2 * MIN)
        assert notifier.people("1") == ["bk1", "sec1"]
        clock.set(T0 + 3 * MIN)
        await service.acknowledge(change.incident_id, "gw1", "on my way")
        await scheduler.due(T0 + 10 * MIN)
        assert len(notifier.sent) == 6  # acknowledged: the ladder stopped
        await scheduler.due(T0 + 3 * MIN + 30 * MIN)
        assert notifier.people("remind1") == ["gw1"]
        assert notifier.sent[-1].kind == "reminder"
        clock.set(T0 + 40 * MIN)
        await service.resolve(
            change.incident_id,
            "gw1",
            Resolution.REAL_EMERGENCY,
            "neighbour helped",
            inform_household=True,
        )
        await scheduler.due(clock.now_ms())
        assert notifier.people("outcome") == ["fam1"]
        await scheduler.due(T0 + 10 * 60 * MIN)
        assert len(notifier.sent) == 8  # resolved: no more reminders


async def test_restart_continues_the_ladder_on_time_without_resending(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler, notifier = stack(sm, clock)
        c = ctx("GATE-1", "gate")
        change = await service.apply(
            transition("gate.door_forced", c, T0, severity=Severity.MAJOR), c
        )
        assert change is not None
        await scheduler.due(T0)
        assert notifier.people() == ["gw1"]
    # the process is gone; new objects over the same database
    async with open_db(db_url) as sm:
        clock = ManualClock(T0 + 4 * MIN)
        _, scheduler, notifier = stack(sm, clock)
        await scheduler.due(T0)  # re-running the old step sends nothing again
        await scheduler.due(T0 + 10 * MIN - 1)
        assert notifier.sent == []
        await scheduler.due(T0 + 10 * MIN)
        assert notifier.people() == ["bk1", "bl1"]
        await scheduler.due(T0 + 20 * MIN)
        assert notifier.people("2") == ["duty1"]
        async with sm() as s:
            keys = list(
                (
                    await s.execute(select(DeliveryRow.idempotency_key).order_by(DeliveryRow.id))
                ).scalars()
            )
        iid = change.incident_id
        assert keys == [
            f"{iid}:0:gw1:app",
            f"{iid}:1:bk1:app",
            f"{iid}:1:bl1:app",
            f"{iid}:2:duty1:app",
        ]


async def test_crash_after_planning_sends_leftovers_once(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler, _ = stack(sm, clock)
        c = ctx()
        change = await service.apply(transition("smoke.alarm", c, T0), c)
        assert change is not None
        ran, planned = await scheduler._process(change.incident_id, T0)  # crash before sending
        assert ran == 1
        assert len(planned) == 3
    async with open_db(db_url) as sm:
        clock = ManualClock(T0 + 30_000)
        _, scheduler, notifier = stack(sm, clock)
        assert await scheduler.deliver_pending() == 3
        await scheduler.deliver_pending()
        await scheduler.due(clock.now_ms())
        assert notifier.people() == ["bl1", "duty1", "gw1"]


async def test_a_delivery_that_finally_fails_escalates_at_once(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler, notifier = stack(sm, clock, RecordingNotifier(fail={"gw1"}))
        c = ctx("GATE-1", "gate")
        change = await service.apply(
            transition("gate.door_forced", c, T0, severity=Severity.MAJOR), c
        )
        assert change is not None
        await scheduler.due(T0)
        assert notifier.people() == ["bk1", "bl1"]  # step 1 without waiting 10 minutes
        detail = await service.get(change.incident_id)
        failed = [d for d in detail.deliveries if d.status == "failed"]
        assert [(d.person_id, d.attempts) for d in failed] == [("gw1", 3)]
        assert {"delivery_failed", "escalating"} <= {e.kind for e in detail.events}


async def test_run_loop_pages_when_poked_and_stops(sqlite_url: str) -> None:
    import asyncio

    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        service, scheduler, notifier = stack(sm, clock)
        stop = asyncio.Event()
        loop = asyncio.create_task(scheduler.run(stop, tick_s=30))
        c = ctx()
        change = await service.apply(transition("smoke.alarm", c, T0), c)
        assert change is not None
        assert change.pages
        scheduler.poke()
        for _ in range(100):
            if len(notifier.sent) == 3:
                break
            await asyncio.sleep(0.02)
        assert notifier.people("0") == ["bl1", "duty1", "gw1"]
        stop.set()
        await asyncio.wait_for(loop, 2)
