"""Encode a canonical device message into the native contract or a vendor envelope (Alink, IoTDA).

Vendor field names live in one small table per vendor below. When ``device_profiles`` is
importable, its vendor profiles' mappings (``telemetry.*.source/scale/value_map``,
``events.codes``, ``events.fields``, ``identity``) replace the table entries for the device
types they cover, so the simulator speaks exactly what the gateway decodes.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

import orjson

from core import topics
from simulators.inventory import DeviceSpec

Format = Literal["native", "alink", "iotda"]
FORMATS: tuple[Format, ...] = ("native", "alink", "iotda")
Encoded = tuple[str, bytes, bool]  # topic, payload, retain

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Canonical field -> vendor key; vendor value = canonical / scale (or a reversed code map)."""

    source: str
    scale: float = 1.0
    codes: dict[str, str] = field(default_factory=dict)  # canonical enum value -> vendor code


@dataclass(frozen=True, slots=True)
class VendorMapping:
    """How one vendor model names one device type's fields and events."""

    vendor: Format
    device_type: str
    identity: str  # Alink productKey, or the IoTDA device-id prefix (product id + "_")
    fields: dict[str, FieldMap]
    events: dict[str, str]  # canonical event -> vendor event identifier / event_type
    event_fields: dict[str, FieldMap]
    origin: str = "table"


def _f(source: str, scale: float = 1.0, **codes: str) -> FieldMap:
    return FieldMap(source, scale, {k: v for k, v in codes.items()})


_CHARGER_STATES = {"idle": "0", "charging": "1", "float": "2", "full": "3", "unplugged": "4",
                   "fault": "5"}

#: Alibaba Cloud IoT (Alink): TSL property and event identifiers per device type.
ALINK_TABLE: dict[str, tuple[str, dict[str, FieldMap], dict[str, str], tuple[str, ...]]] = {
    "smoke": ("a1SmkJs2024",
              {"smoke_dbm": _f("SmokeConcentration"), "temp_c": _f("CurrentTemperature"),
               "battery_pct": _f("BatteryPercentage"), "rssi_dbm": _f("RSRP", -1)},
              {"alarm": "FireAlarm", "alarm_cleared": "FireAlarmRecovery", "tamper": "Dismantle",
               "fault": "Error", "self_test": "SelfTest", "mute": "Silence",
               "low_battery": "LowBattery"},
              ("smoke_dbm", "battery_pct")),
    "sos": ("a1SosBt1001",
            {"battery_pct": _f("BatteryPercentage"), "rssi_dbm": _f("SignalStrength")},
            {"button_pressed": "SOSAlarm", "long_press": "SOSLongPress", "cancel": "SOSCancel",
             "fall_detected": "FallDown", "low_battery": "LowBatteryAlarm"},
            ("battery_pct",)),
    "gate": ("a1GateAc2024",
             {"door_open": _f("DoorOpen"), "battery_pct": _f("BatteryPercentage")},
             {"access_granted": "AccessGranted", "access_denied": "AccessDenied",
              "door_forced": "DoorForcedOpen", "door_held_open": "DoorOpenTimeout",
              "door_closed": "DoorClosed", "tamper": "Tamper"},
             ("credential",)),
    "charger": ("a1ChgPile2024",
                {"port": _f("PortNo"), "state": FieldMap("PortStatus", 1.0, _CHARGER_STATES),
                 "voltage_v": _f("Voltage"), "current_a": _f("Current"), "power_w": _f("Power"),
                 "energy_wh": _f("Energy"), "temp_c": _f("PortTemperature"),
                 "leak_ma": _f("LeakageCurrent")},
                {"session_start": "ChargeStart", "session_end": "ChargeStop",
                 "over_current": "OverCurrent", "over_temp": "OverTemperature",
                 "leakage": "LeakageAlarm", "fault": "PortFault"},
                ("port", "current_a", "temp_c", "leak_ma", "energy_wh")),
}

#: Huawei Cloud IoTDA: ``Service.property`` keys (product-model units) and event types.
IOTDA_TABLE: dict[str, tuple[str, dict[str, FieldMap], dict[str, str], tuple[str, ...]]] = {
    "smoke": ("65f1c0a2e3b4d5c6a7b8c9d0_",
              {"smoke_dbm": _f("Smoke.smoke_density", 0.01), "temp_c": _f("Smoke.temperature", 0.1),
               "battery_pct": _f("Smoke.battery"), "rssi_dbm": _f("Connectivity.rsrp", -1)},
              {"alarm": "smoke_alarm", "alarm_cleared": "alarm_recovery", "tamper": "dismantle",
               "fault": "device_fault", "self_test": "self_test", "mute": "silence",
               "low_battery": "low_voltage"},
              ("smoke_dbm", "battery_pct")),
    "sos": ("67b2d1e0f1a2b3c4d5e6f7a8_",
            {"battery_pct": _f("Caller.battery"), "rssi_dbm": _f("Connectivity.rsrp", -1)},
            {"button_pressed": "sos_alarm", "long_press": "sos_long_press", "cancel": "sos_cancel",
             "fall_detected": "fall_down", "low_battery": "low_voltage"},
            ("battery_pct",)),
    "gate": ("68c3e2f1a0b1c2d3e4f5a6b7_",
             {"door_open": _f("Door.door_open"), "battery_pct": _f("Door.battery")},
             {"access_granted": "access_granted", "access_denied": "access_denied",
              "door_forced": "door_forced_open", "door_held_open": "door_open_timeout",
              "door_closed": "door_closed", "tamper": "tamper"},
             ("credential",)),
    "charger": ("66a0c1d2e3f4a5b6c7d8e9f0_",
                {"port": _f("ChargingPort.port_no"),
                 "state": FieldMap("ChargingPort.status", 1.0, _CHARGER_STATES),
                 "voltage_v": _f("ChargingPort.voltage", 0.1),
                 "current_a": _f("ChargingPort.current", 0.01),
                 "power_w": _f("ChargingPort.power", 0.1), "energy_wh": _f("ChargingPort.energy"),
                 "temp_c": _f("ChargingPort.temperature", 0.1),
                 "leak_ma": _f("ChargingPort.leakage")},
                {"session_start": "charge_start", "session_end": "charge_stop",
                 "over_current": "over_current", "over_temp": "over_temperature",
                 "leakage": "leakage_alarm", "fault": "port_fault"},
                ("port", "current_a", "temp_c", "leak_ma", "energy_wh")),
}


def _from_table(vendor: Format, device_type: str) -> VendorMapping:
    table = ALINK_TABLE if vendor == "alink" else IOTDA_TABLE
    ident, fields, events, detail = table[device_type]
    return VendorMapping(vendor, device_type, ident, fields, events,
                         {k: fields.get(k, FieldMap(k[:1].upper() + k[1:])) for k in detail})


def _from_profile(spec: Any) -> VendorMapping | None:
    """A VendorMapping from a device_profiles DeviceProfile (duck-typed, so no hard import)."""
    identity = spec.identity.equals or spec.identity.prefix if spec.identity else None
    if identity is None:
        return None

    def fmap(fs: Any, name: str) -> FieldMap:
        codes = {v: k for k, v in (fs.value_map or {}).items()}
        return FieldMap(fs.source or name, fs.scale, codes)

    return VendorMapping(
        vendor=spec.codec,
        device_type=spec.device_type,
        identity=identity,
        fields={n: fmap(f, n) for n, f in spec.telemetry.items()},
        events={canonical: code for code, canonical in reversed(spec.events.codes.items())},
        event_fields={n: fmap(f, n) for n, f in spec.events.fields.items()},
        origin=spec.id,
    )


@cache
def vendor_mappings() -> dict[tuple[str, str], VendorMapping]:
    """(vendor, device_type) -> mapping: the tables, overridden by device_profiles when present."""
    out = {(v, t): _from_table(v, t) for v in ("alink", "iotda") for t in ALINK_TABLE}
    try:
        profiles_mod = importlib.import_module("device_profiles")
        registry = profiles_mod.load_profiles()
    except Exception:  # the profile package is optional for the simulator
        log.info("device_profiles not usable; vendor formats use the built-in tables")
        return out
    for spec in registry.profiles():
        if spec.codec in ("alink", "iotda") and getattr(spec, "enabled", True):
            key = (spec.codec, spec.device_type)
            mapping = _from_profile(spec)
            # the first enabled profile of a (vendor, type) wins over the table
            if mapping is not None and key in out and out[key].origin == "table":
                out[key] = mapping
    return out


def native_topic(device: DeviceSpec, kind: str) -> str:
    """``safety/{site}/{type}/{device_id}/{kind}``."""
    return topics.uplink(device.site, device.type, device.device_id, kind)


def encode(fmt: Format, device: DeviceSpec, kind: str, payload: dict[str, Any]) -> list[Encoded]:
    """Messages that carry one canonical message (``ts``/``seq`` plus fields or ``event``).

    Vendor clouds track online state themselves, so ``status`` has no vendor form (empty list).
    """
    if fmt == "native":
        return [(native_topic(device, kind), orjson.dumps(payload), kind == "status")]
    if kind == "status":
        return []
    mapping = vendor_mappings()[(fmt, device.type)]
    if fmt == "alink":
        return [_alink(mapping, device, kind, payload)]
    return [_iotda(mapping, device, kind, payload)]


def vendor_device_id(fmt: Format, device: DeviceSpec) -> str:
    """The id a vendor cloud knows the device by (Alink deviceName, IoTDA device_id)."""
    if fmt == "iotda":
        return vendor_mappings()[("iotda", device.type)].identity + device.device_id
    return device.device_id


def _vendor_value(fm: FieldMap, value: Any) -> Any:
    if fm.codes:
        code = fm.codes.get(str(value), str(value))
        return int(code) if code.isdigit() else code
    if isinstance(value, bool) or not isinstance(value, int | float) or fm.scale == 1.0:
        return value
    # product models use integer units (0.1 °C, 0.01 A); a sign flip (RSRP) stays integral too
    return round(value / fm.scale)


def _mapped(fields: dict[str, FieldMap], payload: dict[str, Any]) -> dict[str, Any]:
    return {fields[k].source: _vendor_value(fields[k], v) for k, v in payload.items()
            if k in fields}


def _alink(m: VendorMapping, device: DeviceSpec, kind: str, payload: dict[str, Any]) -> Encoded:
    ts = int(payload["ts"])
    msg_id = str(int(payload.get("seq", 0)) % 4_294_967_296)
    if kind == "event":
        identifier = m.events[payload["event"]]
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


def _iotda(m: VendorMapping, device: DeviceSpec, kind: str, payload: dict[str, Any]) -> Encoded:
    vid = m.identity + device.device_id
    when = iotda_time(int(payload["ts"]))
    if kind == "event":
        mapped = _mapped(m.event_fields, payload)
        first = next(iter(m.event_fields.values()), None) or next(iter(m.fields.values()))
        sid = first.source.split(".", 1)[0]
        paras = {k.split(".", 1)[1]: v for k, v in mapped.items() if k.startswith(sid + ".")}
        service = {"service_id": sid, "event_type": m.events[payload["event"]],
                   "event_time": when, "paras": paras}
        body: dict[str, Any] = {"object_device_id": vid, "services": [service]}
        return f"$oc/devices/{vid}/sys/events/up", orjson.dumps(body), False
    services: dict[str, dict[str, Any]] = {}
    for key, value in _mapped(m.fields, payload).items():
        sid, prop = key.split(".", 1)
        services.setdefault(sid, {})[prop] = value
    body = {"services": [{"service_id": sid, "properties": props, "event_time": when}
                         for sid, props in services.items()]}
    return f"$oc/devices/{vid}/sys/properties/report", orjson.dumps(body), False
