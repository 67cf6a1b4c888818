"""A profile compiled at load into plain-Python checkers, so the hot path runs no pydantic."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, cast

from core.readings import DeviceType, FieldValue, RejectReason

if TYPE_CHECKING:
    from device_profiles.schema import DeviceProfile, FieldSpec
    from device_profiles.topics import TopicPattern


# What every store can hold (SQLite INTEGER, PostgreSQL BIGINT, InfluxDB integer and its
# nanosecond timestamps): a value outside is rejected at decode, never handed to a store that
# would choke on it (a seq of 2**63 once made the embedded store raise on every flush).
MAX_INT64 = 2**63 - 1
MIN_INT64 = -(2**63)
MAX_FLOAT = 1.7976931348623157e308
# InfluxDB keeps nanoseconds in an int64: the last representable millisecond (April 2262).
MAX_TS_MS = MAX_INT64 // 1_000_000


class DecodeError(Exception):
    """Raised inside codecs and checkers; turned into a Rejection at the codec boundary."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class FieldCheck:
    """Checks one raw value against its FieldSpec and returns the canonical value."""

    __slots__ = ("fast", "hi", "lo", "name", "scale", "type", "value_map", "values")

    def __init__(self, name: str, spec: FieldSpec) -> None:
        self.name = name
        self.type = spec.type
        # Unbounded in the profile still means bounded by what the stores hold; a scaled
        # float that overflows to infinity falls outside too.
        floor, ceiling = (MIN_INT64, MAX_INT64) if spec.type == "int" else (-MAX_FLOAT, MAX_FLOAT)
        self.lo = floor if spec.min is None else max(spec.min, floor)
        self.hi = ceiling if spec.max is None else min(spec.max, ceiling)
        self.scale = spec.scale
        self.values = frozenset(spec.values or ())
        self.value_map = dict(spec.value_map or {})
        # Unscaled numbers are nearly every value on the hot path: 1 float, 2 int, 0 other.
        self.fast = 0 if self.scale != 1.0 else {"float": 1, "int": 2}.get(self.type, 0)

    def check(self, raw: object) -> FieldValue:
        """Return the canonical value, or raise DecodeError (wrong_type / out_of_range)."""
        # Fast path for exact JSON numbers in range; anything else takes the full check
        # below, so the result (or the error) is the same either way.
        fast = self.fast
        if fast:
            cls = raw.__class__
            if cls is float or cls is int:
                if fast == 1:
                    value = cast(float, raw) if cls is float else float(cast(int, raw))
                    if self.lo <= value <= self.hi:
                        return value
                elif cls is int and self.lo <= raw <= self.hi:  # type: ignore[operator]
                    return raw  # type: ignore[return-value]
        return self._check(raw)

    def _check(self, raw: object) -> FieldValue:
        if self.type == "bool":
            if raw is True or raw is False:
                return raw
            raise self._wrong(raw)
        if self.type == "enum":
            return self._enum(raw)
        # bool is an int subclass; a JSON true must not pass as 1
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise self._wrong(raw)
        value: float | int
        if self.type == "float":
            # round away binary noise from scaling (219 * 0.1 -> 21.9, not 21.900000000000002)
            value = float(raw) if self.scale == 1.0 else round(raw * self.scale, 6)
        else:
            if isinstance(raw, float):
                if not raw.is_integer():
                    raise self._wrong(raw)
                raw = int(raw)
            value = raw if self.scale == 1.0 else round(raw * self.scale)
        if value < self.lo or value > self.hi:
            raise DecodeError(
                RejectReason.OUT_OF_RANGE,
                f"{self.name}={_short(value)} outside [{self.lo:g}, {self.hi:g}]",
            )
        return value

    def _enum(self, raw: object) -> str:
        if self.value_map:
            if isinstance(raw, bool) or not isinstance(raw, str | int):
                raise self._wrong(raw)
            mapped = self.value_map.get(str(raw))
            if mapped is None:
                raise DecodeError(RejectReason.OUT_OF_RANGE, f"{self.name}: unknown code {raw!r}")
            return mapped
        if not isinstance(raw, str):
            raise self._wrong(raw)
        if raw not in self.values:
            raise DecodeError(
                RejectReason.OUT_OF_RANGE,
                f"{self.name}={_short(raw)} not one of {sorted(self.values)}",
            )
        return raw

    def _wrong(self, raw: object) -> DecodeError:
        return DecodeError(
            RejectReason.WRONG_TYPE,
            f"{self.name} must be {self.type}, got {type(raw).__name__} {_short(raw)}",
        )


def parse_ts(raw: object, now_ms: int) -> int:
    """Epoch ms from a payload `ts` (int ms or RFC 3339 string); missing means receive time."""
    if raw is None:
        return now_ms
    if isinstance(raw, str):
        return _parse_rfc3339(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise DecodeError(RejectReason.WRONG_TYPE, f"ts must be epoch ms or RFC 3339, got {raw!r}")
    if isinstance(raw, float):
        if not raw.is_integer():
            raise DecodeError(RejectReason.WRONG_TYPE, f"ts {raw!r} is not whole milliseconds")
        raw = int(raw)
    return check_ts(raw)


def check_ts(value: int) -> int:
    """One rule for every form of ``ts``: from 1970 to what InfluxDB's timestamps hold."""
    if value < 0:
        raise DecodeError(RejectReason.OUT_OF_RANGE, f"ts {_short(value)} is before 1970")
    if value > MAX_TS_MS:
        raise DecodeError(RejectReason.OUT_OF_RANGE, f"ts {_short(value)} is after 2262")
    return value


def _parse_rfc3339(text: str) -> int:
    bad = DecodeError(RejectReason.WRONG_TYPE, f"ts {_short(text)} is not RFC 3339")
    # fromisoformat also takes bare dates and other ISO forms; RFC 3339 needs date "T" time
    if len(text) > 40 or "T" not in text.upper():
        raise bad
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise bad from None
    if parsed.tzinfo is None:
        raise DecodeError(RejectReason.WRONG_TYPE, f"ts {_short(text)} has no UTC offset")
    return check_ts(int(parsed.timestamp() * 1000))


def parse_seq(raw: object) -> int | None:
    """A counter in ``[0, 2**63)``, or None when absent."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise DecodeError(RejectReason.WRONG_TYPE, f"seq must be an integer, got {_short(raw)}")
    if raw < 0 or raw > MAX_INT64:
        raise DecodeError(RejectReason.OUT_OF_RANGE, f"seq {_short(raw)} outside [0, 2**63)")
    return raw


@dataclass(slots=True)
class CompiledProfile:
    """What codecs use: checkers keyed by canonical name and by vendor source key."""

    spec: DeviceProfile
    id: str
    device_type: DeviceType
    codec: str
    patterns: list[TopicPattern]
    max_payload: int
    telemetry: dict[str, FieldCheck]
    events: frozenset[str]
    event_fields: dict[str, FieldCheck]
    #: vendor key -> (canonical name, checker), for telemetry and for event details
    telemetry_sources: dict[str, tuple[str, FieldCheck]] = field(default_factory=dict)
    event_sources: dict[str, tuple[str, FieldCheck]] = field(default_factory=dict)
    event_codes: dict[str, str] = field(default_factory=dict)
    property_events: dict[str, dict[str, str | None]] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()


def compile_profile(spec: DeviceProfile, patterns: list[TopicPattern]) -> CompiledProfile:
    """Build the plain-Python checkers for one validated profile."""
    telemetry = {name: FieldCheck(name, f) for name, f in spec.telemetry.items()}
    event_fields = {name: FieldCheck(name, f) for name, f in spec.events.fields.items()}
    return CompiledProfile(
        spec=spec,
        id=spec.id,
        device_type=spec.device_type,
        codec=spec.codec,
        patterns=patterns,
        max_payload=spec.max_payload_bytes,
        telemetry=telemetry,
        events=frozenset(spec.events.names),
        event_fields=event_fields,
        telemetry_sources={(f.source or n): (n, telemetry[n]) for n, f in spec.telemetry.items()},
        event_sources={
            (f.source or n): (n, event_fields[n]) for n, f in spec.events.fields.items()
        },
        event_codes=dict(spec.events.codes),
        property_events={k: dict(v) for k, v in spec.events.from_properties.items()},
        ignore=frozenset(spec.ignore),
    )
