"""A phone rings: critical fire / SOS incidents still open after the first step get a voice
call, and a critical page with no delivery receipt in time moves on — to a voice call to the
same person, then to the next step — with the reason in the timeline. Against the Alibaba
SMS and voice servers of tests/alerting/notify/providers.py, over SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents import IncidentService
from alerting.notify.aliyun import AliyunAccount, AliyunSmsNotifier, AliyunVoiceNotifier
from alerting.notify.receipts import Receipt, aliyun_sms, apply_reports
from alerting.notify.stages import DeliveryPipeline
from alerting.notify.templates import Templates
from alerting.routing.directory import Channel, ChannelKind, InMemoryDirectory
from core.clock import ManualClock
from tests.alerting.incidents.incident_support import (
    MIN,
    T0,
    ctx,
    directory,
    no_sleep,
    open_db,
    transition,
)
from tests.alerting.notify.providers import Aliyun, ProviderServer, serve

SMS = {"critical": "SMS_1", "major": "SMS_2", "minor": "SMS_3"}
TTS = {"critical": "TTS_1", "major": "TTS_2", "minor": "TTS_3"}
VARS = {"severity", "title", "location", "time", "incident"}
PHONES = {"gw1": "13800000001", "bk1": "13800000002", "bl1": "13800000003", "duty1": "13800000004",
          "duty2": "13800000005", "sec1": "13800000006", "fam1": "13800000007"}


@pytest.fixture
def aliyun() -> Iterator[tuple[Aliyun, ProviderServer]]:
    provider = Aliyun(templates={c: VARS for c in (*SMS.values(), *TTS.values())})
    with serve(provider.handle) as server:
        yield provider, server


def phones_directory() -> InMemoryDirectory:
    """The test community, each person with an SMS number and that number for voice."""
    d = directory()
    d.people = {
        pid: replace(r, channels=(Channel(ChannelKind.SMS, PHONES[pid]), Channel(ChannelKind.VOICE, PHONES[pid])))
        for pid, r in d.people.items()
    }
    return d


def stack(sm, server: ProviderServer, provider: Aliyun, clock: ManualClock, receipt_timeout_ms: int | None):  # type: ignore[no-untyped-def]
    account = AliyunAccount(provider.access_key_id, provider.access_key_secret, server.host, "http")
    pipeline = DeliveryPipeline(
        sm,
        clock,
        {
            ChannelKind.SMS: AliyunSmsNotifier(account, "阳光社区", Templates(SMS)),
            ChannelKind.VOICE: AliyunVoiceNotifier(account, "057100000000", Templates(TTS)),
        },
        sleep=no_sleep,
        receipt_timeout_ms=receipt_timeout_ms,
        confirming=frozenset({ChannelKind.SMS, ChannelKind.VOICE}),
    )
    return IncidentService(sm, clock), EscalationScheduler(sm, clock, phones_directory(), pipeline)


def calls(server: ProviderServer) -> list[str]:
    return sorted(s.query["CalledNumber"] for s in server.accepted() if s.headers["x-acs-action"] == "SingleCallByTts")


def texts(server: ProviderServer) -> list[str]:
    return sorted(s.query["PhoneNumbers"] for s in server.accepted() if s.headers["x-acs-action"] == "SendSms")


async def test_unacknowledged_critical_sos_rings_phones_after_the_first_step(
    db_url: str, aliyun: tuple[Aliyun, ProviderServer]
) -> None:
    provider, server = aliyun
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler = stack(sm, server, provider, clock, None)
        c = ctx("SOS-1", "sos")
        change = await service.apply(transition("sos.button", c, T0), c)
        assert change is not None
        await scheduler.due(T0)
        # Step 0 texts the grid worker, building leader, duty staff and family; no call yet.
        assert texts(server) == sorted(PHONES[p] for p in ("gw1", "bl1", "duty1", "fam1"))
        assert calls(server) == []
        clock.set(T0 + 2 * MIN)
        await scheduler.due(T0 + 2 * MIN)  # nobody acknowledged
        # Step 1 calls its own people and everyone step 0 paged: a phone rings.
        assert calls(server) == sorted(PHONES[p] for p in ("gw1", "bk1", "bl1", "duty1", "sec1", "fam1"))
        call = next(s for s in server.accepted() if s.query.get("CalledNumber") == PHONES["gw1"])
        assert call.query["TtsCode"] == "TTS_1"
        assert call.query["CalledShowNumber"] == "057100000000"
        assert json.loads(call.query["TtsParam"])["severity"] == "紧急"
        detail = await service.get(change.incident_id)
        assert "voice_call" in [e.kind for e in detail.events]
        voice = [d for d in detail.deliveries if d.channel == "voice"]
        assert {d.status for d in voice} == {"sent"}
        assert all(d.provider_ref for d in voice)  # the CallId, for the call result report


async def test_acknowledged_or_minor_incidents_ring_nobody(
    sqlite_url: str, aliyun: tuple[Aliyun, ProviderServer]
) -> None:
    provider, server = aliyun
    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        service, scheduler = stack(sm, server, provider, clock, None)
        c = ctx("SOS-1", "sos")
        change = await service.apply(transition("sos.button", c, T0), c)
        assert change is not None
        await scheduler.due(T0)
        clock.set(T0 + MIN)
        await service.acknowledge(change.incident_id, "gw1", "on my way")
        await scheduler.due(T0 + 2 * MIN)
        assert calls(server) == []


async def test_critical_sms_without_receipt_calls_the_person_then_moves_to_the_next_step(
    db_url: str, aliyun: tuple[Aliyun, ProviderServer]
) -> None:
    provider, server = aliyun
    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service, scheduler = stack(sm, server, provider, clock, 30_000)
        c = ctx()  # a smoke detector: fire
        change = await service.apply(transition("smoke.alarm", c, T0), c)
        assert change is not None
        await scheduler.due(T0)
        assert texts(server) == sorted(PHONES[p] for p in ("gw1", "bl1", "duty1"))
        # The building leader's and duty officer's phones report delivery; the worker's does not.
        reports = [
            {"phone_number": s.query["PhoneNumbers"], "success": True, "err_code": "DELIVERED",
             "err_msg": "用户接收成功", "biz_id": s.answer["BizId"], "out_id": s.query["OutId"]}
            for s in server.accepted()
            if s.query["PhoneNumbers"] != PHONES["gw1"]
        ]
        assert await apply_reports(sm, aliyun_sms(reports), T0 + 5_000) == 2
        clock.set(T0 + 31_000)
        await scheduler.due(T0 + 31_000)
        # Not delivered within 30 s: the same person's next channel, a call to the same phone.
        assert calls(server) == [PHONES["gw1"]]
        detail = await service.get(change.incident_id)
        undelivered = [e for e in detail.events if e.kind == "undelivered"]
        assert [(e.data["person"], e.data["channel"]) for e in undelivered] == [("gw1", "sms")]
        assert "no receipt after 31 s" in undelivered[0].note
        assert "next_channel" in [e.kind for e in detail.events]
        states = {(d.person_id, d.channel): d.status for d in detail.deliveries}
        assert states == {("gw1", "sms"): "failed", ("gw1", "voice"): "sent",
                          ("bl1", "sms"): "delivered", ("duty1", "sms"): "delivered"}
        # The call is not answered either: the next step goes out now, not at 2 minutes.
        clock.set(T0 + 62_000)
        await scheduler.due(T0 + 62_000)
        detail = await service.get(change.incident_id)
        escalating = [e for e in detail.events if e.kind == "escalating"]
        assert escalating and "gw1 unreachable" in escalating[0].note
        assert sorted(d.person_id for d in detail.deliveries if d.step == "1" and d.channel == "sms") == ["bk1", "sec1"]
        # A late receipt still counts: the call result says the worker heard it after all.
        first_call = next(d for d in detail.deliveries if d.channel == "voice" and d.step == "0")
        assert (first_call.status, first_call.provider_ref is not None) == ("failed", True)
        await apply_reports(sm, [Receipt(first_call.provider_ref or "", True)], T0 + 70_000)
        detail = await service.get(change.incident_id)
        assert next(d for d in detail.deliveries if d.id == first_call.id).status == "delivered"


async def test_a_report_saying_not_delivered_calls_at_once_without_waiting_for_the_timeout(
    sqlite_url: str, aliyun: tuple[Aliyun, ProviderServer]
) -> None:
    provider, server = aliyun
    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        service, scheduler = stack(sm, server, provider, clock, 60_000)
        c = ctx()
        change = await service.apply(transition("smoke.alarm", c, T0), c)
        assert change is not None
        await scheduler.due(T0)
        gw1 = next(s for s in server.accepted() if s.query["PhoneNumbers"] == PHONES["gw1"])
        report = [{"phone_number": PHONES["gw1"], "success": False, "err_code": "MK:0001",
                   "err_msg": "用户关机", "biz_id": gw1.answer["BizId"]}]
        await apply_reports(sm, aliyun_sms(report), T0 + 4_000)
        clock.set(T0 + 5_000)
        await scheduler.due(T0 + 5_000)  # the next tick, 55 s before the receipt timeout
        assert calls(server) == [PHONES["gw1"]]
        detail = await service.get(change.incident_id)
        [undelivered] = [e for e in detail.events if e.kind == "undelivered"]
        assert "MK:0001 用户关机" in undelivered.note


async def test_a_refused_critical_sms_calls_the_same_phone_at_once(
    sqlite_url: str, aliyun: tuple[Aliyun, ProviderServer]
) -> None:
    provider, server = aliyun
    provider.limited.add(PHONES["gw1"])  # isv.BUSINESS_LIMIT_CONTROL for the worker's number
    async with open_db(sqlite_url) as sm:
        clock = ManualClock(T0)
        service, scheduler = stack(sm, server, provider, clock, 60_000)
        c = ctx()
        change = await service.apply(transition("smoke.alarm", c, T0), c)
        assert change is not None
        await scheduler.due(T0)
        assert calls(server) == [PHONES["gw1"]]  # no wait: the next channel now
        detail = await service.get(change.incident_id)
        kinds = [e.kind for e in detail.events]
        assert kinds.index("delivery_failed") < kinds.index("next_channel")
        assert "escalating" not in kinds  # the call may still reach them
