"""Fleet rate, behaviour realism, vendor encodings and device lists."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import orjson
import pytest

from simulators.codecs import encode, iotda_time, vendor_device_id, vendor_mappings
from simulators.device import SimulatedDevice
from simulators.devices import charger
from simulators.fleet import Fleet
from simulators.inventory import DeviceSpec, demo_devices, fleet_devices, load_devices
from tests.services import Mosquitto
from tests.simulators.support import Recorder, check_native

START = 1_764_000_000_000  # 2025-11-24 16:00 UTC, 00:00 in China


def emissions(spec: DeviceSpec, seconds: float) -> list[tuple[float, str, dict[str, object]]]:
    dev = SimulatedDevice(spec, seed=7)
    return list(itertools.takewhile(lambda e: e[0] < seconds, dev.behaviour(START)))


def test_smoke_heartbeats_at_profile_interval_with_noise_and_drain() -> None:
    spec = DeviceSpec("demo", "smoke", "SD-B01-0001", "B01")
    out = [e for e in emissions(spec, 40 * 86_400) if e[1] == "telemetry"]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(out)]
    assert all(abs(g - 86_400) < 0.02 * 86_400 for g in gaps)
    assert all(0.01 <= e[2]["smoke_dbm"] <= 0.05 for e in out)  # type: ignore[operator]
    assert all(18 <= e[2]["temp_c"] <= 30 for e in out)  # type: ignore[operator]
    assert out[-1][2]["battery_pct"] <= out[0][2]["battery_pct"]  # type: ignore[operator]


def test_gate_has_rush_hours_and_some_denials() -> None:
    spec = DeviceSpec("demo", "gate", "GATE-B01-E1", "B01")
    events = [e for e in emissions(spec, 7 * 86_400) if e[1] == "event"]
    hours = [int(((START + e[0] * 1000) / 3_600_000 + 8) % 24) for e in events
             if e[2]["event"] == "access_granted"]
    assert hours.count(8) > 3 * hours.count(3) + 10
    assert hours.count(18) > 3 * hours.count(2) + 10
    assert any(e[2]["event"] == "access_denied" for e in events)


def test_charger_session_ramps_tapers_floats_and_heats_with_power() -> None:
    port = charger.Port(1)
    import random
    charger._start(port, random.Random(3))
    trace = []
    for _ in range(9 * 60):
        if port.state == "full":
            break
        charger._step(port, 60)
        port.temp_c += (25 + charger.DEGREES_PER_WATT * port.volts * port.amps - port.temp_c) * 0.06
        trace.append((port.state, port.amps, port.volts * port.amps, port.temp_c))
    amps = [t[1] for t in trace]
    assert amps[0] < amps[2] <= 3.0  # soft start
    assert max(amps) >= 2.0
    assert any(s == "float" and p < 20 for s, _, p, _ in trace)
    assert port.state == "full" and len(trace) <= 8 * 60
    peak = max(range(len(trace)), key=lambda i: trace[i][2])
    assert trace[peak + 30][3] > trace[-1][3]  # hotter while power is high


def test_vendor_topics() -> None:
    smoke = DeviceSpec("demo", "smoke", "SD-B01-0001", "B01")
    payload = {"ts": START, "seq": 5, "smoke_dbm": 0.02, "temp_c": 21.9, "battery_pct": 90,
               "rssi_dbm": -114}
    [(topic, body, _retain)] = encode("alink", smoke, "telemetry", payload)
    assert topic == "/sys/a1SmkJs2024/SD-B01-0001/thing/event/property/post"
    obj = orjson.loads(body)
    assert obj["method"] == "thing.event.property.post" and obj["id"] == "5"
    assert obj["params"]["CurrentTemperature"] == {"value": 21.9, "time": START}
    [(topic, body, _)] = encode("alink", smoke, "event", {"ts": START, "seq": 6, "event": "alarm"})
    assert topic == "/sys/a1SmkJs2024/SD-B01-0001/thing/event/FireAlarm/post"
    [(topic, body, _)] = encode("iotda", smoke, "telemetry", payload)
    assert topic == f"$oc/devices/{vendor_device_id('iotda', smoke)}/sys/properties/report"
    service = orjson.loads(body)["services"][0]
    assert service["service_id"] == "Smoke" and service["properties"]["temperature"] == 219
    assert service["event_time"] == iotda_time(START) == "20251124T160000Z"
    [(topic, _, _)] = encode("iotda", smoke, "event", {"ts": START, "seq": 7, "event": "tamper"})
    assert topic.endswith("/sys/events/up")
    assert encode("alink", smoke, "status", {"ts": START, "seq": 8, "online": True}) == []


@pytest.mark.parametrize("fmt", ["alink", "iotda"])
def test_vendor_encodings_decode_with_the_gateway_profiles(fmt: str) -> None:
    profiles = pytest.importorskip("device_profiles")
    registry = profiles.load_profiles()
    covered = [t for (v, t), m in vendor_mappings().items() if v == fmt and m.origin != "table"]
    assert covered, "the shipped vendor profiles cover at least one type"
    for dtype in covered:
        spec = next(d for d in demo_devices("demo") if d.type == dtype)
        dev = SimulatedDevice(spec, fmt, seed=1)  # type: ignore[arg-type]
        stream = dev.behaviour(START)
        for off, kind, fields in itertools.islice(stream, 60):
            ts = START + int(off * 1000)
            for topic, body, _ in dev.messages(kind, fields, ts):
                out = registry.decode(topic, body, ts + 1000)
                assert isinstance(out, list), (topic, body, out)
                telemetry = [r for r in out if r.kind == "telemetry"]
                for name, value in fields.items():
                    if telemetry and name in telemetry[0].fields:
                        assert telemetry[0].fields[name] == pytest.approx(value, abs=0.01)


def test_device_list_files(tmp_path: Path) -> None:
    flat = tmp_path / "devices.yaml"
    flat.write_text("devices:\n  - {site: demo, type: smoke, device_id: SD-X-1, building: X}\n"
                    "  - {site: other, type: sos, id: SOS-Y-1, building: Y}\n")
    assert [d.device_id for d in load_devices(flat, "demo")] == ["SD-X-1"]
    nested = tmp_path / "registry.yaml"
    nested.write_text(
        "sites:\n  - code: demo\n    buildings:\n      - id: B7\n        devices:\n"
        "          - {id: SD-B7-1, type: smoke}\n"
        "          - {id: SOS-B7-1, type: sos, household: B7-101, flags: [elderly_alone]}\n")
    found = load_devices(nested, "demo")
    assert {(d.device_id, d.building) for d in found} == {("SD-B7-1", "B7"), ("SOS-B7-1", "B7")}
    assert found[1].flags == ("elderly_alone",)
    as_json = tmp_path / "d.json"
    as_json.write_text('[{"site": "demo", "type": "gate", "device_id": "G1", "building": "B1"}]')
    assert load_devices(as_json)[0].type == "gate"


def test_fleet_publishes_at_a_multiplied_rate(mosquitto: Mosquitto) -> None:
    recorder = Recorder(mosquitto.port, ("safety/#",))
    try:
        fleet = Fleet(fleet_devices("demo", 150), mosquitto.url, rate=3600, qos=1)
        lines: list[str] = []
        report = fleet.run(2.0, report_every=0.5, on_report=lines.append)
        got = recorder.wait_for(report.messages + len(fleet.sims))
    finally:
        recorder.close()
    assert report.messages > 500 and report.rate > 250
    assert report.unacknowledged == 0
    assert len(got) == report.messages + len(fleet.sims)  # + one online status each
    assert lines and "msg/s" in report.summary()
    for topic, payload in got[:200]:
        check_native(topic, payload)


def test_fleet_flat_out_reports_achieved_rate(mosquitto: Mosquitto) -> None:
    report = Fleet(fleet_devices("demo", 300), mosquitto.url, rate=math.inf, qos=0).run(1.5)
    assert report.rate > 1000
    assert report.messages == sum(v for k, v in report.by_kind.items() if k != "status")


def test_fleet_per_device_connections_with_will(mosquitto: Mosquitto) -> None:
    devices = demo_devices("demo")[:20]
    recorder = Recorder(mosquitto.port, ("safety/+/+/+/status",))
    try:
        Fleet(devices, mosquitto.url, rate=60, connections="device").run(1.0)
        got = recorder.wait_for(len(devices))
    finally:
        recorder.close()
    assert {t.split("/")[3] for t, _ in got} == {d.device_id for d in devices}
