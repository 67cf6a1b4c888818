"""Notifiers against real servers: a recording HTTP server (webhook, robots, SMS gateway) and
a real Mosquitto broker (worker app topic, device commands)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt
import httpx

from alerting.escalation.scheduler import EscalationScheduler
from alerting.incidents import ActionRunner, IncidentService
from alerting.incidents.views import DeliveryView
from alerting.models import Severity
from alerting.notify.base import Notifier
from alerting.notify.mqtt import MqttNotifier
from alerting.notify.sms import SmsNotifier
from alerting.notify.stages import DeliveryPipeline
from alerting.notify.webhook import WebhookNotifier, dingtalk, wecom
from alerting.routing.directory import ChannelKind
from core.clock import ManualClock
from tests.alerting.incidents.incident_support import (
    SITE,
    T0,
    ctx,
    directory,
    open_db,
    transition,
)
from tests.alerting.notify.publisher import AiomqttPublisher
from tests.conftest import RecordingServer


async def run_major(
    db_url: str,
    notifiers: dict[ChannelKind, Notifier],
    kinds: tuple[ChannelKind, ...],
    url: str = "",
    sleeps: list[float] | None = None,
) -> tuple[int, list[DeliveryView]]:
    """Open a forced-door incident and run its first step: (incident id, its deliveries)."""

    async def sleep(s: float) -> None:
        if sleeps is not None:
            sleeps.append(s)

    async with open_db(db_url) as sm:
        clock = ManualClock(T0)
        service = IncidentService(sm, clock)
        pipeline = DeliveryPipeline(sm, clock, notifiers, sleep=sleep)
        scheduler = EscalationScheduler(sm, clock, directory(url=url, kinds=kinds), pipeline)
        c = ctx("GATE-1", "gate")
        change = await service.apply(
            transition("gate.door_forced", c, T0, severity=Severity.MAJOR), c
        )
        assert change is not None
        await scheduler.due(T0)
        await scheduler.due(T0)  # a second tick (or a restart) sends nothing twice
        detail = await service.get(change.incident_id)
        return change.incident_id, detail.deliveries


async def test_webhook_failing_three_times_then_ok_delivers_once(
    db_url: str, recording_http_server: RecordingServer
) -> None:
    rec = recording_http_server
    rec.script = [500, 500, 500]
    sleeps: list[float] = []
    async with httpx.AsyncClient(timeout=5) as client:
        iid, deliveries = await run_major(
            db_url,
            {ChannelKind.WEBHOOK: WebhookNotifier(client)},
            (ChannelKind.WEBHOOK,),
            url=f"{rec.url}/hook",
            sleeps=sleeps,
        )
    assert len(rec.requests) == 4
    assert len(rec.answered_ok()) == 1
    assert sleeps == [1.0, 2.0, 4.0]  # exponential backoff
    body: Any = rec.answered_ok()[0].json()
    assert body["id"] == iid
    assert body["type"] == "gate.door_forced"
    assert body["notification"]["key"] == f"{iid}:0:gw1:webhook"
    assert {r.headers["Idempotency-Key"] for r in rec.requests} == {f"{iid}:0:gw1:webhook"}
    [d] = deliveries
    assert (d.status, d.attempts, d.last_error) == ("sent", 4, f"HTTP 500 from {rec.url}/hook")


async def test_wecom_dingtalk_and_sms_formats(
    sqlite_url: str, recording_http_server: RecordingServer
) -> None:
    rec = recording_http_server
    async with httpx.AsyncClient(timeout=5) as client:
        notifiers: dict[ChannelKind, Notifier] = {
            ChannelKind.WECOM: wecom(client),
            ChannelKind.DINGTALK: dingtalk(client),
            ChannelKind.SMS: SmsNotifier(client, f"{rec.url}/sms"),
        }
        await run_major(
            sqlite_url,
            notifiers,
            (ChannelKind.WECOM, ChannelKind.DINGTALK, ChannelKind.SMS),
            url=f"{rec.url}/robot",
        )
    by_path: dict[str, list[Any]] = {}
    for r in rec.requests:
        by_path.setdefault(r.path, []).append(r.json())
    # Both robots share the URL here and their pages go out concurrently: tell them by shape.
    [wecom_body] = [b for b in by_path["/robot"] if "content" in b["markdown"]]
    [ding_body] = [b for b in by_path["/robot"] if "content" not in b["markdown"]]
    assert wecom_body["msgtype"] == "markdown"
    assert "gate.door_forced title" in (wecom_body["markdown"]["content"])
    assert set(ding_body["markdown"]) == {"title", "text"}
    assert ding_body["markdown"]["title"] == "【重要】gate.door_forced title"
    [sms] = by_path["/sms"]
    assert sms["phone"] == "13800000000"
    assert "GATE-1" in sms["text"]


async def test_mqtt_notifier_publishes_to_the_worker_topic(mosquitto: Any, sqlite_url: str) -> None:
    topic = f"safety/{SITE}/workers/gw1/incidents"
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe(topic, qos=1)
        async with AiomqttPublisher("127.0.0.1", mosquitto.port) as publish:
            iid, _ = await run_major(
                sqlite_url, {ChannelKind.APP: MqttNotifier(publish)}, (ChannelKind.APP,)
            )
        msg = await asyncio.wait_for(anext(aiter(sub.messages)), 5)
    assert str(msg.topic) == topic
    assert msg.qos == 1
    body = json.loads(msg.payload)  # type: ignore[arg-type]
    assert {
        k: body[k]
        for k in ("id", "device", "location", "type", "severity", "opened_at", "ts", "seq")
    } == {
        "id": iid,
        "device": "GATE-1",
        "location": "B1 2-501",
        "type": "gate.door_forced",
        "severity": "major",
        "opened_at": T0,
        "ts": T0 - 5,
        "seq": 7,
    }


async def test_cut_power_command_reaches_the_charger_topic(mosquitto: Any, sqlite_url: str) -> None:
    topic = f"safety/{SITE}/charger/CH-7/cmd"
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe(topic, qos=1)
        async with (
            AiomqttPublisher("127.0.0.1", mosquitto.port) as publish,
            open_db(sqlite_url) as sm,
        ):
            service = IncidentService(sm, ManualClock(T0), actions=ActionRunner(publish))
            c = ctx("CH-7", "charger")
            change = await service.apply(
                transition(
                    "charger.over_temp",
                    c,
                    T0,
                    severity=Severity.MAJOR,
                    actions=("cut_power",),
                    labels={"port": "2"},
                ),
                c,
            )
        msg = await asyncio.wait_for(anext(aiter(sub.messages)), 5)
    assert change is not None
    assert json.loads(msg.payload) == {  # type: ignore[arg-type]
        "action": "cut_power",
        "port": 2,
        "incident_id": change.incident_id,
    }
