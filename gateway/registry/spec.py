"""The community file's schema (pydantic, ``extra="forbid"``) and its cross-reference checks.

Codes (grids, buildings) are local to the site; the store ids derived from them are
``{site}.{code}`` (see :func:`grid_id`, :func:`building_id`, :func:`household_id`).
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from core.readings import DEVICE_TYPE_PATTERN
from core.zones import TimeZoneName

DeviceTypeName = Annotated[str, StringConstraints(pattern=DEVICE_TYPE_PATTERN)]
RoleName = Literal["grid_worker", "building_leader", "duty_staff", "secretary", "admin"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

SiteCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,32}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,48}$")]
DeviceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
PersonId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class SiteSpec(_Spec):
    code: SiteCode
    name: Text
    timezone: TimeZoneName = "Asia/Shanghai"
    address: Text = ""


class GridSpec(_Spec):
    code: Code
    name: Text
    children: list[GridSpec] = Field(default_factory=list)


class BuildingSpec(_Spec):
    code: Code
    name: Text
    grid: Code
    address: Text = ""
    # WGS-84 coordinates: a page then carries a map link to the building.
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None


class Contact(_Spec):
    name: Text
    relation: Text = ""
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{3,20}$")]


class Member(_Spec):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    note: Text = ""


class HouseholdSpec(_Spec):
    building: Code
    unit: Short = ""
    room: Short = Field(min_length=1)
    flags: list[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]] = Field(
        default_factory=list
    )
    contacts: list[Contact] = Field(default_factory=list)
    note: Text = ""
    resident: Text = ""  # the resident's name, as a page shows it
    # 五彩档案, as the screens keep it: the risk tier (a key of alerting.risk_tiers), emergency
    # facts (mobility, chronic_illness, key_holder, language …), the people living there, and
    # the elderly no-activity window in hours. Left out = what the screens set is kept.
    risk_tier: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,15}$")] | None = None
    facts: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")], Text],
        Field(max_length=20),
    ] = Field(default_factory=dict)
    members: list[Member] = Field(default_factory=list, max_length=20)
    no_activity_hours: int | None = Field(None, ge=1, le=168)


class DeviceSpec(_Spec):
    """One device. ``grid`` may be left out when ``building`` is given (the building's grid)."""

    id: DeviceId
    type: DeviceTypeName
    grid: Code | None = None
    building: Code | None = None
    unit: Short = ""
    room: Short = ""
    location: Text = ""
    name: Text = ""
    model: Text = ""
    profile: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,100}$")] = "native"
    vendor_identity: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    ports: Annotated[int, Field(ge=1, le=64)] | None = None
    installed_at: date | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _placed(self) -> DeviceSpec:
        if self.grid is None and self.building is None:
            raise ValueError("a device needs a grid or a building")
        if (self.unit or self.room) and self.building is None:
            raise ValueError("unit/room given without a building")
        if self.unit and not self.room:
            raise ValueError("unit given without a room")
        return self


class GridDuty(_Spec):
    grid: Code
    responsibility: Literal["primary", "backup"] = "primary"


class Channels(_Spec):
    mqtt: bool = True
    sms: Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{5,20}$")] | None = None
    webhook: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    wecom: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None  # robot
    dingtalk: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None  # robot
    wecom_app: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")] | None = None
    voice: bool = True  # critical fire / SOS pages ring the SMS number (or phone)


class PersonSpec(_Spec):
    id: PersonId
    name: Text
    role: RoleName
    phone: Text = ""
    email: Text = ""
    active: bool = True
    password_hash: Annotated[str, StringConstraints(pattern=r"^\$argon2(id|i|d)\$")] | None = None
    channels: Channels = Field(default_factory=Channels)
    grids: list[GridDuty | Code] = Field(default_factory=list)
    buildings: list[Code] = Field(default_factory=list)

    def grid_duties(self) -> list[GridDuty]:
        return [g if isinstance(g, GridDuty) else GridDuty(grid=g) for g in self.grids]


class WeeklySlot(_Spec):
    """Every listed weekday from ``start`` to ``end`` (site local time); past midnight if
    ``end <= start`` ("16:00"–"00:00" is the evening shift)."""

    person: PersonId
    days: Literal["daily"] | list[Weekday] = "daily"
    start: time
    end: time
    role: RoleName = "duty_staff"

    def weekdays(self) -> list[int]:
        names = WEEKDAYS if self.days == "daily" else self.days
        return sorted({WEEKDAYS.index(d) for d in names})


class ShiftSpec(_Spec):
    person: PersonId
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    role: RoleName = "duty_staff"

    @model_validator(mode="after")
    def _ordered(self) -> ShiftSpec:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class RosterSpec(_Spec):
    weekly: list[WeeklySlot] = Field(default_factory=list)
    shifts: list[ShiftSpec] = Field(default_factory=list)


class CommunitySpec(_Spec):
    """A whole community file. ``device_ledgers`` are CSV files (relative to the YAML file)
    whose devices are added to ``devices``."""

    site: SiteSpec
    grids: list[GridSpec] = Field(default_factory=list)
    buildings: list[BuildingSpec] = Field(default_factory=list)
    households: list[HouseholdSpec] = Field(default_factory=list)
    devices: list[DeviceSpec] = Field(default_factory=list)
    people: list[PersonSpec] = Field(default_factory=list)
    roster: RosterSpec | None = None
    device_ledgers: list[str] = Field(default_factory=list)

    def all_grids(self) -> list[tuple[GridSpec, str | None, str]]:
        """Every grid, parents before children: (grid, parent code, path in the file)."""
        out: list[tuple[GridSpec, str | None, str]] = []

        def walk(grids: list[GridSpec], parent: str | None, prefix: str) -> None:
            for i, g in enumerate(grids):
                path = f"{prefix}[{i}]"
                out.append((g, parent, path))
                walk(g.children, g.code, f"{path}.children")

        walk(self.grids, None, "grids")
        return out


def grid_id(site: str, code: str) -> str:
    return f"{site}.{code}"


def building_id(site: str, code: str) -> str:
    return f"{site}.{code}"


def household_id(site: str, building_code: str, unit: str, room: str) -> str:
    return f"{site}.{building_code}.{unit}-{room}" if unit else f"{site}.{building_code}.{room}"


def cross_check(spec: CommunitySpec) -> list[str]:
    """References between sections: every problem as ``path: message``."""
    problems: list[str] = []
    grids = _unique(problems, [(g.code, f"{p}.code") for g, _, p in spec.all_grids()], "grid")
    buildings = _unique(
        problems,
        [(b.code, f"buildings[{i}].code") for i, b in enumerate(spec.buildings)],
        "building",
    )
    people = _unique(
        problems, [(p.id, f"people[{i}].id") for i, p in enumerate(spec.people)], "person"
    )
    _unique(problems, [(d.id, f"devices[{i}].id") for i, d in enumerate(spec.devices)], "device")
    _unique(
        problems,
        [
            (d.vendor_identity, f"devices[{i}].vendor_identity")
            for i, d in enumerate(spec.devices)
            if d.vendor_identity
        ],
        "vendor identity",
    )
    _unique(
        problems,
        [((h.building, h.unit, h.room), f"households[{i}]") for i, h in enumerate(spec.households)],
        "household",
    )
    _refs(
        problems,
        grids,
        [(b.grid, f"buildings[{i}].grid") for i, b in enumerate(spec.buildings)],
        "grid",
    )
    _refs(
        problems,
        buildings,
        [(h.building, f"households[{i}].building") for i, h in enumerate(spec.households)],
        "building",
    )
    _refs(
        problems,
        grids,
        [(d.grid, f"devices[{i}].grid") for i, d in enumerate(spec.devices) if d.grid],
        "grid",
    )
    _refs(
        problems,
        buildings,
        [(d.building, f"devices[{i}].building") for i, d in enumerate(spec.devices) if d.building],
        "building",
    )
    for i, p in enumerate(spec.people):
        _refs(
            problems,
            grids,
            [(g.grid, f"people[{i}].grids[{j}]") for j, g in enumerate(p.grid_duties())],
            "grid",
        )
        _refs(
            problems,
            buildings,
            [(b, f"people[{i}].buildings[{j}]") for j, b in enumerate(p.buildings)],
            "building",
        )
    if spec.roster is not None:
        _refs(
            problems,
            people,
            [(s.person, f"roster.weekly[{i}].person") for i, s in enumerate(spec.roster.weekly)],
            "person",
        )
        _refs(
            problems,
            people,
            [(s.person, f"roster.shifts[{i}].person") for i, s in enumerate(spec.roster.shifts)],
            "person",
        )
    return problems


def _unique(problems: list[str], items: list[tuple[object, str]], what: str) -> set[object]:
    seen: dict[object, str] = {}
    for key, path in items:
        if key in seen:
            problems.append(f"{path}: duplicate {what} {key!r} (first at {seen[key]})")
        else:
            seen[key] = path
    return set(seen)


def _refs(
    problems: list[str], known: set[object], items: list[tuple[object, str]], what: str
) -> None:
    problems.extend(f"{path}: unknown {what} {key!r}" for key, path in items if key not in known)
