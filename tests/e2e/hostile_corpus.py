"""Hostile MQTT messages for every device profile, built from each profile's own example topics.

For every profile (the native smoke/sos/gate/charger contracts and every vendor model) this
makes, on the topics of the device its examples name: oversize and not-JSON payloads, deep
nesting, huge numbers (2**63, 2**64, 1e308, -1e308) and NaN-like text, a wrong type for each
field the profile declares (and for each envelope field its codec reads), unknown fields, NUL
and non-UTF-8 bytes in payloads and topics, wildcard topics and topic injection. Each message
says what a conforming broker and the gateway must make of it: the quarantine reasons that fit
(a wrong type for an enum may well be "out_of_range": an unknown code), a downlink topic the
gateway only counts, or a message the broker refuses (the gateway never sees it).

The flood of simulators/hostile.py (native smoke) is added as it is; this module covers what
it does not: the other types, the vendor formats, and every field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from device_profiles import DeviceProfile, FieldSpec, ProfileRegistry
from simulators.hostile import ATTACKS
from simulators.inventory import DeviceSpec

HUGE_NUMBERS: tuple[int | float, ...] = (2**63, 2**64, 1e308, -1e308)
WRONG_TYPES: tuple[object, ...] = ("text", True, [1], {"v": 1}, None)
NOT_JSON: tuple[bytes, ...] = (
    b"not json", b"{", b'{"a": 1}}', b"", b"[1, 2, 3]", b'"a string"', b"null", b"42",
    b"\xff\xfe\x00garbage", b'{"k": "\xff\xfe"}', b'{"k": 1}\x00', b"\x00",
)
DEEP = 1100  # past orjson's nesting limit (1024)
BROKER_LIMIT = 1_048_576  # the test broker's max_packet_size (tests/services.py)

#: Envelope fields a message may leave out (null is read as absent).
OPTIONAL = frozenset({"seq", "id", "method"})
TYPO = frozenset({"wrong_type", "out_of_range"})  # an enum's unknown code is out of range
TIME = frozenset({"wrong_type", "out_of_range", "future_timestamp"})
NUMBER = frozenset({"wrong_type", "out_of_range"})


@dataclass(frozen=True)
class Hostile:
    """One hostile message and what must become of it.

    ``reasons``: the quarantine reasons that fit. Empty with ``delivered``: a downlink topic
    (worker page, device command), which the gateway counts instead. ``delivered=False``: the
    broker refuses it or no subscription of the gateway covers the topic, so the gateway never
    sees it. ``raw``: sent as a hand-built PUBLISH, since a client library refuses to send it.
    """

    profile: str
    attack: str
    topic: str | bytes
    payload: bytes
    reasons: frozenset[str] = frozenset()
    delivered: bool = True
    raw: bool = False

    @property
    def topic_text(self) -> str:
        return self.topic if isinstance(self.topic, str) else self.topic.decode("utf-8", "replace")


def _json(obj: Any) -> bytes:
    # The stdlib encoder: it writes integers past 64 bits and NaN/Infinity, which orjson refuses.
    return json.dumps(obj, ensure_ascii=False).encode()


def _valid(spec: FieldSpec) -> object:
    """A value the field accepts (before scaling)."""
    if spec.type == "bool":
        return True
    if spec.type == "enum":
        return next(iter(spec.value_map)) if spec.value_map else spec.values[0]  # type: ignore[index]
    low = spec.min if spec.min is not None else 0
    value = low / spec.scale if spec.scale not in (0, 1) else low
    return int(value) if spec.type == "int" else float(value)


def _wrong_reasons(spec: FieldSpec) -> frozenset[str]:
    return TYPO if spec.type == "enum" else frozenset({"wrong_type"})


class _Builder:
    """Payloads for one profile: ``payload(field, value)`` puts a value where the codec reads
    that field; ``valid()`` is a payload the profile accepts."""

    def __init__(self, profile: DeviceProfile, topics: dict[str, str], now_ms: int) -> None:
        self.profile = profile
        self.topics = topics
        self.now_ms = now_ms
        self.out: list[Hostile] = []
        self.booleans = {"online"} | {
            f"{where}.{name}" for where, fields in (("telemetry", profile.telemetry),
                                                   ("event", profile.events.fields))
            for name, f in fields.items() if f.type == "bool"}

    def add(self, attack: str, topic: str | bytes, payload: bytes, reasons: frozenset[str] = frozenset(),
            *, delivered: bool = True, raw: bool = False) -> None:
        self.out.append(Hostile(self.profile.id, attack, topic, payload, frozenset(reasons),
                                delivered, raw))

    # what each codec defines -----------------------------------------------------------------
    def field_positions(self) -> Iterator[tuple[str, str, Any, frozenset[str]]]:
        """(name, topic, function value -> payload object, reasons for a wrong type)."""
        raise NotImplementedError

    def time_positions(self) -> Iterator[tuple[str, str, Any]]:
        raise NotImplementedError

    def unknown_fields(self) -> Iterator[tuple[str, str, object]]:
        raise NotImplementedError

    def valid(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def with_key(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        """``body`` with one more key where the codec reads the fields."""
        raise NotImplementedError

    # the attacks -------------------------------------------------------------------------------
    def build(self) -> list[Hostile]:
        for name, topic, put, wrong in self.field_positions():
            for value in WRONG_TYPES:
                if value is None and name in OPTIONAL:
                    continue  # null is "not given", which these may be
                if value is True and name in self.booleans:
                    value = 1  # a boolean's wrong type is a number
                self.add(f"wrong_type {name}={value!r}", topic, _json(put(value)), wrong)
            numeric = wrong == {"wrong_type"}
            for value in HUGE_NUMBERS:
                self.add(f"huge_number {name}={value!r}", topic, _json(put(value)),
                         NUMBER if numeric else wrong | NUMBER)
            self.add(f"nan_text {name}", topic, _json(put("NaN")), wrong)
            for literal in ("NaN", "Infinity", "-Infinity"):
                text = _json(put(0.5)).replace(b"0.5", literal.encode(), 1)
                self.add(f"nan_literal {name}={literal}", topic, text, {"not_json"})
            nested: Any = 1
            for _ in range(200):
                nested = [nested]
            self.add(f"deep_value {name}", topic, _json(put(nested)), wrong)
        for name, topic, put in self.time_positions():
            for value in (*HUGE_NUMBERS, "yesterday", "2100-01-01T00:00:00Z", True, -1):
                self.add(f"time {name}={value!r}", topic, _json(put(value)), TIME)
        for name, topic, obj in self.unknown_fields():
            self.add(f"unknown_field {name}", topic, _json(obj), {"unknown_field"})
        topic, body = self.valid()
        limit = self.profile.max_payload_bytes
        for payload in NOT_JSON:
            self.add(f"not_json {payload[:12]!r}", topic, payload, {"not_json"})
        self.add("deep_array", topic, b"[" * DEEP + b"]" * DEEP, {"not_json"})
        # 5.5 kB: over a native profile's 4 KiB before its nesting is ever parsed
        self.add("deep_object", topic, b'{"a":' * DEEP + b"1" + b"}" * DEEP,
                 {"not_json", "too_large"})
        padded = _json({**body, "pad": "x" * limit})
        self.add("oversize", topic, padded, {"too_large"})
        self.add("oversize_just", topic, _json(body) + b" " * (limit + 1 - len(_json(body))),
                 {"too_large"})
        self.add("over_broker_limit", topic, b"{" + b" " * BROKER_LIMIT + b"}", delivered=False,
                 raw=True)
        self.add("nul_in_key", topic, _json(self.with_key(body, "te\x00mp")), {"unknown_field"})
        self.add("trailing_nul", topic, _json(body) + b"\x00", {"not_json"})
        self.add("bad_utf8", topic, _json(body)[:-1] + b', "k": "\xc3\x28"}', {"not_json"})
        self._topic_attacks(topic, _json(body))
        return self.out

    def _topic_attacks(self, topic: str, payload: bytes) -> None:
        raw = topic.encode()
        for attack, bad in (
            ("wildcard_plus", raw.rsplit(b"/", 1)[0] + b"/+"),
            ("wildcard_hash", raw.rsplit(b"/", 1)[0] + b"/#"),
            ("nul_in_topic", raw.replace(b"/", b"\x00/", 1)),
            ("bad_utf8_topic", raw + b"\xc3\x28"),
            ("lone_surrogate_topic", raw + b"\xed\xa0\x80"),
        ):
            # MQTT-3.3.2-2, MQTT-1.5.3-1/2: the broker must close the connection.
            self.add(attack, bad, payload, delivered=False, raw=True)
        self.injections(topic, payload)

    def injections(self, topic: str, payload: bytes) -> None:
        raise NotImplementedError


class _Native(_Builder):
    def _topic(self, kind: str) -> str:
        return self.topics["telemetry"].rsplit("/", 1)[0] + "/" + kind

    def field_positions(self) -> Iterator[tuple[str, str, Any, frozenset[str]]]:
        spec = self.profile
        base = {"ts": self.now_ms, "seq": 7}
        for name, f in spec.telemetry.items():
            yield (f"telemetry.{name}", self._topic("telemetry"),
                   lambda v, n=name: {**base, n: v}, _wrong_reasons(f))
        event = spec.events.names[0]
        for name, f in spec.events.fields.items():
            yield (f"event.{name}", self._topic("event"),
                   lambda v, n=name: {**base, "event": event, n: v}, _wrong_reasons(f))
        yield ("event", self._topic("event"), lambda v: {**base, "event": v},
               frozenset({"wrong_type", "unknown_event", "missing_field"}))
        yield ("online", self._topic("status"), lambda v: {"online": v},
               frozenset({"wrong_type", "missing_field"}))
        yield ("seq", self._topic("telemetry"), lambda v: {**self._one(), "seq": v},
               frozenset({"wrong_type"}))

    def _one(self) -> dict[str, Any]:
        name, f = next(iter(self.profile.telemetry.items()))
        return {"ts": self.now_ms, name: _valid(f)}

    def time_positions(self) -> Iterator[tuple[str, str, Any]]:
        yield "telemetry.ts", self._topic("telemetry"), lambda v: {**self._one(), "ts": v}
        event = self.profile.events.names[0]
        yield "event.ts", self._topic("event"), lambda v: {"ts": v, "event": event}

    def unknown_fields(self) -> Iterator[tuple[str, str, object]]:
        event = self.profile.events.names[0]
        yield "telemetry", self._topic("telemetry"), {**self._one(), "hostile_extra": 1}
        yield "event", self._topic("event"), {"ts": self.now_ms, "event": event, "device_id": "X"}
        yield "status", self._topic("status"), {"online": True, "site": "elsewhere"}

    def valid(self) -> tuple[str, dict[str, Any]]:
        return self._topic("telemetry"), self._one()

    def with_key(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        return {**body, key: 1}

    def injections(self, topic: str, payload: bytes) -> None:
        site, dtype, device = topic.split("/")[1:4]
        other_type = "gate" if dtype != "gate" else "smoke"
        # a registered device's alarm on another type's topic: the registry knows better
        other_event = _json({"ts": self.now_ms,
                             "event": "alarm" if other_type == "smoke" else "door_forced"})
        for attack, bad, reasons in (
            ("extra_level", topic + "/extra", {"unknown_topic"}),
            ("dot_dot", f"safety/{site}/{dtype}/../{device}/telemetry", {"unknown_topic"}),
            ("empty_level", f"safety/{site}/{dtype}//telemetry", {"unknown_topic"}),
            ("encoded_slash", f"safety/{site}/{dtype}/{device}%2Fx/telemetry", {"unknown_topic", "unknown_device"}),
            ("upper_case_site", f"safety/{site.upper()}/{dtype}/{device}/telemetry", {"unknown_topic"}),
            ("unknown_kind", f"safety/{site}/{dtype}/{device}/firmware", {"unknown_topic"}),
            ("long_topic", f"safety/{site}/{dtype}/{'A' * 600}/telemetry", {"unknown_topic"}),
            ("other_site", f"safety/elsewhere/{dtype}/{device}/telemetry", {"unknown_device"}),
            ("unicode_device", f"safety/{site}/{dtype}/{device}\u200b/telemetry", {"unknown_topic", "unknown_device"}),
        ):
            self.add(f"topic {attack}", bad, payload, frozenset(reasons))
        self.add("topic other_type", f"safety/{site}/{other_type}/{device}/event", other_event,
                 frozenset({"type_mismatch"}))
        self.add("topic downlink_cmd", f"safety/{site}/{dtype}/{device}/cmd", payload)


class _Alink(_Builder):
    def _topic(self, identifier: str) -> str:
        return re.sub(r"/thing/event/[^/]+/post$", f"/thing/event/{identifier}/post",
                      self.topics["property"])

    def field_positions(self) -> Iterator[tuple[str, str, Any, frozenset[str]]]:
        spec = self.profile
        prop = self._topic("property")
        for name, f in spec.telemetry.items():
            source = f.source or name
            yield (f"params.{source}", prop, lambda v, s=source: {"id": "1", "params": {s: v}},
                   _wrong_reasons(f))
            yield (f"params.{source}.value", prop,
                   lambda v, s=source: {"id": "2", "params": {s: {"value": v, "time": self.now_ms}}},
                   _wrong_reasons(f))
        for source in spec.events.from_properties:
            yield (f"params.{source} (event code)", prop,
                   lambda v, s=source: {"id": "3", "params": {s: v}},
                   frozenset({"wrong_type", "unknown_event"}))
        code = next(iter(spec.events.codes))
        for name, f in spec.events.fields.items():
            source = f.source or name
            yield (f"{code}.params.value.{source}", self._topic(code),
                   lambda v, s=source: {"id": "4", "params": {"value": {s: v}, "time": self.now_ms}},
                   _wrong_reasons(f))
        yield ("id", prop, lambda v: {"id": v, "params": self._one()},
               frozenset({"wrong_type", "out_of_range"}))
        yield ("params", prop, lambda v: {"id": "5", "params": v},
               frozenset({"wrong_type", "missing_field", "unknown_field"}))
        yield ("method", prop, lambda v: {"method": v, "params": self._one()},
               frozenset({"unknown_topic"}))

    def _one(self) -> dict[str, Any]:
        name, f = next(iter(self.profile.telemetry.items()))
        return {f.source or name: _valid(f)}

    def time_positions(self) -> Iterator[tuple[str, str, Any]]:
        source = next(iter(self._one()))
        yield ("params.<property>.time", self._topic("property"),
               lambda v: {"params": {source: {"value": next(iter(self._one().values())), "time": v}}})
        code = next(iter(self.profile.events.codes))
        yield f"{code}.params.time", self._topic(code), lambda v: {"params": {"value": {}, "time": v}}

    def unknown_fields(self) -> Iterator[tuple[str, str, object]]:
        code = next(iter(self.profile.events.codes))
        yield "property", self._topic("property"), {"params": {**self._one(), "HostileProp": 1}}
        yield ("property item", self._topic("property"),
               {"params": {next(iter(self._one())): {"value": 1, "time": self.now_ms, "x": 1}}})
        yield "event params", self._topic(code), {"params": {"value": {}, "hostile": 1}}
        yield "event value", self._topic(code), {"params": {"value": {"Hostile": 1}}}

    def valid(self) -> tuple[str, dict[str, Any]]:
        return self._topic("property"), {"id": "6", "params": self._one()}

    def with_key(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        return {**body, "params": {**body["params"], key: 1}}

    def injections(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        product, device = parts[2], parts[3]
        for attack, bad, reasons, delivered in (
            ("extra_level", topic + "/extra", set(), False),  # no subscription covers it
            ("dot_dot", f"/sys/{product}/../thing/event/property/post", {"unknown_topic", "unknown_device"}, True),
            ("empty_device", f"/sys/{product}//thing/event/property/post", {"unknown_topic", "unknown_device"}, True),
            ("other_product", f"/sys/a1Hostile999/{device}/thing/event/property/post", {"unknown_topic"}, True),
            ("unknown_device", f"/sys/{product}/NO-SUCH-DEVICE/thing/event/property/post", {"unknown_device"}, True),
            ("unknown_event", f"/sys/{product}/{device}/thing/event/SelfDestruct/post", {"unknown_event"}, True),
            ("long_topic", f"/sys/{product}/{'A' * 600}/thing/event/property/post", {"unknown_topic"}, True),
            ("native_root", f"safety/demo/smoke/{product}%2F{device}/event", {"unknown_topic", "unknown_device"}, True),
        ):
            self.add(f"topic {attack}", bad, payload, frozenset(reasons), delivered=delivered)


class _Iotda(_Builder):
    def _topic(self, kind: str) -> str:
        base = self.topics["report"].rsplit("/sys/", 1)[0]
        return f"{base}/sys/properties/report" if kind == "report" else f"{base}/sys/events/up"

    @staticmethod
    def _split(source: str) -> tuple[str, str]:
        service, _, prop = source.partition(".")
        return service, prop

    def field_positions(self) -> Iterator[tuple[str, str, Any, frozenset[str]]]:
        spec = self.profile
        report = self._topic("report")
        for name, f in spec.telemetry.items():
            service, prop = self._split(f.source or name)
            yield (f"{service}.properties.{prop}", report,
                   lambda v, s=service, p=prop: {"services": [{"service_id": s, "properties": {p: v}}]},
                   _wrong_reasons(f))
        for source in spec.events.from_properties:
            service, prop = self._split(source)
            yield (f"{source} (event code)", report,
                   lambda v, s=service, p=prop: {"services": [{"service_id": s, "properties": {p: v}}]},
                   frozenset({"wrong_type", "unknown_event"}))
        code = next(iter(spec.events.codes))
        for name, f in spec.events.fields.items():
            service, prop = self._split(f.source or name)
            yield (f"{code}.paras.{prop}", self._topic("event"),
                   lambda v, s=service, p=prop: {"services": [
                       {"service_id": s, "event_type": code, "paras": {p: v}}]},
                   _wrong_reasons(f))
        yield ("services", report, lambda v: {"services": v},
               frozenset({"wrong_type", "missing_field", "out_of_range"}))
        yield ("services[0]", report, lambda v: {"services": [v]},
               frozenset({"wrong_type", "missing_field"}))
        service, prop, value = self._one()
        yield ("service_id", report,
               lambda v: {"services": [{"service_id": v, "properties": {prop: value}}]},
               frozenset({"wrong_type", "missing_field", "unknown_field"}))
        yield ("properties", report,
               lambda v: {"services": [{"service_id": service, "properties": v}]},
               frozenset({"wrong_type", "missing_field", "unknown_field"}))
        yield ("event_type", self._topic("event"),
               lambda v: {"services": [{"service_id": service, "event_type": v}]},
               frozenset({"wrong_type", "unknown_event"}))
        yield ("object_device_id", report,
               lambda v: {"object_device_id": v, "services": [
                   {"service_id": service, "properties": {prop: value}}]},
               frozenset({"wrong_type", "unknown_device"}))

    def _one(self) -> tuple[str, str, object]:
        name, f = next(iter(self.profile.telemetry.items()))
        service, prop = self._split(f.source or name)
        return service, prop, _valid(f)

    def time_positions(self) -> Iterator[tuple[str, str, Any]]:
        service, prop, value = self._one()
        yield ("event_time", self._topic("report"),
               lambda v: {"services": [{"service_id": service, "properties": {prop: value},
                                        "event_time": v}]})

    def unknown_fields(self) -> Iterator[tuple[str, str, object]]:
        service, prop, value = self._one()
        yield ("property", self._topic("report"), {"services": [
            {"service_id": service, "properties": {prop: value, "hostile": 1}}]})
        yield ("service entry", self._topic("report"), {"services": [
            {"service_id": service, "properties": {prop: value}, "hostile": 1}]})
        yield ("unknown service", self._topic("report"), {"services": [
            {"service_id": "Hostile", "properties": {"x": 1}}]})

    def valid(self) -> tuple[str, dict[str, Any]]:
        service, prop, value = self._one()
        return self._topic("report"), {"services": [{"service_id": service,
                                                     "properties": {prop: value}}]}

    def with_key(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        entry = body["services"][0]
        return {"services": [{**entry, "properties": {**entry["properties"], key: 1}}]}

    def injections(self, topic: str, payload: bytes) -> None:
        device = topic.split("/")[2]
        prefix = device.split("_", 1)[0]
        for attack, bad, reasons, delivered in (
            ("extra_level", topic + "/extra", set(), False),  # no subscription covers it
            ("other_product", "$oc/devices/ffffffffffffffffffffffff_X/sys/properties/report", {"unknown_topic"}, True),
            ("unknown_device", f"$oc/devices/{prefix}_NO-SUCH/sys/properties/report", {"unknown_device"}, True),
            ("empty_device", "$oc/devices//sys/properties/report", {"unknown_topic"}, True),
            ("long_topic", f"$oc/devices/{prefix}_{'A' * 600}/sys/properties/report", {"unknown_topic"}, True),
            ("no_dollar", topic.removeprefix("$"), set(), False),  # no subscription covers it
        ):
            self.add(f"topic {attack}", bad, payload, frozenset(reasons), delivered=delivered)


_BUILDERS: dict[str, tuple[type[_Builder], dict[str, str]]] = {
    # codec -> builder, and which example topic stands for which of the device's topics
    "native": (_Native, {"telemetry": r"/telemetry$"}),
    "alink": (_Alink, {"property": r"/thing/event/property/post$"}),
    "iotda": (_Iotda, {"report": r"/sys/properties/report$"}),
}


def device_topics(profile: DeviceProfile) -> dict[str, str]:
    """The topics of the device the profile's examples name (examples it accepts only)."""
    _builder, wanted = _BUILDERS[profile.codec]
    found: dict[str, str] = {}
    for example in profile.examples:
        if example.expect is None or getattr(example.expect, "reject", None) is not None:
            continue
        for key, pattern in wanted.items():
            if re.search(pattern, example.topic):
                found.setdefault(key, example.topic)
    assert set(found) == set(wanted), (profile.id, found)
    return found


def corpus(profiles: ProfileRegistry, now_ms: int) -> list[Hostile]:
    """Every profile's hostile messages, then simulators/hostile.py's flood (native smoke)."""
    out: list[Hostile] = []
    for profile in profiles.profiles():
        builder, _wanted = _BUILDERS[profile.codec]
        out += builder(profile, device_topics(profile), now_ms).build()
    smoke = DeviceSpec(site="demo", type="smoke", device_id="SD-0001", building="b01")
    for attack, make in ATTACKS.items():
        for m in make(smoke, now_ms):
            out.append(Hostile("simulators.hostile", attack, m.topic, m.payload,
                               frozenset({m.reason}) if m.reason else frozenset(),
                               m.delivered, m.raw))
    return out
