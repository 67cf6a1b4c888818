"""Pydantic models for a device-profile YAML file; validated once at load, never per message."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from core.readings import DEVICE_TYPE_PATTERN, DeviceType, ReadingKind, RejectReason

FieldType = Literal["float", "int", "bool", "enum"]

_DURATION = re.compile(r"^(\d+)(ms|s|min|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_NAME = r"^[a-z][a-z0-9_]{0,63}$"


def _parse_duration(value: object) -> object:
    """Accept "90s", "5min", "24h", "2d" (and timedelta); anything else is left to pydantic."""
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match is None:
            raise ValueError(f"duration {value!r} must look like 500ms, 30s, 5min, 24h or 2d")
        return timedelta(milliseconds=int(match.group(1)) * _UNIT_MS[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """One canonical field as a bundle: type, unit, range and (for vendors) where it comes from.

    A native profile defines its fields with these. A vendor field, once the registry has
    resolved it, is the native field of the same name plus the vendor's mapping: ``source`` is
    the vendor key (Alink property identifier, IoTDA ``Service.property``); the vendor value is
    multiplied by ``scale`` before the range check. ``value_map`` turns vendor enum codes (keys
    as strings) into canonical enum values.
    """

    type: FieldType
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    value_map: dict[str, str] | None = None
    source: str | None = None
    scale: float = 1.0
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.type == "enum":
            if not self.values:
                raise ValueError("an enum field needs `values`")
            if self.min is not None or self.max is not None:
                raise ValueError("an enum field has no min/max")
            unknown = set((self.value_map or {}).values()) - set(self.values)
            if unknown:
                raise ValueError(f"value_map targets not in values: {sorted(unknown)}")
        else:
            if self.values is not None or self.value_map is not None:
                raise ValueError("`values`/`value_map` are only for enum fields")
        if self.type in ("bool", "enum") and self.scale != 1.0:
            raise ValueError("`scale` applies to numeric fields only")
        if self.scale == 0:
            raise ValueError("`scale` must not be 0")
        return self


class FieldMapping(_Strict):
    """A vendor field as its file gives it: only how the vendor fills the native field.

    Type, unit, enum values and range are those of the native field of the same name (native
    profile of the same device type); the registry merges both into a FieldSpec at load.
    ``min``/``max`` may narrow the native range for a model that cannot report all of it (a
    value outside is then garbage from that model), never widen it: rules and stores rely on
    the native range. They apply to the canonical value, after ``scale``.

    ``type``, ``unit`` and ``values`` are accepted here only so that the registry can refuse
    them with the native definition in the message (vendor files used to restate them).
    """

    source: str | None = None
    scale: float = 1.0
    value_map: dict[str, str] | None = None
    min: float | None = None
    max: float | None = None
    type: str | None = None
    unit: str | None = None
    values: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FieldMapping:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.scale == 0:
            raise ValueError("`scale` must not be 0")
        return self


class _EventsBase(_Strict):
    """Canonical event names and, for vendors, how vendor codes map to them.

    ``codes``: vendor event identifier (Alink TSL event, IoTDA ``event_type``) -> canonical name.
    ``from_properties``: vendor property key -> {raw value as string: event name, or null for
    "normal state, no event"}; used where a device reports alarm state as a property.
    """

    names: tuple[Annotated[str, Field(pattern=_NAME)], ...]
    codes: dict[str, str] = Field(default_factory=dict)
    from_properties: dict[str, dict[str, str | None]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_targets(self) -> _EventsBase:
        names = set(self.names)
        if len(names) != len(self.names):
            raise ValueError("duplicate event names")
        bad = {v for v in self.codes.values() if v not in names}
        for mapping in self.from_properties.values():
            bad |= {v for v in mapping.values() if v is not None and v not in names}
        if bad:
            raise ValueError(f"mapped to events not in `names`: {sorted(bad)}")
        return self


class EventsSpec(_EventsBase):
    """Events of a complete profile; ``fields`` are the event detail fields (see _EventsBase)."""

    fields: dict[Annotated[str, Field(pattern=_NAME)], FieldSpec] = Field(default_factory=dict)


class VendorEventsSpec(_EventsBase):
    """Events as a vendor file gives them: detail fields map onto the native ones."""

    fields: dict[Annotated[str, Field(pattern=_NAME)], FieldMapping] = Field(default_factory=dict)


class CommandSpec(_Strict):
    """A downlink command the device type obeys (native contract: ``.../cmd`` with a
    ``cmd_id``, answered on ``.../cmd_ack``).

    ``confirm``: telemetry field values that show the command took effect (a closed valve
    reports ``valve: closed``); the gateway holds the command pending until the device has
    acknowledged it *and* a telemetry message shows these values (for the same ``port`` when
    the command names one). Without ``confirm`` the acknowledgement alone confirms it.
    ``port``: the command may name a port (a charging pile's socket); without one it is
    meant for the whole device.
    """

    label: str = Field(min_length=1, max_length=40)
    label_en: str = Field(min_length=1, max_length=60)
    confirm: dict[Annotated[str, Field(pattern=_NAME)], str | bool | int] = Field(
        default_factory=dict
    )
    port: bool = False


class Heartbeat(_Strict):
    """How often a device reports and when silence means offline."""

    interval: Duration
    offline_after: Duration

    @model_validator(mode="after")
    def _ordered(self) -> Heartbeat:
        if self.interval <= timedelta(0):
            raise ValueError("interval must be positive")
        if self.offline_after <= self.interval:
            raise ValueError("offline_after must be longer than interval")
        return self


class Identity(_Strict):
    """Which vendor devices a model covers: a topic variable equal to, or starting with, a value."""

    var: str
    equals: str | None = None
    prefix: str | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> Identity:
        if (self.equals is None) == (self.prefix is None):
            raise ValueError("give exactly one of `equals` or `prefix`")
        return self


class ExpectReading(_Strict):
    """A subset of a Reading: only the given attributes (and `fields` keys) are compared."""

    site: str | None = None
    device_type: DeviceType | None = None
    device_id: str | None = None
    kind: ReadingKind | None = None
    ts_ms: int | None = None
    seq: int | None = None
    event: str | None = None
    fields: dict[str, float | int | bool | str] | None = None
    profile: str | None = None


class ExpectRejection(_Strict):
    """The example must be rejected for this reason."""

    reject: RejectReason


class Example(_Strict):
    """A sample message and what decoding it must give; the conformance test runs every one.

    ``payload`` is a JSON object (serialised compactly) or a raw string sent as UTF-8.
    ``pad_to_bytes`` appends JSON whitespace to reach that size (for size-limit examples).
    """

    name: str
    topic: str
    payload: dict[str, Any] | str
    pad_to_bytes: int | None = None
    now_ms: int = 1_732_250_060_000
    expect: ExpectRejection | ExpectReading | list[ExpectReading]


class _ProfileBase(_Strict):
    """What every profile file says besides its fields: topics, identity, heartbeat, examples."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")]
    device_type: Annotated[DeviceType, Field(pattern=DEVICE_TYPE_PATTERN)]
    codec: str
    description: str = ""
    enabled: bool = True
    topics: tuple[str, ...] = Field(min_length=1)
    subscribe: tuple[str, ...] | None = None
    identity: Identity | None = None
    max_payload_bytes: int = Field(default=4096, gt=0, le=1_048_576)
    ignore: tuple[str, ...] = ()
    heartbeat: Heartbeat
    examples: tuple[Example, ...] = Field(min_length=1)
    commands: dict[Annotated[str, Field(pattern=_NAME)], CommandSpec] = Field(
        default_factory=dict
    )


class DeviceProfile(_ProfileBase):
    """A complete profile: a native file as written, or a vendor model once resolved.

    Native profiles define the device type's fields (type, unit, range); a resolved vendor
    model carries those merged with its own keys, scales and value maps.
    """

    telemetry: dict[Annotated[str, Field(pattern=_NAME)], FieldSpec]
    events: EventsSpec

    @model_validator(mode="after")
    def _commands_confirm_known_values(self) -> DeviceProfile:
        for name, cmd in self.commands.items():
            for field_name, value in cmd.confirm.items():
                spec = self.telemetry.get(field_name)
                if spec is None:
                    raise ValueError(f"commands.{name}: confirm names unknown field {field_name!r}")
                if spec.type == "enum" and value not in (spec.values or ()):
                    raise ValueError(f"commands.{name}: {value!r} is not a {field_name} value")
            if cmd.port and "port" not in self.telemetry:
                raise ValueError(f"commands.{name}: a port command needs a `port` field")
        return self

    @model_validator(mode="after")
    def _native_is_plain(self) -> DeviceProfile:
        if self.codec != "native":
            return self
        vendor_only = [n for n, f in self.telemetry.items() if f.source or f.value_map]
        vendor_only += [n for n, f in self.events.fields.items() if f.source or f.value_map]
        if vendor_only or self.events.codes or self.events.from_properties or self.identity:
            raise ValueError(
                "native profiles carry no vendor mapping (source/value_map/codes/"
                f"from_properties/identity); found on {vendor_only or 'events/identity'}"
            )
        return self


class VendorProfile(_ProfileBase):
    """A vendor model's file (codec other than ``native``): its fields are mappings only.

    The registry resolves it against the native profile of its device type into a
    DeviceProfile; nothing else sees this form.
    """

    telemetry: dict[Annotated[str, Field(pattern=_NAME)], FieldMapping]
    events: VendorEventsSpec

    @model_validator(mode="after")
    def _no_commands(self) -> VendorProfile:
        # Vendor clouds take commands through their own service calls (Alink service
        # invocation, IoTDA commands); the gateway sends only the native contract's.
        if self.commands:
            raise ValueError("commands are part of the native contract only")
        return self

    def complete(self, telemetry: dict[str, FieldSpec], events: EventsSpec) -> DeviceProfile:
        """This model with its fields as resolved against the native profile."""
        common = {name: getattr(self, name) for name in _ProfileBase.model_fields}
        return DeviceProfile(**common, telemetry=telemetry, events=events)
