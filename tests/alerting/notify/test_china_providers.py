"""Alibaba Cloud and Tencent Cloud SMS through their official SDKs, against servers that check
the signature and parameters as the providers do and answer in their shapes; a refused page is
a failed delivery and the ladder moves on at once."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents import IncidentService
from alerting.incidents.views import DeliveryView
from alerting.models import Severity
from alerting.notify.aliyun import AliyunAccount, AliyunSmsNotifier
from alerting.notify.base import Notifier
from alerting.notify.receipts import apply_reports
from alerting.notify.receipts import tencent_sms as tencent_receipts
from alerting.notify.stages import DeliveryPipeline
from alerting.notify.templates import Templates
from alerting.notify.tencent import TencentSmsAccount, TencentSmsNotifier
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
from tests.alerting.notify.providers import Aliyun, ProviderServer, Tencent, serve

ALI_TEMPLATES = {"critical": "SMS_900001", "major": "SMS_900002", "minor": "SMS_900003"}
TC_TEMPLATES = {"critical": "2000001", "major": "2000002", "minor": "2000003"}
VARS = {"severity", "title", "location", "time", "incident"}


@pytest.fixture
def aliyun() -> Iterator[tuple[Aliyun, ProviderServer]]:
    provider = Aliyun(templates={code: VARS for code in ALI_TEMPLATES.values()})
    with serve(provider.handle) as server:
        yield provider, server


@pytest.fixture
def tencent() -> Iterator[tuple[Tencent, ProviderServer]]:
    provider = Tencent(templates={t: 5 for t in TC_TEMPLATES.values()})
    with serve(provider.handle, "application/json") as server:  # exactly as Tencent says it
        yield provider, server


def aliyun_sms(server: ProviderServer, provider: Aliyun, secret: str | None = None) -> AliyunSmsNotifier:
    account = AliyunAccount(
        provider.access_key_id, secret or provider.access_key_secret, server.host, protocol="http"
    )
    return AliyunSmsNotifier(account, "阳光社区", Templates(ALI_TEMPLATES))


def tencent_sms(server: ProviderServer, provider: Tencent, secret: str | None = None) -> TencentSmsNotifier:
    account = TencentSmsAccount(
        provider.secret_id,
        secret or provider.secret_key,
        provider.sdk_app_id,
        endpoint=server.host,
        scheme="http",
    )
    return TencentSmsNotifier(account, "阳光社区", Templates(TC_TEMPLATES))


async def page_door_forced(db_url: str, notifier: Notifier) -> tuple[int, list[DeliveryView]]:
    """A forced door (major) pages the grid worker by SMS; returns (incident, deliveries)."""
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        pipeline = DeliveryPipeline(sm, clock, {ChannelKind.SMS: notifier}, sleep=no_sleep)
        scheduler = EscalationScheduler(sm, clock, directory(kinds=(ChannelKind.SMS,)), pipeline)
        service = IncidentService(sm, clock)
        c = ctx("GATE-1", "gate")
        change = await service.apply(transition("gate.door_forced", c, T0, severity=Severity.MAJOR), c)
        assert change is not None
        await scheduler.due(T0)
        detail = await service.get(change.incident_id)
        return change.incident_id, detail.deliveries


async def test_alibaba_sms_sent_with_sign_template_and_params(
    sqlite_url: str, aliyun: tuple[Aliyun, ProviderServer]
) -> None:
    provider, server = aliyun
    iid, deliveries = await page_door_forced(sqlite_url, aliyun_sms(server, provider))
    [req] = server.accepted()
    assert req.query["PhoneNumbers"] == "13800000000"
    assert req.query["SignName"] == "阳光社区"
    assert req.query["TemplateCode"] == "SMS_900002"  # the major template
    values = json.loads(req.query["TemplateParam"])
    assert values["severity"] == "重要"
    assert values["location"] == "B1 2-501"
    assert values["incident"] == str(iid)
    [d] = deliveries
    assert d.status == "sent"
    assert d.provider_ref == req.answer["BizId"]


async def test_alibaba_refusal_fails_the_delivery_and_the_ladder_moves_on(
    sqlite_url: str, aliyun: tuple[Aliyun, ProviderServer]
) -> None:
    provider, server = aliyun
    provider.limited.add("13800000000")
    _, deliveries = await page_door_forced(sqlite_url, aliyun_sms(server, provider))
    gw1 = [d for d in deliveries if d.person_id == "gw1"]
    assert [(d.status, d.attempts) for d in gw1] == [("failed", 1)]  # refused: not retried
    assert "isv.BUSINESS_LIMIT_CONTROL" in (gw1[0].last_error or "")
    # The next step (backup worker, building leader) is paged now, not 10 minutes later.
    assert sorted(d.person_id for d in deliveries if d.step == "1") == ["bk1", "bl1"]


async def test_alibaba_server_rejects_a_wrong_secret(
    sqlite_url: str, aliyun: tuple[Aliyun, ProviderServer]
) -> None:
    provider, server = aliyun
    _, deliveries = await page_door_forced(sqlite_url, aliyun_sms(server, provider, "wrong"))
    assert server.seen and server.seen[0].status == 400
    assert server.accepted() == []
    gw1 = next(d for d in deliveries if d.person_id == "gw1")
    assert gw1.status == "failed"
    assert "SignatureDoesNotMatch" in (gw1.last_error or "")


async def test_tencent_sms_sent_with_app_sign_template_and_params(
    sqlite_url: str, tencent: tuple[Tencent, ProviderServer]
) -> None:
    provider, server = tencent
    iid, deliveries = await page_door_forced(sqlite_url, tencent_sms(server, provider))
    [req] = server.accepted()
    body = req.json()
    assert body["PhoneNumberSet"] == ["+8613800000000"]
    assert (body["SmsSdkAppId"], body["SignName"], body["TemplateId"]) == ("1400000001", "阳光社区", "2000002")
    assert body["TemplateParamSet"][0] == "重要"
    assert body["TemplateParamSet"][4] == str(iid)
    [d] = deliveries
    assert d.status == "sent"
    assert d.provider_ref == req.answer["Response"]["SendStatusSet"][0]["SerialNo"]


async def test_tencent_refusal_fails_the_delivery_and_the_ladder_moves_on(
    sqlite_url: str, tencent: tuple[Tencent, ProviderServer]
) -> None:
    provider, server = tencent
    provider.limited.add("+8613800000000")
    _, deliveries = await page_door_forced(sqlite_url, tencent_sms(server, provider))
    gw1 = next(d for d in deliveries if d.person_id == "gw1")
    assert (gw1.status, gw1.attempts) == ("failed", 1)
    assert "LimitExceeded.PhoneNumberDailyLimit" in (gw1.last_error or "")
    assert sorted(d.person_id for d in deliveries if d.step == "1") == ["bk1", "bl1"]


async def test_tencent_server_rejects_a_bad_signature(
    sqlite_url: str, tencent: tuple[Tencent, ProviderServer]
) -> None:
    provider, server = tencent
    _, deliveries = await page_door_forced(sqlite_url, tencent_sms(server, provider, "not-the-key"))
    assert server.seen[0].answer["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"
    assert server.accepted() == []
    gw1 = next(d for d in deliveries if d.person_id == "gw1")
    assert gw1.status == "failed"
    assert "AuthFailure.SignatureFailure" in (gw1.last_error or "")


async def test_tencent_status_callback_marks_the_sms_delivered(
    sqlite_url: str, tencent: tuple[Tencent, ProviderServer]
) -> None:
    provider, server = tencent
    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        pipeline = DeliveryPipeline(sm, clock, {ChannelKind.SMS: tencent_sms(server, provider)}, sleep=no_sleep)
        scheduler = EscalationScheduler(sm, clock, directory(kinds=(ChannelKind.SMS,)), pipeline)
        service = IncidentService(sm, clock)
        c = ctx("GATE-1", "gate")
        change = await service.apply(transition("gate.door_forced", c, T0, severity=Severity.MAJOR), c)
        assert change is not None
        await scheduler.due(T0)
        [req] = server.accepted()
        serial = req.answer["Response"]["SendStatusSet"][0]["SerialNo"]
        # Tencent's status callback body (短信下发状态通知)
        callback = [{"user_receive_time": "2026-12-02 03:00:04", "nationcode": "86",
                     "mobile": "13800000000", "report_status": "SUCCESS", "errmsg": "DELIVRD",
                     "description": "用户短信送达成功", "sid": serial}]
        assert await apply_reports(sm, tencent_receipts(callback), T0 + 4_000) == 1
        [d] = (await service.get(change.incident_id)).deliveries
        assert (d.status, d.delivered_at_ms) == ("delivered", T0 + 4_000)
