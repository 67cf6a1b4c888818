"""Encode a canonical device message into the native contract or a vendor envelope (Alink, IoTDA).

A vendor envelope speaks one vendor profile of device_profiles, the same files the gateway
decodes with: vendor keys, scales, value maps, event codes and the product identity are read
from the loaded profile, and encoding is the inverse of its mapping (divide by ``scale``,
reverse ``value_map`` and ``events.codes``). Only the envelopes (topics, ``params``,
``services``) are written here; they belong to the codec, as in device_profiles/codecs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

import orjson

from core import topics
from device_profiles import DeviceProfile, FieldSpec, load_profiles
from simulators.inventory import DeviceSpec

Format = Literal["native", "alink", "iotda"]
VendorFormat = Literal["alink", "iotda"]
FORMATS: tuple[Format, ...] = ("native", "alink", "iotda")
Encoded = tuple[str, bytes, bool]  # topic, payload, retain

#: The identity each envelope can be addressed by: Alink topics carry the productKey, IoTDA
#: device ids are "<product id>_<node id>".
_IDENTITY: dict[str, tuple[str, str]] = {
    "alink": ("product_key", "equals"),
    "iotda": ("vendor_device_id", "prefix"),
}


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Canonical field -> vendor key; vendor value = canonical / scale (or a reversed code map)."""

    source: str
    scale: float = 1.0
    codes: dict[str, str] = field(default_factory=dict)  # canonical enum value -> vendor code

    @classmethod
    def inverse(cls, name: str, spec: FieldSpec) -> FieldMap:
        """The inverse of a resolved field's ``source``, ``scale`` and ``value_map``."""
        codes: dict[str, str] = {}
        for code, canonical in (spec.value_map or {}).items():
            codes.setdefault(canonical, code)  # several codes for one value: send the first
        return cls(spec.source or name, spec.scale, codes)


@dataclass(frozen=True, slots=True)
class VendorMapping:
    """How one vendor profile names one device type's fields and events, inverted for encoding."""

    vendor: VendorFormat
    device_type: str
    identity: str  # Alink productKey, or the IoTDA device-id prefix (product id + "_")
    fields: dict[str, FieldMap]
    events: dict[str, str]  # canonical event -> vendor event identifier / event_type
    event_fields: dict[str, FieldMap]
    origin: str  # the id of the profile it was read from

    @classmethod
    def from_profile(cls, spec: DeviceProfile) -> VendorMapping:
        """Read a loaded vendor profile.

        Raises:
            ValueError: the profile is not one this module can address (codec, identity rule,
                an IoTDA key that is not ``Service.property``).
        """
        if spec.codec not in _IDENTITY:
            raise ValueError(f"{spec.id}: no simulator envelope for codec {spec.codec!r}")
        vendor: VendorFormat = "alink" if spec.codec == "alink" else "iotda"
        var, rule = _IDENTITY[vendor]
        ident = spec.identity
        identity = getattr(ident, rule) if ident is not None and ident.var == var else None
        if identity is None:
            raise ValueError(f"{spec.id}: {vendor} devices are simulated by `identity: {{var: "
                             f"{var}, {rule}: …}}`, the profile has {ident}")
        fields = {n: FieldMap.inverse(n, f) for n, f in spec.telemetry.items()}
        event_fields = {n: FieldMap.inverse(n, f) for n, f in spec.events.fields.items()}
        if vendor == "iotda":
            flat = [m.source for m in [*fields.values(), *event_fields.values()]
                    if "." not in m.source]
            if flat:
                raise ValueError(f"{spec.id}: IoTDA keys are Service.property, not {flat}")
        events: dict[str, str] = {}
        for code, canonical in spec.events.codes.items():
            events.setdefault(canonical, code)
        return cls(vendor, spec.device_type, identity, fields, events, event_fields, spec.id)


@cache
def vendor_mappings() -> dict[tuple[str, str], VendorMapping]:
    """(vendor, device_type) -> the mapping of the first enabled vendor profile (by id) of it."""
    out: dict[tuple[str, str], VendorMapping] = {}
    for spec in load_profiles().profiles():
        if spec.enabled and spec.codec in _IDENTITY and (spec.codec, spec.device_type) not in out:
            out[(spec.codec, spec.device_type)] = VendorMapping.from_profile(spec)
    return out


def covers(fmt: Format, device_type: str) -> bool:
    """Whether ``fmt`` can carry this device type (native always; a vendor with a profile)."""
    return fmt == "native" or (fmt, device_type) in vendor_mappings()


def vendor_mapping(fmt: VendorFormat, device_type: str) -> VendorMapping:
    """The mapping the simulator uses for a vendor format and device type.

    Raises:
        LookupError: no enabled vendor profile of that codec covers the device type.
    """
    found = vendor_mappings().get((fmt, device_type))
    if found is None:
        have = sorted(t for v, t in vendor_mappings() if v == fmt)
        raise LookupError(f"no {fmt} profile for {device_type} devices (profiles cover {have})")
    return found


def native_topic(device: DeviceSpec, kind: str) -> str:
    """``safety/{site}/{type}/{device_id}/{kind}``."""
    return topics.uplink(device.site, device.type, device.device_id, kind)


def encode(fmt: Format, device: DeviceSpec, kind: str, payload: dict[str, Any]) -> list[Encoded]:
    """Messages that carry one canonical message (``ts``/``seq`` plus fields or ``event``).

    Vendor clouds track online state themselves, so ``status`` has no vendor form (empty list).

    Raises:
        LookupError: a vendor format without a profile for the device's type (see covers()).
    """
    if fmt == "native":
        return [(native_topic(device, kind), orjson.dumps(payload), kind == "status")]
    if kind == "status":
        return []
    return encode_vendor(vendor_mapping(fmt, device.type), device, kind, payload)


def encode_vendor(
    mapping: VendorMapping, device: DeviceSpec, kind: str, payload: dict[str, Any]
) -> list[Encoded]:
    """``encode`` for one given vendor mapping (any vendor profile, not only the default one)."""
    if kind == "status":
        return []
    if mapping.vendor == "alink":
        return [_alink(mapping, device, kind, payload)]
    return [_iotda(mapping, device, kind, payload)]


def vendor_device_id(fmt: Format, device: DeviceSpec) -> str:
    """The id a vendor cloud knows the device by (Alink deviceName, IoTDA device_id)."""
    if fmt == "iotda":
        return vendor_mapping("iotda", device.type).identity + device.device_id
    return device.device_id


def _vendor_value(name: str, fm: FieldMap, value: Any) -> Any:
    if fm.codes:
        code = fm.codes.get(value) if isinstance(value, str) else None
        if code is None:
            raise ValueError(f"{name}={value!r} has no vendor code for {fm.source}")
        # product models send numeric codes as numbers; the decoder takes either
        return int(code) if code.isascii() and code.isdigit() else code
    if isinstance(value, bool) or not isinstance(value, int | float) or fm.scale == 1.0:
        return value
    # product models use integer units (0.1 °C, 0.01 A); a sign flip (RSRP) stays integral too
    return round(value / fm.scale)


def _mapped(fields: dict[str, FieldMap], payload: dict[str, Any]) -> dict[str, Any]:
    # canonical fields the vendor model does not report are left out, as the device would
    return {fields[k].source: _vendor_value(k, fields[k], v) for k, v in payload.items()
            if k in fields}


def _event_code(m: VendorMapping, payload: dict[str, Any]) -> str:
    code = m.events.get(payload["event"])
    if code is None:
        raise ValueError(f"{m.origin} has no vendor code for event {payload['event']!r}")
    return code


def _alink(m: VendorMapping, device: DeviceSpec, kind: str, payload: dict[str, Any]) -> Encoded:
    ts = int(payload["ts"])
    msg_id = str(int(payload.get("seq", 0)) % 4_294_967_296)
    if kind == "event":
        identifier = _event_code(m, payload)
        params: dict[str, Any] = {"value": _mapped(m.event_fields, payload), "time": ts}
    else:
        identifier = "property"
        params = {k: {"value": v, "time": ts} for k, v in _mapped(m.fields, payload).items()}
    body = {"id": msg_id, "version": "1.0", "params": params,
            "method": f"thing.event.{identifier}.post"}
    topic = f"/sys/{m.identity}/{device.device_id}/thing/event/{identifier}/post"
    return topic, orjson.dumps(body), False


def iotda_time(ts_ms: int) -> str:
    """IoTDA's MQTT ``event_time``: ``yyyyMMdd'T'HHmmss'Z'`` (UTC)."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


def _by_service(mapped: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = {}
    for key, value in mapped.items():
        sid, prop = key.split(".", 1)
        services.setdefault(sid, {})[prop] = value
    return services


def _iotda(m: VendorMapping, device: DeviceSpec, kind: str, payload: dict[str, Any]) -> Encoded:
    vid = m.identity + device.device_id
    when = iotda_time(int(payload["ts"]))
    if kind == "event":
        services = _by_service(_mapped(m.event_fields, payload))
        if len(services) > 1:
            raise ValueError(f"{m.origin}: one IoTDA event has one service, got {sorted(services)}")
        # without details the service id is not read; name the one the model's keys use
        keys = [f.source for f in [*m.event_fields.values(), *m.fields.values()]]
        default = keys[0].split(".", 1)[0] if keys else "Device"
        sid, paras = next(iter(services.items()), (default, {}))
        service = {"service_id": sid, "event_type": _event_code(m, payload),
                   "event_time": when, "paras": paras}
        body: dict[str, Any] = {"object_device_id": vid, "services": [service]}
        return f"$oc/devices/{vid}/sys/events/up", orjson.dumps(body), False
    body = {"services": [{"service_id": sid, "properties": props, "event_time": when}
                         for sid, props in _by_service(_mapped(m.fields, payload)).items()]}
    return f"$oc/devices/{vid}/sys/properties/report", orjson.dumps(body), False
