"""One incident per hazard of a device: a fire seen by smoke, static heat and rate of rise at
one detector is one incident that lists every reason and pages each person once."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from alerting.incidents.tables import IncidentEventRow, IncidentRow
from core.clock import ManualClock
from core.readings import Reading
from tests.alerting.incidents.incident_support import T0, RecordingNotifier, open_db
from tests.alerting.test_alert_pipeline import alert_path


def reading(seq: int, at: int, smoke: float, temp: float) -> Reading:
    fields = {"smoke_dbm": smoke, "temp_c": temp, "battery_pct": 80}
    return Reading("demo", "smoke", "SD-0001", "telemetry", at, seq, fields)


async def test_smoke_heat_and_rate_of_rise_at_one_detector_are_one_fire(sqlite_url: str) -> None:
    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        notifier = RecordingNotifier()
        alerts, scheduler, detector = alert_path(sm, clock, notifier)
        worker = asyncio.create_task(alerts.run_worker())
        try:
            # Smoke past 0.2 dB/m; 30 s later 58 °C: past 56 °C and 12 °C up within a minute.
            for seq, (dt, smoke, temp) in enumerate(
                [(0, 0.05, 40.0), (10_000, 0.4, 46.0), (40_000, 0.6, 58.0)]
            ):
                clock.set(T0 + dt)
                alerts.on_reading(reading(seq, T0 + dt, smoke, temp), detector, T0 + dt)
                assert await alerts.settled(timeout_s=5)
            assert await scheduler.finish_sending(5) == 0
        finally:
            worker.cancel()
        async with sm() as s:
            incidents = list(await s.scalars(select(IncidentRow)))
            events = list(await s.scalars(select(IncidentEventRow.kind)))
        assert len(incidents) == 1, [(i.rule_id, i.dedupe_key) for i in incidents]
        fire = incidents[0]
        assert fire.dedupe_key == "hazard.fire:SD-0001"
        rules = [r["rule"] for r in fire.reasons]
        assert rules[0] == fire.rule_id == "smoke.obscuration"
        assert sorted(rules[1:]) == ["smoke.heat_ror", "smoke.heat_static"]
        assert events.count("reason_added") == 2
        # Paged once: one page per person, not one per rule.
        assert notifier.people() == ["bl1", "duty1", "gw1"]
        assert fire.card["guidance"].startswith("先拨119")
