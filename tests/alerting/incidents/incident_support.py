"""Factories for the incident, routing, escalation and notify tests: DB, contexts, transitions,
a directory of people, and an in-process notifier that records (it is our own Notifier, not a
fake of anything external)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import alerting.incidents.tables  # noqa: F401  (registers the tables on Base.metadata)
from alerting.models import AlertState, AlertTransition, Category, Severity
from alerting.notify.base import Delivery, DeliveryError
from alerting.routing.directory import (
    Channel,
    ChannelKind,
    InMemoryDirectory,
    Recipient,
    Shift,
)
from core.db import Base, make_engine, make_sessionmaker
from core.readings import DeviceContext, DeviceType

T0 = 1_764_000_000_000
MIN = 60_000
HOUR = 60 * MIN
SITE = "demo"


@asynccontextmanager
async def open_db(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def ctx(
    device_id: str = "SD-0001",
    device_type: DeviceType = "smoke",
    *,
    grid: str = "G1",
    building: str | None = "B1",
    household: str | None = "H1",
    flags: frozenset[str] = frozenset(),
) -> DeviceContext:
    return DeviceContext(
        site=SITE,
        device_id=device_id,
        device_type=device_type,
        grid_id=grid,
        building_id=building,
        household_id=household,
        household_flags=flags,
        location=f"{building or '-'} 2-501",
        name=device_id,
    )


def transition(
    rule_id: str,
    c: DeviceContext,
    at_ms: int,
    *,
    severity: Severity = Severity.CRITICAL,
    category: Category = Category.SAFETY,
    state: AlertState = AlertState.FIRING,
    auto_resolve: bool = False,
    actions: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
    seq: int | None = 7,
) -> AlertTransition:
    return AlertTransition(
        rule_id=rule_id,
        subject=c.device_id,
        site=c.site,
        device_id=c.device_id,
        state=state,
        severity=severity,
        category=category,
        title=f"{rule_id} title",
        at_ms=at_ms,
        dedupe_key=f"{rule_id}:{c.device_id}",
        auto_resolve=auto_resolve,
        reading_ts_ms=at_ms - 5,
        reading_seq=seq,
        labels=labels or {},
        actions=actions,
    )


def person(pid: str, *kinds: ChannelKind, url: str = "") -> Recipient:
    chans = []
    for k in kinds or (ChannelKind.APP,):
        address = {ChannelKind.APP: pid, ChannelKind.SMS: "13800000000"}.get(k, url or pid)
        chans.append(Channel(k, address))
    return Recipient(pid, pid.upper(), tuple(chans))


def directory(*, url: str = "", kinds: tuple[ChannelKind, ...] = ()) -> InMemoryDirectory:
    """G1: gw1 primary, bk1 backup; B1: bl1; duty1 on duty day 0, duty2 after T0+12h;
    sec1 secretary; H1: fam1."""
    ids = ["gw1", "bk1", "bl1", "duty1", "duty2", "sec1", "fam1"]
    return InMemoryDirectory(
        people={i: person(i, *kinds, url=url) for i in ids},
        grids={(SITE, "G1"): (["gw1"], ["bk1"])},
        leaders={(SITE, "B1"): ["bl1"]},
        roster=[
            Shift(SITE, "duty1", T0 - 12 * HOUR, T0 + 12 * HOUR),
            Shift(SITE, "duty2", T0 + 12 * HOUR, T0 + 60 * HOUR),
        ],
        secretary_ids={SITE: ["sec1"]},
        households={"H1": ["fam1"]},
    )


@dataclass
class RecordingNotifier:
    """Records what it is asked to send; ``fail`` lists person ids it refuses."""

    sent: list[Delivery] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)

    async def send(self, delivery: Delivery) -> None:
        if delivery.person_id in self.fail:
            raise DeliveryError(f"{delivery.person_id} unreachable")
        self.sent.append(delivery)

    def people(self, step: str | None = None) -> list[str]:
        return sorted(d.person_id for d in self.sent if step is None or d.step == step)


class DyingNotifier:
    """A process that dies while its pages are being published: ``send`` never returns, and
    ``die()`` ends every send under way without anything recorded (as a killed process)."""

    def __init__(self) -> None:
        self.sending: list[Delivery] = []
        self._dead = asyncio.Event()

    async def send(self, delivery: Delivery) -> None:
        self.sending.append(delivery)
        await self._dead.wait()
        raise asyncio.CancelledError  # the process is gone mid-publish

    async def die(self) -> None:
        self._dead.set()
        await asyncio.sleep(0)


async def no_sleep(_s: float) -> None:
    return None
