"""Every field of every vendor profile: what the simulator encodes, the gateway decodes back.

The simulator's vendor encoders invert the profiles the gateway decodes with, so a profile
and the simulator cannot drift apart: a changed key, scale or value map either round-trips
or fails here.
"""

from __future__ import annotations

import math

import pytest

from core.readings import FieldValue, Reading
from device_profiles import DeviceProfile, FieldSpec, load_profiles
from simulators.codecs import (
    VendorMapping,
    covers,
    encode,
    encode_vendor,
    vendor_mapping,
    vendor_mappings,
)
from simulators.fleet import Fleet
from simulators.inventory import DeviceSpec

REGISTRY = load_profiles()
VENDOR_PROFILES = [p for p in REGISTRY.profiles() if p.codec != "native" and p.enabled]
TS = 1_732_250_000_000


def carried_values(spec: FieldSpec) -> list[FieldValue]:
    """Canonical values the model can carry exactly: both ends, one vendor unit above the low
    end and the middle of the range, on the grid of the vendor's units (a scaled vendor value
    is a whole number of them); every enum value the vendor has a code for; both booleans."""
    if spec.type == "bool":
        return [True, False]
    if spec.type == "enum":
        return sorted(set(spec.value_map.values()) if spec.value_map else set(spec.values or ()))
    lo = -1000.0 if spec.min is None else spec.min
    hi = 1000.0 if spec.max is None else spec.max
    ends = sorted((lo / spec.scale, hi / spec.scale))
    low, high = math.ceil(ends[0]), math.floor(ends[1])
    raws = {low, min(low + 1, high), high, round((ends[0] + ends[1]) / 2)}
    if spec.type == "int":
        return sorted(round(raw * spec.scale) for raw in raws)
    values = {round(raw * spec.scale, 6) for raw in raws}  # as FieldCheck scales
    if spec.scale == 1.0:
        values.add(round(lo + (hi - lo) * 0.37, 2))  # unscaled floats keep their fraction
    return sorted(values)


def rounds(fields: dict[str, FieldSpec]) -> list[dict[str, FieldValue]]:
    """Messages that together carry every value of every field, each message every field."""
    values = {name: carried_values(spec) for name, spec in fields.items()}
    count = max((len(v) for v in values.values()), default=1)
    return [{name: v[i % len(v)] for name, v in values.items()} for i in range(count)]


def device_for(profile: DeviceProfile) -> DeviceSpec:
    return DeviceSpec("demo", profile.device_type, "SIM-RT.01", "B01")


def decoded(mapping: VendorMapping, profile: DeviceProfile, kind: str,
            payload: dict[str, object]) -> list[Reading]:
    device = device_for(profile)
    [(topic, body, retain)] = encode_vendor(mapping, device, kind, payload)
    assert not retain
    out = REGISTRY.decode(topic, body, TS + 1000)
    assert isinstance(out, list), (topic, body, out)
    expected_id = (f"{mapping.identity}/{device.device_id}" if mapping.vendor == "alink"
                   else mapping.identity + device.device_id)
    for reading in out:
        assert (reading.profile, reading.device_id, reading.ts_ms) == (
            profile.id, expected_id, TS), reading
    return out


def assert_same(got: dict[str, FieldValue], sent: dict[str, FieldValue]) -> None:
    assert got == sent
    for name, value in sent.items():
        assert type(got[name]) is type(value), (name, got[name], value)


@pytest.mark.parametrize("profile", VENDOR_PROFILES, ids=lambda p: p.id)
def test_every_telemetry_field_round_trips(profile: DeviceProfile) -> None:
    mapping = VendorMapping.from_profile(profile)
    assert profile.telemetry
    for seq, fields in enumerate(rounds(profile.telemetry)):
        out = decoded(mapping, profile, "telemetry", {"ts": TS, "seq": seq, **fields})
        assert {r.kind for r in out} == {"telemetry"}
        merged: dict[str, FieldValue] = {}
        for reading in out:  # IoTDA gives one reading per service
            assert not merged.keys() & reading.fields.keys()
            merged.update(reading.fields)
        assert_same(merged, fields)


@pytest.mark.parametrize("profile", VENDOR_PROFILES, ids=lambda p: p.id)
def test_every_event_and_detail_field_round_trips(profile: DeviceProfile) -> None:
    mapping = VendorMapping.from_profile(profile)
    details = rounds(profile.events.fields)
    events = sorted(set(profile.events.codes.values()))
    assert events
    for seq, event in enumerate(events):
        fields = details[seq % len(details)]
        out = decoded(mapping, profile, "event", {"ts": TS, "seq": seq, "event": event, **fields})
        [reading] = out
        assert (reading.kind, reading.event) == ("event", event)
        assert_same(reading.fields, fields)
    for seq, fields in enumerate(details):  # every detail value, on the first event
        [reading] = decoded(mapping, profile, "event",
                            {"ts": TS, "seq": seq, "event": events[0], **fields})
        assert_same(reading.fields, fields)


def test_default_encoders_are_the_profiles() -> None:
    """The format a fleet speaks per device type is exactly what the vendor profiles cover."""
    expected = {}
    for profile in VENDOR_PROFILES:
        expected.setdefault((profile.codec, profile.device_type), profile.id)
    assert {k: m.origin for k, m in vendor_mappings().items()} == expected


def test_a_type_without_a_vendor_profile() -> None:
    gate = DeviceSpec("demo", "gate", "GATE-B01-E1", "B01")
    assert not covers("alink", "gate") and covers("native", "gate")
    with pytest.raises(LookupError, match="no alink profile for gate devices"):
        encode("alink", gate, "event", {"ts": TS, "seq": 1, "event": "door_forced"})
    with pytest.raises(LookupError):
        vendor_mapping("iotda", "gate")
    smoke = DeviceSpec("demo", "smoke", "SD-B01-0001", "B01")
    fleet = Fleet([smoke, gate], "mqtt://127.0.0.1:1", fmt="alink")
    assert [sim.fmt for sim in fleet.sims] == ["alink", "native"]
    assert fleet.native_types == ("gate",)


def test_an_enum_value_without_a_vendor_code_is_refused() -> None:
    mapping = vendor_mapping("iotda", "charger")
    pile = DeviceSpec("demo", "charger", "CHG-S1-01", "S1")
    with pytest.raises(ValueError, match="state='sleeping' has no vendor code"):
        encode_vendor(mapping, pile, "telemetry", {"ts": TS, "seq": 1, "state": "sleeping"})
