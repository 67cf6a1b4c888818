"""The hostile flood: malformed and hostile messages a gateway must quarantine and survive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from core import topics
from simulators.inventory import DeviceSpec


@dataclass(frozen=True, slots=True)
class HostileMessage:
    """One bad message. ``raw`` ones bypass the client library (it would refuse them);
    ``delivered`` says whether a conforming broker passes it on to subscribers at all.

    ``reason`` is the quarantine reason the gateway (subscribed to ``safety/#``) records for
    it (a ``core.readings.RejectReason`` value); None when it is not quarantined: the
    broker does not deliver it, or it is on a downlink topic (worker app, device command),
    which the gateway counts as downlink traffic instead.
    """

    attack: str
    topic: str | bytes
    payload: bytes
    raw: bool = False
    delivered: bool = True
    reason: str | None = None


def _topic(d: DeviceSpec, kind: str, device_id: str | None = None) -> str:
    return topics.uplink(d.site, d.type, device_id or d.device_id, kind)


def bad_json(d: DeviceSpec, ts: int) -> list[HostileMessage]:
    t = _topic(d, "telemetry")
    out = [HostileMessage("bad_json", t, p, reason="not_json") for p in (
        b'{"ts": 1732250000000, "smoke_dbm": ', b"not json at all", b"\xff\xfe\x00garbage",
        b"[1, 2, 3]", b"", b'{"temp_c": NaN}', b"null",
    )]
    # 10 kB of nesting: over the 4 KiB payload limit before any parser sees it
    out.append(HostileMessage("bad_json", t, b"{" * 5000 + b"}" * 5000, reason="too_large"))
    return out


def huge_payload(d: DeviceSpec, ts: int) -> list[HostileMessage]:
    t = _topic(d, "telemetry")
    just_over = orjson.dumps({"ts": ts, "seq": 1, "pad": "x" * 4200})
    big = orjson.dumps({"ts": ts, "blob": "A" * 70_000})
    return [HostileMessage("huge_payload", t, just_over, reason="too_large"),
            HostileMessage("huge_payload", t, big, reason="too_large")]


def wrong_types(d: DeviceSpec, ts: int) -> list[HostileMessage]:
    t = _topic(d, "telemetry")
    bodies: list[tuple[dict[str, object], str]] = [
        ({"ts": ts, "smoke_dbm": "high"}, "wrong_type"),
        ({"ts": ts, "battery_pct": True}, "wrong_type"),
        ({"ts": "yesterday", "temp_c": 22.0}, "wrong_type"),
        ({"ts": ts, "seq": "one"}, "wrong_type"),
        ({"ts": ts, "seq": -5, "temp_c": 22.0}, "out_of_range"),  # an integer, but negative
        ({"ts": ts, "temp_c": [22.0]}, "wrong_type"),
        ({"ts": ts, "temp_c": {"value": 22.0}}, "wrong_type"),
    ]
    out = [HostileMessage("wrong_types", t, orjson.dumps(b), reason=r) for b, r in bodies]
    out.append(HostileMessage("wrong_types", _topic(d, "event"),
                              orjson.dumps({"ts": ts, "event": 42}), reason="wrong_type"))
    out.append(HostileMessage("wrong_types", _topic(d, "status"),
                              orjson.dumps({"online": "yes"}), reason="wrong_type"))
    return out


def out_of_range(d: DeviceSpec, ts: int) -> list[HostileMessage]:
    t = _topic(d, "telemetry")
    return [HostileMessage("out_of_range", t, orjson.dumps(b), reason="out_of_range") for b in (
        {"ts": ts, "smoke_dbm": -1.0}, {"ts": ts, "battery_pct": 250},
        {"ts": ts, "temp_c": 9999.0}, {"ts": ts, "rssi_dbm": 40},
    )]


def unknown_event(d: DeviceSpec, ts: int) -> list[HostileMessage]:
    body = orjson.dumps({"ts": ts, "event": "self_destruct"})
    return [HostileMessage("unknown_event", _topic(d, "event"), body, reason="unknown_event")]


def unknown_device(d: DeviceSpec, ts: int) -> list[HostileMessage]:
    alarm = orjson.dumps({"ts": ts, "seq": 1, "event": "alarm", "smoke_dbm": 0.5})
    return [
        HostileMessage("unknown_device", _topic(d, "event", "SD-ZZ-9999"), alarm,
                       reason="unknown_device"),
        HostileMessage("unknown_device", f"safety/{d.site}/toaster/T-1/telemetry",
                       orjson.dumps({"ts": ts, "temp_c": 200.0}), reason="unknown_topic"),
        HostileMessage("unknown_device", f"safety/nosuchsite/smoke/{d.device_id}/event", alarm,
                       reason="unknown_device"),
    ]


def future_timestamp(d: DeviceSpec, ts: int) -> list[HostileMessage]:
    alarm = {"seq": 1, "event": "alarm", "smoke_dbm": 0.5}
    return [
        HostileMessage("future_timestamp", _topic(d, "event"),
                       orjson.dumps({**alarm, "ts": ts + 86_400_000}), reason="future_timestamp"),
        HostileMessage("future_timestamp", _topic(d, "event"),
                       orjson.dumps({**alarm, "ts": "2100-01-01T00:00:00Z"}),
                       reason="future_timestamp"),
    ]


def wildcard_topic(d: DeviceSpec, ts: int) -> list[HostileMessage]:
    body = orjson.dumps({"ts": ts, "event": "alarm"})
    # MQTT-3.3.2-2: a PUBLISH topic must not contain wildcards; the broker must drop the client.
    return [
        HostileMessage("wildcard_topic", f"safety/{d.site}/smoke/+/event".encode(), body,
                       raw=True, delivered=False),
        HostileMessage("wildcard_topic", f"safety/{d.site}/#".encode(), body,
                       raw=True, delivered=False),
    ]


def topic_injection(d: DeviceSpec, ts: int) -> list[HostileMessage]:
    alarm = orjson.dumps({"ts": ts, "event": "alarm"})
    forged = orjson.dumps({"id": "forged", "type": "smoke", "severity": "critical",
                           "title": "Fake fire"})
    return [
        HostileMessage("topic_injection", f"safety/{d.site}/smoke/../{d.device_id}/event", alarm,
                       reason="unknown_topic"),
        HostileMessage("topic_injection", _topic(d, "event") + "/extra", alarm,
                       reason="unknown_topic"),
        HostileMessage("topic_injection", f"safety/{d.site}/smoke//event", alarm,
                       reason="unknown_topic"),
        HostileMessage("topic_injection", f"safety/{d.site}/smoke/{d.device_id}%2Fx/event", alarm,
                       reason="unknown_topic"),
        # downlink topics: the broker's ACL must keep devices off them (least privilege)
        HostileMessage("topic_injection", _topic(d, "cmd"), orjson.dumps({"silence": True})),
        HostileMessage("topic_injection", f"safety/{d.site}/workers/W-0001/incidents", forged),
        HostileMessage("topic_injection", _topic(d, "event"),
                       orjson.dumps({"ts": ts, "event": "alarm", "device_id": "SD-OTHER",
                                     "site": "elsewhere"}), reason="unknown_field"),
        HostileMessage("topic_injection", f"safety/{d.site}/smoke/{d.device_id}\x00x/event".encode(),
                       alarm, raw=True, delivered=False),
    ]


ATTACKS: dict[str, Callable[[DeviceSpec, int], list[HostileMessage]]] = {
    "bad_json": bad_json,
    "huge_payload": huge_payload,
    "wrong_types": wrong_types,
    "out_of_range": out_of_range,
    "unknown_event": unknown_event,
    "unknown_device": unknown_device,
    "future_timestamp": future_timestamp,
    "wildcard_topic": wildcard_topic,
    "topic_injection": topic_injection,
}
