"""Huawei Cloud IoTDA: ``$oc/devices/{device_id}/sys/properties/report`` and ``.../sys/events/up``.

A property report carries ``services[{service_id, properties, event_time}]``; each service entry
becomes its own readings (a charging pile reports one entry per port). Vendor keys in profiles
are ``ServiceId.property``. ``event_time`` is ``yyyyMMdd'T'HHmmss'Z'`` (RFC 3339 also accepted);
without it the receive time is used. IoTDA messages carry no counter, so ``seq`` is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.readings import FieldValue, Reading, Rejection, RejectReason
from device_profiles.codecs._vendor import (
    apply_property,
    event_details,
    readings_for,
    require_dict,
)
from device_profiles.compiled import CompiledProfile, DecodeError, parse_ts
from device_profiles.topics import VARIABLES

REQUIRED_VARS = frozenset({"vendor_device_id"})
_MAX_SERVICES = 100


def decode(
    variables: Mapping[str, str], obj: dict[str, Any], profile: CompiledProfile, now_ms: int
) -> list[Reading] | Rejection:
    """Decode one IoTDA property report or event report (chosen by the topic's last segment)."""
    device_id = variables["vendor_device_id"]
    try:
        services = _services(obj.get("services"))
        if "object_device_id" in obj:
            _same_device(_object_device_id(obj["object_device_id"]), device_id)
        is_event = variables["topic"].endswith("/sys/events/up")
        readings: list[Reading] = []
        for index, entry in enumerate(services):
            service = require_dict(entry, f"services[{index}]")
            if is_event:
                readings.append(_event(service, device_id, profile, now_ms))
            else:
                readings += _properties(service, device_id, profile, now_ms)
    except DecodeError as err:
        return Rejection(err.reason, err.detail, device_id=device_id)
    return readings


def _services(services: object) -> list[Any]:
    if services is None:
        raise DecodeError(RejectReason.MISSING_FIELD, "services is missing")
    if not isinstance(services, list):
        raise DecodeError(RejectReason.WRONG_TYPE, "services must be a list")
    if not services or len(services) > _MAX_SERVICES:
        raise DecodeError(RejectReason.OUT_OF_RANGE, f"{len(services)} services (1..100)")
    return services


def _object_device_id(raw: object) -> str:
    if not isinstance(raw, str) or not VARIABLES["vendor_device_id"](raw):
        raise DecodeError(RejectReason.WRONG_TYPE, f"bad object_device_id {raw!r}"[:120])
    return raw


def _same_device(claimed: str, topic_device: str) -> None:
    """A device reports for itself only: the broker's ACL lets it publish on its own topic,
    and an ``object_device_id`` naming another device must not get around that (IoTDA
    gateways reporting for sub-devices are not supported)."""
    if claimed != topic_device:
        raise DecodeError(
            RejectReason.UNKNOWN_DEVICE,
            f"object_device_id {claimed!r} is not the device of the topic ({topic_device!r})",
        )


def _service_id(service: dict[str, Any]) -> str:
    sid = service.get("service_id")
    if not isinstance(sid, str):
        raise DecodeError(RejectReason.MISSING_FIELD, "service entry without service_id")
    return sid


def event_time(raw: object, now_ms: int) -> int:
    """Epoch ms from IoTDA's compact ``20161219T114920Z`` (or RFC 3339 / epoch ms)."""
    if isinstance(raw, str) and len(raw) == 16 and raw[8] == "T" and raw[15] == "Z":
        try:
            parsed = datetime.strptime(raw, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise DecodeError(RejectReason.WRONG_TYPE, f"bad event_time {raw!r}") from None
        return int(parsed.timestamp()) * 1000
    return parse_ts(raw, now_ms)


def _properties(
    service: dict[str, Any], device_id: str, profile: CompiledProfile, now_ms: int
) -> list[Reading]:
    sid = _service_id(service)
    unexpected = set(service) - {"service_id", "properties", "event_time"}
    if unexpected:
        raise DecodeError(RejectReason.UNKNOWN_FIELD, f"{sid}: unexpected {sorted(unexpected)[:5]}")
    props = require_dict(service.get("properties"), f"{sid}.properties")
    ts = event_time(service.get("event_time"), now_ms)
    fields: dict[str, FieldValue] = {}
    events: list[str] = []
    prefix = sid + "."
    for key, raw in props.items():
        apply_property(prefix + key, raw, profile, fields, events)
    return readings_for(profile.device_type, device_id, ts, None, fields, events, profile.id)


def _event(
    service: dict[str, Any], device_id: str, profile: CompiledProfile, now_ms: int
) -> Reading:
    sid = _service_id(service)
    unexpected = set(service) - {"service_id", "event_type", "event_time", "paras", "event_id"}
    if unexpected:
        raise DecodeError(RejectReason.UNKNOWN_FIELD, f"{sid}: unexpected {sorted(unexpected)[:5]}")
    event_type = service.get("event_type")
    event = profile.event_codes.get(event_type) if isinstance(event_type, str) else None
    if event is None:
        raise DecodeError(RejectReason.UNKNOWN_EVENT, f"unknown IoTDA event {event_type!r}"[:120])
    paras = service.get("paras")
    details = event_details(require_dict(paras, "paras"), sid + ".", profile) if paras else {}
    ts = event_time(service.get("event_time"), now_ms)
    return Reading(
        "", profile.device_type, device_id, "event", ts, None, details, event, profile.id
    )
