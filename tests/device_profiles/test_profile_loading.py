"""Loading profiles: errors name file, key path and reason; duplicates and overlaps are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from device_profiles import DEFAULT_PROFILES_DIR, ProfileLoadError, load_profiles

MINIMAL = """\
id: {id}
device_type: smoke
codec: native
topics: ["{topic}"]
telemetry:
  temp_c: {{type: float, unit: °C, min: -40, max: 150}}
events: {{names: [alarm]}}
heartbeat: {{interval: 24h, offline_after: 49h}}
examples:
  - name: t
    topic: safety/demo/smoke/a/telemetry
    payload: {{temp_c: 1.0}}
    expect: {{kind: telemetry}}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(directory: Path) -> str:
    with pytest.raises(ProfileLoadError) as info:
        load_profiles(directory)
    return str(info.value)


def test_shipped_profiles_load() -> None:
    registry = load_profiles()
    assert len(registry.profiles()) >= 8
    assert load_profiles(DEFAULT_PROFILES_DIR).subscriptions() == registry.subscriptions()


def test_minimal_profile_loads(tmp_path: Path) -> None:
    write(
        tmp_path,
        "smoke.yaml",
        MINIMAL.format(id="t.smoke", topic="safety/{site}/smoke/{device_id}/{kind}"),
    )
    assert [p.id for p in load_profiles(tmp_path).profiles()] == ["t.smoke"]


def test_bad_value_names_file_and_key_path(tmp_path: Path) -> None:
    text = MINIMAL.format(id="t.smoke", topic="safety/{site}/smoke/{device_id}/{kind}")
    path = write(tmp_path, "bad.yaml", text.replace("min: -40", "min: cold"))
    message = load_error(tmp_path)
    assert str(path) in message
    assert "telemetry.temp_c.min" in message
    assert "valid number" in message


def test_unknown_key_names_path(tmp_path: Path) -> None:
    text = MINIMAL.format(id="t.smoke", topic="safety/{site}/smoke/{device_id}/{kind}")
    write(tmp_path, "bad.yaml", text.replace("unit: °C", "units: °C"))
    message = load_error(tmp_path)
    assert "bad.yaml: telemetry.temp_c.units: Extra inputs are not permitted" in message


def test_example_error_path_has_index(tmp_path: Path) -> None:
    text = MINIMAL.format(id="t.smoke", topic="safety/{site}/smoke/{device_id}/{kind}")
    write(tmp_path, "bad.yaml", text.replace("kind: telemetry", "kind: telemetryy"))
    assert "examples[0].expect.kind" in load_error(tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("offline_after: 49h", "offline_after: 2 days", "heartbeat.offline_after"),
        ("offline_after: 49h", "offline_after: 1h", "heartbeat"),
        ("min: -40, max: 150", "min: 150, max: -40", "telemetry.temp_c"),
        ("type: float", "type: double", "telemetry.temp_c.type"),
        ("device_type: smoke", "device_type: toaster", "device_type"),
        ("names: [alarm]", "names: [alarm, alarm]", "events"),
        ("unit: °C,", "unit: °C, source: Temp,", "(top level)"),
    ],
)
def test_schema_errors(tmp_path: Path, old: str, new: str, path: str) -> None:
    text = MINIMAL.format(id="t.smoke", topic="safety/{site}/smoke/{device_id}/{kind}")
    assert old in text
    write(tmp_path, "bad.yaml", text.replace(old, new))
    assert f"bad.yaml: {path}:" in load_error(tmp_path)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "broken.yaml", "id: [unclosed\n")
    message = load_error(tmp_path)
    assert "broken.yaml" in message
    assert "line" in message


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = MINIMAL.format(id="t.smoke", topic="safety/{site}/smoke/{device_id}/{kind}")
    write(tmp_path, "dup.yaml", text + "codec: alink\n")
    assert "duplicate key 'codec'" in load_error(tmp_path)


def test_duplicate_id(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        MINIMAL.format(id="t.smoke", topic="safety/{site}/smoke/{device_id}/{kind}"),
    )
    write(
        tmp_path,
        "b.yaml",
        MINIMAL.format(id="t.smoke", topic="safety/{site}/smoky/{device_id}/{kind}"),
    )
    message = load_error(tmp_path)
    assert "b.yaml: id: duplicate id 't.smoke'" in message
    assert "a.yaml" in message


def test_overlapping_topics(tmp_path: Path) -> None:
    write(
        tmp_path, "a.yaml", MINIMAL.format(id="t.a", topic="safety/{site}/smoke/{device_id}/{kind}")
    )
    write(tmp_path, "b.yaml", MINIMAL.format(id="t.b", topic="safety/demo/{device_id}/x/{kind}"))
    message = load_error(tmp_path)
    assert "b.yaml: topics:" in message
    assert "overlaps" in message


def test_vendor_identities_separate_same_pattern(tmp_path: Path) -> None:
    source = DEFAULT_PROFILES_DIR / "vendors" / "aliyun" / "smoke_js_sd01.yaml"
    shutil.copy(source, tmp_path / "one.yaml")
    text = source.read_text(encoding="utf-8")
    other = text.replace("aliyun.smoke.js_sd01", "aliyun.smoke.other")
    write(tmp_path, "two.yaml", other)
    assert "overlaps" in load_error(tmp_path)
    write(tmp_path, "two.yaml", other.replace("a1SmkJs2024", "a1OtherPk99"))
    assert len(load_profiles(tmp_path).profiles()) == 2


def test_unknown_codec_and_topic_variable(tmp_path: Path) -> None:
    text = MINIMAL.format(id="t.smoke", topic="safety/{site}/smoke/{serial}/{kind}")
    write(tmp_path, "a.yaml", text)
    write(
        tmp_path,
        "b.yaml",
        MINIMAL.format(id="t.b", topic="x/{site}/{device_id}/{kind}").replace(
            "codec: native", "codec: lwm2m"
        ),
    )
    message = load_error(tmp_path)
    assert "a.yaml: topics[0]: unknown topic variable {serial}" in message
    assert "b.yaml: codec: unknown codec 'lwm2m'" in message


def test_codec_needs_its_variables(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", MINIMAL.format(id="t.a", topic="safety/{site}/smoke/{device_id}"))
    assert "needs ['kind']" in load_error(tmp_path)


def test_vendor_field_must_exist_in_native_contract(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_PROFILES_DIR / "native" / "smoke.yaml", tmp_path / "smoke.yaml")
    source = DEFAULT_PROFILES_DIR / "vendors" / "huawei" / "smoke_ws2.yaml"
    text = source.read_text(encoding="utf-8").replace(
        "  battery_pct: {type: int", "  battery_v: {type: int", 1
    )
    write(tmp_path, "vendor.yaml", text)
    assert "vendor.yaml: telemetry.battery_v: not a field of native.smoke" in load_error(tmp_path)


def test_empty_directory(tmp_path: Path) -> None:
    assert "no profile files" in load_error(tmp_path)


def test_disabled_profile_is_not_decoded_nor_subscribed(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_PROFILES_DIR / "native" / "smoke.yaml", tmp_path / "smoke.yaml")
    source = DEFAULT_PROFILES_DIR / "vendors" / "huawei" / "smoke_ws2.yaml"
    write(
        tmp_path,
        "v.yaml",
        source.read_text(encoding="utf-8").replace(
            "max_payload_bytes:", "enabled: false\nmax_payload_bytes:"
        ),
    )
    registry = load_profiles(tmp_path)
    assert registry.subscriptions() == ["safety/+/+/+/+"]
    assert registry.examples()
    assert all(e.profile_id == "native.smoke" for e in registry.examples())
