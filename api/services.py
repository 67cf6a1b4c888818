"""What the API is given by the wiring (gateway/app.py): services, settings and callables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.rules import RuleSet
from gateway.clock import Clock
from gateway.live import LiveHub
from gateway.quarantine import Quarantine
from gateway.storage import TimeSeriesQuery

MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class ApiConfig:
    """The API's own settings; built by the wiring from ``Settings.api`` (never at import time).

    ``service_tokens`` maps an integration's name to its bearer token. ``ack_deadline_s`` is the
    acknowledgement deadline per severity the statistics measure "handled in time" against.
    """

    secret_key: str
    token_ttl_s: int = 12 * 3600
    service_tokens: Mapping[str, str] = field(default_factory=dict)
    ack_deadline_s: Mapping[str, int] = field(
        default_factory=lambda: {"critical": 120, "major": 600, "minor": 24 * 3600, "info": 0}
    )

    def __post_init__(self) -> None:
        if len(self.secret_key.encode()) < MIN_SECRET_BYTES or self.secret_key == "change-me":  # noqa: S105
            raise ValueError(
                f"api secret_key must be at least {MIN_SECRET_BYTES} bytes and not a default"
            )
        for name, token in self.service_tokens.items():
            if len(token) < MIN_SECRET_BYTES:
                raise ValueError(f"service token {name!r} is shorter than {MIN_SECRET_BYTES}")


class IncidentCommands(Protocol):
    """The incident service's state-changing side the API calls (alerting/incidents).

    Every method raises ``LookupError`` for an unknown id and ``ValueError`` (such as the
    lifecycle's ``TransitionError``) for an action the incident's status does not allow.
    """

    async def acknowledge(self, incident_id: int, actor: str, note: str = "") -> Any: ...
    async def comment(self, incident_id: int, actor: str, note: str) -> Any: ...
    async def assign(self, incident_id: int, actor: str, assignee: str, note: str = "") -> Any: ...
    async def escalate(self, incident_id: int, actor: str, note: str = "") -> Any: ...
    async def resolve(self, incident_id: int, actor: str, category: str, note: str = "") -> Any: ...
    async def reopen(self, incident_id: int, actor: str, note: str = "") -> Any: ...
    async def refer(self, incident_id: int, actor: str, department: str, note: str = "") -> Any: ...
    async def add_silence(
        self,
        *,
        site: str,
        matcher: str,
        value: str,
        starts_at_ms: int,
        ends_at_ms: int,
        actor: str,
        reason: str = "",
    ) -> Any: ...
    async def expire_silence(self, silence_id: int, actor: str) -> Any: ...


class RuleControl(Protocol):
    """The live rule set and how to change it."""

    @property
    def rules(self) -> RuleSet: ...
    def validate(self, items: Sequence[Any]) -> list[str]: ...
    async def set_enabled(self, rule_id: str, enabled: bool, actor: str) -> RuleSet: ...


RouteTester = Callable[[Mapping[str, Any], int], Awaitable[list[dict[str, Any]]]]
"""``(labels, at_ms) -> ladder steps with their recipients`` (alerting/routing's route tester)."""


@dataclass
class ApiServices:
    """Everything ``create_app`` needs; nothing in api/ builds services of its own."""

    sessions: async_sessionmaker[AsyncSession]
    incidents: IncidentCommands
    rules: RuleControl
    quarantine: Quarantine
    timeseries: TimeSeriesQuery
    live: LiveHub
    clock: Clock
    config: ApiConfig
    health: Callable[[], Awaitable[Mapping[str, Mapping[str, Any]]]]
    metrics: CollectorRegistry
    registry: Any = None  # gateway.registry.Registry once it lands; CRUD goes through tables
    route_tester: RouteTester | None = None
