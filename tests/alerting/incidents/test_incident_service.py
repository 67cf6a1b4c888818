"""IncidentService over real SQLite and PostgreSQL: dedupe, lifecycle, audit, silences, flood
control, self-tests and device actions."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from alerting.escalation.scheduler import EscalationScheduler
from alerting.escalation.timers import EscalationTimerRow
from alerting.incidents import (
    ActionRunner,
    ChangeKind,
    Department,
    IncidentService,
    IncidentStatus,
    Matcher,
    Resolution,
    SilenceService,
    TransitionError,
)
from alerting.incidents.tables import AppendOnlyError, IncidentEventRow, IncidentRow
from alerting.models import AlertState, Category, Severity
from alerting.notify.stages import DeliveryPipeline
from alerting.pipeline import AlertPipeline
from alerting.routing.directory import ChannelKind
from alerting.rules import RuleEngine, load_rules
from core.clock import ManualClock
from tests.alerting.incidents.incident_support import (
    HOUR,
    MIN,
    SITE,
    T0,
    DyingNotifier,
    RecordingNotifier,
    ctx,
    directory,
    no_sleep,
    open_db,
    transition,
)


def stack(sm, clock, **kw):  # type: ignore[no-untyped-def]
    notifier = RecordingNotifier()
    service = IncidentService(sm, clock, **kw)
    pipeline = DeliveryPipeline(sm, clock, {ChannelKind.APP: notifier}, sleep=no_sleep)
    return service, EscalationScheduler(sm, clock, directory(), pipeline), notifier


async def test_one_open_incident_per_dedupe_key_repeats_counted(db_url: str) -> None:
    async with open_db(db_url) as sm:
        service = IncidentService(sm, ManualClock(T0))
        c = ctx()
        first = await service.apply(transition("smoke.alarm", c, T0), c)
        again = await service.apply(transition("smoke.alarm", c, T0 + 1000), c)
        other = await service.apply(transition("smoke.alarm", ctx("SD-0002"), T0), ctx("SD-0002"))
        assert first is not None
        assert again is not None
        assert other is not None
        assert first.kind is ChangeKind.OPENED
        assert again.kind is ChangeKind.REPEATED
        assert again.incident_id == first.incident_id != other.incident_id
        detail = await service.get(first.incident_id)
        assert detail.incident.repeat_count == 1
        assert [e.kind for e in detail.events] == ["opened", "repeated"]
        pending = transition("smoke.alarm", c, T0, state=AlertState.PENDING)
        assert await service.apply(pending, c) is None


async def test_lifecycle_events_actor_time_note_and_category_required(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service = IncidentService(sm, clock)
        c = ctx("SOS-1", "sos")
        change = await service.apply(transition("sos.button", c, T0), c)
        assert change is not None
        iid = change.incident_id
        clock.advance(MIN)
        await service.acknowledge(iid, "gw1", "on my way")
        await service.comment(iid, "gw1", "elderly resident fell, conscious")
        await service.refer(iid, Department.AMBULANCE_120, "gw1", "called 120")
        with pytest.raises(ValueError, match="category"):
            await service.resolve(iid, "gw1", None, "done")  # type: ignore[arg-type]
        await service.resolve(iid, "gw1", Resolution.REAL_EMERGENCY, "taken to hospital")
        with pytest.raises(TransitionError):
            await service.acknowledge(iid, "gw1")
        await service.close(iid, "sec1", "verified")
        await service.reopen(iid, "sec1", "family called again")
        detail = await service.get(iid)
        kinds = [(e.kind, e.actor) for e in detail.events]
        assert kinds == [
            ("opened", "rule:sos.button"),
            ("acknowledged", "gw1"),
            ("commented", "gw1"),
            ("referred", "gw1"),
            ("resolved", "gw1"),
            ("closed", "sec1"),
            ("reopened", "sec1"),
        ]
        assert detail.events[1].at_ms == T0 + MIN
        assert detail.events[1].note == "on my way"
        assert detail.referrals == [("ambulance_120", "gw1", T0 + MIN, "called 120")]
        assert detail.incident.status is IncidentStatus.OPEN
        async with sm() as s:  # the audit trail cannot be rewritten
            ev = (await s.execute(select(IncidentEventRow).limit(1))).scalar_one()
            ev.note = "forged"
            with pytest.raises(AppendOnlyError):
                await s.flush()


async def test_auto_resolve_only_where_the_rule_allows(db_url: str) -> None:
    async with open_db(db_url) as sm:
        service = IncidentService(sm, ManualClock(T0))
        c = ctx()
        fire = await service.apply(transition("smoke.alarm", c, T0), c)
        cleared = await service.apply(
            transition("smoke.alarm", c, T0 + MIN, state=AlertState.RESOLVED), c
        )
        assert fire is not None
        assert cleared is not None
        assert cleared.kind is ChangeKind.CLEARED  # a fire needs a human
        fire_detail = await service.get(fire.incident_id)
        assert fire_detail.incident.status is IncidentStatus.OPEN
        assert not fire_detail.incident.alert_firing
        async with sm() as s:
            assert await s.get(EscalationTimerRow, fire.incident_id) is not None

        kw = {"severity": Severity.MINOR, "category": Category.MAINTENANCE, "auto_resolve": True}
        low = await service.apply(transition("smoke.low_battery", c, T0, **kw), c)
        back = await service.apply(
            transition("smoke.low_battery", c, T0 + HOUR, state=AlertState.RESOLVED, **kw), c
        )
        assert low is not None
        assert back is not None
        assert back.kind is ChangeKind.AUTO_RESOLVED
        detail = await service.get(low.incident_id)
        assert detail.incident.status is IncidentStatus.RESOLVED
        assert detail.incident.resolution is Resolution.DEVICE_FAULT
        assert detail.incident.category is Category.MAINTENANCE


async def test_self_test_is_recorded_and_pages_nobody(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler, notifier = stack(sm, clock)
        c = ctx()
        change = await service.apply(
            transition(
                "smoke.self_test",
                c,
                T0,
                severity=Severity.INFO,
                category=Category.MAINTENANCE,
                auto_resolve=True,
            ),
            c,
        )
        assert change is not None
        assert change.kind is ChangeKind.RECORDED
        assert not change.pages
        clock.advance(3 * 24 * HOUR)
        await scheduler.due(clock.now_ms())
        assert notifier.sent == []
        detail = await service.get(change.incident_id)
        assert detail.incident.resolution is Resolution.DEVICE_TEST
        assert "recorded" in [e.kind for e in detail.events]


async def test_silence_suppresses_paging_but_records(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler, notifier = stack(sm, clock)
        silences = SilenceService(sm, clock)
        with pytest.raises(ValueError, match="end"):
            await silences.create(
                site=SITE, matcher=Matcher.BUILDING, value="B1", ends_at_ms=T0 - 1, actor="duty1"
            )
        await silences.create(
            site=SITE,
            matcher=Matcher.BUILDING,
            value="B1",
            ends_at_ms=T0 + HOUR,
            actor="duty1",
            reason="detector service",
        )
        c, other = ctx("SD-1"), ctx("SD-9", building="B2")
        tested = await service.apply(transition("smoke.tamper", c, T0), c)
        real = await service.apply(transition("smoke.alarm", other, T0), other)
        assert tested is not None
        assert tested.silenced
        assert real is not None
        assert not real.silenced
        await scheduler.due(T0)
        assert {d.incident_id for d in notifier.sent} == {real.incident_id}
        # the technician's test alarm cleared during the window: nobody is paged afterwards
        await service.apply(transition("smoke.tamper", c, T0 + MIN, state=AlertState.RESOLVED), c)
        clock.set(T0 + HOUR + 1)
        await scheduler.due(clock.now_ms())
        assert tested.incident_id not in {d.incident_id for d in notifier.sent}
        kinds = [e.kind for e in (await service.get(tested.incident_id)).events]
        assert kinds[:2] == ["opened", "silenced"]
        assert "suppressed" in kinds
        assert "not_paged" in kinds
        assert [s.value for s in await silences.list(SITE, active_only=False)] == ["B1"]


async def test_silence_ending_pages_a_still_firing_incident(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler, notifier = stack(sm, clock)
        silence = await SilenceService(sm, clock).create(
            site=SITE, matcher=Matcher.DEVICE, value="SD-1", ends_at_ms=T0 + HOUR, actor="d"
        )
        c = ctx("SD-1")
        await service.apply(transition("smoke.tamper", c, T0), c)
        await scheduler.due(T0)
        assert notifier.sent == []
        clock.set(silence.ends_at_ms)
        await scheduler.due(clock.now_ms())
        assert notifier.people("0") == ["bl1", "duty1", "gw1"]


async def test_a_maintenance_silence_never_mutes_a_detectors_fire_alarm(db_url: str) -> None:
    """Life safety first: the detector under maintenance still pages its fire alarm, marked
    "设备维护中"; its tamper alert in the same window waits for the window to end."""
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler, notifier = stack(sm, clock)
        await SilenceService(sm, clock).create(
            site=SITE, matcher=Matcher.DEVICE, value="SD-1", ends_at_ms=T0 + HOUR, actor="d"
        )
        c = ctx("SD-1")
        fire = await service.apply(transition("smoke.alarm", c, T0), c)
        tamper = await service.apply(transition("smoke.tamper", c, T0), c)
        assert fire is not None and not fire.silenced and fire.pages
        assert tamper is not None and tamper.silenced
        await scheduler.due(T0)
        assert {d.incident_id for d in notifier.sent} == {fire.incident_id}
        assert notifier.people("0") == ["bl1", "duty1", "gw1"]
        assert all("设备维护中" in d.text for d in notifier.sent)
        kinds = [e.kind for e in (await service.get(fire.incident_id)).events]
        assert "under_maintenance" in kinds and "suppressed" not in kinds


async def test_flood_control_one_building_outage(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler, notifier = stack(sm, clock)
        kw = {"severity": Severity.MINOR, "category": Category.MAINTENANCE, "auto_resolve": True}
        devices = [ctx(f"SD-{i:02d}") for i in range(40)]
        changes = []
        for i, c in enumerate(devices):
            changes.append(
                await service.apply(transition("smoke.offline", c, T0 + i * 1000, **kw), c)
            )
            if i == 2:  # the loop runs meanwhile; early per-device incidents are held back
                await scheduler.due(T0 + i * 1000)
        kinds = [ch.kind for ch in changes if ch is not None]
        assert kinds[:4] == [ChangeKind.OPENED] * 4
        assert kinds[4] is ChangeKind.OUTAGE_OPENED
        assert set(kinds[5:]) == {ChangeKind.ATTACHED}
        outage_id = changes[4].incident_id  # type: ignore[union-attr]
        clock.set(T0 + 10 * MIN)
        await scheduler.due(clock.now_ms())
        assert {d.incident_id for d in notifier.sent} == {outage_id}
        assert notifier.people() == ["gw1"]
        detail = await service.get(outage_id)
        assert len(detail.devices) == 40
        assert detail.incident.rule_id == "building_outage"
        folded = await service.get(changes[0].incident_id)  # type: ignore[union-attr]
        assert folded.incident.status is IncidentStatus.RESOLVED
        assert [e.kind for e in folded.events][-1] == "merged"
        # every device back online: the outage resolves itself
        for i, c in enumerate(devices):
            await service.apply(
                transition("smoke.offline", c, T0 + HOUR + i, state=AlertState.RESOLVED, **kw), c
            )
        assert (await service.get(outage_id)).incident.status is IncidentStatus.RESOLVED


async def test_cut_power_action_is_published_and_recorded(db_url: str) -> None:
    published: list[tuple[str, bytes, int]] = []

    async def publish(topic: str, payload: bytes, qos: int) -> None:
        published.append((topic, payload, qos))

    async with open_db(db_url) as sm:
        service = IncidentService(sm, ManualClock(T0), actions=ActionRunner(publish))
        c = ctx("CH-7", "charger")
        change = await service.apply(
            transition(
                "charger.over_temp",
                c,
                T0,
                severity=Severity.MAJOR,
                actions=("cut_power",),
                labels={"port": "3"},
            ),
            c,
        )
        assert change is not None
        assert change.actions[0].ok
        topic, payload, qos = published[0]
        assert topic == f"safety/{SITE}/charger/CH-7/cmd"
        assert qos == 1
        assert json.loads(payload) == {
            "action": "cut_power",
            "port": 3,
            "incident_id": change.incident_id,
        }
        events = (await service.get(change.incident_id)).events
        assert events[-1].kind == "action"
        assert events[-1].data["topic"] == topic


def paging_stack(sm, clock, instance: str = "gw-a", notifier=None):  # type: ignore[no-untyped-def]
    """As the gateway wires it: the first step runs inside the opening transaction."""
    notifier = notifier or RecordingNotifier()
    pipeline = DeliveryPipeline(
        sm, clock, {ChannelKind.APP: notifier}, sleep=no_sleep, instance=instance
    )
    scheduler = EscalationScheduler(sm, clock, directory(), pipeline)
    service = IncidentService(sm, clock)
    engine = RuleEngine(load_rules(), grace_ms=0)
    alerts = AlertPipeline(sm, engine, service, scheduler, clock, lambda *_: None)
    return alerts, scheduler, service, notifier


async def test_an_alarm_opens_with_its_first_page_claimed_and_sent_once(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        alerts, scheduler, service, notifier = paging_stack(sm, clock)
        c = ctx()
        change = await alerts.apply(transition("smoke.alarm", c, T0), c)
        assert change is not None
        assert change.kind is ChangeKind.OPENED
        # critical: grid worker, building leader and duty staff at once, ready to send
        assert sorted(d.person_id for d in change.claimed) == ["bl1", "duty1", "gw1"]
        assert {d.step for d in change.claimed} == {"0"}
        assert all(d.incident["id"] == change.incident_id for d in change.claimed)
        # already on their way: apply() sent them as the opening committed
        assert await scheduler.finish_sending(5) == 0
        assert notifier.people() == ["bl1", "duty1", "gw1"]
        # the escalation loop finds step 0 done: nobody paged twice, leftovers none
        await scheduler.due(clock.now_ms())
        assert await scheduler.deliver_pending() == 0
        assert notifier.people() == ["bl1", "duty1", "gw1"]
        detail = await service.get(change.incident_id)
        assert [e.kind for e in detail.events][:2] == ["opened", "notified"]
        # and the ladder goes on at its deadline: step 1 two minutes later
        clock.advance(2 * MIN)
        await scheduler.due(clock.now_ms())
        assert notifier.people("1") != []


async def test_an_alarm_pages_even_when_its_incident_fails_to_commit(db_url: str) -> None:
    """The first pages go out while the opening commits (on a busy PostgreSQL the commit is
    3–30 ms). A commit that fails must not have suppressed them: the people are paged, nothing
    is recorded of the failed opening, and the alarm's next report opens the incident."""

    def refuse(_session: Session) -> None:
        raise RuntimeError("the database refused the commit")

    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        alerts, scheduler, _service, notifier = paging_stack(sm, clock)
        c = ctx()
        event.listen(Session, "before_commit", refuse, once=True)
        try:
            with pytest.raises(RuntimeError, match="refused the commit"):
                await alerts.apply(transition("smoke.alarm", c, T0), c)
        finally:
            if event.contains(Session, "before_commit", refuse):
                event.remove(Session, "before_commit", refuse)
        assert await scheduler.finish_sending(5) == 0
        assert notifier.people("0") == ["bl1", "duty1", "gw1"], "the fire was paged"
        async with sm() as s:
            assert (await s.scalars(select(IncidentRow))).all() == []
        clock.advance(1000)
        again = await alerts.apply(transition("smoke.alarm", c, T0 + 1000), c)
        assert again is not None and again.kind is ChangeKind.OPENED
        assert await scheduler.finish_sending(5) == 0
        assert len(notifier.people("0")) == 6  # paged again, now for an incident on record


async def test_claimed_pages_not_sent_before_a_crash_go_out_after_the_lease(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        dying = DyingNotifier()
        alerts, _scheduler, _service, _ = paging_stack(sm, clock, notifier=dying)
        c = ctx()
        change = await alerts.apply(transition("smoke.alarm", c, T0), c)
        assert change is not None
        assert change.claimed  # … and the process dies while publishing them
        await dying.die()
        # Another gateway instance sharing the database: the rows are leased to the dead one.
        _, scheduler, _service, notifier = paging_stack(sm, clock, instance="gw-b")
        assert await scheduler.resume_leftovers() == 0  # still leased to the dead process
        stop = asyncio.Event()
        loop = asyncio.create_task(scheduler.run(stop, tick_s=0.01, leftovers_every_s=0.02))
        await asyncio.sleep(0.1)
        assert notifier.sent == []
        clock.advance(MIN + 1)  # the lease (a minute) ends: the loop's next look sends them
        async with asyncio.timeout(5):
            while len(notifier.sent) < 3:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        stop.set()
        await loop
        assert notifier.people("0") == ["bl1", "duty1", "gw1"]  # each once


async def test_a_restarted_gateway_sends_the_pages_its_crashed_run_claimed_at_once(
    db_url: str,
) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        dying = DyingNotifier()
        alerts, _scheduler, _service, _ = paging_stack(sm, clock, instance="gw-a", notifier=dying)
        c = ctx()
        change = await alerts.apply(transition("smoke.alarm", c, T0), c)
        assert change is not None and len(change.claimed) == 3
        await dying.die()
        # … the process died while sending; it is back five seconds later, same instance.
        clock.advance(5_000)
        _, scheduler, _service, notifier = paging_stack(sm, clock, instance="gw-a")
        assert await scheduler.deliver_pending() == 3  # at once, not after the minute's lease
        assert notifier.people("0") == ["bl1", "duty1", "gw1"]
        assert await scheduler.deliver_pending() == 0  # and each once


async def test_no_page_at_opening_for_a_self_test_or_a_silenced_device(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        alerts, _scheduler, _service, _ = paging_stack(sm, clock)
        await SilenceService(sm, clock).create(
            site=SITE, matcher=Matcher.DEVICE, value="SD-9", ends_at_ms=T0 + HOUR, actor="duty1"
        )
        c, silenced = ctx("SD-1"), ctx("SD-9")
        test = transition(
            "smoke.self_test", c, T0, severity=Severity.INFO, category=Category.MAINTENANCE
        )
        recorded = await alerts.apply(test, c)
        quiet = await alerts.apply(transition("smoke.tamper", silenced, T0), silenced)
        assert recorded is not None and recorded.claimed == ()
        assert quiet is not None and quiet.silenced and quiet.claimed == ()
