"""Loading profiles: errors name file, key path and reason; duplicates and overlaps are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from core.readings import Rejection, RejectReason
from device_profiles import DEFAULT_PROFILES_DIR, ProfileLoadError, load_profiles

NOW = 1_732_250_060_000

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
        ("device_type: smoke", "device_type: Toaster-2", "device_type"),
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
    shutil.copy(DEFAULT_PROFILES_DIR / "native" / "smoke.yaml", tmp_path / "smoke.yaml")
    source = DEFAULT_PROFILES_DIR / "vendors" / "aliyun" / "smoke_js_sd01.yaml"
    shutil.copy(source, tmp_path / "one.yaml")
    text = source.read_text(encoding="utf-8")
    other = text.replace("aliyun.smoke.js_sd01", "aliyun.smoke.other")
    write(tmp_path, "two.yaml", other)
    assert "overlaps" in load_error(tmp_path)
    write(tmp_path, "two.yaml", other.replace("a1SmkJs2024", "a1OtherPk99"))
    assert len(load_profiles(tmp_path).profiles()) == 3


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


HUAWEI_SMOKE = DEFAULT_PROFILES_DIR / "vendors" / "huawei" / "smoke_ws2.yaml"
HUAWEI_CHARGER = DEFAULT_PROFILES_DIR / "vendors" / "huawei" / "charger_cp12.yaml"


def vendor_error(tmp_path: Path, source: Path, old: str, new: str) -> str:
    """Load ``source`` beside its native profile, first ``old`` replaced; return the error."""
    native = DEFAULT_PROFILES_DIR / "native" / f"{source.stem.split('_')[0]}.yaml"
    shutil.copy(native, tmp_path / "native.yaml")
    text = source.read_text(encoding="utf-8")
    assert old in text
    write(tmp_path, "vendor.yaml", text.replace(old, new, 1))
    return load_error(tmp_path)


def test_vendor_field_must_exist_in_native_contract(tmp_path: Path) -> None:
    message = vendor_error(tmp_path, HUAWEI_SMOKE, "  battery_pct: {", "  battery_v: {")
    assert "vendor.yaml: telemetry.battery_v: not a field of native.smoke" in message


def test_vendor_event_field_must_exist_in_native_contract(tmp_path: Path) -> None:
    message = vendor_error(tmp_path, HUAWEI_SMOKE, "    battery_pct: {", "    rssi_dbm: {")
    assert "vendor.yaml: events.fields.rssi_dbm: not a field of native.smoke" in message


def test_vendor_fields_take_type_unit_and_range_from_native() -> None:
    registry = load_profiles()
    for profile in registry.profiles():
        if profile.codec == "native":
            continue
        native = registry.profile_for(profile.device_type)
        sections = (
            (profile.telemetry, native.telemetry),
            (profile.events.fields, native.events.fields),
        )
        for mine, theirs in sections:
            for name, field in mine.items():
                definition = theirs[name]
                assert (field.type, field.unit, field.values) == (
                    definition.type,
                    definition.unit,
                    definition.values,
                ), (profile.id, name)
                # a vendor may only narrow the native range (a 12-port pile), never widen it
                assert definition.min is None or field.min == max(
                    definition.min, field.min or definition.min
                ), (profile.id, name)
                assert definition.max is None or field.max == min(
                    definition.max, field.max or definition.max
                ), (profile.id, name)
                assert field.source, (profile.id, name)
    charger = registry.get("huawei.charger.cp12")
    assert (charger.telemetry["port"].min, charger.telemetry["port"].max) == (1, 12)
    assert charger.telemetry["temp_c"].scale == 0.1
    assert charger.telemetry["state"].value_map == {
        "0": "idle",
        "1": "charging",
        "2": "float",
        "3": "full",
        "4": "unplugged",
        "5": "fault",
    }


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "smoke_dbm: {source: Smoke.smoke_density,",
            "smoke_dbm: {type: int, source: Smoke.smoke_density,",
            "telemetry.smoke_dbm.type: conflicts with native.smoke (float)",
        ),
        (
            "temp_c: {source: Smoke.temperature,",
            "temp_c: {unit: °F, source: Smoke.temperature,",
            "telemetry.temp_c.unit: conflicts with native.smoke (°C)",
        ),
        (
            "battery_pct: {source: Smoke.battery}",
            "battery_pct: {unit: '%', source: Smoke.battery}",
            "telemetry.battery_pct.unit: repeats native.smoke (%)",
        ),
        (
            "    smoke_dbm: {source: Smoke.smoke_density,",
            "    smoke_dbm: {type: int, source: Smoke.smoke_density,",
            "events.fields.smoke_dbm.type: conflicts with native.smoke (float)",
        ),
    ],
)
def test_vendor_field_restating_the_native_definition(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    message = vendor_error(tmp_path, HUAWEI_SMOKE, old, new)
    assert f"vendor.yaml: {expected}; type, unit and values come from the native profile" in message


def test_vendor_enum_restating_values(tmp_path: Path) -> None:
    message = vendor_error(
        tmp_path,
        HUAWEI_CHARGER,
        "    source: ChargingPort.status\n",
        "    source: ChargingPort.status\n    values: [idle, charging]\n",
    )
    assert "vendor.yaml: telemetry.state.values: conflicts with native.charger ([idle, " in message


def test_vendor_range_may_narrow_the_native_one() -> None:
    # The 12-port pile: port 13 can only be garbage from this model, though native allows 24.
    registry = load_profiles()
    port = registry.get("huawei.charger.cp12").telemetry["port"]
    assert (port.min, port.max, port.type) == (1, 12, "int")
    assert registry.get("native.charger").telemetry["port"].max == 24  # native not narrowed
    topic = "$oc/devices/66a0c1d2e3f4a5b6c7d8e9f0_PILE-B3/sys/properties/report"

    def report(port_no: int) -> bytes:
        service = {"service_id": "ChargingPort", "properties": {"port_no": port_no}}
        return orjson.dumps({"services": [service]})

    assert isinstance(registry.decode(topic, report(12), NOW), list)
    rejected = registry.decode(topic, report(13), NOW)
    assert isinstance(rejected, Rejection)
    assert rejected.reason == RejectReason.OUT_OF_RANGE


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "  port: {source: ChargingPort.port_no, max: 12}",
            "  port: {source: ChargingPort.port_no, max: 30}",
            "telemetry.port.max: 30 does not narrow native.charger's max 24",
        ),
        (
            "  port: {source: ChargingPort.port_no, max: 12}",
            "  port: {source: ChargingPort.port_no, min: 1}",
            "telemetry.port.min: 1 does not narrow native.charger's min 1",
        ),
        (
            "    leak_ma: {source: ChargingPort.leakage}",
            "    leak_ma: {source: ChargingPort.leakage, min: -5}",
            "events.fields.leak_ma.min: -5 does not narrow native.charger's min 0",
        ),
        (
            "    source: ChargingPort.status\n",
            "    source: ChargingPort.status\n    max: 3\n",
            "telemetry.state.max: enum in native.charger; only int and float fields have a range",
        ),
        (
            "  port: {source: ChargingPort.port_no, max: 12}",
            "  port: {source: ChargingPort.port_no, min: 30}",
            "telemetry.port: Value error, min 30.0 is greater than max 24.0",
        ),
        (
            '"5": fault}',
            '"5": faulty}',
            "telemetry.state: Value error, value_map targets not in values: ['faulty']",
        ),
        (
            "  port: {source: ChargingPort.port_no, max: 12}",
            "  port: {source: ChargingPort.port_no, value_map: {'1': a}}",
            "telemetry.port: Value error, `values`/`value_map` are only for enum fields",
        ),
        (
            "    source: ChargingPort.status\n",
            "    source: ChargingPort.status\n    scale: 10\n",
            "telemetry.state: Value error, `scale` applies to numeric fields only",
        ),
        (
            "  leak_ma: {source: ChargingPort.leakage}",
            "  leak_ma: {source: ChargingPort.leakage, scale: 0}",
            "telemetry.leak_ma: Value error, `scale` must not be 0",
        ),
        (
            "  leak_ma: {source: ChargingPort.leakage}",
            "  leak_ma: {source: ChargingPort.leakage, description: residual}",
            "telemetry.leak_ma.description: Extra inputs are not permitted",
        ),
    ],
)
def test_vendor_mapping_errors(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert f"vendor.yaml: {expected}" in vendor_error(tmp_path, HUAWEI_CHARGER, old, new)


def test_vendor_model_needs_its_native_profile(tmp_path: Path) -> None:
    shutil.copy(HUAWEI_SMOKE, tmp_path / "vendor.yaml")
    message = load_error(tmp_path)
    assert "vendor.yaml: device_type: no native profile of 'smoke'" in message


def test_one_native_profile_per_device_type(tmp_path: Path) -> None:
    write(
        tmp_path, "a.yaml", MINIMAL.format(id="t.a", topic="safety/{site}/smoke/{device_id}/{kind}")
    )
    write(tmp_path, "b.yaml", MINIMAL.format(id="t.b", topic="other/{site}/{device_id}/{kind}"))
    message = load_error(tmp_path)
    assert "b.yaml: device_type: t.a in " in message
    assert "already defines 'smoke'; a device type has one native profile" in message


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
