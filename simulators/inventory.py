"""Which devices a simulation drives: read from a device-list file or generated for a site."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import StringConstraints

from simulators.devices import BEHAVIOURS

DeviceType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,15}$")]
#: The device types the simulator can play (those with a behaviour model).
DEVICE_TYPES: tuple[str, ...] = tuple(BEHAVIOURS)

_ID_KEYS = ("device_id", "id", "serial", "code")
_TYPE_KEYS = ("type", "device_type", "kind")
_BUILDING_KEYS = ("building", "building_id", "building_code")
_HOUSEHOLD_KEYS = ("household", "household_id", "room", "unit")
_FLAG_KEYS = ("flags", "household_flags")


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One device the simulator plays: where it is and who lives there."""

    site: str
    type: DeviceType
    device_id: str
    building: str
    household: str | None = None
    flags: tuple[str, ...] = field(default=())
    ports: int = 1
    #: the device's wire format in the registry: "native" or a vendor profile id
    #: (``aliyun.smoke.js_sd01``); native scenarios only bind native devices
    profile: str = "native"

    @property
    def native(self) -> bool:
        return self.profile == "native"


def demo_devices(site: str = "demo", buildings: int = 6, smoke_per_building: int = 8) -> list[
    DeviceSpec
]:
    """A small residential community: buildings with smoke, SOS, gates and a gas detector in
    the elderly household's kitchen; one charging shed.

    Ids follow the demo registry's style: SD-B01-0001, SOS-B01-0001, GATE-B01-E1, CHG-S1-01.
    Each building has one elderly-alone household with an SOS caller and a door sensor (a gate
    device of the household), so "silent for a day" scenarios have somewhere to happen.
    """
    out: list[DeviceSpec] = []
    for b in range(1, buildings + 1):
        bld = f"B{b:02d}"
        out += [
            DeviceSpec(site, "smoke", f"SD-{bld}-{i:04d}", bld, f"{bld}-{(i + 1) // 2:02d}01")
            for i in range(1, smoke_per_building + 1)
        ]
        elder = f"{bld}-0302"
        out.append(DeviceSpec(site, "sos", f"SOS-{bld}-0001", bld, elder, ("elderly_alone",)))
        out.append(DeviceSpec(site, "sos", f"SOS-{bld}-0002", bld, f"{bld}-0601"))
        out += [DeviceSpec(site, "gate", f"GATE-{bld}-E{e}", bld) for e in (1, 2)]
        out.append(DeviceSpec(site, "gate", f"GATE-{bld}-D0302", bld, elder, ("elderly_alone",)))
        out.append(DeviceSpec(site, "gas", f"GAS-{bld}-0302", bld, elder, ("elderly_alone",)))
    shed = "S1"
    out += [DeviceSpec(site, "charger", f"CHG-{shed}-{p:02d}", shed, ports=10) for p in (1, 2, 3)]
    out.append(DeviceSpec(site, "smoke", f"SD-{shed}-0001", shed))
    return out


def fleet_devices(site: str, count: int) -> list[DeviceSpec]:
    """At least ``count`` devices: as many demo-style buildings as it takes (sheds every 4th)."""
    out: list[DeviceSpec] = []
    b = 0
    while len(out) < count:
        b += 1
        bld = f"B{b:03d}"
        out += [DeviceSpec(site, "smoke", f"SD-{bld}-{i:04d}", bld) for i in range(1, 11)]
        out += [DeviceSpec(site, "sos", f"SOS-{bld}-{i:04d}", bld) for i in (1, 2)]
        out += [DeviceSpec(site, "gate", f"GATE-{bld}-E{e}", bld) for e in (1, 2)]
        if b % 4 == 0:
            shed = f"S{b // 4}"
            out += [DeviceSpec(site, "charger", f"CHG-{shed}-{p:02d}", shed, ports=10)
                    for p in (1, 2)]
            out.append(DeviceSpec(site, "smoke", f"SD-{shed}-0001", shed))
    return out[:count]


def load_devices(path: Path, site: str | None = None) -> list[DeviceSpec]:
    """Devices from a YAML/JSON file, read defensively.

    Accepts a plain list of device records, ``{devices: [...]}``, or a nested registry
    (sites → buildings → devices): any mapping with an id and a known device type is a device,
    and it inherits ``site``/``building`` from the mappings around it. Records of other sites
    than ``site`` (when given) are skipped.
    """
    text = path.read_text(encoding="utf-8")
    data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if _is_community(data):
        found = community_devices(path, site)
    else:
        found = [d for d in _walk(data, {}) if site is None or d.site == site]
    if not found:
        raise ValueError(f"{path}: no devices found" + (f" for site {site!r}" if site else ""))
    return found


def _is_community(data: Any) -> bool:
    """A gateway community file (``site: {code: ...}`` with devices and/or device ledgers)."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("site"), dict)
        and "code" in data["site"]
        and ("devices" in data or "device_ledgers" in data)
    )


def community_devices(path: Path, site: str | None = None) -> list[DeviceSpec]:
    """The devices of a gateway community file, read with the gateway's own loader.

    The loader merges the CSV device ledgers the file lists and checks the file, so the
    simulator drives exactly the devices the registry knows: same ids, same buildings,
    household ids (``{site}.{building}.{unit}-{room}``) with the household's flags, and each
    device's profile (vendor devices keep their profile id; see :attr:`DeviceSpec.native`).
    A device without a building (a pile a ledger lists by its location only) is grouped by
    its location.
    """
    from gateway.registry.loader import load_community_yaml  # the registry's own reading
    from gateway.registry.spec import household_id

    spec = load_community_yaml(path)
    code = spec.site.code
    if site is not None and site != code:
        return []
    flags = {(h.building, h.unit, h.room): tuple(h.flags) for h in spec.households}
    out: list[DeviceSpec] = []
    for d in spec.devices:
        if not d.enabled or d.type not in DEVICE_TYPES:
            continue
        household = None
        if d.building and d.room:
            household = household_id(code, d.building, d.unit, d.room)
        group = d.building or d.location or f"grid-{d.grid}"
        out.append(DeviceSpec(
            site=code,
            type=d.type,
            device_id=d.id,
            building=group,
            household=household,
            flags=flags.get((d.building or "", d.unit, d.room), ()),
            ports=d.ports or (10 if d.type == "charger" else 1),
            profile=d.profile,
        ))
    return out


def sample_community_path() -> Path | None:
    """The sample community shipped with the gateway (site ``demo``), if installed."""
    try:
        from gateway.sample import demo_community_path
    except ImportError:  # pragma: no cover - simulators installed without the gateway
        return None
    path = demo_community_path()
    return path if path.is_file() else None


def default_devices(site: str = "demo") -> list[DeviceSpec]:
    """What ``safety-sim`` drives when no device list is given.

    For the sample community's site (``demo``) these are the sample community's devices, so a
    scenario against ``safety-gateway demo`` uses ids the registry knows; for any other site,
    the generated demo community (:func:`demo_devices`).
    """
    path = sample_community_path()
    if path is not None:
        found = community_devices(path, site)
        if found:
            return found
    return demo_devices(site)


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if obj.get(key) is not None:
            return obj[key]
    return None


def _walk(node: Any, inherited: dict[str, str]) -> Iterator[DeviceSpec]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, inherited)
        return
    if not isinstance(node, dict):
        return
    context = dict(inherited)
    dtype = _first(node, _TYPE_KEYS)
    ident = _first(node, _ID_KEYS)
    if dtype in DEVICE_TYPES and isinstance(ident, str):
        yield _device(node, dtype, ident, context)
        return
    for key in ("site", "site_code", "code"):
        if isinstance(node.get(key), str) and ("buildings" in node or "grids" in node):
            context["site"] = node[key]
    if isinstance(ident, str) and ("devices" in node) and "site" in context:
        context["building"] = ident
    bld = _first(node, _BUILDING_KEYS)
    if isinstance(bld, str):
        context["building"] = bld
    for value in node.values():
        if isinstance(value, list | dict):
            yield from _walk(value, context)


def _device(node: dict[str, Any], dtype: DeviceType, ident: str, ctx: dict[str, str]) -> DeviceSpec:
    site = node.get("site") if isinstance(node.get("site"), str) else ctx.get("site", "demo")
    building = _first(node, _BUILDING_KEYS)
    household = _first(node, _HOUSEHOLD_KEYS)
    flags = _first(node, _FLAG_KEYS) or ()
    ports = node.get("ports")
    return DeviceSpec(
        site=str(site),
        type=dtype,
        device_id=ident,
        building=str(building or ctx.get("building", "B01")),
        household=str(household) if household is not None else None,
        flags=tuple(str(f) for f in flags) if isinstance(flags, list | tuple) else (str(flags),),
        ports=int(ports) if isinstance(ports, int) and ports > 0 else (10 if dtype == "charger" else 1),
    )
