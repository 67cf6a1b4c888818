"""Every shipped rule has a scenario here: its readings over time and the transitions expected."""

from __future__ import annotations

from typing import Any

import pytest
from rules_support import HOUR, make_engine, play, summary

from alerting.models import Category, Severity
from alerting.rules import load_rules

RULES = load_rules()
H = HOUR
F, P, R, OK = "firing", "pending", "resolved", "ok"

# rule id → (steps, expected (s, subject, state) of that rule only)
SCENARIOS: dict[str, tuple[list[tuple[Any, ...]], list[tuple[float, str, str]]]] = {
    "smoke.alarm": (
        [
            ("E", 0, "SD-1", "alarm"),
            ("E", 30, "SD-1", "alarm"),
            ("E", 60, "SD-1", "alarm_cleared"),
            ("E", 120, "SD-1", "alarm"),
            ("tick", 120 + 899),
            ("tick", 120 + 900),
        ],
        [(0, "SD-1", F), (60, "SD-1", R), (120, "SD-1", F), (1020, "SD-1", R)],
    ),
    "smoke.obscuration": (
        [
            ("T", 0, "SD-1", {"smoke_dbm": 0.05}),
            ("T", 10, "SD-1", {"smoke_dbm": 0.25}),
            ("T", 20, "SD-1", {"smoke_dbm": 0.15}),
            ("T", 30, "SD-1", {"smoke_dbm": 0.08}),
        ],
        [(10, "SD-1", F), (30, "SD-1", R)],
    ),
    "smoke.heat_static": (
        [
            ("T", 0, "SD-1", {"temp_c": 30}),
            ("T", 10, "SD-1", {"temp_c": 55.9}),
            ("T", 20, "SD-1", {"temp_c": 56}),
            ("T", 30, "SD-1", {"temp_c": 52}),
            ("T", 40, "SD-1", {"temp_c": 49}),
        ],
        [(20, "SD-1", F), (40, "SD-1", R)],
    ),
    "smoke.heat_ror": (
        # 3 °C/min below 46 °C: nothing; then > 4 °C within a minute at 47 °C: fire.
        [
            ("T", 0, "SD-1", {"temp_c": 40}),
            ("T", 30, "SD-1", {"temp_c": 41.5}),
            ("T", 60, "SD-1", {"temp_c": 43}),
            ("T", 90, "SD-1", {"temp_c": 45}),
            ("T", 120, "SD-1", {"temp_c": 47.5}),
        ],
        [(120, "SD-1", F)],
    ),
    "smoke.multi_detector": (
        [
            ("E", 0, "SD-1", "alarm"),
            ("E", 60, "SD-3", "alarm"),
            ("E", 90, "SD-2", "alarm"),
            ("E", 100, "SD-1", "alarm"),
            ("tick", 209),
            ("tick", 210),
        ],
        [(90, "building:B-01", F), (210, "building:B-01", R)],
    ),
    "smoke.self_test": (
        [("E", 0, "SD-1", "self_test"), ("tick", 60)],
        [(0, "SD-1", F), (60, "SD-1", R)],
    ),
    "smoke.tamper": ([("E", 0, "SD-1", "tamper"), ("tick", H)], [(0, "SD-1", F), (H, "SD-1", R)]),
    "smoke.fault": ([("E", 0, "SD-1", "fault"), ("tick", H)], [(0, "SD-1", F), (H, "SD-1", R)]),
    "smoke.low_battery": (
        [("E", 0, "SD-1", "low_battery"), ("E", 10, "SD-1", "low_battery")],
        [(0, "SD-1", F)],
    ),
    "smoke.offline": (
        [
            ("T", 0, "SD-1", {"battery_pct": 90}),
            ("tick", 49 * H - 1),
            ("tick", 49 * H),
            ("E", 49 * H + 10, "SD-1", "self_test"),
        ],
        [(49 * H, "SD-1", F), (49 * H + 10, "SD-1", R)],
    ),
    "sos.button": (
        [
            ("E", 0, "SOS-1", "button_pressed"),
            ("E", 5, "SOS-1", "long_press"),
            ("E", 20, "SOS-1", "cancel"),
        ],
        [(0, "SOS-1", F), (20, "SOS-1", R)],
    ),
    "sos.fall": (
        [("E", 0, "SOS-1", "fall_detected"), ("tick", 600)],
        [(0, "SOS-1", F), (600, "SOS-1", R)],
    ),
    "sos.low_battery": ([("E", 0, "SOS-1", "low_battery")], [(0, "SOS-1", F)]),
    "sos.offline": (
        [("tick", 3 * H - 1), ("tick", 3 * H), ("T", 3 * H + 5, "SOS-1", {"battery_pct": 50})],
        [(3 * H, "SOS-1", F), (3 * H + 5, "SOS-1", R)],
    ),
    "gate.door_forced": (
        [("E", 0, "GT-2", "door_forced"), ("E", 30, "GT-2", "door_closed")],
        [(0, "GT-2", F), (30, "GT-2", R)],
    ),
    "gate.door_held_open": (
        [("E", 0, "GT-2", "door_held_open"), ("E", 40, "GT-2", "door_closed")],
        [(0, "GT-2", F), (40, "GT-2", R)],
    ),
    "gate.access_denied_burst": (
        # By day: 3 within 5 min. At night (from +10 h = 22:00) the night rule takes over.
        [
            ("E", 0, "GT-2", "access_denied"),
            ("E", 60, "GT-2", "access_denied"),
            ("E", 120, "GT-2", "access_denied"),
            ("tick", 420),
            ("E", 11 * H, "GT-2", "access_denied"),
            ("E", 11 * H + 1, "GT-2", "access_denied"),
            ("E", 11 * H + 2, "GT-2", "access_denied"),
        ],
        [(120, "GT-2", F), (420, "GT-2", R)],
    ),
    "gate.access_denied_night": (
        [
            ("E", 0, "GT-2", "access_denied"),
            ("E", 60, "GT-2", "access_denied"),
            ("E", 11 * H, "GT-2", "access_denied"),
            ("E", 11 * H + 60, "GT-2", "access_denied"),
        ],
        [(11 * H + 60, "GT-2", F)],
    ),
    "gate.tamper": ([("E", 0, "GT-2", "tamper")], [(0, "GT-2", F)]),
    "gate.low_battery": (
        [
            ("T", 0, "GT-2", {"battery_pct": 20}),
            ("T", 10, "GT-2", {"battery_pct": 14}),
            ("T", 20, "GT-2", {"battery_pct": 20}),
            ("T", 30, "GT-2", {"battery_pct": 26}),
        ],
        [(10, "GT-2", F), (30, "GT-2", R)],
    ),
    "gate.offline": (
        [
            ("T", 0, "GT-2", {"door_open": False}),
            ("tick", 899),
            ("tick", 900),
            ("S", 910, "GT-2", True),
        ],
        [(900, "GT-2", F), (910, "GT-2", R)],
    ),
    "charger.over_temp": (
        [("E", 0, "CH-1", "over_temp", {"port": 1}), ("E", 1, "CH-1", "over_temp", {"port": 2})],
        [(0, "CH-1#1", F), (1, "CH-1#2", F)],
    ),
    "charger.temp_high": (
        [
            ("T", 0, "CH-1", {"port": 1, "temp_c": 65}),
            ("T", 30, "CH-1", {"port": 2, "temp_c": 30}),
            ("T", 60, "CH-1", {"port": 1, "temp_c": 62}),
            ("tick", 120),
            ("T", 150, "CH-1", {"port": 1, "temp_c": 55}),
            ("T", 180, "CH-1", {"port": 1, "temp_c": 45}),
        ],
        [(0, "CH-1#1", P), (120, "CH-1#1", F), (180, "CH-1#1", R)],
    ),
    "charger.over_current": (
        [("E", 0, "CH-1", "over_current", {"port": 3})],
        [(0, "CH-1#3", F)],
    ),
    "charger.over_power": (
        [
            ("T", 0, "CH-1", {"port": 1, "power_w": 800}),
            ("T", 10, "CH-1", {"port": 1, "power_w": 1300}),
            ("T", 20, "CH-1", {"port": 1, "power_w": 1100}),
            ("T", 30, "CH-1", {"port": 1, "power_w": 900}),
        ],
        [(10, "CH-1#1", F), (30, "CH-1#1", R)],
    ),
    "charger.leakage": (
        [
            ("T", 0, "CH-1", {"port": 1, "leak_ma": 10}),
            ("T", 10, "CH-1", {"port": 1, "leak_ma": 30}),
            ("T", 20, "CH-1", {"port": 1, "leak_ma": 20}),
            ("T", 30, "CH-1", {"port": 1, "leak_ma": 14}),
        ],
        [(10, "CH-1#1", F), (30, "CH-1#1", R)],
    ),
    "charger.leakage_trip": ([("E", 0, "CH-1", "leakage", {"port": 2})], [(0, "CH-1#2", F)]),
    "charger.session_too_long": (
        [
            ("T", 0, "CH-1", {"port": 1, "state": "charging"}),
            ("T", 4 * H, "CH-1", {"port": 1, "state": "float"}),
            ("tick", 8 * H),
            ("T", 8 * H + 60, "CH-1", {"port": 1, "state": "unplugged"}),
        ],
        [(0, "CH-1#1", P), (8 * H, "CH-1#1", F), (8 * H + 60, "CH-1#1", R)],
    ),
    "charger.fault": ([("E", 0, "CH-1", "fault", {"port": 1})], [(0, "CH-1#1", F)]),
    "charger.offline": (
        [("T", 0, "CH-1", {"port": 1, "state": "idle"}), ("tick", 299), ("tick", 300)],
        [(300, "CH-1", F)],
    ),
    "charger.fire_correlation": (
        # Smoke in another building does not correlate; smoke in the charger's building does.
        [
            ("E", 0, "CH-1", "over_temp", {"port": 1}),
            ("E", 60, "SD-3", "alarm"),
            ("E", 120, "SD-1", "alarm"),
        ],
        [(120, "building:B-01", F)],
    ),
    "household.elderly_no_activity": (
        # The call device checks in hourly; the elder's door sees no passage for 24 h.
        [
            *(("T", h * H, "SOS-1", {"battery_pct": 80}) for h in range(26)),
            ("tick", 24 * H - 1),
            ("tick", 24 * H),
            ("E", 24 * H + 60, "GT-1", "access_granted"),
            ("E", 24 * H + 70, "GT-2", "access_granted"),
        ],
        [(24 * H, "GT-1", F), (24 * H + 60, "GT-1", R)],
    ),
}


SCENARIOS.update({
    "gas.alarm": (
        [
            ("E", 0, "GS-1", "alarm", {"level": "low", "gas_lel_pct": 12.0}),
            ("E", 30, "GS-1", "alarm", {"level": "high", "gas_lel_pct": 26.0}),
            ("E", 300, "GS-1", "alarm_cleared"),
        ],
        [(0, "GS-1", F), (300, "GS-1", R)],
    ),
    "gas.concentration": (
        [
            ("T", 0, "GS-1", {"gas_lel_pct": 0.3}),
            ("T", 10, "GS-1", {"gas_lel_pct": 24.9}),
            ("T", 20, "GS-1", {"gas_lel_pct": 25.0}),
            ("T", 30, "GS-1", {"gas_lel_pct": 12.0}),
            ("T", 40, "GS-1", {"gas_lel_pct": 9.5}),
        ],
        [(20, "GS-1", F), (40, "GS-1", R)],
    ),
    "gas.sensor_expired": (
        [("E", 0, "GS-1", "sensor_expired"), ("E", 60, "GS-1", "sensor_expired")],
        [(0, "GS-1", F)],
    ),
    "gas.fault": ([("E", 0, "GS-1", "fault"), ("tick", H)], [(0, "GS-1", F), (H, "GS-1", R)]),
    "gas.valve_fault": (
        [
            ("T", 0, "GS-1", {"valve": "open"}),
            ("T", 10, "GS-1", {"valve": "fault"}),
            ("T", 70, "GS-1", {"valve": "fault"}),
            ("T", 80, "GS-1", {"valve": "closed"}),
        ],
        [(10, "GS-1", P), (70, "GS-1", F), (80, "GS-1", R)],
    ),
    "gas.low_battery": ([("E", 0, "GS-1", "low_battery")], [(0, "GS-1", F)]),
    "gas.self_test": (
        [("E", 0, "GS-1", "self_test"), ("tick", 60)],
        [(0, "GS-1", F), (60, "GS-1", R)],
    ),
    "gas.offline": (
        [("tick", 3 * H - 1), ("tick", 3 * H), ("T", 3 * H + 5, "GS-1", {"gas_lel_pct": 0.2})],
        [(3 * H, "GS-1", F), (3 * H + 5, "GS-1", R)],
    ),
})


def test_a_gas_leak_closes_the_valve_and_pages_the_household() -> None:
    spec = RULES.by_id["gas.alarm"]
    assert spec.severity is Severity.CRITICAL and spec.page_household and not spec.auto_resolve
    found = play(make_engine(RULES, devices={"GS-1"}), [("E", 0, "GS-1", "alarm")])
    [fired] = [t for t in found if t.rule_id == "gas.alarm"]
    assert fired.actions == ("close_valve",) and fired.page_household
    assert RULES.by_id["gas.sensor_expired"].category is Category.MAINTENANCE


def test_every_builtin_rule_has_a_scenario() -> None:
    assert sorted(SCENARIOS) == sorted(r.id for r in RULES.rules)


@pytest.mark.parametrize("rule_id", sorted(SCENARIOS))
def test_builtin_rule(rule_id: str) -> None:
    steps, expected = SCENARIOS[rule_id]
    devices = {step[2] for step in steps if step[0] != "tick"}
    found = play(make_engine(RULES, devices=devices), steps)
    assert summary(found, rule=rule_id) == expected
    spec = RULES.by_id[rule_id]
    for tr in found:
        if tr.rule_id == rule_id:
            assert tr.severity is spec.severity
            assert tr.auto_resolve is spec.auto_resolve
            assert tr.labels["grid"] == "G-1"
            assert tr.site == "demo"


def test_elderly_rule_waits_while_the_call_device_is_silent() -> None:
    found = play(
        make_engine(RULES),
        [
            ("tick", 24 * H),
            ("tick", 25 * H),
            ("T", 25 * H + 1, "SOS-1", {"battery_pct": 80}),  # the call device is back
            ("tick", 25 * H + 301),
            ("tick", 26 * H),
        ],
    )
    assert summary(found, rule="household.elderly_no_activity") == [(25 * H + 301, "GT-1", F)]


def test_fire_rules_never_auto_resolve_and_self_test_never_pages() -> None:
    for spec in RULES.rules:
        if spec.device_type == "smoke" and spec.category is Category.SAFETY:
            assert spec.auto_resolve is False, spec.id
    assert RULES.by_id["smoke.self_test"].severity is Severity.INFO
    assert "cut_power" in RULES.by_id["charger.temp_high"].actions
    assert RULES.by_id["smoke.multi_detector"].severity is Severity.CRITICAL


def test_firing_actions_are_attached_only_to_firing() -> None:
    found = play(
        make_engine(RULES),
        [("T", 0, "CH-1", {"port": 1, "leak_ma": 40}), ("T", 1, "CH-1", {"port": 1, "leak_ma": 0})],
    )
    assert [(tr.state.value, tr.actions) for tr in found] == [
        ("firing", ("cut_power",)),
        ("resolved", ()),
    ]
    assert found[0].labels["port"] == "1"
    assert found[0].dedupe_key == "hazard.electrical:CH-1#1"  # one incident per hazard
