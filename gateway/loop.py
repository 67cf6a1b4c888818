"""Wiring of the closed loop: its data file, desk, messenger and deadline watch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.loop.config import load_loop_config
from alerting.loop.deadlines import LoopWatch
from alerting.loop.desk import LoopDesk
from alerting.loop.messages import LoopMessenger
from alerting.loop.services import LoopServices
from alerting.notify.base import Notifier
from alerting.routing.directory import ChannelKind
from alerting.scope import OwnedSites, every_site
from core.clock import Clock
from gateway.settings import Settings


@dataclass(frozen=True)
class LoopWiring:
    services: LoopServices
    watch: LoopWatch


def build_loop(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    notifiers: Mapping[ChannelKind, Notifier],
    poke: Callable[[], None],
    owned_sites: OwnedSites = every_site,
) -> LoopWiring:
    from gateway.app import routing_policy  # the same ladders as the alarm path

    desk = LoopDesk(load_loop_config(settings.loop_file), routing_policy(settings))
    services = LoopServices(
        desk, LoopMessenger(notifiers), settings.data_dir / "photos", settings.public_url
    )
    return LoopWiring(services, LoopWatch(sessions, clock, desk, on_escalated=poke, owned_sites=owned_sites))
