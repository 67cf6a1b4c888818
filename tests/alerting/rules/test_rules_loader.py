"""Loader: every problem names the file, the rule (index and id) and the field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.rules import RuleLoadError, load_rules
from alerting.rules.schema import format_duration, parse_duration

GOOD = """
rules:
  - id: x.alarm
    kind: event
    device_type: smoke
    title: 报警
    severity: critical
    events: [alarm]
"""

# Events of the native wire contract (shared/DESIGN.md).
DESIGN_EVENTS = {
    "smoke": ["alarm", "alarm_cleared", "tamper", "fault", "self_test", "mute", "low_battery"],
    "sos": ["button_pressed", "long_press", "cancel", "fall_detected", "low_battery"],
    "gate": [
        "access_granted",
        "access_denied",
        "door_forced",
        "door_held_open",
        "door_closed",
        "tamper",
    ],
    "charger": ["session_start", "session_end", "over_current", "over_temp", "leakage", "fault"],
    # README "Native wire contract" (the fifth type, after DESIGN.md was written)
    "gas": [
        "alarm",
        "alarm_cleared",
        "fault",
        "sensor_expired",
        "valve_closed",
        "valve_open",
        "self_test",
        "low_battery",
    ],
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def problems(tmp_path: Path) -> list[str]:
    with pytest.raises(RuleLoadError) as info:
        load_rules(tmp_path)
    return info.value.problems


def test_builtin_rules_load_and_use_only_contract_events() -> None:
    rules = load_rules(known_events=DESIGN_EVENTS)
    assert {r.device_type for r in rules.rules} == {"smoke", "sos", "gate", "charger", "gas"}


def test_bad_field_names_file_rule_and_path(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        GOOD
        + """
  - id: x.hot
    kind: threshold
    device_type: smoke
    title: 高温
    severity: critical
    field: temp_c
    op: ">="
    raise_at: 56
    clear_at: 60
  - id: x.slow
    kind: duration
    device_type: charger
    title: t
    severity: major
    field: temp_c
    op: ">"
    value: 60
    for: 2 minutes
    colour: red
""",
    )
    found = problems(tmp_path)
    path = str(tmp_path / "a.yaml")
    assert any(p.startswith(f"{path}: rule #1 'x.hot': ") and "clear_at" in p for p in found)
    assert any(
        p.startswith(f"{path}: rule #2 'x.slow': for: ") and "bad duration" in p for p in found
    )
    assert any(p.startswith(f"{path}: rule #2 'x.slow': colour: ") for p in found)
    assert len(found) == 3


def test_unknown_kind_and_nested_schedule_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        "b.yaml",
        """
rules:
  - {id: y.one, kind: magic, device_type: smoke, title: t, severity: major}
  - id: y.two
    kind: event
    device_type: gate
    title: t
    severity: major
    events: [door_forced]
    schedule: {active: [{start: "25:00", end: "06:00"}]}
""",
    )
    found = problems(tmp_path)
    assert any("rule #0 'y.one'" in p and "kind" in p for p in found)
    assert any("rule #1 'y.two': schedule.active.0.start:" in p for p in found)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)
    [problem] = problems(tmp_path)
    assert "b.yaml: rule #0 'x.alarm': id: duplicate" in problem
    assert "a.yaml" in problem


def test_correlation_references_are_checked(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        GOOD
        + """
  - id: x.corr
    kind: correlation
    device_type: smoke
    title: t
    severity: critical
    by: building
    within: 2m
    min_devices: 2
    groups: [[x.alarm, x.nope]]
""",
    )
    [problem] = problems(tmp_path)
    assert "rule #1 'x.corr': groups.0.1: unknown rule 'x.nope'" in problem


def test_fire_rules_may_not_auto_resolve(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        GOOD.replace("events: [alarm]", "events: [alarm]\n    auto_resolve: true"),
    )
    [problem] = problems(tmp_path)
    assert "'x.alarm'" in problem
    assert "must not auto-resolve" in problem


def test_misspelt_event_is_caught_with_known_events(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.replace("[alarm]", "[alram]"))
    load_rules(tmp_path)  # without a catalogue the name cannot be checked
    with pytest.raises(RuleLoadError, match=r"events\.0: 'alram' is not an event of smoke"):
        load_rules(tmp_path, known_events=DESIGN_EVENTS)


def test_file_level_problems(tmp_path: Path) -> None:
    assert "no rule files" in problems(tmp_path)[0]
    write(tmp_path, "a.yaml", "rules: [\n")
    write(tmp_path, "b.yaml", "- just a list\n")
    write(tmp_path, "c.yaml", GOOD + "extra: 1\n")
    found = problems(tmp_path)
    assert any("a.yaml: cannot read" in p for p in found)
    assert any("b.yaml: expected a mapping with a 'rules' list" in p for p in found)
    assert any("c.yaml: unknown top-level keys ['extra']" in p for p in found)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("30s", 30_000),
        ("2m", 120_000),
        ("24h", 86_400_000),
        ("1h30m", 5_400_000),
        ("7d", 604_800_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms
    assert parse_duration(format_duration(ms)) == ms


@pytest.mark.parametrize("bad", ["", "0s", "2 min", "m", 120, "1.5h"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_ruleset_indexes_by_type_and_event() -> None:
    rules = load_rules()
    telemetry = {r.id for r in rules.for_reading("charger", "telemetry", None)}
    assert "charger.temp_high" in telemetry
    assert "charger.over_temp" not in telemetry
    gate_forced = {r.id for r in rules.for_reading("gate", "event", "door_forced")}
    assert gate_forced == {"gate.door_forced", "gate.offline"}
    assert {r.id for r in rules.correlations_for("smoke.alarm")} == {
        "smoke.multi_detector",
        "charger.fire_correlation",
    }
