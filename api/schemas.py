"""Request and response models: the ``XCreate / XUpdate / XPublic`` family, unknown keys refused."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from alerting.incidents.lifecycle import Department, Resolution
from alerting.incidents.views import IncidentView
from core.readings import DEVICE_TYPE_PATTERN
from core.zones import TimeZoneName

SiteCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,32}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,48}$")]
DeviceIdStr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
PersonId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)]
DeviceType = Annotated[str, StringConstraints(pattern=DEVICE_TYPE_PATTERN)]
Role = Literal[
    "grid_worker", "building_leader", "duty_staff", "secretary", "admin", "street_office"
]
Severity = Literal["critical", "major", "minor", "info"]
IncidentStatus = Literal["open", "acknowledged", "resolved", "closed"]

#: The largest integer SQLite and PostgreSQL (BIGINT) hold: an id, offset or time past it fails
#: in the database driver (a 500) rather than finding nothing, so it is refused as invalid.
DB_INT_MAX = 2**63 - 1
DB_INT32_MAX = 2**31 - 1  # an Integer (not BigInteger) column on PostgreSQL
#: 9999-12-31T23:59:59.999Z in epoch milliseconds: the latest time a request may name.
EPOCH_MS_MAX = 253_402_300_799_999
EpochMs = Annotated[int, Field(ge=0, le=EPOCH_MS_MAX)]


TimeZone = TimeZoneName


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- auth ---------------------------------------------------------------------------------


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    person: PersonPublic
    # Exchanged at /auth/refresh for a new pair until the login ends (a shift; see api/refresh.py).
    refresh_token: str | None = None
    refresh_expires_at_ms: int | None = None


class RefreshRequest(Input):
    refresh_token: str = Field(min_length=10, max_length=200)


class LoggedOut(BaseModel):
    ended_logins: int


class PasswordChange(Input):
    current_password: str | None = Field(None, max_length=200)
    new_password: str = Field(min_length=8, max_length=200)


# --- registry -----------------------------------------------------------------------------


class SiteCreate(Input):
    code: SiteCode
    name: Name
    timezone: TimeZone = "Asia/Shanghai"
    address: Text = ""


class SiteUpdate(Input):
    name: Name | None = None
    timezone: TimeZone | None = None
    address: Text | None = None


class SitePublic(Output):
    code: str
    name: str
    timezone: str
    address: str
    street: str | None = None  # the street office (街道) it belongs to


class GridCreate(Input):
    site: SiteCode
    code: Code
    name: Name
    parent_id: str | None = Field(None, max_length=100)


class GridUpdate(Input):
    name: Name | None = None
    parent_id: str | None = Field(None, max_length=100)


class GridPublic(Output):
    id: str
    site: str
    code: str
    name: str
    parent_id: str | None


class BuildingCreate(Input):
    site: SiteCode
    code: Code
    name: Name
    grid_id: str = Field(max_length=100)
    address: Text = ""


class BuildingUpdate(Input):
    name: Name | None = None
    grid_id: str | None = Field(None, max_length=100)
    address: Text | None = None


class BuildingPublic(Output):
    id: str
    site: str
    code: str
    name: str
    grid_id: str
    address: str


class ContactIn(Input):
    name: Name
    relation: Text = ""
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{3,20}$")]


FlagName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class MemberIn(Input):
    name: Name
    note: Text = ""


FactKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
#: Emergency facts (mobility, chronic_illness, key_holder, language …): key → short text.
Facts = Annotated[dict[FactKey, Text], Field(max_length=20)]
TierKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,15}$")]


class HouseholdCreate(Input):
    site: SiteCode
    building_id: str = Field(max_length=100)
    unit: Short = ""
    room: Short = Field(min_length=1)
    flags: list[FlagName] = Field(default_factory=list)
    contacts: list[ContactIn] = Field(default_factory=list, max_length=10)
    note: Text = ""
    risk_tier: TierKey | None = None
    facts: Facts = Field(default_factory=dict)
    members: list[MemberIn] = Field(default_factory=list, max_length=20)
    no_activity_hours: int | None = Field(None, ge=1, le=168)


class HouseholdUpdate(Input):
    flags: list[FlagName] | None = None
    contacts: list[ContactIn] | None = Field(None, max_length=10)
    note: Text | None = None
    risk_tier: TierKey | None = None
    facts: Facts | None = None
    members: list[MemberIn] | None = Field(None, max_length=20)
    no_activity_hours: int | None = Field(None, ge=1, le=168)


class HouseholdPublic(Output):
    id: str
    site: str
    building_id: str
    unit: str
    room: str
    flags: list[str]
    contacts: list[dict[str, str]]
    note: str
    risk_tier: str | None = None
    facts: dict[str, str] | None = None
    members: list[dict[str, str]] | None = None
    no_activity_hours: int | None = None


class DeviceCreate(Input):
    site: SiteCode
    device_id: DeviceIdStr
    device_type: DeviceType
    grid_id: str = Field(max_length=100)
    building_id: str | None = Field(None, max_length=100)
    household_id: str | None = Field(None, max_length=150)
    profile: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,100}$")] = "native"
    vendor_identity: str | None = Field(None, min_length=1, max_length=200)
    location: Text = ""
    name: Text = ""
    model: Text = ""
    ports: int | None = Field(None, ge=1, le=64)
    installed_at: date | None = None
    enabled: bool = True


class DeviceUpdate(Input):
    grid_id: str | None = Field(None, max_length=100)
    building_id: str | None = Field(None, max_length=100)
    household_id: str | None = Field(None, max_length=150)
    profile: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,100}$")] | None = None
    vendor_identity: str | None = Field(None, min_length=1, max_length=200)
    location: Text | None = None
    name: Text | None = None
    model: Text | None = None
    ports: int | None = Field(None, ge=1, le=64)
    installed_at: date | None = None
    enabled: bool | None = None


class DevicePublic(Output):
    site: str
    device_id: str
    device_type: str
    grid_id: str
    building_id: str | None
    household_id: str | None
    profile: str
    vendor_identity: str | None
    location: str
    name: str
    model: str
    ports: int | None
    installed_at: date | None
    enabled: bool
    replaced_by: str | None = None
    decommissioned_on: date | None = None


class PersonCreate(Input):
    id: PersonId
    site: SiteCode
    name: Name
    role: Role
    phone: Text = ""
    email: Text = ""
    active: bool = True
    password: str | None = Field(None, min_length=8, max_length=200)
    channels: dict[str, Any] = Field(default_factory=dict)
    grids: list[str] = Field(default_factory=list, description="grid ids this person answers for")
    buildings: list[str] = Field(default_factory=list, description="building ids (leaders)")
    backup_grids: list[str] = Field(default_factory=list, description="grids they back up")


class PersonUpdate(Input):
    name: Name | None = None
    role: Role | None = None
    phone: Text | None = None
    email: Text | None = None
    active: bool | None = None
    channels: dict[str, Any] | None = None
    grids: list[str] | None = None
    buildings: list[str] | None = None
    backup_grids: list[str] | None = None


class PersonPublic(Output):
    id: str
    site: str
    name: str
    role: str
    phone: str
    email: str
    active: bool
    grids: list[str] = Field(default_factory=list)
    buildings: list[str] = Field(default_factory=list)
    backup_grids: list[str] = Field(default_factory=list)
    channels: dict[str, Any] = Field(default_factory=dict)


class RosterShiftCreate(Input):
    site: SiteCode
    person_id: PersonId
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    role: Role = "duty_staff"

    @model_validator(mode="after")
    def _ordered(self) -> RosterShiftCreate:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class RosterShiftUpdate(Input):
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    role: Role | None = None


class RosterShiftPublic(Output):
    id: int
    site: str
    person_id: str
    starts_at: datetime
    ends_at: datetime
    role: str


class RosterEntryPublic(Output):
    """One roster entry: an explicit ``shift`` (``id``, ``starts_at``-``ends_at``; changed
    through ``/rosters/{id}``) or a ``weekly`` slot from the community file (``days``, local
    ``start``-``end``, past midnight when ``end <= start``; changed in the community file)."""

    kind: Literal["shift", "weekly"]
    id: int | None = None
    site: str
    person_id: str
    role: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    days: list[str] = Field(default_factory=list)
    start: str | None = None
    end: str | None = None


class ImportResult(BaseModel):
    created: int
    updated: int


# --- incidents ----------------------------------------------------------------------------


class IncidentPublic(IncidentView):
    """An incident as the API, the live board and the worker view show it (the one read
    model, :class:`alerting.incidents.views.IncidentView`)."""


class IncidentsPublic(BaseModel):
    data: list[IncidentPublic]
    count: int


class IncidentEventPublic(Output):
    id: int
    at_ms: int
    actor: str
    kind: str
    note: str
    data: dict[str, Any]


class ReadingBucket(BaseModel):
    field: str
    ts_ms: int
    samples: int
    mean: float | None
    min: float | None
    max: float | None
    last: float | int | bool | str | None


class IncidentDetail(BaseModel):
    incident: IncidentPublic
    timeline: list[IncidentEventPublic]
    readings: list[ReadingBucket]
    allowed_actions: list[str]


class IncidentNote(Input):
    note: Note = ""


class IncidentComment(Input):
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class IncidentAssign(Input):
    assignee: PersonId
    note: Note = ""


class IncidentResolve(Input):
    category: Resolution
    note: Note = ""


class IncidentRefer(Input):
    department: Department
    note: Note = ""


# --- silences -----------------------------------------------------------------------------


class SilenceCreate(Input):
    site: SiteCode
    matcher: Literal["device", "building", "grid"]
    value: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    starts_at_ms: EpochMs | None = None
    ends_at_ms: EpochMs | None = None
    duration_s: int | None = Field(None, ge=60, le=30 * 86400)
    reason: Text = ""

    @model_validator(mode="after")
    def _one_end(self) -> SilenceCreate:
        if (self.ends_at_ms is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at_ms and duration_s")
        return self


class SilencePublic(Output):
    id: int
    site: str
    matcher: str
    value: str
    starts_at_ms: int
    ends_at_ms: int
    created_by: str
    created_at_ms: int
    reason: str


# --- devices, quarantine, rules, stats ----------------------------------------------------


class DeviceStatusPublic(BaseModel):
    site: str
    device_id: str
    device_type: str
    grid_id: str
    online: bool | None
    last_seen_ms: int | None
    battery_pct: float | None
    fields: dict[str, Any]


class TelemetryPublic(BaseModel):
    device_id: str
    field: str
    start_ms: int
    end_ms: int
    every_ms: int
    buckets: list[ReadingBucket]


class QuarantinedPublic(Output):
    id: int
    received_ms: int
    topic: str
    reason: str
    detail: str
    device_id: str | None
    site: str | None  # None: not known (only those who see every site read such rows)
    payload_size: int
    payload_text: str = ""


class RuleToggle(Input):
    enabled: bool


class RuleTune(Input):
    """Parameters to change, as written in the rule file (``raise_at``, ``for`` …); durations
    as strings such as '36h'."""

    params: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")], float | str
    ] = Field(min_length=1, max_length=10)


class RulesValidate(Input):
    rules: list[dict[str, Any]] = Field(min_length=1, max_length=1000)


class ValidationReport(BaseModel):
    valid: bool
    problems: list[str]


class RouteTest(Input):
    site: SiteCode
    device_id: DeviceIdStr
    severity: Severity
    category: Literal["safety", "maintenance"] = "safety"
    rule_id: str = Field("", max_length=96)
    at_ms: EpochMs | None = None


class GridStats(BaseModel):
    grid_id: str
    incidents: int
    by_type: dict[str, int]
    by_rule: dict[str, int]
    by_severity: dict[str, int]
    acknowledged: int
    resolved: int
    mean_ack_s: float | None
    mean_resolve_s: float | None
    within_deadline_share: float | None
    resolution_rate: float | None


class StatsPublic(BaseModel):
    site: str | None
    start_ms: int
    end_ms: int
    total: GridStats
    grids: list[GridStats]


class LedgerRow(BaseModel):
    id: int
    opened_at: str
    grid_id: str
    building_id: str | None
    location: str
    device_id: str | None
    device_type: str
    title: str
    title_en: str | None = None  # the rule's English title (English screens and CSV)
    severity: str
    status: str
    handled_by: str | None
    ack_s: float | None
    resolve_s: float | None
    resolution: str | None
    within_deadline: bool | None


class LedgerPublic(BaseModel):
    site: str
    month: str
    rows: list[LedgerRow]
    totals: GridStats


class TrendPoint(BaseModel):
    month: str
    stats: GridStats


class ComponentHealth(BaseModel):
    status: Literal["ok", "degraded", "down"]
    detail: str = ""


class HealthPublic(BaseModel):
    """/health for staff, service and metrics tokens: each component's status and figures."""

    status: Literal["ok", "degraded", "down"]
    components: dict[str, dict[str, Any]]


class HealthBrief(BaseModel):
    """/health for anyone else: up or down, nothing about the inside."""

    status: Literal["up", "down"]


Token.model_rebuild()
