"""Load a community from YAML and CSV device ledgers, and write it into the relational store.

``load_community_yaml(path)`` validates the file (errors name the file and the path inside it)
and merges the devices of the ledgers it lists. ``import_device_ledger_csv`` reads a ledger
with per-row errors; ``apply`` / ``apply_ledger`` upsert into the store idempotently;
``export_device_ledger_csv`` writes a site's devices back out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.registry.ledger import (
    Ledger,
    LedgerError,
    LedgerRow,
    RowError,
    read_ledger,
    write_ledger,
)
from gateway.registry.spec import (
    CommunitySpec,
    DeviceSpec,
    building_id,
    cross_check,
    grid_id,
    household_id,
)
from gateway.registry.tables import (
    Building,
    BuildingLeader,
    Device,
    Grid,
    Household,
    Person,
    PersonGrid,
    RosterShift,
    RosterWeekly,
    Site,
    Street,
)

__all__ = [
    "CommunityError",
    "Ledger",
    "LedgerError",
    "RowError",
    "apply",
    "apply_ledger",
    "export_device_ledger_csv",
    "import_device_ledger_csv",
    "load_community_cached",
    "load_community_text",
    "load_community_yaml",
    "parse_community",
]

log = logging.getLogger(__name__)


class CommunityError(ValueError):
    """A community file that cannot be used; ``problems`` are ``file: path: message`` lines."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --- YAML -------------------------------------------------------------------------------------


# libyaml's parser where PyYAML has it: a 100,000-device community file parses in seconds,
# not minutes (the resolvers and constructors below still apply).
if TYPE_CHECKING:
    _SafeBase = yaml.SafeLoader
else:
    _SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeBase):
    """Safe YAML without YAML 1.1 surprises: "16:00" stays a string, duplicate keys fail."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]+([eE][-+]?[0-9]+)?$"), list("-+.0123456789")
)


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_community_yaml(path: str | Path, tiers: Collection[str] | None = None) -> CommunitySpec:
    """Read, validate and cross-check a community file, merging its device ledgers; with
    ``tiers`` (the configured risk tiers' keys), every household's tier must be one of them."""
    path = Path(path)
    return load_community_text(
        path.read_text(encoding="utf-8"), source=str(path), base_dir=path.parent, tiers=tiers
    )


def load_community_text(
    text: str,
    *,
    source: str = "<community>",
    base_dir: Path | None = None,
    tiers: Collection[str] | None = None,
) -> CommunitySpec:
    """A community file's text (e.g. uploaded through the API): every problem names the line
    and the field. ``base_dir=None`` refuses ``device_ledgers`` (files on the server must not
    be read on an uploader's say-so)."""
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CommunityError(source, [f"{source}: not valid YAML: {exc}"]) from None
    if base_dir is None:
        _no_aliases(text, source)
    if base_dir is None and isinstance(raw, dict) and raw.get("device_ledgers"):
        raise CommunityError(
            source,
            [
                f"{source}: device_ledgers: not read from an upload; list the devices under"
                " devices: or import the CSV ledger (POST /api/v1/devices/ledger.csv)"
                f"{_line(_nodes(text), ('device_ledgers',))}"
            ],
        )
    try:
        return parse_community(raw, source=source, base_dir=base_dir, tiers=tiers)
    except CommunityError:
        # Line numbers are looked up only for a file with problems: composing the text's
        # nodes in pure Python costs more than parsing 100,000 devices with libyaml.
        return parse_community(
            raw, source=source, base_dir=base_dir, nodes=_nodes(text), tiers=tiers
        )


def _nodes(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def load_community_cached(
    path: str | Path, cache_dir: Path, tiers: Collection[str] | None = None
) -> CommunitySpec:
    """:func:`load_community_yaml`, remembering the result in ``cache_dir``: a restart with
    the same file and ledgers (the same bytes) reads the checked community back in about a
    second instead of parsing 100,000 devices of YAML and CSV again. Any change of a byte in
    the file or one of its ledgers (or of the configured risk ``tiers`` it is checked against)
    parses it afresh; an unreadable cache is ignored."""
    path = Path(path)
    # One cache file per community file: several sites' files each keep their own.
    cache = cache_dir / f"community-cache-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}.json"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    checked = None if tiers is None else sorted(tiers)
    try:
        kept = json.loads(cache.read_bytes())
        if kept["file"] == [str(path.resolve()), sha] and kept["tiers"] == checked and all(
            _sha_of(Path(ledger)) == digest for ledger, digest in kept["ledgers"]
        ):
            return CommunitySpec.model_validate_json(kept["spec"])
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
        pass  # no cache yet, or one from another file or version: parse
    spec = load_community_yaml(path, tiers)
    ledgers = [(path.parent / ref).resolve() for ref in spec.device_ledgers]
    entry = {
        "file": [str(path.resolve()), sha],
        "tiers": checked,
        "ledgers": [[str(ledger), _sha_of(ledger)] for ledger in ledgers],
        "spec": spec.model_dump_json(),
    }
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry), encoding="utf-8")
        tmp.replace(cache)
    except OSError as exc:  # only slower next time
        log.warning("community cache %s not written: %s", cache, exc)
    return spec


def _sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_community(
    raw: object,
    *,
    source: str = "<community>",
    base_dir: Path | None = None,
    nodes: yaml.Node | None = None,
    tiers: Collection[str] | None = None,
) -> CommunitySpec:
    """Validate already-parsed YAML/JSON data (see :func:`load_community_yaml`); with the
    composed ``nodes`` of the text, problems carry line numbers."""
    try:
        spec = CommunitySpec.model_validate(raw)
    except ValidationError as exc:
        raise CommunityError(
            source,
            [
                f"{source}: {_loc(e['loc'])}: {e['msg']}{_line(nodes, e['loc'])}"
                for e in exc.errors()
            ],
        ) from None
    problems = [f"{source}: {p}{_line(nodes, _path_of(p))}" for p in cross_check(spec)]
    if tiers is not None:
        problems += [
            f"{source}: households[{i}].risk_tier: '{h.risk_tier}' is not a configured risk "
            f"tier (one of: {', '.join(tiers)}){_line(nodes, ('households', i, 'risk_tier'))}"
            for i, h in enumerate(spec.households)
            if h.risk_tier is not None and h.risk_tier not in tiers
        ]
    if problems:
        raise CommunityError(source, problems)
    grid_of = {b.code: b.grid for b in spec.buildings}
    spec.devices = [
        d if d.grid else d.model_copy(update={"grid": grid_of[str(d.building)]})
        for d in spec.devices
    ]
    for i, ref in enumerate(spec.device_ledgers):
        _merge_ledger(spec, (base_dir or Path.cwd()) / ref, f"{source}: device_ledgers[{i}]")
    return spec


def _no_aliases(text: str, source: str) -> None:
    """An upload may not use YAML aliases: a community file needs none, and a few nested ones
    make validation walk billions of items (the "billion laughs")."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise CommunityError(
                source, [f"{source}: YAML aliases (*name) are not accepted (line {line})"]
            )


def _path_of(problem: str) -> tuple[int | str, ...]:
    """``people[2].grids[0]: unknown grid`` → ("people", 2, "grids", 0)."""
    head = problem.split(":", 1)[0]
    parts: list[int | str] = []
    for name, index in re.findall(r"([A-Za-z_]+)|\[(\d+)\]", head):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> str:
    """`` (line N)``: where the deepest node the path reaches starts ("" without the text)."""
    if node is None:
        return ""
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if 0 <= part < len(node.value) else None
        if child is None:
            break
        node = child
    return f" (line {node.start_mark.line + 1})"


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _merge_ledger(spec: CommunitySpec, path: Path, source: str) -> None:
    try:
        ledger = read_ledger(path)
    except (OSError, LedgerError) as exc:
        raise CommunityError(source, [f"{source}: {exc}"]) from None
    names = Names.of_spec(spec)
    devices, errors = names.resolve(ledger)
    known = {d.id for d in spec.devices}
    errors += [
        RowError(
            ledger.source, r.row, r.headers["id"], f"device {r.device.id!r} is already defined"
        )
        for r, d in zip(ledger.rows, devices, strict=False)
        if d is not None and d.id in known
    ]
    if errors or ledger.errors:
        raise CommunityError(source, [f"{source}: {e}" for e in ledger.errors + errors])
    spec.devices.extend(d for d in devices if d is not None)


# --- CSV ledgers ------------------------------------------------------------------------------


def import_device_ledger_csv(source: str | bytes | Path, *, name: str | None = None) -> Ledger:
    """Parse a CSV device ledger: a path, the uploaded bytes, or the CSV text itself.

    Rows with problems are in ``errors`` (row number and column); the others in ``rows``.
    Raises :class:`LedgerError` when the header is unusable.
    """
    return read_ledger(source, name=name)


@dataclass
class Names:
    """Grids and buildings of a site by code, id or name, for ledger rows that use any of them."""

    site: str
    grids: dict[str, str] = field(default_factory=dict)
    buildings: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def of_spec(cls, spec: CommunitySpec) -> Names:
        names = cls(spec.site.code)
        for g, _, _ in spec.all_grids():
            names.add_grid(g.code, g.name)
        for b in spec.buildings:
            names.add_building(b.code, b.name, b.grid)
        return names

    @classmethod
    async def of_store(cls, session: AsyncSession, site: str) -> Names:
        names = cls(site)
        for g in await session.scalars(select(Grid).where(Grid.site == site)):
            names.add_grid(g.code, g.name)
        grid_codes = {grid_id(site, c): c for c in set(names.grids.values())}
        for b in await session.scalars(select(Building).where(Building.site == site)):
            names.add_building(b.code, b.name, grid_codes.get(b.grid_id, b.grid_id))
        return names

    def add_grid(self, code: str, name: str) -> None:
        for key in (name, grid_id(self.site, code), code):
            self.grids[key] = code

    def add_building(self, code: str, name: str, grid_code: str) -> None:
        for key in (name, building_id(self.site, code), code):
            self.buildings[key] = (code, grid_code)

    def resolve(self, ledger: Ledger) -> tuple[list[DeviceSpec | None], list[RowError]]:
        """Ledger rows with grid/building turned into codes; None where a name is unknown."""
        out: list[DeviceSpec | None] = []
        errors: list[RowError] = []
        for row in ledger.rows:
            device, problems = self._resolve_row(ledger.source, row)
            out.append(device)
            errors += problems
        return out, errors

    def _resolve_row(self, source: str, row: LedgerRow) -> tuple[DeviceSpec | None, list[RowError]]:
        errors = []
        grid = self.grids.get(row.grid_ref) if row.grid_ref else None
        if row.grid_ref and grid is None:
            errors.append(_unknown(source, row, "grid", row.grid_ref))
        found = self.buildings.get(row.building_ref) if row.building_ref else None
        if row.building_ref and found is None:
            errors.append(_unknown(source, row, "building", row.building_ref))
        if errors:
            return None, errors
        update = {
            "grid": grid or (found[1] if found else None),
            "building": found[0] if found else None,
        }
        return row.device.model_copy(update=update), []


def _unknown(source: str, row: LedgerRow, what: str, ref: str) -> RowError:
    return RowError(source, row.row, row.headers[what], f"unknown {what} {ref!r}")


# --- the store --------------------------------------------------------------------------------


async def apply(session: AsyncSession, community: CommunitySpec) -> None:
    """Upsert a community into the store; applying the same file twice changes nothing.

    Rows the file does not mention are kept (devices imported from ledgers, for instance);
    the grid and building assignments of the people in the file and the site's roster (when the
    file has one) are replaced. A person without ``password_hash`` keeps the stored one.
    The caller commits.
    """
    site = community.site.code
    taken = await _ids_elsewhere(session, site)
    if clashes := [
        f"devices[{i}].id: '{d.id}' is already registered at site '{taken[d.id]}'"
        for i, d in enumerate(community.devices)
        if d.id in taken
    ]:
        raise CommunityError(f"site {site}", [*clashes, DEVICE_IDS_UNIQUE])
    street = community.site.street
    if street is not None:
        await _upsert(session, Street, [street.model_dump()])
    await _upsert(
        session,
        Site,
        [community.site.model_dump(exclude={"street"}) | {"street": street.code if street else None}],
    )
    await _upsert(session, Grid, _grid_rows(community))
    await _upsert(session, Building, _building_rows(community))
    await _upsert(session, Household, _household_rows(community))
    await _upsert(session, Device, [_device_row(site, d) for d in community.devices])
    await _upsert(session, Person, _person_rows(community))
    await _replace_duties(session, community)
    if community.roster is not None:
        await _replace_roster(session, community)


def community_digest(community: CommunitySpec) -> str:
    """The fingerprint of what a community file says (its ledgers merged in)."""
    return hashlib.sha256(community.model_dump_json().encode()).hexdigest()


async def apply_if_changed(session: AsyncSession, community: CommunitySpec) -> bool:
    """Apply the community file only when it differs from the one last applied to its site.

    Day to day the community is run from the screens; re-applying an unchanged file at every
    start would silently undo those edits (a family member's new phone, a worker's grids).
    A changed file is the integrator's new word and wins for what it names. The caller commits.
    Returns whether the file was applied.
    """
    digest = community_digest(community)
    stored = await session.scalar(
        select(Site.community_digest).where(Site.code == community.site.code)
    )
    if stored == digest:
        return False
    await apply(session, community)
    site = await session.get(Site, community.site.code)
    assert site is not None  # apply() upserted it
    site.community_digest = digest
    return True


DEVICE_IDS_UNIQUE = (
    "device ids must be unique across every site of a deployment (the rule engine and the "
    "incidents know a device by its id): rename it, e.g. with the site's code as a prefix"
)


async def _ids_elsewhere(session: AsyncSession, site: str) -> dict[str, str]:
    """Device ids registered at other sites, with their site (empty for a one-site gateway)."""
    rows = await session.execute(select(Device.device_id, Device.site).where(Device.site != site))
    return {device_id: other for device_id, other in rows.all()}


async def apply_ledger(session: AsyncSession, site: str, ledger: Ledger) -> list[RowError]:
    """Upsert a ledger's good rows into ``site`` (which must exist with its grids and buildings).

    Returns every row error: those found while parsing and rows naming an unknown grid or
    building (those rows are skipped). The caller commits.
    """
    names = await Names.of_store(session, site)
    devices, errors = names.resolve(ledger)
    taken = await _ids_elsewhere(session, site)
    for i, (row, d) in enumerate(zip(ledger.rows, devices, strict=True)):
        if d is not None and d.id in taken:
            column = row.headers.get("id", "设备编号")
            message = f"'{d.id}' is already registered at site '{taken[d.id]}'; {DEVICE_IDS_UNIQUE}"
            errors.append(RowError(ledger.source, row.row, column, message))
            devices[i] = None
    good = [d for d in devices if d is not None]
    await _upsert(session, Household, [h for d in good if (h := _implicit_household(site, d))])
    await _upsert(session, Device, [_device_row(site, d) for d in good])
    return sorted(ledger.errors + errors, key=lambda e: e.row)


async def export_device_ledger_csv(session: AsyncSession, site: str) -> str:
    """A site's devices as a CSV ledger (Chinese headers), readable by the importer."""
    grids = {g.id: g.code for g in await session.scalars(select(Grid).where(Grid.site == site))}
    buildings = {
        b.id: b.code for b in await session.scalars(select(Building).where(Building.site == site))
    }
    households = {
        h.id: h for h in await session.scalars(select(Household).where(Household.site == site))
    }
    rows = await session.scalars(
        select(Device).where(Device.site == site).order_by(Device.device_id)
    )
    return write_ledger(_ledger_row(d, grids, buildings, households) for d in rows)


def _ledger_row(
    d: Device, grids: dict[str, str], buildings: dict[str, str], households: dict[str, Household]
) -> dict[str, object]:
    household = households.get(d.household_id) if d.household_id else None
    return {
        "id": d.device_id, "type": d.device_type, "name": d.name, "grid": grids.get(d.grid_id),
        "building": buildings.get(d.building_id) if d.building_id else None,
        "unit": household.unit if household else None,
        "room": household.room if household else None,
        "location": d.location, "installed_at": d.installed_at, "model": d.model,
        "profile": d.profile, "vendor_identity": d.vendor_identity, "ports": d.ports,
        "enabled": d.enabled,
    }  # fmt: skip


def _grid_rows(c: CommunitySpec) -> list[dict[str, Any]]:
    site = c.site.code
    return [
        {"id": grid_id(site, g.code), "site": site, "code": g.code, "name": g.name,
         "parent_id": grid_id(site, parent) if parent else None}
        for g, parent, _ in c.all_grids()
    ]  # fmt: skip


def _building_rows(c: CommunitySpec) -> list[dict[str, Any]]:
    site = c.site.code
    return [
        {"id": building_id(site, b.code), "site": site, "code": b.code, "name": b.name,
         "grid_id": grid_id(site, b.grid), "address": b.address,
         "latitude": b.latitude, "longitude": b.longitude}
        for b in c.buildings
    ]  # fmt: skip


def _household_rows(c: CommunitySpec) -> list[dict[str, Any]]:
    site = c.site.code
    rows = {h["id"]: h for h in (_implicit_household(site, d) for d in c.devices) if h is not None}
    for h in c.households:
        hid = household_id(site, h.building, h.unit, h.room)
        rows[hid] = {
            "id": hid, "site": site, "building_id": building_id(site, h.building),
            "unit": h.unit, "room": h.room, "flags": list(h.flags),
            "contacts": [x.model_dump() for x in h.contacts], "note": h.note,
            "resident": h.resident,
        }  # fmt: skip
        # The risk file only where the community file gives it: a file that says nothing
        # about a household's tier must not wipe the tier a grid worker set on a visit.
        for key in ("risk_tier", "facts", "members", "no_activity_hours"):
            if key in h.model_fields_set:
                value = getattr(h, key)
                rows[hid][key] = [m.model_dump() for m in value] if key == "members" else value
    return list(rows.values())


def _implicit_household(site: str, d: DeviceSpec) -> dict[str, Any] | None:
    """A device placed in a room implies the household (flags and contacts untouched)."""
    if not (d.building and d.room):
        return None
    return {
        "id": household_id(site, d.building, d.unit, d.room), "site": site,
        "building_id": building_id(site, d.building), "unit": d.unit, "room": d.room,
    }  # fmt: skip


def _device_row(site: str, d: DeviceSpec) -> dict[str, Any]:
    if d.grid is None:
        raise ValueError(f"device {d.id!r}: grid not resolved")
    household = _implicit_household(site, d)
    return {
        "site": site, "device_id": d.id, "device_type": d.type, "profile": d.profile,
        "vendor_identity": d.vendor_identity, "grid_id": grid_id(site, d.grid),
        "building_id": building_id(site, d.building) if d.building else None,
        "household_id": household["id"] if household else None,
        "location": d.location or _default_location(d), "name": d.name, "model": d.model,
        "ports": d.ports, "installed_at": d.installed_at, "enabled": d.enabled,
    }  # fmt: skip


def _default_location(d: DeviceSpec) -> str:
    parts = [d.building or "", f"{d.unit}单元" if d.unit else "", f"{d.room}室" if d.room else ""]
    return "".join(parts)


def _person_rows(c: CommunitySpec) -> list[dict[str, Any]]:
    rows = []
    for p in c.people:
        row = {
            "id": p.id, "site": c.site.code, "name": p.name, "phone": p.phone,
            "email": p.email, "role": p.role, "active": p.active,
            "channels": p.channels.model_dump(exclude_none=True),
        }  # fmt: skip
        if p.password_hash is not None:
            row["password_hash"] = p.password_hash
        rows.append(row)
    return rows


async def _replace_duties(session: AsyncSession, c: CommunitySpec) -> None:
    site, ids = c.site.code, [p.id for p in c.people]
    if not ids:
        return
    await session.execute(delete(PersonGrid).where(PersonGrid.person_id.in_(ids)))
    await session.execute(delete(BuildingLeader).where(BuildingLeader.person_id.in_(ids)))
    for p in c.people:
        for duty in p.grid_duties():
            session.add(
                PersonGrid(
                    person_id=p.id,
                    grid_id=grid_id(site, duty.grid),
                    responsibility=duty.responsibility,
                )
            )
        for code in p.buildings:
            session.add(BuildingLeader(person_id=p.id, building_id=building_id(site, code)))
    await session.flush()


async def _replace_roster(session: AsyncSession, c: CommunitySpec) -> None:
    site, roster = c.site.code, c.roster
    assert roster is not None
    await session.execute(delete(RosterWeekly).where(RosterWeekly.site == site))
    await session.execute(delete(RosterShift).where(RosterShift.site == site))
    for slot in roster.weekly:
        for day in slot.weekdays():
            session.add(
                RosterWeekly(
                    site=site,
                    person_id=slot.person,
                    weekday=day,
                    start_time=slot.start,
                    end_time=slot.end,
                    role=slot.role,
                )
            )
    for s in roster.shifts:
        session.add(
            RosterShift(
                site=site, person_id=s.person, starts_at=s.starts_at, ends_at=s.ends_at, role=s.role
            )
        )
    await session.flush()


async def _upsert(session: AsyncSession, model: type[Any], rows: Iterable[dict[str, Any]]) -> None:
    """Insert new rows, update changed columns of existing ones (rows keyed by primary key)."""
    rows = list(rows)
    if not rows:
        return
    pk = [c.key for c in model.__table__.primary_key.columns]
    existing = await _existing(session, model, pk, rows)
    new: list[dict[str, Any]] = []
    for row in rows:
        obj = existing.get(tuple(row[k] for k in pk))
        if obj is None:
            new.append(row)
            continue
        for key, value in row.items():
            if getattr(obj, key) != value:
                setattr(obj, key, value)
    await session.flush()
    if new:
        # One multi-row INSERT, not an ORM object per row: a community file's first import
        # carries up to 100,000 devices.
        await session.execute(insert(model), new)


async def _existing(
    session: AsyncSession, model: type[Any], pk: list[str], rows: list[dict[str, Any]]
) -> dict[tuple[Any, ...], Any]:
    if model is Street:  # streets are not per site: the few named
        found = await session.scalars(select(Street).where(Street.code.in_([r["code"] for r in rows])))
        return {(obj.code,): obj for obj in found}
    sites = sorted({row["site"] if "site" in row else row["code"] for row in rows})
    site_col = model.__table__.c.site if "site" in model.__table__.c else model.__table__.c.code
    found = await session.scalars(select(model).where(site_col.in_(sites)))
    return {tuple(getattr(obj, k) for k in pk): obj for obj in found}
