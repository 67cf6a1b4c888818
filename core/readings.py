"""Value objects passed along the pipeline: a decoded reading, a rejection, a device's place."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

#: A device type is named by its native device profile (device_profiles/profiles/native/):
#: adding a type is adding a profile, so the name is any short lowercase word, not a closed list.
DeviceType = str
DEVICE_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,15}$"
#: ``cmd_ack``: a device's answer to a command (``fields``: cmd_id, ok, state).
ReadingKind = Literal["telemetry", "event", "status", "cmd_ack"]
FieldValue = float | int | bool | str


@dataclass(slots=True)
class Reading:
    """A canonical reading: what every device profile decodes into.

    ``fields`` hold telemetry values (numbers, booleans, short enum strings such as a charger's
    ``state``). ``event`` is set for kind ``event``; event details (``credential``, ``port`` …)
    sit in ``fields``. For kind ``status``, ``fields == {"online": bool}``.

    Treat it as immutable (change it with ``dataclasses.replace``). It is not ``frozen``:
    a frozen dataclass sets each field through ``object.__setattr__``, a measurable part of
    the per-message cost (benchmarks/hotpath_bench.py).
    """

    site: str
    device_type: DeviceType
    device_id: str
    kind: ReadingKind
    ts_ms: int
    seq: int | None
    fields: dict[str, FieldValue] = field(default_factory=dict)
    event: str | None = None
    profile: str = "native"


class RejectReason(StrEnum):
    """Why a message was quarantined instead of stored (one counter per reason)."""

    NOT_JSON = "not_json"
    TOO_LARGE = "too_large"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    UNKNOWN_EVENT = "unknown_event"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_TOPIC = "unknown_topic"
    FUTURE_TIMESTAMP = "future_timestamp"
    TYPE_MISMATCH = "type_mismatch"
    # Decoded, but the time-series store refused to hold it (kept here rather than retried
    # forever, which would stop every later reading from being stored).
    UNSTORABLE = "unstorable"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that could not become a reading, with the reason and a human-readable detail."""

    reason: RejectReason
    detail: str
    topic: str = ""
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class FamilyContact:
    name: str
    relation: str
    phone: str


@dataclass(frozen=True, slots=True)
class HouseholdFacts:
    """What a responder must know about the home a device is in (the registry's 五彩档案)."""

    resident: str = ""
    unit: str = ""
    room: str = ""
    note: str = ""
    contacts: tuple[FamilyContact, ...] = ()


@dataclass(frozen=True, slots=True)
class PlaceFacts:
    """The building as a page names it, and where it is on a map (WGS-84) when known."""

    building_name: str = ""
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """Where a device sits in the community, as the registry knows it.

    Rules correlate by ``building_id`` / ``location``; routing starts from ``grid_id``.
    """

    site: str
    device_id: str
    device_type: DeviceType
    grid_id: str
    building_id: str | None = None
    household_id: str | None = None
    household_flags: frozenset[str] = frozenset()
    location: str = ""
    name: str = ""
    # The household's risk file (五彩档案): its tier raises severity and shortens deadlines;
    # the card (facts, family contacts) travels with the page. ``no_activity_ms`` overrides
    # the elderly no-activity rule's window for this household.
    risk_tier: str | None = None
    no_activity_ms: int | None = None
    household_card: HouseholdCard | None = None

    household: HouseholdFacts | None = None
    place: PlaceFacts | None = None


@dataclass(frozen=True, slots=True)
class HouseholdCard:
    """What a page says about a household: who lives there, emergency facts, whom to call.

    Tuples, not dicts, so a :class:`DeviceContext` stays hashable and comparable.
    """

    household_id: str
    address: str = ""
    risk_tier: str | None = None
    facts: tuple[tuple[str, str], ...] = ()
    members: tuple[tuple[str, str], ...] = ()  # (name, note)
    contacts: tuple[tuple[str, str, str], ...] = ()  # (name, relation, phone)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.household_id,
            "address": self.address,
            "risk_tier": self.risk_tier,
            "facts": dict(self.facts),
            "members": [{"name": n, "note": d} for n, d in self.members],
            "contacts": [{"name": n, "relation": r, "phone": p} for n, r, p in self.contacts],
        }
