"""Table tests for decode: each rejection reason, timestamps, seq, subscriptions, heartbeats."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from core.readings import Reading, Rejection, RejectReason
from device_profiles import load_profiles

NOW = 1_732_250_060_000
REGISTRY = load_profiles()
SMOKE = "safety/demo/smoke/SD-0001/telemetry"
EVENT = "safety/demo/smoke/SD-0001/event"
ALINK = "/sys/a1SmkJs2024/SD_0301/thing/event/property/post"
IOTDA = "$oc/devices/65f1c0a2e3b4d5c6a7b8c9d0_NB306-0042/sys/properties/report"


def decode(topic: str, payload: object, now: int = NOW) -> list[Reading] | Rejection:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return REGISTRY.decode(topic, raw, now)


REJECTIONS = [
    # (case id, topic, payload, reason)
    ("not utf-8", SMOKE, b'{"temp_c": "\xff"}', RejectReason.NOT_JSON),
    ("truncated json", SMOKE, b'{"temp_c": 2', RejectReason.NOT_JSON),
    ("json string", SMOKE, b'"hello"', RejectReason.NOT_JSON),
    ("empty payload", SMOKE, b"", RejectReason.NOT_JSON),
    ("nan", SMOKE, b'{"temp_c": NaN}', RejectReason.NOT_JSON),
    ("native 4097 bytes", SMOKE, b"{}" + b" " * 4095, RejectReason.TOO_LARGE),
    ("too large even if garbage", SMOKE, b"\xff" * 5000, RejectReason.TOO_LARGE),
    ("vendor over 64 KiB", ALINK, b"{}" + b" " * 65535, RejectReason.TOO_LARGE),
    ("bool for float", SMOKE, {"smoke_dbm": False}, RejectReason.WRONG_TYPE),
    ("string for int", SMOKE, {"battery_pct": "87"}, RejectReason.WRONG_TYPE),
    ("fraction for int", SMOKE, {"battery_pct": 87.5}, RejectReason.WRONG_TYPE),
    ("null value", SMOKE, {"temp_c": None}, RejectReason.WRONG_TYPE),
    ("object value", SMOKE, {"temp_c": {"v": 1}}, RejectReason.WRONG_TYPE),
    ("ts as bool", SMOKE, {"ts": True, "temp_c": 1.0}, RejectReason.WRONG_TYPE),
    (
        "ts naive string",
        SMOKE,
        {"ts": "2024-11-22T04:33:20", "temp_c": 1.0},
        RejectReason.WRONG_TYPE,
    ),
    ("ts garbage string", SMOKE, {"ts": "yesterday", "temp_c": 1.0}, RejectReason.WRONG_TYPE),
    ("seq as string", SMOKE, {"seq": "1", "temp_c": 1.0}, RejectReason.WRONG_TYPE),
    ("seq as float", SMOKE, {"seq": 1.5, "temp_c": 1.0}, RejectReason.WRONG_TYPE),
    ("event not string", EVENT, {"event": 1}, RejectReason.WRONG_TYPE),
    ("smoke above 20", SMOKE, {"smoke_dbm": 20.5}, RejectReason.OUT_OF_RANGE),
    ("temp below -40", SMOKE, {"temp_c": -41.0}, RejectReason.OUT_OF_RANGE),
    ("rssi positive", SMOKE, {"rssi_dbm": 5}, RejectReason.OUT_OF_RANGE),
    ("negative ts", SMOKE, {"ts": -1, "temp_c": 1.0}, RejectReason.OUT_OF_RANGE),
    ("negative seq", SMOKE, {"seq": -5, "temp_c": 1.0}, RejectReason.OUT_OF_RANGE),
    ("empty telemetry", SMOKE, {"ts": 1}, RejectReason.MISSING_FIELD),
    ("status without online", "safety/demo/smoke/SD-0001/status", {}, RejectReason.MISSING_FIELD),
    ("typo in telemetry", SMOKE, {"temp_c": 1.0, "tmep_c": 1.0}, RejectReason.UNKNOWN_FIELD),
    (
        "event field of other type",
        EVENT,
        {"event": "alarm", "credential": "card"},
        RejectReason.UNKNOWN_FIELD,
    ),
    (
        "extra status key",
        "safety/demo/smoke/SD-0001/status",
        {"online": True, "x": 1},
        RejectReason.UNKNOWN_FIELD,
    ),
    ("event of other type", EVENT, {"event": "door_forced"}, RejectReason.UNKNOWN_EVENT),
    ("event case", EVENT, {"event": "ALARM"}, RejectReason.UNKNOWN_EVENT),
    ("future ts", SMOKE, {"ts": NOW + 300_001, "temp_c": 1.0}, RejectReason.FUTURE_TIMESTAMP),
    (
        "future rfc3339",
        SMOKE,
        {"ts": "2030-01-01T00:00:00+08:00", "temp_c": 1.0},
        RejectReason.FUTURE_TIMESTAMP,
    ),
    (
        "alink future property time",
        ALINK,
        {"params": {"BatteryPercentage": {"value": 5, "time": NOW + 10**7}}},
        RejectReason.FUTURE_TIMESTAMP,
    ),
    (
        "iotda property of unknown service",
        IOTDA,
        {"services": [{"service_id": "X", "properties": {"y": 1}}]},
        RejectReason.UNKNOWN_FIELD,
    ),
    (
        "iotda unknown service key",
        IOTDA,
        {"services": [{"service_id": "Smoke", "properties": {}, "extra": 1}]},
        RejectReason.UNKNOWN_FIELD,
    ),
    ("iotda no service_id", IOTDA, {"services": [{"properties": {}}]}, RejectReason.MISSING_FIELD),
    ("iotda services missing", IOTDA, {"data": []}, RejectReason.MISSING_FIELD),
    # What no store can hold is refused here, not by the store (a seq of 2**63 used to pass
    # and then stop every later flush of the embedded store).
    ("seq 2**63", EVENT, {"seq": 2**63, "event": "alarm"}, RejectReason.OUT_OF_RANGE),
    ("seq 2**64-1", SMOKE, {"seq": 2**64 - 1, "temp_c": 1.0}, RejectReason.OUT_OF_RANGE),
    ("ts past 2262", EVENT, {"ts": 9_223_372_036_855, "event": "alarm"}, RejectReason.OUT_OF_RANGE),
    # One rule for every form of ts: before 1970 is out of range as a number and as text.
    (
        "ts before 1970 as RFC 3339",
        SMOKE,
        {"ts": "1969-12-31T23:59:59Z", "temp_c": 1.0},
        RejectReason.OUT_OF_RANGE,
    ),
]

UNKNOWN_TOPICS = [
    "safety/demo/toaster/T-1/telemetry",  # unknown type
    "safety/demo/smoke/SD-0001/cmd",  # unknown kind (and our own downlink)
    "safety/demo/workers/w-1/incidents",  # worker downlink topic
    "safety/demo/smoke/+/telemetry",  # wildcard
    "safety/demo/smoke/#",
    "safety/demo/smoke/SD\x000001/telemetry",  # NUL
    "safety/DEMO/smoke/SD-0001/telemetry",  # site charset
    "safety/" + "a" * 33 + "/smoke/SD-0001/telemetry",  # site too long
    "safety/demo/smoke/SD 0001/telemetry",  # device_id charset
    "safety/demo/smoke/" + "d" * 65 + "/telemetry",  # device_id too long
    "safety//smoke/SD-0001/telemetry",  # empty site
    "safety/demo/smoke/SD-0001/telemetry/extra",
    "safety/demo/smoke/SD-0001",
    "/safety/demo/smoke/SD-0001/telemetry",
    "",
    "x" * 600,
    "/sys/a1SmkJs2024/SD_0301/thing/event/property/post_reply",
    "/sys/a1SmkJs2024/SD_0301/thing/model/up_raw",
    "$oc/devices/65f1c0a2e3b4d5c6a7b8c9d0_NB306-0042/sys/messages/up",
]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_rejection(topic: str, payload: object, reason: RejectReason) -> None:
    result = decode(topic, payload)
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result.detail
    assert result.topic == topic
    assert result.detail


@pytest.mark.parametrize("topic", UNKNOWN_TOPICS)
def test_unknown_topic(topic: str) -> None:
    result = decode(topic, {"temp_c": 1.0})
    assert isinstance(result, Rejection)
    assert result.reason == RejectReason.UNKNOWN_TOPIC
    assert result.device_id is None


def test_topic_is_checked_before_size() -> None:
    result = REGISTRY.decode("nowhere", b"x" * 100_000, NOW)
    assert isinstance(result, Rejection)
    assert result.reason == RejectReason.UNKNOWN_TOPIC


def test_exactly_4096_bytes_is_accepted() -> None:
    payload = b'{"temp_c": 21.5}'
    result = REGISTRY.decode(SMOKE, payload + b" " * (4096 - len(payload)), NOW)
    assert isinstance(result, list)


def test_rejection_names_device() -> None:
    result = decode(SMOKE, {"temp_c": "hot"})
    assert isinstance(result, Rejection)
    assert result.device_id == "SD-0001"
    assert "temp_c" in result.detail


def test_missing_ts_is_receive_time_and_seq_optional() -> None:
    result = decode(SMOKE, {"temp_c": 21.5})
    assert isinstance(result, list)
    assert result[0].ts_ms == NOW
    assert result[0].seq is None


def test_int_accepted_for_float_field_and_becomes_float() -> None:
    result = decode(SMOKE, {"temp_c": 21})
    assert isinstance(result, list)
    assert result[0].fields == {"temp_c": 21.0}
    assert isinstance(result[0].fields["temp_c"], float)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024-11-22T04:33:20Z", 1_732_250_000_000),
        ("2024-11-22T12:33:20.250+08:00", 1_732_250_000_250),
        (1_732_250_000_000.0, 1_732_250_000_000),
    ],
)
def test_timestamp_forms(ts: object, expected: int) -> None:
    result = decode(SMOKE, {"ts": ts, "temp_c": 21.5})
    assert isinstance(result, list)
    assert result[0].ts_ms == expected


def test_future_tolerance_is_a_parameter() -> None:
    payload = orjson.dumps({"ts": NOW + 60_000, "temp_c": 1.0})
    assert isinstance(REGISTRY.decode(SMOKE, payload, NOW), list)
    tight = REGISTRY.decode(SMOKE, payload, NOW, future_tolerance_ms=1_000)
    assert isinstance(tight, Rejection)
    assert tight.reason == RejectReason.FUTURE_TIMESTAMP
    boundary = orjson.dumps({"ts": NOW + 300_000, "temp_c": 1.0})
    assert isinstance(REGISTRY.decode(SMOKE, boundary, NOW), list)


def test_repeated_topic_uses_cache_consistently() -> None:
    for _ in range(3):
        assert isinstance(decode(SMOKE, {"temp_c": 1.0}), list)
        bad = decode("safety/demo/toaster/x/telemetry", {"temp_c": 1.0})
        assert isinstance(bad, Rejection)


def test_alink_seq_distinct_per_reading_and_stable() -> None:
    payload = {"id": "7", "params": {"BatteryPercentage": 50, "SmokeSensorState": 1}}
    first, again = decode(ALINK, payload), decode(ALINK, payload)
    assert isinstance(first, list)
    assert [r.seq for r in first] == [7000, 7001]
    assert first == again


def test_iotda_object_device_id_must_be_the_device_of_the_topic() -> None:
    # A device that names another in object_device_id would get around the broker's topic ACL
    # (raise or clear another household's alarm). IoTDA gateways reporting for sub-devices are
    # not supported until the registry says which device is whose gateway.
    topic = "$oc/devices/65f1c0a2e3b4d5c6a7b8c9d0_NB306-0042/sys/events/up"
    payload = {
        "object_device_id": "65f1c0a2e3b4d5c6a7b8c9d0_child-7",
        "services": [{"service_id": "Smoke", "event_type": "smoke_alarm", "paras": {}}],
    }
    result = decode(topic, payload)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.UNKNOWN_DEVICE
    payload["object_device_id"] = "65f1c0a2e3b4d5c6a7b8c9d0_NB306-0042"  # itself: fine
    result = decode(topic, payload)
    assert isinstance(result, list)
    assert result[0].device_id == "65f1c0a2e3b4d5c6a7b8c9d0_NB306-0042"


def test_subscriptions() -> None:
    assert REGISTRY.subscriptions() == [
        "$oc/devices/+/sys/events/up",
        "$oc/devices/+/sys/properties/report",
        "/sys/+/+/thing/event/+/post",
        "safety/+/+/+/+",
    ]


@pytest.mark.parametrize(
    ("device_type", "interval", "offline_after"),
    [
        ("smoke", timedelta(hours=24), timedelta(hours=49)),
        ("sos", timedelta(hours=1), timedelta(hours=3)),
        ("gate", timedelta(minutes=5), timedelta(minutes=15)),
        ("charger", timedelta(minutes=1), timedelta(minutes=5)),
    ],
)
def test_heartbeats(device_type: str, interval: timedelta, offline_after: timedelta) -> None:
    heartbeat = REGISTRY.profile_for(device_type).heartbeat  # type: ignore[arg-type]
    assert (heartbeat.interval, heartbeat.offline_after) == (interval, offline_after)


def test_profile_for_unknown_type() -> None:
    with pytest.raises(KeyError):
        REGISTRY.profile_for("toaster")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field_type", "raw", "scale"),
    [
        ("int", 2**63, 1.0),
        ("int", -(2**63) - 1, 1.0),
        ("int", 1e19, 1.0),  # a whole float past 64 bits
        ("int", 2**62, 4.0),  # in range until scaled
        ("float", 1e308, 10.0),  # scales to infinity
    ],
)
def test_a_field_the_profile_leaves_unbounded_is_still_bounded_by_the_stores(
    field_type: str, raw: float, scale: float
) -> None:
    from device_profiles.compiled import DecodeError, FieldCheck
    from device_profiles.schema import FieldSpec

    check = FieldCheck("counter", FieldSpec(type=field_type, scale=scale))  # type: ignore[arg-type]
    with pytest.raises(DecodeError) as err:
        check.check(raw)
    assert err.value.reason is RejectReason.OUT_OF_RANGE
    assert check.check(2**63 - 1 if field_type == "int" and scale == 1.0 else 7) is not None
