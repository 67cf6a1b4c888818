"""Every example of every shipped profile decodes as it says (zhc/HA conformance style)."""

from __future__ import annotations

import pytest

from core.readings import Reading, Rejection
from device_profiles import ExpectReading, ExpectRejection, ProfileExample, load_profiles

REGISTRY = load_profiles()
EXAMPLES = REGISTRY.examples()


def _assert_reading(reading: Reading, expect: ExpectReading, where: str) -> None:
    for name in expect.model_fields_set:
        wanted = getattr(expect, name)
        if name == "fields":
            assert wanted is not None
            for key, value in wanted.items():
                assert key in reading.fields, f"{where}: field {key} missing in {reading.fields}"
                got = reading.fields[key]
                assert got == value, f"{where}: {key}={got!r}"
                assert type(got) is type(value), f"{where}: {key} is {type(got).__name__}"
            if not wanted:
                assert reading.fields == {}, f"{where}: expected no fields"
        else:
            assert getattr(reading, name) == wanted, f"{where}: {name}"


@pytest.mark.parametrize(
    "case", EXAMPLES, ids=[f"{e.profile_id}:{e.example.name}" for e in EXAMPLES]
)
def test_example(case: ProfileExample) -> None:
    ex = case.example
    result = REGISTRY.decode(ex.topic, case.payload_bytes(), ex.now_ms)
    if isinstance(ex.expect, ExpectRejection):
        assert isinstance(result, Rejection), f"expected {ex.expect.reject}, got {result}"
        assert result.reason == ex.expect.reject, result.detail
        assert result.topic == ex.topic
        return
    assert isinstance(result, list), result
    expected = ex.expect if isinstance(ex.expect, list) else [ex.expect]
    assert len(result) == len(expected), result
    for index, (reading, want) in enumerate(zip(result, expected, strict=True)):
        assert reading.profile == case.profile_id
        _assert_reading(reading, want, f"reading {index}")


@pytest.mark.parametrize("profile", REGISTRY.profiles(), ids=lambda p: p.id)
def test_profile_shape(profile) -> None:  # type: ignore[no-untyped-def]
    """Each profile documents itself with examples of success and of rejection."""
    outcomes = set()
    for ex in profile.examples:
        if isinstance(ex.expect, ExpectRejection):
            outcomes.add("reject")
        else:
            for want in ex.expect if isinstance(ex.expect, list) else [ex.expect]:
                outcomes.add(want.kind or "reading")
    assert "reject" in outcomes
    if profile.codec == "native":
        assert len(profile.examples) >= 4
        assert {"telemetry", "event", "status"} <= outcomes
        for name, field in profile.telemetry.items():
            assert field.type in ("bool", "enum") or field.min is not None, name
    names = [ex.name for ex in profile.examples]
    assert len(names) == len(set(names)), "example names are unique"


def test_every_native_type_has_a_profile() -> None:
    for device_type in ("smoke", "sos", "gate", "charger"):
        assert REGISTRY.profile_for(device_type).codec == "native"  # type: ignore[arg-type]


def test_vendors_present() -> None:
    codecs = {p.codec for p in REGISTRY.profiles()}
    assert {"native", "alink", "iotda"} <= codecs


def test_a_profile_with_commands_shows_their_acknowledgement() -> None:
    """A device type that takes commands documents its cmd_ack, and each command's
    confirming values are real values of its telemetry (checked at load)."""
    for profile in REGISTRY.profiles():
        if not profile.commands:
            continue
        kinds = {
            want.kind
            for ex in profile.examples
            if not isinstance(ex.expect, ExpectRejection)
            for want in (ex.expect if isinstance(ex.expect, list) else [ex.expect])
        }
        assert "cmd_ack" in kinds, profile.id
    assert set(REGISTRY.profile_for("gas").commands) >= {"close_valve", "open_valve", "self_test"}
    assert REGISTRY.profile_for("charger").commands["cut_power"].confirm == {"output": "off"}
