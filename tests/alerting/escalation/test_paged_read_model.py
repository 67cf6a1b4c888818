"""The read model says who each ladder step paged and whether the page got anywhere: a page that
failed for good or had no channel is not "notified" (issue 11 item 10)."""

from __future__ import annotations

from sqlalchemy import select

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents import IncidentService
from alerting.incidents.tables import IncidentEventRow, IncidentRow
from alerting.incidents.views import IncidentView
from alerting.notify.stages import DeliveryPipeline, RetryPolicy
from alerting.notify.tables import DeliveryRow
from alerting.routing.directory import ChannelKind, Recipient
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


async def _view(sm, incident_id: int) -> IncidentView:  # type: ignore[no-untyped-def]
    async with sm() as s:
        row = await s.get(IncidentRow, incident_id)
        events = (
            await s.scalars(
                select(IncidentEventRow).where(IncidentEventRow.incident_id == incident_id)
            )
        ).all()
        deliveries = (
            await s.scalars(select(DeliveryRow).where(DeliveryRow.incident_id == incident_id))
        ).all()
    return IncidentView.of(row).with_situation(events, deliveries, {"critical": 120})


async def test_paged_people_with_delivered_failed_and_no_channel(sqlite_url: str) -> None:
    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        notifier = RecordingNotifier(fail={"bl1"})
        pipeline = DeliveryPipeline(
            sm, clock, {ChannelKind.APP: notifier}, sleep=no_sleep, retry=RetryPolicy(attempts=2)
        )
        people = directory()
        people.people["fam1"] = Recipient("fam1", "何红(儿子)", ())  # no way to reach them
        scheduler = EscalationScheduler(sm, clock, people, pipeline)
        service = IncidentService(sm, clock)
        c = ctx("SOS-1", "sos")
        change = await service.apply(transition("sos.button", c, T0), c)
        assert change is not None
        await scheduler.due(T0)

        view = await _view(sm, change.incident_id)
        paged = {p.person_id: p for p in view.paged}
        assert paged["gw1"].delivery == "delivered"
        assert paged["bl1"].delivery == "failed"
        assert paged["bl1"].error == "bl1 unreachable"
        assert paged["fam1"].delivery == "no_channel"
        assert paged["fam1"].name == "何红(儿子)"
        assert paged["fam1"].role == "family"
        assert view.ack_deadline_ms == T0 + 2 * MIN
        # bl1 could not be reached at all: the next step went out at once, and the view says so
        assert view.escalations == 1
        assert {p.person_id for p in view.paged if p.step == 1} == {"bk1", "sec1"}
        assert {p.delivery for p in view.paged if p.step == 1} == {"delivered"}
