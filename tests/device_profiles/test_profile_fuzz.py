"""Property tests: no topic or payload makes decode raise; it returns readings or a rejection."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.readings import Reading, Rejection, RejectReason
from device_profiles import load_profiles

REGISTRY = load_profiles()
NOW = 1_732_250_060_000
KNOWN_TOPICS = sorted({e.example.topic for e in REGISTRY.examples()})
KEYS = sorted(
    {"ts", "seq", "event", "online", "params", "services", "id", "method", "value", "time"}
    | {k for p in REGISTRY.profiles() for k in p.telemetry}
    | {"service_id", "properties", "event_type", "event_time", "paras", "object_device_id"}
    | {
        part
        for p in REGISTRY.profiles()
        for f in p.telemetry.values()
        if f.source
        for part in f.source.split(".")
    }
    | {code for p in REGISTRY.profiles() for code in p.events.codes}
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["alarm", "charging", "20241122T043320Z", "2024-11-22T04:33:20Z", "123"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=8)
topic_segment = st.sampled_from(
    [
        "safety",
        "demo",
        "smoke",
        "sos",
        "gate",
        "charger",
        "telemetry",
        "event",
        "status",
        "+",
        "#",
        "",
        "sys",
        "$oc",
        "devices",
        "a1SmkJs2024",
        "thing",
        "post",
        "property",
        "65f1c0a2e3b4d5c6a7b8c9d0_x",
        "properties",
        "report",
        "events",
        "up",
    ]
) | st.text(max_size=12)
topics = (
    st.sampled_from(KNOWN_TOPICS)
    | st.lists(topic_segment, min_size=1, max_size=9).map("/".join)
    | st.text(max_size=80)
)


def check(result: object) -> None:
    if isinstance(result, Rejection):
        assert isinstance(result.reason, RejectReason)
        assert isinstance(result.detail, str)
        return
    assert isinstance(result, list)
    for reading in result:
        assert isinstance(reading, Reading)
        assert reading.ts_ms <= NOW + 300_000
        assert reading.kind in ("telemetry", "event", "status", "cmd_ack")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(topic=topics, payload=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(topic: str, payload: bytes) -> None:
    check(REGISTRY.decode(topic, payload, NOW))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(topic=topics, obj=json_objects)
def test_arbitrary_json_never_raises(topic: str, obj: dict[str, object]) -> None:
    check(REGISTRY.decode(topic, orjson.dumps(obj), NOW))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(KNOWN_TOPICS), key=st.sampled_from(KEYS), value=json_values)
def test_known_topics_with_one_odd_value(topic: str, key: str, value: object) -> None:
    example = next(e for e in REGISTRY.examples() if e.example.topic == topic)
    base = example.example.payload
    obj = dict(base) if isinstance(base, dict) else {}
    obj[key] = value
    check(REGISTRY.decode(topic, orjson.dumps(obj), NOW))
