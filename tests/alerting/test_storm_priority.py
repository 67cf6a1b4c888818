"""A storm of one rule on the alert path: one grouped incident, one page per person, and a
smoke alarm that arrives while the storm is being handled goes before the storm's work."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents import IncidentService
from alerting.incidents.service import ChangeKind, IncidentChange
from alerting.incidents.storm import StormControl
from alerting.incidents.tables import IncidentDeviceRow, IncidentRow
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

PORTS = 300


async def test_storm_is_one_incident_and_an_alarm_jumps_the_storm_queue(sqlite_url: str) -> None:
    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        notifier = RecordingNotifier()
        delivery = DeliveryPipeline(sm, clock, {ChannelKind.APP: notifier}, sleep=no_sleep)
        scheduler = EscalationScheduler(sm, clock, directory(), delivery)
        engine = RuleEngine(load_rules(), grace_ms=0)
        devices = {f"CP-{i:03d}": ctx(f"CP-{i:03d}", "charger") for i in range(PORTS)}
        devices["SD-0001"] = ctx("SD-0001")
        for device in devices.values():
            engine.register_device(device, T0)
        engine.start(T0)
        incidents = IncidentService(sm, clock, storm=StormControl(threshold=10))
        alerts = AlertPipeline(
            sm, engine, incidents, scheduler, clock, lambda _site, d: devices.get(d)
        )
        order: list[IncidentChange] = []
        alerts.listen(order.append)
        worker = asyncio.create_task(alerts.run_worker())
        try:
            for i, (device_id, device) in enumerate(devices.items()):
                if device_id.startswith("CP-"):  # a wrong power limit on every pile
                    reading = Reading(
                        "demo",
                        "charger",
                        device_id,
                        "telemetry",
                        T0,
                        i,
                        {"port": 1, "power_w": 1500.0},
                    )
                    alerts.on_reading(reading, device, T0)
            for _ in range(20):  # the worker is into the storm's first batches
                await asyncio.sleep(0)
            assert alerts.backlog > 100
            before_alarm = len(order)
            alarm = Reading("demo", "smoke", "SD-0001", "event", T0, 1, {}, "alarm")
            alerts.on_reading(alarm, devices["SD-0001"], T0)
            assert await alerts.settled(timeout_s=60)
            # Ingest acknowledges its messages once the alarm is handled: it does not wait
            # for the storm's queue (the next reading raises a threshold alert again).
            assert any(c.severity.value == "critical" for c in order)
            assert alerts.backlog > 50, "acknowledging waited for the storm's work"
            for _ in range(6000):  # the storm's work goes on after the alarm
                if (
                    not alerts.backlog
                    and sum(c.kind is ChangeKind.ATTACHED for c in order) >= PORTS - 11
                ):
                    break
                await asyncio.sleep(0.01)
            assert await scheduler.finish_sending(10) == 0
        finally:
            worker.cancel()

        fire = next(i for i, c in enumerate(order) if c.severity.value == "critical")
        # At most the storm batch under way when it came in (50), not the 100+ queued behind.
        assert fire - before_alarm <= 50, f"the smoke alarm waited for {fire - before_alarm}"
        assert len(order) - fire > 100, "the storm's remaining work came after the alarm"
        async with sm() as s:
            storm = (await s.scalars(select(IncidentRow).where(IncidentRow.kind == "storm"))).one()
            members = await s.scalar(
                select(func.count()).where(IncidentDeviceRow.incident_id == storm.id)
            )
        assert (storm.rule_id, members) == ("charger.over_power", PORTS)
        assert sum(c.kind is ChangeKind.ATTACHED for c in order) >= PORTS - 11
        pages = Counter(
            d.person_id for d in notifier.sent if d.incident.get("type") == "charger.over_power"
        )
        assert pages and max(pages.values()) <= 2, pages  # the first port, then the storm
        assert any(d.incident.get("type") == "smoke.alarm" for d in notifier.sent)


async def test_thousands_of_charging_sessions_starting_queue_no_work_before_a_fire(
    sqlite_url: str,
) -> None:
    """Every port that starts charging starts the 8-hour session timer (a pending alert): that
    is the rule engine's business, not the incident worker's. Queued, 4,000 ports starting at
    once held a fire alarm behind their batches (fleet_bench: 132 ms before its turn)."""
    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        notifier = RecordingNotifier()
        delivery = DeliveryPipeline(sm, clock, {ChannelKind.APP: notifier}, sleep=no_sleep)
        scheduler = EscalationScheduler(sm, clock, directory(), delivery)
        engine = RuleEngine(load_rules(), grace_ms=0)
        devices = {f"CP-{i:03d}": ctx(f"CP-{i:03d}", "charger") for i in range(PORTS)}
        devices["SD-0001"] = ctx("SD-0001")
        for device in devices.values():
            engine.register_device(device, T0)
        engine.start(T0)
        alerts = AlertPipeline(
            sm, engine, IncidentService(sm, clock), scheduler, clock, lambda _s, d: devices.get(d)
        )
        worker = asyncio.create_task(alerts.run_worker())
        try:
            for i, (device_id, device) in enumerate(devices.items()):
                if device_id.startswith("CP-"):
                    reading = Reading(
                        "demo", "charger", device_id, "telemetry", T0, i,
                        {"port": 1, "state": "charging", "power_w": 400.0},
                    )  # fmt: skip
                    alerts.on_reading(reading, device, T0)
            assert alerts.backlog == 0, "session timers starting queued incident work"
            assert alerts.transitions >= PORTS, "each port's session timer started"
            alerts.on_reading(
                Reading("demo", "smoke", "SD-0001", "event", T0, 1, {}, "alarm"),
                devices["SD-0001"],
                T0,
            )
            assert await alerts.settled(timeout_s=10)
            assert await scheduler.finish_sending(10) == 0
        finally:
            worker.cancel()
        assert [d.incident.get("type") for d in notifier.sent][:1] == ["smoke.alarm"]
        # Eight hours later the sessions still running do open their incidents.
        clock.advance(8 * 3600 * 1000 + 1000)
        assert any(t.rule_id == "charger.session_too_long" for t in engine.tick(clock.now_ms()))
