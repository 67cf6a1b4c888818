"""Alerting value objects: severity, an alert's state for one subject, and its transitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    CRITICAL = "critical"  # life safety: fire, SOS, fall — everyone at once
    MAJOR = "major"  # forced door, charger over-temperature — grid worker first, fast ladder
    MINOR = "minor"  # maintenance: low battery, offline, tamper — grid worker, slow ladder
    INFO = "info"  # recorded, never pages (e.g. a detector's self-test)


class Category(StrEnum):
    """Life-safety incidents apart from device-maintenance ones."""

    SAFETY = "safety"
    MAINTENANCE = "maintenance"


class AlertState(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """A rule's alert for one subject changed state.

    ``subject`` is what the alert is about: a device id, or for correlation rules a location
    key such as ``building:B-01``. ``dedupe_key`` is the incident it belongs to.
    """

    rule_id: str
    subject: str
    site: str
    device_id: str | None
    state: AlertState
    severity: Severity
    category: Category
    title: str
    at_ms: int
    dedupe_key: str
    auto_resolve: bool = False
    reading_ts_ms: int | None = None
    reading_seq: int | None = None
    value: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    actions: tuple[str, ...] = ()
    # What to do first (the rule's ``guidance``), and the reading's fields that set it off.
    guidance: str = ""
    readings: dict[str, float | int | bool | str] = field(default_factory=dict)
    page_household: bool = False
