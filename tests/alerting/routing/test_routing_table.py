"""Routing as tables: a route tree and expected recipients per incident (YAML in the test)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from alerting.models import Category, Severity
from alerting.routing import Role, Route, RoutingPolicy, default_ladders, route_test, select
from alerting.routing.tree import default_tree, route_labels
from tests.alerting.incidents.incident_support import HOUR, MIN, T0, ctx, directory

CASES = yaml.safe_load("""
# rule, severity, category, device type, household flags -> who is paged at which minute
- name: smoke alarm pages worker, leader and duty at once, then backup and secretary
  rule: smoke.alarm
  severity: critical
  device: smoke
  expect:
    0: [gw1, bl1, duty1]
    2: [bk1, sec1]
    4: [bk1, sec1]
- name: SOS call adds the family at once
  rule: sos.button
  severity: critical
  device: sos
  expect:
    0: [gw1, bl1, duty1, fam1]
    2: [bk1, sec1]
- name: fall detected adds the family too
  rule: sos.fall
  severity: critical
  device: sos
  expect:
    0: [gw1, bl1, duty1, fam1]
- name: forced door climbs every 10 minutes
  rule: gate.door_forced
  severity: major
  device: gate
  expect:
    0: [gw1]
    10: [bk1, bl1]
    20: [duty1]
    30: [sec1]
- name: elderly no-activity tells the family with the grid worker
  rule: household.elderly_no_activity
  severity: major
  device: gate
  flags: [elderly_alone]
  expect:
    0: [gw1, fam1]
- name: low battery waits a day per step; the next duty shift is on by then
  rule: smoke.low_battery
  severity: minor
  category: maintenance
  device: smoke
  expect:
    0: [gw1]
    1440: [bk1, bl1]
    2880: [duty2]
- name: self-test pages nobody
  rule: smoke.self_test
  severity: info
  category: maintenance
  device: smoke
  expect: {}
""")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_route_table(case: dict[str, Any]) -> None:
    c = ctx("DEV-1", case["device"], flags=frozenset(case.get("flags", [])))
    plan = await route_test(
        directory(),
        c,
        severity=Severity(case["severity"]),
        now_ms=T0,
        rule_id=case["rule"],
        category=Category(case.get("category", "safety")),
    )
    got = {(at - T0) // MIN: sorted(p.recipient.person_id for p in paged) for at, paged in plan}
    for minute, people in case["expect"].items():
        assert got[minute] == sorted(people), f"minute {minute}"
    if not case["expect"]:
        assert plan == []


TREE = yaml.safe_load("""
ladder: minor
routes:
  - match: {severity: critical}
    ladder: critical
    routes:
      - match: {household_flags: [elderly_alone, disabled]}
        add_targets: [family]
  - match: {grid: [G9], category: maintenance}
    ladder: none
""")


@pytest.mark.parametrize(
    ("labels", "ladder", "extra", "path"),
    [
        (
            {"severity": "critical", "household_flags": "disabled,pets"},
            "critical",
            ["family"],
            (0, 0),
        ),
        ({"severity": "critical", "household_flags": ""}, "critical", [], (0,)),
        ({"severity": "minor", "grid": "G9", "category": "maintenance"}, "none", [], (1,)),
        ({"severity": "minor", "grid": "G9", "category": "safety"}, "minor", [], ()),
    ],
)
def test_tree_selection(
    labels: dict[str, str], ladder: str, extra: list[str], path: tuple[int, ...]
) -> None:
    decision = select(Route.model_validate(TREE), labels)
    assert (decision.ladder, [r.value for r in decision.add_targets], decision.path) == (
        ladder,
        extra,
        path,
    )


def test_unknown_keys_in_a_route_are_rejected() -> None:
    with pytest.raises(ValueError, match="matchers"):
        Route.model_validate({"ladder": "minor", "matchers": {}})


def test_deadlines_are_configurable() -> None:
    policy = RoutingPolicy(ladders=default_ladders(critical_ms=30_000))
    labels = route_labels(
        severity=Severity.CRITICAL,
        category=Category.SAFETY,
        rule_id="smoke.alarm",
        device_type="smoke",
    )
    ladder = policy.ladder_for(labels)
    assert [at - T0 for at, _, _ in ladder.schedule(T0, 90_000)] == [0, 30_000, 60_000, 90_000]
    assert ladder.steps[0].targets == (Role.GRID_WORKER, Role.BUILDING_LEADER, Role.DUTY_STAFF)
    assert default_ladders()["minor"].steps[1].wait_ms == 24 * HOUR


@pytest.mark.parametrize(
    ("severity", "page_household", "extra"),
    [("critical", True, ["family"]), ("critical", False, []), ("major", True, ["family"])],
)
def test_a_rule_that_pages_the_household_adds_its_family_to_the_first_step(
    severity: str, page_household: bool, extra: list[str]
) -> None:
    labels = route_labels(
        severity=Severity(severity),
        category=Category.SAFETY,
        rule_id="gas.leak",
        device_type="gas",
        page_household=page_household,
    )
    decision = select(default_tree(), labels)
    assert [r.value for r in decision.add_targets] == extra
