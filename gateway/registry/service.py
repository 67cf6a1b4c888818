"""The registry as the pipeline sees it: an in-memory snapshot of the store, swapped whole.

``await registry.load()`` (and ``refresh()`` after edits) reads everything once; the lookups the
hot path makes (``context``, ``resolve_vendor``) are plain dict reads. Readers never see a
half-built snapshot: a new one is built aside and then replaces the old one in one assignment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.readings import (
    DeviceContext,
    DeviceType,
    FamilyContact,
    HouseholdCard,
    HouseholdFacts,
    PlaceFacts,
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
    RosterSwap,
    RosterWeekly,
    Site,
)


@dataclass(frozen=True, slots=True)
class PersonInfo:
    id: str
    site: str
    name: str
    role: str
    phone: str = ""
    email: str = ""
    channels: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    active: bool = True


@dataclass(frozen=True, slots=True)
class GridInfo:
    id: str
    site: str
    code: str
    name: str
    parent_id: str | None


@dataclass(frozen=True, slots=True)
class SiteInfo:
    code: str
    name: str
    timezone: ZoneInfo


@dataclass(frozen=True, slots=True)
class Responders:
    """Who answers for a grid (and optionally one building) at a moment, nearest first.

    ``primary``: the grid's primary workers (or, if it has none, those of the nearest ancestor
    grid that has). ``backup``: the grid's backups, then the workers of the grids above it.
    """

    grid_id: str
    primary: tuple[PersonInfo, ...] = ()
    backup: tuple[PersonInfo, ...] = ()
    building_leaders: tuple[PersonInfo, ...] = ()
    on_duty: tuple[PersonInfo, ...] = ()
    secretaries: tuple[PersonInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class _Weekly:
    person_id: str
    weekday: int
    start: time
    end: time
    role: str = "duty_staff"

    def covers(self, local: datetime) -> bool:
        now, day = local.time(), local.weekday()
        if self.start < self.end:
            return day == self.weekday and self.start <= now < self.end
        return (day == self.weekday and now >= self.start) or (
            day == (self.weekday + 1) % 7 and now < self.end
        )


@dataclass(frozen=True, slots=True)
class _Shift:
    person_id: str
    starts_at: datetime
    ends_at: datetime
    role: str = "duty_staff"


#: Roster roles that answer for their own grids or buildings, not for the whole site: a shift
#: in one of them makes its person the grid's worker for the time, never site duty staff.
LOCAL_ROLES = frozenset({"grid_worker", "building_leader"})


@dataclass(frozen=True, slots=True)
class _Swap:
    from_person: str
    to_person: str
    starts_at: datetime
    ends_at: datetime


@dataclass
class _Snapshot:
    sites: dict[str, SiteInfo] = field(default_factory=dict)
    contexts: dict[tuple[str, str], DeviceContext] = field(default_factory=dict)
    profiles: dict[tuple[str, str], str] = field(default_factory=dict)
    vendor: dict[str, DeviceContext] = field(default_factory=dict)
    grids: dict[str, GridInfo] = field(default_factory=dict)
    ancestors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    descendants: dict[str, frozenset[str]] = field(default_factory=dict)
    people: dict[str, PersonInfo] = field(default_factory=dict)
    workers: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    person_grids: dict[str, frozenset[str]] = field(default_factory=dict)
    leaders: dict[str, tuple[str, ...]] = field(default_factory=dict)
    weekly: dict[str, tuple[_Weekly, ...]] = field(default_factory=dict)
    shifts: dict[str, tuple[_Shift, ...]] = field(default_factory=dict)
    contacts: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    swaps: dict[str, tuple[_Swap, ...]] = field(default_factory=dict)


class Registry:
    """Cached registry queries; build it with a session factory, then ``await load()``."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        on_load: Callable[[], None] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._snap = _Snapshot()
        self._loaded = False
        # Told after each (re)load: the wiring lets the rule engine follow registry changes.
        self._on_load = on_load

    @property
    def loaded(self) -> bool:
        return self._loaded

    async def load(self) -> None:
        """Read the whole registry from the store and swap it in."""
        async with self._sessionmaker() as session:
            snap = await _read(session)
        self._snap = snap
        self._loaded = True
        if self._on_load is not None:
            self._on_load()

    async def refresh(self) -> None:
        """Re-read after edits (API changes, ledger imports)."""
        await self.load()

    # --- hot path: dict lookups -------------------------------------------------------------

    def context(self, site: str, device_id: str) -> DeviceContext | None:
        """The device's place in the community; None if unknown or disabled."""
        return self._snap.contexts.get((site, device_id))

    def resolve_vendor(self, vendor_identity: str) -> DeviceContext | None:
        """A device by its vendor-cloud identity (Alink ``productKey/deviceName``, IoTDA id)."""
        return self._snap.vendor.get(vendor_identity)

    def vendor_identity(self, site: str, device_id: str) -> str | None:
        """The vendor-cloud identity of a device, if it speaks a vendor format."""
        ctx = self._snap.contexts.get((site, device_id))
        if ctx is None:
            return None
        return next((k for k, v in self._snap.vendor.items() if v is ctx), None)

    def profile(self, site: str, device_id: str) -> str | None:
        """The device profile id the device speaks (``native`` or a vendor profile)."""
        return self._snap.profiles.get((site, device_id))

    # --- registry queries -------------------------------------------------------------------

    def devices(self, site: str | None = None) -> list[DeviceContext]:
        """Every enabled device (of one site), ordered by site and device id."""
        return [c for (s, _), c in sorted(self._snap.contexts.items()) if site in (None, s)]

    def site(self, code: str) -> SiteInfo | None:
        return self._snap.sites.get(code)

    def grid(self, grid_id: str) -> GridInfo | None:
        return self._snap.grids.get(grid_id)

    def grids(self, site: str | None = None) -> list[GridInfo]:
        return [g for g in self._snap.grids.values() if site in (None, g.site)]

    def grid_ancestors(self, grid_id: str) -> tuple[str, ...]:
        """The grids above ``grid_id``, parent first; () for a top-level or unknown grid."""
        return self._snap.ancestors.get(grid_id, ())

    def person(self, person_id: str) -> PersonInfo | None:
        return self._snap.people.get(person_id)

    def people(self, site: str | None = None) -> list[PersonInfo]:
        return [p for p in self._snap.people.values() if site in (None, p.site)]

    def grids_of(self, person_id: str) -> frozenset[str]:
        """Grids a person answers for, with every grid nested inside them."""
        return self._snap.person_grids.get(person_id, frozenset())

    def household_contacts(self, household_id: str) -> tuple[dict[str, Any], ...]:
        """The family contacts a household gave (name, relation, phone)."""
        return self._snap.contacts.get(household_id, ())

    def building_leaders(self, building_id: str) -> tuple[PersonInfo, ...]:
        return self._active(self._snap.leaders.get(building_id, ()))

    def on_duty(self, site: str, at: datetime) -> tuple[PersonInfo, ...]:
        """Active people on the site's duty roster at ``at`` (timezone-aware): every roster
        entry except those of a grid worker or building leader, which answer for their own
        grids (:meth:`rostered`)."""
        return self._active(
            dict.fromkeys(p for p, role in self._roster_at(site, at) if role not in LOCAL_ROLES)
        )

    def rostered(self, site: str, at: datetime, role: str) -> tuple[PersonInfo, ...]:
        """Active people whose roster entry at ``at`` has ``role``."""
        return self._active(dict.fromkeys(p for p, r in self._roster_at(site, at) if r == role))

    def _roster_at(self, site: str, at: datetime) -> list[tuple[str, str]]:
        if at.tzinfo is None:
            raise ValueError("the roster needs a timezone-aware datetime")
        info = self._snap.sites.get(site)
        if info is None:
            return []
        local = at.astimezone(info.timezone)
        found = [
            (s.person_id, s.role)
            for s in self._snap.shifts.get(site, ())
            if s.starts_at <= at < s.ends_at
        ]
        found += [(w.person_id, w.role) for w in self._snap.weekly.get(site, ()) if w.covers(local)]
        for swap in self._snap.swaps.get(site, ()):
            # 代班: the stand-in takes the shift (and its role) of the person they cover, for
            # that time only.
            if swap.starts_at <= at < swap.ends_at:
                found = [(swap.to_person if p == swap.from_person else p, r) for p, r in found]
        return found

    def people_for_grid(
        self, grid_id: str, now: datetime, building_id: str | None = None
    ) -> Responders:
        """Everyone who answers for ``grid_id`` (and ``building_id``) at ``now``."""
        grid = self._snap.grids.get(grid_id)
        if grid is None:
            return Responders(grid_id)
        chain = (grid_id, *self.grid_ancestors(grid_id))
        primary, backup = self._workers(chain)
        # A grid worker on a roster shift answers for the grids they are assigned to.
        extra = tuple(
            p
            for p in self.rostered(grid.site, now, "grid_worker")
            if grid_id in self._snap.person_grids.get(p.id, ()) and p not in primary
        )
        if extra:
            primary = (*primary, *extra)
            backup = tuple(p for p in backup if p not in extra)
        return Responders(
            grid_id=grid_id,
            primary=primary,
            backup=backup,
            building_leaders=self.building_leaders(building_id) if building_id else (),
            on_duty=self.on_duty(grid.site, now),
            secretaries=self._with_role(grid.site, "secretary"),
        )

    # --- helpers ----------------------------------------------------------------------------

    def _workers(
        self, chain: tuple[str, ...]
    ) -> tuple[tuple[PersonInfo, ...], tuple[PersonInfo, ...]]:
        workers = self._snap.workers
        level = next(
            (i for i, g in enumerate(chain) if self._active(workers.get((g, "primary"), ()))), None
        )
        if level is None:
            return (), self._active(
                dict.fromkeys(p for g in chain for p in workers.get((g, "backup"), ()))
            )
        primary = self._active(workers[(chain[level], "primary")])
        backups: list[str] = list(workers.get((chain[0], "backup"), ()))
        for g in chain[1:]:
            backups += [*workers.get((g, "primary"), ()), *workers.get((g, "backup"), ())]
        chosen = {p.id for p in primary}
        return primary, self._active(dict.fromkeys(b for b in backups if b not in chosen))

    def _with_role(self, site: str, role: str) -> tuple[PersonInfo, ...]:
        return tuple(
            p for p in self._snap.people.values() if p.site == site and p.role == role and p.active
        )

    def _active(self, ids: Iterable[str]) -> tuple[PersonInfo, ...]:
        people = self._snap.people
        return tuple(p for i in ids if (p := people.get(i)) is not None and p.active)


# --- building a snapshot ----------------------------------------------------------------------


async def _read(session: AsyncSession) -> _Snapshot:
    snap = _Snapshot()
    for s in await session.scalars(select(Site)):
        snap.sites[s.code] = SiteInfo(s.code, s.name, ZoneInfo(s.timezone))
    for g in await session.scalars(select(Grid).order_by(Grid.id)):
        snap.grids[g.id] = GridInfo(g.id, g.site, g.code, g.name, g.parent_id)
    _index_grids(snap)
    await _read_devices(session, snap)
    await _read_people(session, snap)
    await _read_roster(session, snap)
    return snap


def _index_grids(snap: _Snapshot) -> None:
    children: dict[str, set[str]] = defaultdict(set)
    for gid in snap.grids:
        chain: list[str] = []
        parent = snap.grids[gid].parent_id
        while parent is not None and parent in snap.grids and parent not in chain and parent != gid:
            chain.append(parent)
            children[parent].add(gid)
            parent = snap.grids[parent].parent_id
        snap.ancestors[gid] = tuple(chain)
    snap.descendants = {gid: frozenset(children.get(gid, ())) for gid in snap.grids}


async def _read_devices(session: AsyncSession, snap: _Snapshot) -> None:
    households: dict[str, Household] = {}
    homes: dict[str, HouseholdFacts] = {}
    for h in await session.scalars(select(Household)):
        households[h.id] = h
        snap.contacts[h.id] = tuple(dict(c) for c in h.contacts or () if isinstance(c, dict))
        homes[h.id] = _household(h, snap.contacts[h.id])
    buildings = list(await session.scalars(select(Building)))
    names = {b.id: b.name for b in buildings}
    places = {b.id: PlaceFacts(b.name, b.address, b.latitude, b.longitude) for b in buildings}
    cards = {hid: _card(h, names.get(h.building_id, "")) for hid, h in households.items()}
    # Plain rows, not ORM objects, and each context built once: 100,000 devices at start.
    columns = (
        Device.site,
        Device.device_id,
        Device.device_type,
        Device.grid_id,
        Device.building_id,
        Device.household_id,
        Device.location,
        Device.name,
        Device.profile,
        Device.vendor_identity,
    )
    for d in await session.execute(select(*columns).where(Device.enabled.is_(True))):
        ctx = _context(d, households, cards, homes, places)
        snap.contexts[(d.site, d.device_id)] = ctx
        snap.profiles[(d.site, d.device_id)] = d.profile
        if d.vendor_identity:
            snap.vendor[d.vendor_identity] = ctx


def _household(h: Household, contacts: Iterable[dict[str, Any]]) -> HouseholdFacts:
    family = tuple(
        FamilyContact(str(c.get("name", "")), str(c.get("relation", "")), str(c.get("phone", "")))
        for c in contacts
    )
    return HouseholdFacts(h.resident or "", h.unit, h.room, h.note or "", family)



def _card(h: Household, building: str) -> HouseholdCard:
    def text(value: object) -> str:
        return "" if value is None else str(value)

    unit = f"{h.unit}单元" if h.unit else ""
    return HouseholdCard(
        household_id=h.id,
        address=f"{building}{unit}{h.room}室",
        risk_tier=h.risk_tier,
        facts=tuple((str(k), text(v)) for k, v in (h.facts or {}).items() if text(v)),
        members=tuple(
            (text(m.get("name")), text(m.get("note")))
            for m in h.members or ()
            if isinstance(m, dict)
        ),
        contacts=tuple(
            (text(c.get("name")), text(c.get("relation")), text(c.get("phone")))
            for c in h.contacts or ()
            if isinstance(c, dict)
        ),
    )


def _context(
    d: Any,  # a row of Device's columns
    households: Mapping[str, Household],
    cards: Mapping[str, HouseholdCard],
    homes: Mapping[str, HouseholdFacts],
    places: Mapping[str, PlaceFacts],
) -> DeviceContext:
    device_type: DeviceType = d.device_type
    h = households.get(d.household_id) if d.household_id else None
    return DeviceContext(
        site=d.site,
        device_id=d.device_id,
        device_type=device_type,
        grid_id=d.grid_id,
        building_id=d.building_id,
        household_id=d.household_id,
        household_flags=frozenset(h.flags or ()) if h is not None else frozenset(),
        location=d.location,
        name=d.name,
        risk_tier=h.risk_tier if h is not None else None,
        no_activity_ms=h.no_activity_hours * 3_600_000
        if h is not None and h.no_activity_hours
        else None,
        household_card=cards.get(h.id) if h is not None else None,
        household=homes.get(d.household_id) if d.household_id else None,
        place=places.get(d.building_id) if d.building_id else None,
    )


async def _read_people(session: AsyncSession, snap: _Snapshot) -> None:
    for p in await session.scalars(select(Person).order_by(Person.id)):
        channels = MappingProxyType(dict(p.channels or {}))
        snap.people[p.id] = PersonInfo(
            p.id, p.site, p.name, p.role, p.phone, p.email, channels, p.active
        )
    workers: dict[tuple[str, str], list[str]] = defaultdict(list)
    own: dict[str, set[str]] = defaultdict(set)
    for pg in await session.scalars(select(PersonGrid).order_by(PersonGrid.person_id)):
        workers[(pg.grid_id, pg.responsibility)].append(pg.person_id)
        own[pg.person_id] |= {pg.grid_id, *snap.descendants.get(pg.grid_id, ())}
    snap.workers = {k: tuple(v) for k, v in workers.items()}
    snap.person_grids = {k: frozenset(v) for k, v in own.items()}
    leaders: dict[str, list[str]] = defaultdict(list)
    for bl in await session.scalars(select(BuildingLeader).order_by(BuildingLeader.person_id)):
        leaders[bl.building_id].append(bl.person_id)
    snap.leaders = {k: tuple(v) for k, v in leaders.items()}


async def _read_roster(session: AsyncSession, snap: _Snapshot) -> None:
    weekly: dict[str, list[_Weekly]] = defaultdict(list)
    for w in await session.scalars(
        select(RosterWeekly).order_by(RosterWeekly.weekday, RosterWeekly.start_time)
    ):
        weekly[w.site].append(
            _Weekly(w.person_id, w.weekday, w.start_time, w.end_time, w.role)
        )
    shifts: dict[str, list[_Shift]] = defaultdict(list)
    for s in await session.scalars(select(RosterShift).order_by(RosterShift.starts_at)):
        shifts[s.site].append(_Shift(s.person_id, s.starts_at, s.ends_at, s.role))
    snap.weekly = {k: tuple(v) for k, v in weekly.items()}
    snap.shifts = {k: tuple(v) for k, v in shifts.items()}
    swaps: dict[str, list[_Swap]] = defaultdict(list)
    for sw in await session.scalars(select(RosterSwap).order_by(RosterSwap.starts_at)):
        swaps[sw.site].append(_Swap(sw.from_person, sw.to_person, sw.starts_at, sw.ends_at))
    snap.swaps = {k: tuple(v) for k, v in swaps.items()}


__all__ = ["GridInfo", "PersonInfo", "Registry", "Responders", "SiteInfo"]
