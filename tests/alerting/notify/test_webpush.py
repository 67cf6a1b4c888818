"""Web Push against a push service run by the test that checks VAPID and decrypts the page."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from py_vapid import Vapid02
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.notify.base import Delivery, DeliveryError
from alerting.notify.tables import DeliveryKind
from alerting.notify.webpush import WebPushNotifier, WebPushSubscriptionRow, public_key
from alerting.routing.directory import ChannelKind
from core.clock import ManualClock
from core.db import make_engine, make_sessionmaker
from gateway.migrations import runner as migrate
from tests.push_service import PushService, start_push_service


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service, server = start_push_service()
    yield service
    server.shutdown()
    server.server_close()


@pytest.fixture
async def notifiers() -> AsyncIterator[list[WebPushNotifier]]:
    made: list[WebPushNotifier] = []
    yield made
    for n in made:
        await n.aclose()


@pytest.fixture
async def sessions(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


def vapid_key(tmp_path: Path) -> Vapid02:
    key = Vapid02()
    key.generate_keys()
    return key


async def subscribe(sessions: async_sessionmaker[AsyncSession], person: str, sub: dict) -> None:  # type: ignore[type-arg]
    async with sessions.begin() as s:
        s.add(
            WebPushSubscriptionRow(
                person_id=person,
                endpoint=sub["endpoint"],
                p256dh=sub["keys"]["p256dh"],
                auth=sub["keys"]["auth"],
                device_label="phone",
                created_at_ms=0,
            )
        )


def page(incident_id: int = 7) -> Delivery:
    return Delivery(
        id=1,
        idempotency_key=f"{incident_id}:r0s0:zhang-min:webpush",
        incident_id=incident_id,
        kind=DeliveryKind.PAGE,
        step="r0s0",
        person_id="zhang-min",
        role="grid_worker",
        channel=ChannelKind.WEBPUSH,
        address="zhang-min",
        incident={
            "id": incident_id,
            "site": "demo",
            "title": "一键呼叫求助",
            "severity": "critical",
            "location": "2号楼2单元202室",
            "opened_at": int(time.time() * 1000),
            "card": {
                "household": {
                    "resident": "王秀英",
                    "flags": ["独居老人"],
                    "contacts": [{"name": "何红", "relation": "儿子", "phone": "13800005001"}],
                },
                "guidance": "立即回拨老人电话",
            },
        },
    )


async def test_a_page_reaches_every_phone_signed_and_encrypted(
    tmp_path: Path,
    push_service: PushService,
    sessions: async_sessionmaker[AsyncSession],
    notifiers: list[WebPushNotifier],
) -> None:
    key = vapid_key(tmp_path)
    push_service.vapid_public_key = public_key(key)
    for _ in range(2):  # two phones
        await subscribe(sessions, "zhang-min", push_service.subscribe())
    clock = ManualClock(int(time.time() * 1000))
    notifier = WebPushNotifier(sessions, key, "mailto:duty@yangguang.example.org", clock)
    notifiers.append(notifier)

    await notifier.send(page())

    assert not push_service.refused, [p.error for p in push_service.refused]
    assert len(push_service.accepted) == 2
    for push in push_service.accepted:
        assert push.payload is not None
        assert push.payload["incident"]["id"] == 7
        assert push.payload["url"].endswith("#incident-7")
        assert "13800005001" in push.payload["body"]  # the family's phone in the short text
        assert push.headers["urgency"] == "high"


async def test_a_push_signed_with_another_key_is_refused(
    tmp_path: Path,
    push_service: PushService,
    sessions: async_sessionmaker[AsyncSession],
    notifiers: list[WebPushNotifier],
) -> None:
    push_service.vapid_public_key = public_key(vapid_key(tmp_path))  # the app's key
    await subscribe(sessions, "zhang-min", push_service.subscribe())
    impostor = vapid_key(tmp_path)
    notifier = WebPushNotifier(sessions, impostor, "mailto:x@example.org", ManualClock(0))
    notifiers.append(notifier)
    with pytest.raises(DeliveryError, match="HTTP 403"):
        await notifier.send(page())
    assert push_service.refused and "subscribed with" in push_service.refused[0].error


async def test_a_push_encrypted_to_other_keys_is_refused(
    tmp_path: Path,
    push_service: PushService,
    sessions: async_sessionmaker[AsyncSession],
    notifiers: list[WebPushNotifier],
) -> None:
    key = vapid_key(tmp_path)
    push_service.vapid_public_key = public_key(key)
    real = push_service.subscribe()
    other = push_service.subscribe()
    # The gateway holds the keys of another subscription for this endpoint: undecryptable.
    await subscribe(sessions, "zhang-min", {**real, "keys": other["keys"]})
    notifier = WebPushNotifier(sessions, key, "mailto:duty@example.org", ManualClock(0))
    notifiers.append(notifier)
    with pytest.raises(DeliveryError, match="HTTP 400"):
        await notifier.send(page())
    assert "cannot decrypt" in push_service.refused[0].error


async def test_a_gone_subscription_is_removed_and_the_live_one_still_paged(
    tmp_path: Path,
    push_service: PushService,
    sessions: async_sessionmaker[AsyncSession],
    notifiers: list[WebPushNotifier],
) -> None:
    key = vapid_key(tmp_path)
    push_service.vapid_public_key = public_key(key)
    old, new = push_service.subscribe(), push_service.subscribe()
    await subscribe(sessions, "zhang-min", old)
    await subscribe(sessions, "zhang-min", new)
    push_service.gone.add(old["endpoint"].removeprefix(push_service.url))
    notifier = WebPushNotifier(sessions, key, "mailto:duty@example.org", ManualClock(0))
    notifiers.append(notifier)

    await notifier.send(page())

    assert len(push_service.accepted) == 1
    async with sessions() as s:
        left = [r.endpoint for r in await s.scalars(select(WebPushSubscriptionRow))]
    assert left == [new["endpoint"]]
    # Only gone phones left: the page fails for good (the ladder then moves on).
    push_service.gone.add(new["endpoint"].removeprefix(push_service.url))
    with pytest.raises(DeliveryError) as failed:
        await notifier.send(page())
    assert failed.value.permanent
    async with sessions() as s:
        assert not list(await s.scalars(select(WebPushSubscriptionRow)))
