"""Alibaba Cloud IoT Alink JSON: ``/sys/{productKey}/{deviceName}/thing/event/{identifier}/post``.

Identifier ``property`` is a property post (``params: {Key: {value, time} | value}``); any other
identifier is a TSL event (``params: {value: {...}, time}``) mapped through ``events.codes``.
Readings carry site "" and "productKey/deviceName" as device_id; ingest resolves the site.

Alink's ``id`` is a decimal string unique per device per day, so it serves as the dedupe
counter. One message can give several readings, so reading *i* gets ``seq = id * 1000 + i``:
distinct within a message and identical when the broker redelivers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from core.readings import FieldValue, Reading, Rejection, RejectReason
from device_profiles.codecs._vendor import (
    apply_property,
    event_details,
    readings_for,
    require_dict,
)
from device_profiles.compiled import CompiledProfile, DecodeError, parse_ts

REQUIRED_VARS = frozenset({"product_key", "device_name", "identifier"})
_SEQ_STRIDE = 1000
_MAX_ID = 4_294_967_295


def decode(
    variables: Mapping[str, str], obj: dict[str, Any], profile: CompiledProfile, now_ms: int
) -> list[Reading] | Rejection:
    """Decode one Alink property or event post."""
    # deviceName is unique only within its product: the identity is "productKey/deviceName".
    device_id = f"{variables['product_key']}/{variables['device_name']}"
    try:
        identifier = variables["identifier"]
        _check_method(obj.get("method"), identifier)
        base = _message_id(obj.get("id"))
        params = require_dict(obj.get("params"), "params")
        if identifier == "property":
            readings = _properties(params, device_id, profile, now_ms)
        else:
            readings = _event(identifier, params, device_id, profile, now_ms)
    except DecodeError as err:
        return Rejection(err.reason, err.detail, device_id=device_id)
    if base is None:
        return readings
    if len(readings) > _SEQ_STRIDE:
        return Rejection(RejectReason.TOO_LARGE, "too many readings in one message", "", device_id)
    return [replace(r, seq=base * _SEQ_STRIDE + i) for i, r in enumerate(readings)]


def _check_method(method: object, identifier: str) -> None:
    if method is not None and method != f"thing.event.{identifier}.post":
        raise DecodeError(
            RejectReason.UNKNOWN_TOPIC, f"method {method!r} does not fit the topic"[:120]
        )


def _message_id(raw: object) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        detail = f"id must be a decimal string, got {raw!r}"
        raise DecodeError(RejectReason.WRONG_TYPE, detail[:120])
    value = int(raw)
    if value > _MAX_ID:
        raise DecodeError(RejectReason.OUT_OF_RANGE, f"id {value} exceeds 4294967295")
    return value


def _properties(
    params: dict[str, Any], device_id: str, profile: CompiledProfile, now_ms: int
) -> list[Reading]:
    # each property may carry its own time; properties sharing a time become one reading
    groups: dict[int, tuple[dict[str, FieldValue], list[str]]] = {}
    for key, item in params.items():
        if isinstance(item, dict) and "value" in item:
            extra = set(item) - {"value", "time"}
            if extra:
                raise DecodeError(RejectReason.UNKNOWN_FIELD, f"{key}: unexpected {sorted(extra)}")
            raw, ts = item["value"], parse_ts(item.get("time"), now_ms)
        else:
            raw, ts = item, now_ms
        fields, events = groups.setdefault(ts, ({}, []))
        apply_property(key, raw, profile, fields, events)
    if not groups:
        raise DecodeError(RejectReason.MISSING_FIELD, "params carries no property")
    readings: list[Reading] = []
    for ts in sorted(groups):
        fields, events = groups[ts]
        readings += readings_for(
            profile.device_type, device_id, ts, None, fields, events, profile.id
        )
    return readings


def _event(
    identifier: str,
    params: dict[str, Any],
    device_id: str,
    profile: CompiledProfile,
    now_ms: int,
) -> list[Reading]:
    event = profile.event_codes.get(identifier)
    if event is None:
        raise DecodeError(RejectReason.UNKNOWN_EVENT, f"unknown Alink event {identifier!r}")
    extra = set(params) - {"value", "time"}
    if extra:
        raise DecodeError(RejectReason.UNKNOWN_FIELD, f"params: unexpected {sorted(extra)[:5]}")
    value = params.get("value")
    details = event_details(require_dict(value, "params.value"), "", profile) if value else {}
    ts = parse_ts(params.get("time"), now_ms)
    return [
        Reading("", profile.device_type, device_id, "event", ts, None, details, event, profile.id)
    ]
