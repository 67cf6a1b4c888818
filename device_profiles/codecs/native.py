"""The native JSON contract (DESIGN "Native wire contract"): the hot path, kept flat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.readings import FieldValue, Reading, ReadingKind, Rejection, RejectReason
from device_profiles.compiled import (
    MAX_INT64,
    MAX_TS_MS,
    CompiledProfile,
    DecodeError,
    parse_seq,
    parse_ts,
)

REQUIRED_VARS = frozenset({"site", "device_id", "kind"})
_KINDS: dict[str, ReadingKind] = {
    "telemetry": "telemetry",
    "event": "event",
    "status": "status",
    "cmd_ack": "cmd_ack",
}
_CMD_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_ENVELOPE_KEYS = frozenset({"ts", "seq"})


def decode(
    variables: Mapping[str, str], obj: dict[str, Any], profile: CompiledProfile, now_ms: int
) -> list[Reading] | Rejection:
    """Decode one native message; ``variables`` carry site, device_id and kind."""
    device_id = variables["device_id"]
    try:
        kind = _KINDS[variables["kind"]]
        # Plain ints in range are the usual ts and seq: skip the parsers' checks for them.
        ts = obj.get("ts")
        if ts.__class__ is not int or not 0 <= ts <= MAX_TS_MS:
            ts = parse_ts(ts, now_ms)
        seq = obj.get("seq")
        if seq.__class__ is not int or not 0 <= seq <= MAX_INT64:
            seq = parse_seq(seq)
        event: str | None = None
        if kind == "telemetry":
            fields = _telemetry(obj, profile)
        elif kind == "event":
            event, fields = _event(obj, profile)
        elif kind == "cmd_ack":
            fields = _ack(obj, profile)
        else:
            fields = _status(obj)
    except DecodeError as err:
        return Rejection(err.reason, err.detail, device_id=device_id)
    return [
        Reading(
            variables["site"],
            profile.device_type,
            device_id,
            kind,
            ts,
            seq,
            fields,
            event,
            profile.id,
        )
    ]


def _telemetry(obj: dict[str, Any], profile: CompiledProfile) -> dict[str, FieldValue]:
    checks = profile.telemetry
    fields: dict[str, FieldValue] = {}
    get = checks.get
    for key, raw in obj.items():
        check = get(key)
        if check is None:
            if key in _ENVELOPE_KEYS:
                continue
            raise DecodeError(RejectReason.UNKNOWN_FIELD, f"unknown telemetry field {key[:64]!r}")
        fields[key] = check.check(raw)
    if not fields:
        raise DecodeError(RejectReason.MISSING_FIELD, "telemetry carries no field")
    return fields


def _event(obj: dict[str, Any], profile: CompiledProfile) -> tuple[str, dict[str, FieldValue]]:
    name = obj.get("event")
    if name is None:
        raise DecodeError(RejectReason.MISSING_FIELD, "event message without `event`")
    if not isinstance(name, str):
        raise DecodeError(RejectReason.WRONG_TYPE, f"event must be a string, got {name!r}"[:120])
    if name not in profile.events:
        raise DecodeError(RejectReason.UNKNOWN_EVENT, f"unknown event {name[:64]!r}")
    checks = profile.event_fields
    fields: dict[str, FieldValue] = {}
    for key, raw in obj.items():
        if key == "event" or key in _ENVELOPE_KEYS:
            continue
        check = checks.get(key)
        if check is None:
            raise DecodeError(RejectReason.UNKNOWN_FIELD, f"unknown event field {key[:64]!r}")
        fields[key] = check.check(raw)
    return name, fields


def _ack(obj: dict[str, Any], profile: CompiledProfile) -> dict[str, FieldValue]:
    """``{"cmd_id", "ok", "state"?}``: a device's answer to one of its commands."""
    if not profile.spec.commands:
        raise DecodeError(RejectReason.UNKNOWN_TOPIC, f"{profile.device_type} takes no commands")
    cmd_id, ok, state = obj.get("cmd_id"), obj.get("ok"), obj.get("state")
    if cmd_id is None or ok is None:
        raise DecodeError(RejectReason.MISSING_FIELD, "cmd_ack needs `cmd_id` and `ok`")
    if not isinstance(cmd_id, str) or not 0 < len(cmd_id) <= 64 or not _CMD_ID.issuperset(cmd_id):
        raise DecodeError(RejectReason.WRONG_TYPE, f"cmd_id must be an id, got {cmd_id!r}"[:120])
    if ok is not True and ok is not False:
        raise DecodeError(RejectReason.WRONG_TYPE, f"ok must be a boolean, got {ok!r}"[:120])
    if state is not None and (not isinstance(state, str) or len(state) > 32):
        raise DecodeError(RejectReason.WRONG_TYPE, f"state must be a short text, got {state!r}"[:120])
    for key in obj:
        if key not in ("cmd_id", "ok", "state") and key not in _ENVELOPE_KEYS:
            raise DecodeError(RejectReason.UNKNOWN_FIELD, f"unknown cmd_ack field {key[:64]!r}")
    fields: dict[str, FieldValue] = {"cmd_id": cmd_id, "ok": ok}
    if state is not None:
        fields["state"] = state
    return fields


def _status(obj: dict[str, Any]) -> dict[str, FieldValue]:
    online = obj.get("online")
    if online is None:
        raise DecodeError(RejectReason.MISSING_FIELD, "status message without `online`")
    if online is not True and online is not False:
        detail = f"online must be a boolean, got {online!r}"
        raise DecodeError(RejectReason.WRONG_TYPE, detail[:120])
    for key in obj:
        if key != "online" and key not in _ENVELOPE_KEYS:
            raise DecodeError(RejectReason.UNKNOWN_FIELD, f"unknown status field {key[:64]!r}")
    return {"online": online}
