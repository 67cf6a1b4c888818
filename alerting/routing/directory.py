"""What routing needs to know about people: a small protocol the registry implements.

The registry (``gateway/registry``) is adapted to :class:`Directory`; tests and the route tester
use :class:`InMemoryDirectory`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Role(StrEnum):
    """Who a ladder step pages, resolved against the directory at the step's time."""

    GRID_WORKER = "grid_worker"
    BACKUP_WORKER = "backup_worker"
    BUILDING_LEADER = "building_leader"
    DUTY_STAFF = "duty_staff"
    SECRETARY = "secretary"
    FAMILY = "family"


class ChannelKind(StrEnum):
    APP = "app"  # MQTT to the worker's app; address = worker id in the topic
    SMS = "sms"  # address = phone number
    EMAIL = "email"
    WEBHOOK = "webhook"  # generic JSON; address = URL
    WECOM = "wecom"  # WeCom (企业微信) group robot URL
    DINGTALK = "dingtalk"  # DingTalk (钉钉) group robot URL
    WECOM_APP = "wecom_app"  # WeCom application message (企业微信应用消息); address = WeCom userid
    # A phone call reading the page (语音通知); address = phone number. Never part of a step's
    # ordinary fan-out: the escalation rings it for critical fire / SOS incidents still open
    # after the first step, and as the next channel when a critical page was not delivered.
    VOICE = "voice"
    WEBPUSH = "webpush"  # Web Push to the worker app's subscriptions; address = person id


@dataclass(frozen=True, slots=True)
class Channel:
    kind: ChannelKind
    address: str

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError(f"{self.kind.value} channel needs an address")


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person (or a group robot) with the channels to reach them, in preference order."""

    person_id: str
    name: str = ""
    channels: tuple[Channel, ...] = ()


@dataclass(frozen=True, slots=True)
class GridStaff:
    primary: tuple[Recipient, ...] = ()
    backup: tuple[Recipient, ...] = ()


class Directory(Protocol):
    """Read-only view of the registry that routing needs; all lookups by id."""

    async def grid_workers(self, site: str, grid_id: str) -> GridStaff: ...

    async def building_leaders(self, site: str, building_id: str) -> tuple[Recipient, ...]: ...

    async def on_duty(self, site: str, at_ms: int) -> tuple[Recipient, ...]:
        """Duty staff on the roster at ``at_ms``."""
        ...

    async def secretaries(self, site: str) -> tuple[Recipient, ...]: ...

    async def household_contacts(self, household_id: str) -> tuple[Recipient, ...]: ...

    async def person(self, person_id: str) -> Recipient | None: ...


@dataclass(frozen=True, slots=True)
class Shift:
    """One roster entry: ``person_id`` is on duty at ``site`` from ``start_ms`` to ``end_ms``."""

    site: str
    person_id: str
    start_ms: int
    end_ms: int


@dataclass
class InMemoryDirectory:
    """A :class:`Directory` over plain dicts, for tests and the route tester."""

    people: dict[str, Recipient] = field(default_factory=dict)
    grids: dict[tuple[str, str], tuple[list[str], list[str]]] = field(default_factory=dict)
    leaders: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    roster: list[Shift] = field(default_factory=list)
    secretary_ids: dict[str, list[str]] = field(default_factory=dict)
    households: dict[str, list[str]] = field(default_factory=dict)

    def _many(self, ids: list[str]) -> tuple[Recipient, ...]:
        return tuple(self.people[i] for i in ids if i in self.people)

    async def grid_workers(self, site: str, grid_id: str) -> GridStaff:
        primary, backup = self.grids.get((site, grid_id), ([], []))
        return GridStaff(self._many(primary), self._many(backup))

    async def building_leaders(self, site: str, building_id: str) -> tuple[Recipient, ...]:
        return self._many(self.leaders.get((site, building_id), []))

    async def on_duty(self, site: str, at_ms: int) -> tuple[Recipient, ...]:
        ids = [
            s.person_id for s in self.roster if s.site == site and s.start_ms <= at_ms < s.end_ms
        ]
        return self._many(ids)

    async def secretaries(self, site: str) -> tuple[Recipient, ...]:
        return self._many(self.secretary_ids.get(site, []))

    async def household_contacts(self, household_id: str) -> tuple[Recipient, ...]:
        return self._many(self.households.get(household_id, []))

    async def person(self, person_id: str) -> Recipient | None:
        return self.people.get(person_id)
