"""Shared by vendor codecs: vendor property/parameter keys -> canonical fields and events."""

from __future__ import annotations

from typing import Any

from core.readings import DeviceType, FieldValue, Reading, RejectReason
from device_profiles.compiled import CompiledProfile, DecodeError

_NO_MAPPING = object()


def apply_property(
    source: str,
    raw: object,
    profile: CompiledProfile,
    fields: dict[str, FieldValue],
    events: list[str],
) -> None:
    """Route one vendor property into ``fields`` and/or ``events``; unknown keys are rejected."""
    known = False
    hit = profile.telemetry_sources.get(source)
    if hit is not None:
        fields[hit[0]] = hit[1].check(raw)
        known = True
    mapping = profile.property_events.get(source)
    if mapping is not None:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            detail = f"{source} must be a code, got {raw!r}"
            raise DecodeError(RejectReason.WRONG_TYPE, detail[:120])
        event = mapping.get(str(raw), _NO_MAPPING)
        if event is _NO_MAPPING:
            raise DecodeError(RejectReason.UNKNOWN_EVENT, f"{source}: unknown code {raw!r}"[:120])
        if isinstance(event, str):
            events.append(event)
        known = True
    if not known and source not in profile.ignore:
        raise DecodeError(RejectReason.UNKNOWN_FIELD, f"unknown vendor property {source[:80]!r}")


def event_details(
    params: dict[str, Any], prefix: str, profile: CompiledProfile
) -> dict[str, FieldValue]:
    """Map vendor event parameters onto the profile's canonical event detail fields."""
    fields: dict[str, FieldValue] = {}
    for key, raw in params.items():
        source = prefix + key
        hit = profile.event_sources.get(source)
        if hit is not None:
            fields[hit[0]] = hit[1].check(raw)
        elif source not in profile.ignore:
            detail = f"unknown event parameter {source[:80]!r}"
            raise DecodeError(RejectReason.UNKNOWN_FIELD, detail)
    return fields


def require_dict(value: object, what: str) -> dict[str, Any]:
    """``value`` as a JSON object, or missing_field / wrong_type."""
    if value is None:
        raise DecodeError(RejectReason.MISSING_FIELD, f"{what} is missing")
    if not isinstance(value, dict):
        raise DecodeError(RejectReason.WRONG_TYPE, f"{what} must be an object")
    return value


def readings_for(
    device_type: DeviceType,
    device_id: str,
    ts: int,
    seq: int | None,
    fields: dict[str, FieldValue],
    events: list[str],
    profile_id: str,
) -> list[Reading]:
    """One telemetry reading (if any field) and one event reading per event, site left empty."""
    out: list[Reading] = []
    if fields:
        out.append(
            Reading("", device_type, device_id, "telemetry", ts, seq, fields, None, profile_id)
        )
    for event in events:
        out.append(Reading("", device_type, device_id, "event", ts, seq, {}, event, profile_id))
    return out
