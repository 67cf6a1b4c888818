"""The alert path as the gateway wires it: an alarm reading opens its incident with the first
pages on their way, and ingest can wait for that before the broker forgets the message."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents import IncidentService
from alerting.incidents.tables import IncidentRow
from alerting.notify.stages import DeliveryPipeline
from alerting.pipeline import AlertPipeline
from alerting.routing.directory import ChannelKind
from alerting.rules import RuleEngine, load_rules
from core.clock import ManualClock
from core.readings import Reading
from tests.alerting.incidents.incident_support import (
    T0,
    RecordingNotifier,
    ctx,
    directory,
    no_sleep,
    open_db,
)


def alert_path(sm, clock, notifier, **kw):  # type: ignore[no-untyped-def]
    """The alert path as the gateway wires it, for one smoke detector SD-0001."""
    pipeline = DeliveryPipeline(sm, clock, {ChannelKind.APP: notifier}, sleep=no_sleep)
    scheduler = EscalationScheduler(sm, clock, directory(), pipeline)
    engine = RuleEngine(load_rules(), grace_ms=0)
    detector = ctx("SD-0001")
    engine.register_device(detector, T0)
    engine.start(T0)
    incidents = IncidentService(sm, clock)
    alerts = AlertPipeline(sm, engine, incidents, scheduler, clock, lambda *_: detector, **kw)
    return alerts, scheduler, detector


async def test_settled_waits_until_the_alarm_has_opened_its_incident(sqlite_url: str) -> None:
    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        notifier = RecordingNotifier()
        held: list[bool] = []
        alerts, scheduler, detector = alert_path(sm, clock, notifier, hold_bulk=held.append)
        alarm = Reading("demo", "smoke", "SD-0001", "event", T0, 41, {}, "alarm")
        alerts.on_reading(alarm, detector, T0)
        assert alerts.backlog == 1
        # No worker yet: an acknowledgement now could lose the alarm, so settled says no.
        assert await alerts.settled(timeout_s=0.1) is False
        worker = asyncio.create_task(alerts.run_worker())
        try:
            assert await alerts.settled(timeout_s=5) is True
            assert alerts.backlog == 0
            assert await scheduler.finish_sending(5) == 0
            assert notifier.people("0") == ["bl1", "duty1", "gw1"]
            assert held == [True, False]  # telemetry paused while paging, then resumed
            # nothing new queued: settled answers at once
            assert await alerts.settled(timeout_s=0.01) is True
        finally:
            worker.cancel()


@pytest.mark.allow_logged_exceptions
async def test_a_failed_incident_does_not_silence_the_detectors_next_alarm(sqlite_url: str) -> None:
    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        alerts, _scheduler, detector = alert_path(sm, clock, RecordingNotifier())
        worker = asyncio.create_task(alerts.run_worker())
        try:
            # The database loses the incident table for a moment (a bad migration, a DBA):
            # the first alarm cannot open its incident.
            async with sm() as s:
                await s.execute(text("ALTER TABLE incident RENAME TO incident_away"))
                await s.commit()
            alerts.on_reading(Reading("demo", "smoke", "SD-0001", "event", T0, 1, {}, "alarm"), detector, T0)
            assert await alerts.settled(timeout_s=5)
            assert alerts.failures == 1
            async with sm() as s:
                await s.execute(text("ALTER TABLE incident_away RENAME TO incident"))
                await s.commit()
            # The same detector alarms again a second later: it must open an incident, not be
            # taken as a repeat of an alert that never became one.
            clock.advance(1000)
            alerts.on_reading(
                Reading("demo", "smoke", "SD-0001", "event", T0 + 1000, 2, {}, "alarm"),
                detector,
                T0 + 1000,
            )
            assert await alerts.settled(timeout_s=5)
            async with sm() as s:
                rows = (await s.scalars(select(IncidentRow))).all()
            assert [(r.device_id, r.reading_seq) for r in rows] == [("SD-0001", 2)]
        finally:
            worker.cancel()
