"""Household risk tiers (五彩档案) change incidents: severity raised, deadlines shortened, the
household card on the page; the elderly no-activity window per household; rule bounds."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from alerting.incidents import IncidentService
from alerting.incidents.lifecycle import Resolution
from alerting.incidents.tiers import DEFAULT_TIERS, RiskTier, TierPolicy, ack_due_ms
from alerting.incidents.views import incident_message
from alerting.models import Category, Severity
from alerting.routing.directory import Role
from alerting.routing.ladder import MINUTE_MS, default_ladders
from alerting.routing.router import RoutingPolicy
from alerting.routing.tree import route_labels
from alerting.rules import RuleEngine, load_rules
from alerting.rules.overrides import apply_tunings, load_tunings
from alerting.rules.schema import parse_rule
from api.rule_control import PersistentRuleControl
from core.clock import ManualClock
from core.readings import HouseholdCard
from tests.alerting.incidents.incident_support import (
    HOUR,
    T0,
    ctx,
    open_db,
    transition,
)
from tests.alerting.incidents.test_incident_service import stack

POLICY = TierPolicy()


@pytest.mark.parametrize(
    ("tier", "severity", "expected"),
    [
        ("red", Severity.MINOR, Severity.MAJOR),
        ("red", Severity.MAJOR, Severity.CRITICAL),
        ("red", Severity.CRITICAL, Severity.CRITICAL),  # never above critical
        ("red", Severity.INFO, Severity.INFO),  # a self-test stays a self-test
        ("orange", Severity.MAJOR, Severity.CRITICAL),
        ("yellow", Severity.MAJOR, Severity.MAJOR),
        ("green", Severity.MINOR, Severity.MINOR),
        (None, Severity.MAJOR, Severity.MAJOR),
        ("purple", Severity.MAJOR, Severity.MAJOR),  # unknown tier: nothing changes
    ],
)
def test_tier_severity(tier: str | None, severity: Severity, expected: Severity) -> None:
    assert POLICY.severity(tier, severity) is expected


@pytest.mark.parametrize(
    ("tier", "critical_deadline_ms"),
    [("red", MINUTE_MS), ("orange", 90_000), ("yellow", 2 * MINUTE_MS), (None, 2 * MINUTE_MS)],
)
def test_tier_shortens_the_acknowledgement_deadline(
    tier: str | None, critical_deadline_ms: int
) -> None:
    ladder = POLICY.ladder(tier, default_ladders()["critical"])
    assert ack_due_ms(ladder, T0) == T0 + critical_deadline_ms
    assert ladder.steps[0].wait_ms == 0  # the first page still goes at once
    assert ladder.repeat_ms == critical_deadline_ms


def test_a_raised_no_activity_alert_still_tells_the_family() -> None:
    labels = route_labels(
        severity=POLICY.severity("red", Severity.MAJOR),
        category=Category.SAFETY,
        rule_id="household.elderly_no_activity",
        device_type="gate",
    )
    assert labels["severity"] == "critical"
    assert Role.FAMILY in RoutingPolicy().ladder_for(labels).steps[0].targets


def test_tier_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="ack_factor"):
        RiskTier("x", "x", ack_factor=0.0)
    with pytest.raises(ValueError, match="raise_levels"):
        RiskTier("x", "x", raise_levels=3)
    assert [t.key for t in DEFAULT_TIERS] == ["red", "orange", "yellow", "blue", "green"]


CARD = HouseholdCard(
    household_id="H1",
    address="1号楼2单元501室",
    risk_tier="red",
    facts=(("mobility", "卧床"), ("language", "温州话")),
    contacts=(("陈红", "女儿", "13900001111"), ("陈刚", "儿子", "13900002222")),
)


async def test_a_red_household_opens_critical_and_escalates_at_half_the_deadline(
    db_url: str,
) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, escalation, notifier = stack(sm, clock)
        red = replace(ctx(), risk_tier="red", household_card=CARD)
        change = await service.apply(
            transition("smoke.fault", red, T0, severity=Severity.MAJOR), red
        )
        assert change is not None and change.severity is Severity.CRITICAL
        detail = await service.get(change.incident_id)
        assert detail.incident.severity is Severity.CRITICAL
        assert detail.incident.ack_due_ms == T0 + MINUTE_MS
        page = incident_message(detail.incident)
        assert page["risk_tier"] == "red" and page["ack_due"] == T0 + MINUTE_MS
        assert page["household"]["contacts"][1] == {
            "name": "陈刚", "relation": "儿子", "phone": "13900002222",
        }  # fmt: skip
        assert page["household"]["facts"] == {"mobility": "卧床", "language": "温州话"}

        await escalation.due(T0)
        assert notifier.people() == ["bl1", "duty1", "gw1"]
        await escalation.due(T0 + MINUTE_MS - 1)
        assert notifier.people() == ["bl1", "duty1", "gw1"]
        await escalation.due(T0 + MINUTE_MS)  # half of the critical 2 min: backup and secretary
        assert notifier.people() == ["bk1", "bl1", "duty1", "gw1", "sec1"]


async def test_a_reopened_incident_keeps_the_shorter_deadline(db_url: str) -> None:
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, escalation, notifier = stack(sm, clock)
        red = replace(ctx(), risk_tier="red", household_card=CARD)
        change = await service.apply(transition("sos.button", red, T0), red)
        assert change is not None
        await service.resolve(change.incident_id, "gw1", Resolution.FALSE_ALARM, "误按")
        clock.set(T0 + 10 * MINUTE_MS)
        await service.reopen(change.incident_id, "sec1", "家属又打来电话")
        reopened = T0 + 10 * MINUTE_MS
        await escalation.due(reopened)
        paged = len(notifier.sent)
        await escalation.due(reopened + MINUTE_MS)  # the second step half the usual time later
        assert "bk1" in [d.person_id for d in notifier.sent[paged:]]


async def test_without_a_tier_nothing_changes(db_url: str) -> None:
    async with open_db(db_url) as sm:
        service = IncidentService(sm, ManualClock(T0))
        plain = ctx()
        change = await service.apply(
            transition("smoke.fault", plain, T0, severity=Severity.MAJOR), plain
        )
        assert change is not None
        detail = await service.get(change.incident_id)
        assert detail.incident.severity is Severity.MAJOR
        assert detail.incident.ack_due_ms == T0 + 10 * MINUTE_MS
        assert detail.incident.household_card is None


def test_the_no_activity_window_is_the_households_own() -> None:
    engine = RuleEngine(load_rules(), grace_ms=0)
    gate = replace(ctx("GATE-1", "gate"), household_flags=frozenset({"elderly_alone"}))
    own = replace(ctx("GATE-2", "gate", household="H2"), household_flags=gate.household_flags,
                  no_activity_ms=12 * HOUR)  # fmt: skip
    engine.register_device(gate, T0)
    engine.register_device(own, T0)
    rule = "household.elderly_no_activity"
    assert engine.state(rule, "GATE-1").due_ms == T0 + 24 * HOUR
    assert engine.state(rule, "GATE-2").due_ms == T0 + 12 * HOUR
    # the window changed on the screen: the running timer follows, earlier or later
    engine.register_device(replace(gate, no_activity_ms=12 * HOUR), T0 + HOUR)
    engine.register_device(replace(own, no_activity_ms=36 * HOUR), T0 + HOUR)
    assert engine.state(rule, "GATE-1").due_ms == T0 + 12 * HOUR
    assert engine.state(rule, "GATE-2").due_ms == T0 + 36 * HOUR
    assert engine.next_due_ms() is not None and engine.next_due_ms() <= T0 + 12 * HOUR


def test_bounds_in_a_rule_file_must_hold_the_rules_own_values() -> None:
    base = {"id": "t.x", "kind": "threshold", "device_type": "smoke", "title": "t",
            "severity": "major", "field": "temp_c", "op": ">=", "raise_at": 56}  # fmt: skip
    assert parse_rule({**base, "bounds": {"raise_at": [54, 65]}}).bounds["raise_at"] == (54, 65)
    with pytest.raises(ValidationError, match="outside"):
        parse_rule({**base, "bounds": {"raise_at": [60, 65]}})
    with pytest.raises(ValidationError, match="not a numeric parameter"):
        parse_rule({**base, "bounds": {"field": [1, 2]}})
    with pytest.raises(ValidationError, match="above highest"):
        parse_rule({**base, "bounds": {"raise_at": [65, 54]}})


async def test_a_tuning_survives_a_restart(db_url: str) -> None:
    async with open_db(db_url) as sm:
        control = PersistentRuleControl(load_rules(), sm, ManualClock(T0))
        await control.tune("smoke.heat_static", {"raise_at": 60}, "secretary-guo")
        await control.set_enabled("smoke.heat_static", False, "admin")
        restarted = apply_tunings(load_rules(), await load_tunings(sm))
        rule = restarted.by_id["smoke.heat_static"]
        assert rule.raise_at == 60  # type: ignore[union-attr]
        assert load_rules().by_id["smoke.heat_static"].raise_at == 56  # type: ignore[union-attr]
