"""Table tests per rule kind: readings over time → transitions, with time injected."""

from __future__ import annotations

from typing import Any

import pytest
from rules_support import FLEET, T0, make_engine, play, reading, summary

from alerting.models import AlertState
from alerting.rules.alert_state import EMPTY, RuleState
from alerting.rules.evaluators import eval_threshold
from alerting.rules.schema import parse_rule

BASE = {"title": "t", "severity": "major"}


def rule(**kw: Any) -> dict[str, Any]:
    return {**BASE, **kw}


CASES: list[tuple[str, dict[str, Any], list[tuple[Any, ...]], list[tuple[float, str, str]]]] = [
    (
        "threshold above with hysteresis",
        rule(
            id="r",
            kind="threshold",
            device_type="smoke",
            field="temp_c",
            op=">=",
            raise_at=56,
            clear_at=50,
        ),
        [
            ("T", 0, "SD-1", {"temp_c": 55.9}),
            ("T", 1, "SD-1", {"temp_c": 56}),
            ("T", 2, "SD-1", {"temp_c": 70}),
            ("T", 3, "SD-1", {"temp_c": 51}),
            ("T", 4, "SD-1", {"temp_c": 49.9}),
            ("T", 5, "SD-1", {"battery_pct": 80}),
        ],
        [(1, "SD-1", "firing"), (4, "SD-1", "resolved")],
    ),
    (
        "threshold below without clear level",
        rule(
            id="r", kind="threshold", device_type="gate", field="battery_pct", op="<", raise_at=15
        ),
        [
            ("T", 0, "GT-2", {"battery_pct": 14}),
            ("T", 1, "GT-2", {"battery_pct": 10}),
            ("T", 2, "GT-2", {"battery_pct": 15}),
        ],
        [(0, "GT-2", "firing"), (2, "GT-2", "resolved")],
    ),
    (
        "duration fires on tick, cancels below clear",
        rule(
            id="r",
            kind="duration",
            device_type="charger",
            field="temp_c",
            op=">",
            value=60,
            clear_at=50,
            **{"for": "2m"},
        ),
        [
            ("T", 0, "CH-1", {"temp_c": 61}),
            ("T", 60, "CH-1", {"temp_c": 55}),
            ("tick", 119),
            ("tick", 120),
            ("tick", 500),
            ("T", 600, "CH-1", {"temp_c": 49}),
            ("T", 700, "CH-1", {"temp_c": 65}),
            ("T", 710, "CH-1", {"temp_c": 45}),
        ],
        [
            (0, "CH-1", "pending"),
            (120, "CH-1", "firing"),
            (600, "CH-1", "resolved"),
            (700, "CH-1", "pending"),
            (710, "CH-1", "ok"),
        ],
    ),
    (
        "duration fires on a late reading too, partitioned by port",
        rule(
            id="r",
            kind="duration",
            device_type="charger",
            field="state",
            op="in",
            value=["charging"],
            partition_by="port",
            **{"for": "10s"},
        ),
        [
            ("T", 0, "CH-1", {"port": 1, "state": "charging"}),
            ("T", 5, "CH-1", {"port": 2, "state": "idle"}),
            ("T", 10, "CH-1", {"port": 1, "state": "charging"}),
            ("T", 11, "CH-1", {"port": 1, "state": "full"}),
        ],
        [(0, "CH-1#1", "pending"), (10, "CH-1#1", "firing"), (11, "CH-1#1", "resolved")],
    ),
    (
        "rate of rise: fast rise fires, slow rise does not",
        rule(id="r", kind="rate_of_rise", device_type="smoke", field="temp_c", rise=4, within="1m"),
        [
            ("T", 0, "SD-1", {"temp_c": 20}),
            ("T", 30, "SD-1", {"temp_c": 21}),
            ("T", 60, "SD-1", {"temp_c": 22}),
            ("T", 90, "SD-1", {"temp_c": 23}),
            ("T", 120, "SD-1", {"temp_c": 24}),
            ("T", 130, "SD-1", {"temp_c": 28}),
            ("T", 140, "SD-1", {"temp_c": 30}),
            ("T", 250, "SD-1", {"temp_c": 30}),
        ],
        [(130, "SD-1", "firing"), (250, "SD-1", "resolved")],
    ),
    (
        "event: repeat extends hold, clear event resolves, hold re-arms",
        rule(
            id="r",
            kind="event",
            device_type="smoke",
            events=["alarm"],
            clear_on=["alarm_cleared"],
            hold="5m",
        ),
        [
            ("E", 0, "SD-1", "alarm"),
            ("E", 200, "SD-1", "alarm"),
            ("tick", 400),
            ("tick", 500),
            ("E", 600, "SD-1", "alarm"),
            ("E", 601, "SD-1", "alarm_cleared"),
            ("E", 602, "SD-1", "alarm_cleared"),
        ],
        [
            (0, "SD-1", "firing"),
            (500, "SD-1", "resolved"),
            (600, "SD-1", "firing"),
            (601, "SD-1", "resolved"),
        ],
    ),
    (
        "count in window slides",
        rule(
            id="r",
            kind="count_in_window",
            device_type="gate",
            events=["access_denied"],
            count=3,
            within="5m",
        ),
        [
            ("E", 0, "GT-2", "access_denied"),
            ("E", 100, "GT-2", "access_denied"),
            ("E", 310, "GT-2", "access_denied"),
            ("E", 320, "GT-2", "access_granted"),
            ("E", 350, "GT-2", "access_denied"),
            ("E", 360, "GT-2", "access_denied"),
            ("tick", 659),
            ("tick", 660),
        ],
        [(350, "GT-2", "firing"), (660, "GT-2", "resolved")],
    ),
    (
        "absence of heartbeat: events and offline status do not count",
        rule(id="r", kind="absence", device_type="gate", expect="heartbeat", **{"for": "15m"}),
        [
            ("T", 0, "GT-2", {"door_open": False}),
            ("E", 600, "GT-2", "access_granted"),
            ("S", 800, "GT-2", False),
            ("tick", 899),
            ("tick", 900),
            ("S", 1000, "GT-2", True),
            ("tick", 1900),
        ],
        [(900, "GT-2", "firing"), (1000, "GT-2", "resolved"), (1900, "GT-2", "firing")],
    ),
    (
        "absence of named events",
        rule(
            id="r",
            kind="absence",
            device_type="gate",
            expect="events",
            events=["access_granted"],
            **{"for": "1h"},
        ),
        [
            ("T", 1800, "GT-2", {"door_open": False}),
            ("E", 3000, "GT-2", "access_granted"),
            ("tick", 3600),
            ("tick", 6599),
            ("tick", 6600),
            ("tick", 9000),
        ],
        [(6600, "GT-2", "firing")],
    ),
]


@pytest.mark.parametrize(
    ("spec", "steps", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_kind_table(
    spec: dict[str, Any], steps: list[tuple[Any, ...]], expected: list[tuple[float, str, str]]
) -> None:
    devices = {step[2] for step in steps if step[0] != "tick"}
    engine = make_engine([spec], devices=devices)
    assert summary(play(engine, steps), rule="r") == expected


def test_correlation_needs_two_devices_of_one_building_within_window() -> None:
    alarm = rule(id="a", kind="event", device_type="smoke", events=["alarm"], hold="1h")
    corr = rule(
        id="c",
        kind="correlation",
        device_type="smoke",
        by="building",
        within="2m",
        groups=[["a"]],
        min_devices=2,
    )
    engine = make_engine([alarm, corr])
    found = play(
        engine,
        [
            ("E", 0, "SD-1", "alarm"),
            ("E", 30, "SD-3", "alarm"),  # other building
            ("E", 200, "SD-2", "alarm"),  # too late for SD-1's hit
        ],
    )
    assert summary(found, rule="c") == []
    engine = make_engine([alarm, corr])
    found = play(
        engine,
        [("E", 0, "SD-1", "alarm"), ("E", 90, "SD-2", "alarm"), ("tick", 209), ("tick", 210)],
    )
    assert summary(found, rule="c") == [
        (90, "building:B-01", "firing"),
        (210, "building:B-01", "resolved"),
    ]
    fired = next(tr for tr in found if tr.rule_id == "c")
    assert fired.dedupe_key == "c:building:B-01"
    assert fired.device_id == "SD-2"
    assert fired.labels["building"] == "B-01"
    assert fired.value == 2


def test_night_only_rule_ignores_day_events() -> None:
    spec = rule(
        id="r",
        kind="event",
        device_type="gate",
        events=["door_forced"],
        schedule={"active": [{"start": "22:00", "end": "06:00"}]},
    )
    engine = make_engine([spec])
    # T0 is noon; +10 h is 22:00, +18 h is 06:00 next day.
    found = play(engine, [("E", 0, "GT-2", "door_forced"), ("E", 10 * 3600, "GT-2", "door_forced")])
    assert summary(found, rule="r") == [(36000, "GT-2", "firing")]


def test_quiet_hours_hold_a_due_duration_until_morning() -> None:
    spec = rule(
        id="r",
        kind="duration",
        device_type="charger",
        field="temp_c",
        op=">",
        value=60,
        schedule={"quiet": [{"start": "22:00", "end": "06:00"}]},
        **{"for": "1m"},
    )
    engine = make_engine([spec])
    night = 11 * 3600  # 23:00
    found = play(
        engine,
        [
            ("T", night, "CH-1", {"temp_c": 70}),
            ("tick", night + 60),
            ("tick", 18 * 3600 - 1),
            ("tick", 18 * 3600),
        ],
    )
    assert summary(found, rule="r") == [(night, "CH-1", "pending"), (18 * 3600, "CH-1", "firing")]


def test_match_requires_household_flag() -> None:
    spec = rule(
        id="r",
        kind="event",
        device_type="gate",
        events=["door_forced"],
        match={"household_flags": ["elderly_alone"]},
    )
    engine = make_engine([spec])
    found = play(engine, [("E", 0, "GT-2", "door_forced"), ("E", 1, "GT-1", "door_forced")])
    assert summary(found, rule="r") == [(1, "GT-1", "firing")]


def test_evaluator_is_pure_and_returns_same_state_when_nothing_changes() -> None:
    spec = parse_rule(
        rule(id="r", kind="threshold", device_type="smoke", field="temp_c", op=">=", raise_at=56)
    )
    r = reading("SD-1", "telemetry", T0, temp_c=20)
    state, found = eval_threshold(spec, EMPTY, r, FLEET["SD-1"], T0, "SD-1")  # type: ignore[arg-type]
    assert state is EMPTY
    assert found == []
    hot = reading("SD-1", "telemetry", T0 + 1, temp_c=60)
    state, found = eval_threshold(spec, EMPTY, hot, FLEET["SD-1"], T0 + 1, "SD-1")  # type: ignore[arg-type]
    assert state.status == "firing"
    assert EMPTY.status == "ok"
    assert [tr.state for tr in found] == [AlertState.FIRING]
    assert found[0].reading_ts_ms == T0 + 1
    assert found[0].reading_seq == hot.seq
    assert found[0].value == 60
    assert found[0].dedupe_key == "r:SD-1"


def test_state_round_trips_through_json() -> None:
    state = RuleState(
        status="pending",
        since_ms=1,
        due_ms=2,
        samples=((1, 2.5),),
        hits=((3, "SD-1", 0),),
        labels=(("grid", "G-1"),),
        site="demo",
    )
    assert RuleState.from_json(state.to_json()) == state
    assert EMPTY.to_json() == {}
    with pytest.raises(ValueError, match="status"):
        RuleState.from_json({"status": "exploded"})


def test_location_dedupe_shares_one_incident_per_building() -> None:
    spec = rule(id="r", kind="event", device_type="smoke", events=["fault"], dedupe="location")
    engine = make_engine([spec])
    found = play(engine, [("E", 0, "SD-1", "fault"), ("E", 1, "SD-2", "fault")])
    assert {tr.dedupe_key for tr in found} == {"r:building:B-01"}
    assert [tr.subject for tr in found] == ["SD-1", "SD-2"]
