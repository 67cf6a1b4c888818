"""The last mile: an SOS reaches the worker's phone with the app closed (Web Push, checked and
decrypted by a push service run here), the page on the worker topic carries the household, and
the caller's family get a page of their own."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from alerting.notify.tables import DeliveryRow
from gateway.sample import demo_community_path
from tests.conftest import RecordingServer
from tests.e2e.test_alarm_path import collect, publish, wait_until
from tests.push_service import PushService, start_push_service
from tests.services import Mosquitto

SOS = "sos-b02-2-202"  # 2号楼2单元202室: an elder living alone, family contact 何红 (儿子)
PASSWORD = "yangguang-demo"


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service, server = start_push_service()
    yield service
    server.shutdown()
    server.server_close()


async def start(start_gateway: Any, mosquitto: Mosquitto, sms_url: str) -> Any:
    return await start_gateway(
        community_file=demo_community_path(),
        notify={"webpush": True, "webpush_allow_http": True, "sms_gateway_url": sms_url},
        mqtt={"url": mosquitto.url, "client_id": "gw-lastmile", "priority_connection": False},
    )


async def subscribe_phone(api: httpx.AsyncClient, push: PushService) -> None:
    """What the worker app does once, when the worker allows notifications."""
    r = await api.post("/auth/login", data={"username": "zhang-min", "password": PASSWORD})
    api.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    push.vapid_public_key = (await api.get("/push/vapid-public-key")).json()["public_key"]
    sub = push.subscribe()
    r = await api.post("/push/subscriptions", json={**sub, "device_label": "张敏的手机"})
    assert r.status_code == 201, r.text


async def test_sos_with_the_app_closed_reaches_the_phone_by_web_push(
    start_gateway: Any,
    mosquitto: Mosquitto,
    push_service: PushService,
    recording_http_server: RecordingServer,
) -> None:
    gateway = await start(start_gateway, mosquitto, recording_http_server.url)
    base = f"http://127.0.0.1:{gateway.api_port}/api/v1"
    async with httpx.AsyncClient(base_url=base) as api:
        await subscribe_phone(api, push_service)
    # The app is closed now: nothing listens on the worker topic or the live stream.
    pages: list[tuple[str, dict[str, Any]]] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(
        collect(mosquitto.port, "safety/demo/workers/zhang-min/incidents", pages, ready)
    )
    await ready.wait()
    await publish(
        mosquitto.port,
        f"safety/demo/sos/{SOS}/event",
        {"ts": int(time.time() * 1000), "seq": 9, "event": "button_pressed"},
    )
    await wait_until(lambda: push_service.accepted and pages, timeout=20)
    listener.cancel()

    assert not push_service.refused, [p.error for p in push_service.refused]
    pushed = push_service.accepted[0].payload
    assert pushed is not None
    assert pushed["incident"]["device"] == SOS
    assert pushed["incident"]["title"] == "一键呼叫求助"
    assert pushed["url"] == f"/board/worker.html#incident-{pushed['incident']['id']}"
    assert "何红" in pushed["body"] and "13800005001" in pushed["body"]

    # The page on the worker's MQTT topic: what happened, where, who lives there, whom to call.
    page = pages[0][1]
    card = page["card"]
    assert card["where"]["text"] == "2号楼 2单元 202室"
    assert card["where"]["map_url"].startswith("https://uri.amap.com/marker?position=")
    home = card["household"]
    assert home["resident"]
    assert set(home["flags"]) == {"独居老人", "有基础病"}
    assert {
        "name": "何红",
        "relation": "儿子",
        "phone": "13800005001",
        "tel": "tel:13800005001",
    } in home["contacts"]
    assert card["guidance"].startswith("立即回拨老人电话")

    # The caller's family get a page of their own, and it went out.
    async def family() -> list[DeliveryRow]:
        async with gateway.sessions() as s:
            rows = await s.scalars(
                select(DeliveryRow).where(DeliveryRow.person_id.like("%#family%"))
            )
            return list(rows)

    deadline = time.monotonic() + 10
    while not any(r.status == "sent" for r in await family()):
        assert time.monotonic() < deadline, [(r.person_id, r.status) for r in await family()]
        await asyncio.sleep(0.1)
    assert {r.address for r in await family()} == {"13800005001"}
    sms = [json.loads(r.body) for r in recording_http_server.requests]
    assert any(m["phone"] == "13800005001" for m in sms)
