"""The last mile through a real broker and gateway: a smoke alarm becomes an Alibaba SMS
(signature checked by the provider's stand-in) and an email a real SMTP server (aiosmtpd)
receives; Alibaba's status report comes back through the gateway's HTTP API and the
incident's deliveries say who was paged on which channel and that the SMS arrived."""

from __future__ import annotations

import asyncio
import email
import json
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.alerting.notify.providers import Aliyun, ProviderServer, serve
from tests.conftest import E2E_COMMUNITY
from tests.e2e.test_alarm_path import publish, wait_until
from tests.services import Mosquitto, free_port

TEMPLATES = {"critical": "SMS_500001", "major": "SMS_500002", "minor": "SMS_500003"}
VARS = {"severity", "title", "location", "time", "incident"}
RECEIPT_SECRET = "receipts-" + "x" * 32
BOARD_TOKEN = "board-token-" + "y" * 32


class Inbox:
    """What the SMTP server received: (envelope recipients, parsed message)."""

    def __init__(self) -> None:
        self.mail: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mail.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def aliyun() -> Iterator[tuple[Aliyun, ProviderServer]]:
    provider = Aliyun(templates={code: VARS for code in TEMPLATES.values()})
    with serve(provider.handle) as server:
        yield provider, server


def community_with_email(tmp_path: Path) -> Path:
    text = E2E_COMMUNITY.read_text(encoding="utf-8").replace(
        "channels: {mqtt: true, sms: '13800000001'}",
        "channels: {mqtt: true, sms: '13800000001', email: worker-a@example.org}",
    )
    path = tmp_path / "community.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def notify_settings(server: ProviderServer, provider: Aliyun, smtp_port: int) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_starttls": False,
        "smtp_from": "safety@example.org",
        "receipt_secret": RECEIPT_SECRET,
        "aliyun_sms": {
            "access_key_id": provider.access_key_id,
            "access_key_secret": provider.access_key_secret,
            "sign_name": "阳光社区",
            "endpoint": server.host,
            "protocol": "http",
            "templates": TEMPLATES,
        },
    }


async def test_alarm_reaches_sms_and_email_and_the_status_report_marks_it_delivered(
    start_gateway,  # type: ignore[no-untyped-def]
    mosquitto: Mosquitto,
    tmp_path: Path,
    smtp: tuple[Inbox, int],
    aliyun: tuple[Aliyun, ProviderServer],
) -> None:
    inbox, smtp_port = smtp
    provider, server = aliyun
    gateway = await start_gateway(
        community_file=community_with_email(tmp_path),
        notify=notify_settings(server, provider, smtp_port),
        api={"port": 0, "service_tokens": {"board": BOARD_TOKEN}},
    )
    await publish(
        mosquitto.port,
        "safety/demo/smoke/SD-0001/event",
        {"ts": int(time.time() * 1000), "seq": 900, "event": "alarm"},
    )
    await asyncio.to_thread(server.wait_for, 1, 15)
    [sms] = server.accepted()
    assert (sms.query["PhoneNumbers"], sms.query["TemplateCode"]) == ("13800000001", "SMS_500001")
    assert json.loads(sms.query["TemplateParam"])["severity"] == "紧急"
    await wait_until(lambda: len(inbox.mail) == 1)
    [(to, mail)] = inbox.mail
    assert to == ["worker-a@example.org"]
    assert mail["From"] == "safety@example.org"
    assert "【紧急】" in str(email.header.make_header(email.header.decode_header(mail["Subject"])))
    body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "1号楼1单元101室" in body

    base = f"http://127.0.0.1:{gateway.api_port}/api/v1"
    auth = {"Authorization": f"Bearer {BOARD_TOKEN}"}
    report = [{
        "phone_number": "13800000001", "send_time": "2026-12-02 03:00:01",
        "report_time": "2026-12-02 03:00:04", "success": True, "err_code": "DELIVERED",
        "err_msg": "用户接收成功", "sms_size": "1", "biz_id": sms.answer["BizId"],
        "out_id": sms.query["OutId"],
    }]
    async with httpx.AsyncClient(timeout=10) as client:
        wrong = await client.post(f"{base}/receipts/aliyun-sms/not-the-secret", json=report)
        assert wrong.status_code == 404
        ok = await client.post(f"{base}/receipts/aliyun-sms/{RECEIPT_SECRET}", json=report)
        assert (ok.status_code, ok.json()) == (200, {"code": 0, "msg": "成功"})
        incidents = (await client.get(f"{base}/incidents", headers=auth)).json()["data"]
        [incident] = incidents
        listed = (await client.get(f"{base}/incidents/{incident['id']}/deliveries", headers=auth)).json()
    states = {(d["person_id"], d["channel"]): d["status"] for d in listed["data"]}
    assert states[("worker-a", "sms")] == "delivered"
    assert states[("worker-a", "email")] == "sent"
    assert states[("worker-a", "app")] == "sent"
    worker_sms = next(d for d in listed["data"] if d["channel"] == "sms")
    assert worker_sms["person_name"] == "网格员甲"
    assert worker_sms["delivered_at_ms"] is not None


async def test_unacknowledged_sos_rings_the_workers_and_the_familys_phones(
    start_gateway,  # type: ignore[no-untyped-def]
    mosquitto: Mosquitto,
    aliyun: tuple[Aliyun, ProviderServer],
) -> None:
    provider, server = aliyun
    tts = {"critical": "TTS_100001", "major": "TTS_100002", "minor": "TTS_100003"}
    provider.templates.update({code: VARS for code in tts.values()})
    notify = notify_settings(server, provider, free_port())
    del notify["smtp_host"]
    notify["aliyun_voice"] = {
        "access_key_id": provider.access_key_id,
        "access_key_secret": provider.access_key_secret,
        "called_show_number": "057188880000",
        "endpoint": server.host,
        "protocol": "http",
        "templates": tts,
    }
    gateway = await start_gateway(
        notify=notify,
        alerting={"startup_grace_s": 0, "tick_interval_ms": 100, "escalation": {"critical_ack_s": 2}},
        api={"port": 0, "service_tokens": {"board": BOARD_TOKEN}},
    )
    await publish(
        mosquitto.port,
        "safety/demo/sos/SOS-0007/event",
        {"ts": int(time.time() * 1000), "seq": 77, "event": "button_pressed"},
    )

    def by(action: str) -> list[str]:
        return sorted(
            s.query.get("PhoneNumbers") or s.query["CalledNumber"]
            for s in server.accepted()
            if s.headers["x-acs-action"] == action
        )

    await wait_until(lambda: len(by("SendSms")) >= 2)
    assert by("SendSms") == ["13800000001", "13900000001"]  # the grid worker and the son
    assert by("SingleCallByTts") == []  # not before the first step's deadline
    await wait_until(lambda: len(by("SingleCallByTts")) >= 2, timeout=20)
    assert by("SingleCallByTts") == ["13800000001", "13900000001"]
    call = next(s for s in server.accepted() if s.headers["x-acs-action"] == "SingleCallByTts")
    assert (call.query["TtsCode"], call.query["CalledShowNumber"]) == ("TTS_100001", "057188880000")
    # Alibaba's call records come back: the worker picked up, the son did not.
    calls = {s.query["CalledNumber"]: s.answer["CallId"] for s in server.accepted() if "CallId" in s.answer}
    records = [
        {"call_id": calls["13800000001"], "start_time": "2026-12-02 03:02:05", "duration": "21",
         "status_code": "200000", "status_msg": "用户听音完成", "out_id": "1"},
        {"call_id": calls["13900000001"], "start_time": "", "duration": "0",
         "status_code": "200005", "status_msg": "用户未接听", "out_id": "2"},
    ]
    base = f"http://127.0.0.1:{gateway.api_port}/api/v1"
    async with httpx.AsyncClient(timeout=10) as client:
        ok = await client.post(f"{base}/receipts/aliyun-voice/{RECEIPT_SECRET}", json=records)
        assert ok.json() == {"code": 0, "msg": "成功"}
        [incident] = (await client.get(f"{base}/incidents", headers={"Authorization": f"Bearer {BOARD_TOKEN}"})).json()["data"]
        listed = (await client.get(f"{base}/incidents/{incident['id']}/deliveries", headers={"Authorization": f"Bearer {BOARD_TOKEN}"})).json()["data"]
    voice = {d["person_id"]: d for d in listed if d["channel"] == "voice"}
    assert voice["worker-a"]["status"] == "delivered"
    family = next(d for pid, d in voice.items() if "#family" in pid)
    assert family["status"] in ("sent", "failed")  # not answered: never "delivered"
    assert family["delivered_at_ms"] is None
