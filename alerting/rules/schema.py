"""Rules as data: the validated shape of every alert rule kind (one discriminated union)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    model_validator,
)

from alerting.models import Category, Severity
from alerting.rules.schedule import Schedule
from core.readings import DEVICE_TYPE_PATTERN, DeviceContext

DeviceType = Annotated[str, Field(pattern=DEVICE_TYPE_PATTERN)]

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS_MS = (86_400_000, 3_600_000, 60_000, 1_000)


def parse_duration(value: object) -> int:
    """Turn ``"90s"``, ``"2m"``, ``"1h30m"``, ``"7d"`` into milliseconds."""
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as '30s', '2m', '24h' or '1h30m'")  # noqa: TRY004
    match = _DURATION.match(value.strip())
    if not value.strip() or match is None:
        raise ValueError(f"bad duration {value!r}: use d/h/m/s units, e.g. '2m', '24h', '1h30m'")
    total = sum(
        int(part) * unit for part, unit in zip(match.groups(), _UNITS_MS, strict=True) if part
    )
    if total <= 0:
        raise ValueError(f"duration {value!r} must be longer than zero")
    return total


def format_duration(ms: int) -> str:
    """Inverse of :func:`parse_duration` (whole seconds)."""
    out, rest = "", ms // 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


Duration = Annotated[
    int, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,95}$")]
EventName = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]
FieldName = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]
Comparison = Literal[">", ">=", "<", "<="]
Hazard = Literal["fire", "electrical", "intrusion", "medical"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Match(_Strict):
    """Which devices a rule applies to beyond its device type."""

    household_flags: frozenset[str] = frozenset()

    def matches(self, ctx: DeviceContext) -> bool:
        return self.household_flags <= ctx.household_flags


class _RuleBase(_Strict):
    id: RuleId
    device_type: DeviceType
    title: str = Field(min_length=1, max_length=200)
    title_en: str | None = None
    severity: Severity
    category: Category = Category.SAFETY
    enabled: bool = True
    # Alert resolved (the condition ended) never closes a fire incident by itself: a person does.
    auto_resolve: bool = False
    schedule: Schedule | None = None
    match: Match | None = None
    actions: tuple[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")], ...] = ()
    # Page the household's own contacts with the first step (a gas leak at home): the route
    # tree adds them for incidents of such rules, as it does for call devices.
    page_household: bool = False
    # device: one incident per device; location: one per building (else household, location).
    dedupe: Literal["device", "location"] = "device"
    # What a community may tune from the screens, and only within these safe limits:
    # parameter (as written in the file, e.g. raise_at, for) → [lowest, highest]; durations
    # as duration strings.
    bounds: dict[str, tuple[float | str, float | str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bounds_hold_the_rule(self) -> _RuleBase:
        for name, (low, high) in self.bounds.items():
            value = self.tunable(name)
            lo, hi = bound_number(low), bound_number(high)
            if lo > hi:
                raise ValueError(f"bounds.{name}: lowest {low} is above highest {high}")
            if not lo <= value <= hi:
                raise ValueError(f"bounds.{name}: the rule's own {name} is outside [{low}, {high}]")
        return self

    def tunable(self, name: str) -> float:
        """The numeric value of parameter ``name`` (``for`` in ms); ValueError if none."""
        value = getattr(self, "for_" if name == "for" else name, None)
        if name in ("bounds", "id") or isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"bounds.{name}: not a numeric parameter of this rule")
        return float(value)
    # The danger the rule watches for. Rules of one hazard fold, per device, into one incident
    # that lists every rule that fired (smoke, static heat and rate of rise: one fire).
    hazard: Hazard | None = None
    # What the responder does first, in plain Chinese; every page and the worker's card show it.
    guidance: str = Field(default="", max_length=300)

    @model_validator(mode="after")
    def _fire_rules_never_auto_resolve(self) -> _RuleBase:
        if self.auto_resolve and self.is_fire_rule():
            raise ValueError("auto_resolve: fire rules (smoke, safety) must not auto-resolve")
        return self

    def is_fire_rule(self) -> bool:
        return self.device_type == "smoke" and self.category is Category.SAFETY

    def applies_to(self, ctx: DeviceContext) -> bool:
        return self.enabled and (self.match is None or self.match.matches(ctx))


class _Partitioned(_RuleBase):
    # A reading field that splits one device into subjects, e.g. a charger's ``port``.
    partition_by: FieldName | None = None


class ThresholdRule(_Partitioned):
    """Fires when ``field op raise_at``; resolves only once the value is back past ``clear_at``."""

    kind: Literal["threshold"]
    field: FieldName
    op: Comparison
    raise_at: float
    clear_at: float | None = None

    @model_validator(mode="after")
    def _hysteresis_points_the_right_way(self) -> ThresholdRule:
        _check_clear(self.op, self.raise_at, self.clear_at)
        return self


class DurationRule(_Partitioned):
    """Fires when the condition has held for ``for`` ("temp_c > 60 for 2m", "state in […] 8h")."""

    kind: Literal["duration"]
    field: FieldName
    op: Literal[">", ">=", "<", "<=", "==", "!=", "in"]
    value: float | bool | str | tuple[str, ...]
    clear_at: float | None = None
    for_: Duration = Field(alias="for")

    @model_validator(mode="after")
    def _value_fits_op(self) -> DurationRule:
        numeric = self.op in (">", ">=", "<", "<=")
        if numeric and (isinstance(self.value, bool) or not isinstance(self.value, int | float)):
            raise ValueError(f"value: {self.op!r} needs a number")
        if self.op == "in" and not isinstance(self.value, tuple):
            raise ValueError("value: 'in' needs a list")
        if self.clear_at is not None:
            if not numeric:
                raise ValueError("clear_at: only numeric comparisons have a clear level")
            _check_clear(self.op, float(self.value), self.clear_at)  # type: ignore[arg-type]
        return self


class RateOfRiseRule(_Partitioned):
    """Fires when ``field`` rose by ``rise`` within ``within`` (and is at least ``min_value``)."""

    kind: Literal["rate_of_rise"]
    field: FieldName
    rise: float = Field(gt=0)
    within: Duration
    min_value: float | None = None
    clear_rise: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _clear_below_rise(self) -> RateOfRiseRule:
        if self.clear_rise is not None and self.clear_rise >= self.rise:
            raise ValueError("clear_rise: must be below rise")
        return self


class EventRule(_Partitioned):
    """Fires on one of ``events``; resolves on ``clear_on`` or after ``hold`` without a repeat."""

    kind: Literal["event"]
    events: tuple[EventName, ...] = Field(min_length=1)
    clear_on: tuple[EventName, ...] = ()
    hold: Duration = 600_000


class CountInWindowRule(_Partitioned):
    """Fires on ``count`` of ``events`` within ``within``; resolves after a quiet window."""

    kind: Literal["count_in_window"]
    events: tuple[EventName, ...] = Field(min_length=1)
    count: int = Field(ge=2, le=1000)
    within: Duration


class RequireAlive(_Strict):
    """Another device of the same household that must have been heard from recently."""

    device_type: DeviceType
    within: Duration


class AbsenceRule(_RuleBase):
    """Fires when the device sent nothing expected for ``for`` (offline, no activity)."""

    kind: Literal["absence"]
    # any: every reading except status offline; heartbeat: telemetry or status online.
    expect: Literal["any", "heartbeat", "events"]
    events: tuple[EventName, ...] = ()
    for_: Duration = Field(alias="for")
    require_alive: RequireAlive | None = None
    # The household's own window (set on its risk file) replaces ``for`` when it has one.
    household_window: bool = False

    def window_ms(self, ctx: DeviceContext) -> int:
        """How long the device may stay quiet for this household."""
        if self.household_window and ctx.no_activity_ms:
            return ctx.no_activity_ms
        return self.for_

    @model_validator(mode="after")
    def _events_iff_expect_events(self) -> AbsenceRule:
        if (self.expect == "events") != bool(self.events):
            raise ValueError("events: list the events exactly when expect is 'events'")
        if self.require_alive is not None and self.dedupe != "device":
            raise ValueError("require_alive: only for per-device absence rules")
        return self


class CorrelationRule(_RuleBase):
    """Fires when other rules fire at devices of one location within ``within``.

    ``groups`` is a list of rule-id lists: every group must see at least one firing, and at
    least ``min_devices`` distinct devices must be involved ("smoke at two detectors").
    """

    kind: Literal["correlation"]
    by: Literal["building", "household", "location"]
    within: Duration
    groups: tuple[tuple[RuleId, ...], ...] = Field(min_length=1)
    min_devices: int = Field(default=1, ge=1, le=100)

    @model_validator(mode="after")
    def _groups_not_empty(self) -> CorrelationRule:
        if self.hazard is not None:
            raise ValueError("hazard: folds one device's rules; a correlation has no one device")
        if any(not group for group in self.groups):
            raise ValueError("groups: every group names at least one rule")
        if self.min_devices < 2 and len(self.groups) < 2:
            raise ValueError("min_devices: a one-group correlation needs at least 2 devices")
        return self

    def is_fire_rule(self) -> bool:
        return self.severity is Severity.CRITICAL and self.category is Category.SAFETY


def bound_number(value: float | str) -> float:
    """A bound as a number: durations ('12h') in milliseconds."""
    return float(parse_duration(value)) if isinstance(value, str) else float(value)


def _check_clear(op: str, raise_at: float, clear_at: float | None) -> None:
    if clear_at is None:
        return
    if op in (">", ">=") and clear_at > raise_at:
        raise ValueError(f"clear_at: {clear_at} must not be above raise level {raise_at}")
    if op in ("<", "<=") and clear_at < raise_at:
        raise ValueError(f"clear_at: {clear_at} must not be below raise level {raise_at}")


RuleSpec = Annotated[
    ThresholdRule
    | DurationRule
    | RateOfRiseRule
    | EventRule
    | CountInWindowRule
    | AbsenceRule
    | CorrelationRule,
    Field(discriminator="kind"),
]
RULE_ADAPTER: TypeAdapter[RuleSpec] = TypeAdapter(RuleSpec)
PartitionedRule = ThresholdRule | DurationRule | RateOfRiseRule | EventRule | CountInWindowRule
DeviceRule = PartitionedRule | AbsenceRule


def parse_rule(data: Any) -> RuleSpec:
    """Validate one rule (from YAML or a DB row); raises ``pydantic.ValidationError``."""
    return RULE_ADAPTER.validate_python(data)
