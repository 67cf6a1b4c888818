"""What the API is given by the wiring (gateway/app.py): services, settings and callables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.commands import CommandDesk
from alerting.incidents.service import IncidentChange
from alerting.incidents.silences import SilenceService
from alerting.incidents.tiers import RiskTier, TierPolicy
from alerting.incidents.workflow import IncidentDesk
from alerting.loop.services import LoopServices
from alerting.models import Category, Severity
from alerting.routing.router import Paged
from alerting.rules import RuleSet
from api.login_guard import LoginConfig
from core.clock import Clock
from core.readings import DeviceContext
from gateway.live import LiveHub
from gateway.quarantine import Quarantine
from gateway.registry.service import Registry
from gateway.settings import MIN_SECRET_BYTES
from gateway.storage import TimeSeriesQuery


@dataclass(frozen=True)
class ApiConfig:
    """The API's own settings; built by the wiring from ``Settings.api`` (never at import time).

    ``service_tokens`` maps an integration's name to its bearer token. ``ack_deadline_s`` is the
    acknowledgement deadline per severity the statistics measure "handled in time" against.
    ``metrics_token`` is a bearer token that may read ``/metrics`` (and the detail of
    ``/health``) and nothing else. ``login``: login limits and the password workers.
    """

    secret_key: str
    token_ttl_s: int = 12 * 3600
    refresh_ttl_s: int = 16 * 3600  # a login lasts a 12 h shift and its handover
    service_tokens: Mapping[str, str] = field(default_factory=dict)
    metrics_token: str | None = None
    login: LoginConfig = field(default_factory=LoginConfig)
    ack_deadline_s: Mapping[str, int] = field(
        default_factory=lambda: {"critical": 120, "major": 600, "minor": 24 * 3600, "info": 0}
    )

    def __post_init__(self) -> None:
        if len(self.secret_key.encode()) < MIN_SECRET_BYTES or self.secret_key == "change-me":  # noqa: S105
            raise ValueError(
                f"api secret_key must be at least {MIN_SECRET_BYTES} bytes and not a default"
            )
        for name, token in self.service_tokens.items():
            if len(token.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"service token {name!r} is shorter than {MIN_SECRET_BYTES}")
        if self.metrics_token is not None and len(self.metrics_token) < MIN_SECRET_BYTES:
            raise ValueError(f"the metrics token is shorter than {MIN_SECRET_BYTES}")


class RuleControl(Protocol):
    """The live rule set and how to change it."""

    @property
    def rules(self) -> RuleSet: ...
    def validate(self, items: Sequence[Any]) -> list[str]: ...
    async def set_enabled(self, rule_id: str, enabled: bool, actor: str) -> RuleSet: ...
    async def tune(self, rule_id: str, params: dict[str, Any], actor: str) -> RuleSet: ...


class RouteTester(Protocol):
    """alerting.routing.route_test with its directory bound, e.g. ``partial(route_test, dir)``."""

    def __call__(
        self,
        ctx: DeviceContext,
        *,
        severity: Severity,
        now_ms: int,
        rule_id: str,
        category: Category,
    ) -> Awaitable[list[tuple[int, list[Paged]]]]: ...


def shipped_device_types() -> frozenset[str]:
    """The device types of the profiles shipped with the code."""
    from device_profiles import load_profiles

    return frozenset(load_profiles().device_types())


@dataclass
class ApiServices:
    """Everything ``create_app`` needs; nothing in api/ builds services of its own."""

    sessions: async_sessionmaker[AsyncSession]
    incidents: IncidentDesk
    silences: SilenceService
    rules: RuleControl
    quarantine: Quarantine
    timeseries: TimeSeriesQuery
    live: LiveHub
    clock: Clock
    config: ApiConfig
    health: Callable[[], Awaitable[Mapping[str, Mapping[str, Any]]]]
    metrics: CollectorRegistry
    registry: Registry | None = None  # refreshed after every registry change made here
    route_tester: RouteTester | None = None
    # The pipeline's view of availability (status messages and heartbeat deadlines):
    # (site, device_id, now_ms) -> {"online", "last_seen_ms", "battery_pct"}; None = use the
    # time-series store's latest values only.
    device_status: Callable[[str, str, int], Mapping[str, Any]] | None = None
    # Registers a listener for every incident change the alert path makes (the live board);
    # None when nothing but the API changes incidents (tests).
    listen_incidents: Callable[[Callable[[IncidentChange], None]], None] | None = None
    # The secret in the providers' status-report URLs; None = status reports are refused.
    receipt_secret: str | None = None
    # Wakes the escalation loop (a "not delivered" report is acted on at once).
    poke_escalation: Callable[[], None] | None = None
    # The closed loop (intake, triage, referral, verification, feedback); None: not offered.
    loop: LoopServices | None = None
    # Login tokens live in real time even when ``clock`` is compressed (a demo at --rate
    # 3600 must not log everyone out within seconds); None: ``clock``.
    token_clock: Clock | None = None

    # Household risk tiers (五彩档案) by key, highest risk first: names, meanings, effects.
    risk_tiers: Mapping[str, RiskTier] = field(default_factory=lambda: TierPolicy().tiers)

    # Web Push: the VAPID public key browsers subscribe with (None: Web Push is off), and
    # whether plain-http push endpoints are accepted (tests' local push service only).
    push_public_key: str | None = None
    push_allow_http: bool = False

    # Device types with a native profile (a device of another type is refused); the
    # shipped profiles' types unless the wiring says otherwise.
    device_types: frozenset[str] = field(default_factory=shipped_device_types)
    # Device commands (restore a port's power, open a valve …); None: commands are refused.
    commands: CommandDesk | None = None

    def token_now_ms(self) -> int:
        return (self.token_clock or self.clock).now_ms()
