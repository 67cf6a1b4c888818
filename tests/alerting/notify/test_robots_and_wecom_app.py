"""WeCom application messages (token fetched once, refreshed when WeCom says it expired),
DingTalk 加签 robots with an @mention, and robots that refuse a message (HTTP 200 with
errcode ≠ 0): a failed delivery, and the ladder moves on at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents import IncidentService
from alerting.incidents.views import DeliveryView
from alerting.models import Severity
from alerting.notify.base import Notifier
from alerting.notify.dingtalk import DingTalkNotifier
from alerting.notify.stages import DeliveryPipeline
from alerting.notify.webhook import dingtalk, wecom
from alerting.notify.wecom_app import WecomApp, WecomAppNotifier
from alerting.routing.directory import ChannelKind
from core.clock import ManualClock
from tests.alerting.incidents.incident_support import (
    T0,
    ctx,
    directory,
    no_sleep,
    open_db,
    transition,
)
from tests.alerting.notify.providers import ProviderServer, Robot, WeCom, serve

PEOPLE = {"gw1", "bk1", "bl1", "duty1", "duty2", "sec1", "fam1"}


async def page_devices(
    db_url: str,
    notifier: Notifier,
    kind: ChannelKind,
    url: str = "",
    devices: tuple[str, ...] = ("GATE-1",),
    between: object = None,
) -> dict[str, list[DeliveryView]]:
    """A forced door on each device (major), paging on ``kind``; deliveries per device."""
    out: dict[str, list[DeliveryView]] = {}
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        pipeline = DeliveryPipeline(sm, clock, {kind: notifier}, sleep=no_sleep)
        scheduler = EscalationScheduler(sm, clock, directory(url=url, kinds=(kind,)), pipeline)
        service = IncidentService(sm, clock)
        for device in devices:
            if callable(between) and out:
                between()
            c = ctx(device, "gate")
            change = await service.apply(transition("gate.door_forced", c, T0, severity=Severity.MAJOR), c)
            assert change is not None
            await scheduler.due(T0)
            out[device] = (await service.get(change.incident_id)).deliveries
    return out


@pytest.fixture
def wecom_server() -> Iterator[tuple[WeCom, ProviderServer]]:
    provider = WeCom(users=set(PEOPLE))
    with serve(provider.handle) as server:
        yield provider, server


async def test_wecom_app_token_is_fetched_once_cached_and_refreshed_when_expired(
    sqlite_url: str, wecom_server: tuple[WeCom, ProviderServer]
) -> None:
    provider, server = wecom_server
    async with httpx.AsyncClient(timeout=5) as client:
        notifier = WecomAppNotifier(
            client, WecomApp(provider.corp_id, provider.corp_secret, provider.agent_id, server.url)
        )
        pages = await page_devices(
            sqlite_url,
            notifier,
            ChannelKind.WECOM_APP,
            devices=("GATE-1", "GATE-2", "GATE-3"),
            # WeCom expires every token between the second and third incident.
            between=lambda: provider.expire_all() if len(server.seen) >= 3 else None,
        )
    paths = [s.path.rsplit("/", 1)[-1] for s in server.seen]
    # one token for the first two pages; the third page meets 42001, fetches anew, resends
    assert paths == ["gettoken", "send", "send", "send", "gettoken", "send"]
    assert server.seen[4].answer["errcode"] == 0
    assert server.seen[3].answer["errcode"] == 42001
    assert notifier.tokens_fetched == 2
    for device, deliveries in pages.items():
        assert [(d.person_id, d.status) for d in deliveries] == [("gw1", "sent")], device
    sent = server.seen[-1].json()
    assert (sent["touser"], sent["msgtype"], sent["agentid"]) == ("gw1", "text", provider.agent_id)
    assert "GATE-3" in sent["text"]["content"]


async def test_wecom_app_unknown_user_fails_and_the_ladder_moves_on(
    sqlite_url: str, wecom_server: tuple[WeCom, ProviderServer]
) -> None:
    provider, server = wecom_server
    provider.users.discard("gw1")
    async with httpx.AsyncClient(timeout=5) as client:
        notifier = WecomAppNotifier(
            client, WecomApp(provider.corp_id, provider.corp_secret, provider.agent_id, server.url)
        )
        pages = await page_devices(sqlite_url, notifier, ChannelKind.WECOM_APP)
    deliveries = pages["GATE-1"]
    gw1 = next(d for d in deliveries if d.person_id == "gw1")
    assert (gw1.status, gw1.attempts) == ("failed", 1)
    assert "81013" in (gw1.last_error or "")
    assert sorted(d.person_id for d in deliveries if d.step == "1") == ["bk1", "bl1"]


@pytest.mark.parametrize("kind", [ChannelKind.WECOM, ChannelKind.DINGTALK])
async def test_a_robot_refusing_with_errcode_is_a_failed_delivery_and_the_ladder_moves_on(
    sqlite_url: str, kind: ChannelKind
) -> None:
    refusal = {"errcode": 93000, "errmsg": "invalid webhook url"}
    if kind is ChannelKind.DINGTALK:
        refusal = {"errcode": 310000, "errmsg": "keywords not in content"}
    with serve(Robot(refuse=refusal).handle) as server:
        async with httpx.AsyncClient(timeout=5) as client:
            notifier = wecom(client) if kind is ChannelKind.WECOM else dingtalk(client)
            pages = await page_devices(sqlite_url, notifier, kind, url=f"{server.url}/robot?key=k")
    deliveries = pages["GATE-1"]
    gw1 = next(d for d in deliveries if d.person_id == "gw1")
    assert (gw1.status, gw1.attempts) == ("failed", 1)
    assert str(refusal["errcode"]) in (gw1.last_error or "")
    assert "key=k" not in (gw1.last_error or "")  # the robot's key stays out of the record
    # Step 1 went out now, not after the 10-minute acknowledgement deadline.
    assert sorted(d.person_id for d in deliveries if d.step == "1") == ["bk1", "bl1"]


async def test_dingtalk_signed_message_mentions_the_paged_persons_phone(sqlite_url: str) -> None:
    secret = "SEC-test-0123456789abcdef"
    phones = {"gw1": "13900000001"}
    with serve(Robot(dingtalk_secret=secret).handle) as server:
        async with httpx.AsyncClient(timeout=5) as client:
            notifier = DingTalkNotifier(
                client, {"tok1": secret}, phones.get, lambda: int(time.time() * 1000)
            )
            pages = await page_devices(
                sqlite_url, notifier, ChannelKind.DINGTALK, url=f"{server.url}/robot/send?access_token=tok1"
            )
            [seen] = server.accepted()
            assert {"timestamp", "sign", "access_token"} <= set(seen.query)
            body = seen.json()
            assert body["at"] == {"atMobiles": ["13900000001"], "isAtAll": False}
            assert body["markdown"]["text"].endswith("@13900000001")
            assert [(d.person_id, d.status) for d in pages["GATE-1"]] == [("gw1", "sent")]
            # A wrong secret: DingTalk answers 310000 "sign not match" → failed at once.
            wrong = DingTalkNotifier(client, {"tok1": "nope"}, phones.get, lambda: int(time.time() * 1000))
            pages = await page_devices(
                sqlite_url.replace("gateway.db", "other.db"),
                wrong,
                ChannelKind.DINGTALK,
                url=f"{server.url}/robot/send?access_token=tok1",
            )
    gw1 = next(d for d in pages["GATE-1"] if d.person_id == "gw1")
    assert gw1.status == "failed"
    assert "310000" in (gw1.last_error or "")
