"""The closed loop through the API: a hotline call from intake to the resident's rating, photos,
triage, referral to a department and its reply, verification, a hazard going overdue."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from alerting.escalation.scheduler import EscalationScheduler
from alerting.escalation.timers import EscalationTimerRow
from alerting.loop.deadlines import LoopWatch
from alerting.notify.sms import SmsNotifier
from alerting.notify.stages import DeliveryPipeline
from alerting.routing.directory import ChannelKind
from core.clock import ManualClock
from gateway.directory import RegistryDirectory
from tests.api.loop_support import PNG, loop_services
from tests.api.support import SERVICE_TOKEN, Env, build_env, prepare_db

V1 = "/api/v1"
HOUR = 3_600_000


@pytest.fixture
async def env(db_url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Env]:
    """The loop on SQLite and on PostgreSQL."""
    await prepare_db(db_url)
    built = await build_env(db_url, tmp_path, clock)
    yield built
    await built.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as c:
        yield c


@pytest.fixture
def loop(env: Env, tmp_path: Path, recording_http_server, http):  # type: ignore[no-untyped-def]
    env.services.loop = loop_services(tmp_path, recording_http_server.url, http)
    return env.services.loop


def sms_to(rec, phone: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        r.json()["text"] for r in rec.requests if r.path == "/sms" and r.json()["phone"] == phone
    ]


HOTLINE = {
    "source": "hotline",
    "category": "electric",
    "grid_id": "demo.g1",
    "building_id": "demo.b02",
    "unit_room": "1-102",
    "description": "楼道里有电动车在充电，冒烟",
    "severity": "major",
    "caller_name": "刘先生",
    "caller_phone": "13900001111",
}


async def test_a_hotline_call_from_intake_to_the_residents_rating(
    client, login, loop, recording_http_server, clock
):  # type: ignore[no-untyped-def]
    duty, worker = await login("duty"), await login("worker_g1")
    r = await client.post(f"{V1}/incidents", json=HOTLINE, headers=duty)
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    assert r.json()["household_id"] == "demo.b02.1.102" or r.json()["household_id"]

    # 研判: it waits in the triage queue until the community sets its tier
    queue = (await client.get(f"{V1}/loop/triage", headers=duty)).json()
    assert iid in [i["id"] for i in queue]
    r = await client.post(f"{V1}/incidents/{iid}/triage", json={"tier": "grid"}, headers=worker)
    assert r.status_code == 403
    r = await client.post(f"{V1}/incidents/{iid}/triage", json={"tier": "grid"}, headers=duty)
    assert r.status_code == 200, r.text
    assert iid not in [
        i["id"] for i in (await client.get(f"{V1}/loop/triage", headers=duty)).json()
    ]

    # 部门联动: the fire brigade gets the incident by SMS and webhook, with a reply link
    r = await client.post(
        f"{V1}/incidents/{iid}/refer", json={"department": "nobody"}, headers=duty
    )
    assert r.status_code == 422
    r = await client.post(
        f"{V1}/incidents/{iid}/refer",
        json={"department": "fire_119", "note": "请派员检查充电线路"},
        headers=duty,
    )
    assert r.status_code == 200, r.text
    [text] = sms_to(recording_http_server, "119")
    assert "请派员检查充电线路" in text and "刘先生" not in text and "(report)" not in text
    hook = [q for q in recording_http_server.requests if q.path == "/fire-brigade"]
    assert hook and hook[0].json()["id"] == iid
    token = re.search(r"reply\.html\?t=([\w.]+)", text).group(1)  # type: ignore[union-attr]
    assert text.count("http://gw.test/board/reply.html") == 1

    # the department accepts, then replies (no login: the signed link is the key)
    assert (
        await client.post(f"{V1}/loop/referrals/x.1.y/reply", json={"status": "accepted"})
    ).status_code == 404
    r = await client.post(f"{V1}/loop/referrals/{token}/reply", json={"status": "accepted"})
    assert r.status_code == 200, r.text
    clock.advance(20 * 60_000)
    r = await client.post(
        f"{V1}/loop/referrals/{token}/reply",
        json={"status": "replied", "note": "已到场，线路已断电整改"},
    )
    assert r.json()["status"] == "replied"

    # the grid worker arrives, photographs, resolves
    assert (await client.post(f"{V1}/incidents/{iid}/arrive", headers=worker)).status_code == 200
    r = await client.post(
        f"{V1}/incidents/{iid}/photos",
        files={"file": ("fix.png", PNG, "image/png")},
        headers=worker,
    )
    assert r.status_code == 201, r.text
    photo = r.json()["id"]
    got = await client.get(f"{V1}/incidents/{iid}/photos/{photo}", headers=worker)
    assert got.status_code == 200 and got.content == PNG
    assert (
        await client.get(f"{V1}/incidents/{iid}/photos/{photo}", headers=await login("worker_g2"))
    ).status_code == 404
    assert (await client.get(f"{V1}/incidents/{iid}/photos/{photo}")).status_code == 401
    r = await client.post(
        f"{V1}/incidents/{iid}/resolve",
        json={"category": "handled", "note": "内部：住户态度差，已口头警告"},
        headers=worker,
    )
    assert r.status_code == 200, r.text

    # 核查: the worker may not verify; the duty officer does, and the residents hear back
    v = {"passed": True, "note": "复核现场已整改", "photo_ids": [photo]}
    assert (
        await client.post(f"{V1}/incidents/{iid}/verify", json=v, headers=worker)
    ).status_code == 403
    r = await client.post(f"{V1}/incidents/{iid}/verify", json=v, headers=duty)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed"
    [feedback] = sms_to(recording_http_server, "13900001111")
    assert "住户态度差" not in feedback and "满意" in feedback
    assert sms_to(recording_http_server, "13800005000")  # the household's family contact too
    rate_token = re.search(r"rate\.html\?t=([\w.]+)", feedback).group(1)  # type: ignore[union-attr]
    r = await client.post(f"{V1}/loop/feedback/{rate_token}", json={"rating": "satisfied"})
    assert r.status_code == 200 and r.json()["rating"] == "satisfied"
    assert (
        await client.post(f"{V1}/loop/feedback/{rate_token}x", json={"rating": "satisfied"})
    ).status_code == 404

    case = (await client.get(f"{V1}/incidents/{iid}/case", headers=duty)).json()
    assert case["tier"] == "grid" and case["source"] == "hotline"
    assert case["arrived_at_ms"] is not None and case["verified_by"] == "duty-sun"
    assert case["rating"] == "satisfied" and case["referrals"][0]["status"] == "replied"
    kinds = [
        e["kind"]
        for e in (await client.get(f"{V1}/incidents/{iid}", headers=duty)).json()["timeline"]
    ]
    for k in (
        "opened",
        "triaged",
        "referred",
        "referral_sent",
        "department_accepted",
        "department_replied",
        "photo_added",
        "resolved",
        "closed",
        "feedback_sent",
        "rated",
    ):
        assert k in kinds, (k, kinds)


async def test_verification_can_send_it_back(client, login, loop):  # type: ignore[no-untyped-def]
    duty = await login("duty")
    iid = (await client.post(f"{V1}/incidents", json=HOTLINE, headers=duty)).json()["id"]
    await client.post(f"{V1}/incidents/{iid}/resolve", json={"category": "handled"}, headers=duty)
    r = await client.post(
        f"{V1}/incidents/{iid}/verify", json={"passed": False, "note": "仍在充电"}, headers=duty
    )
    assert r.json()["status"] == "open"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"caller_phone": None}, "caller"),
        ({"source": "device"}, "device"),
        ({"hazard": True}, "deadline"),
        ({"grid_id": "demo.g2"}, "grid_id"),
        ({"category": "flood"}, "category"),
    ],
)
async def test_intake_refuses_what_cannot_be_worked(client, login, loop, change, field):  # type: ignore[no-untyped-def]
    body = {**HOTLINE, **change}
    r = await client.post(f"{V1}/incidents", json=body, headers=await login("worker_g1"))
    assert r.status_code == 422
    assert field in r.text


async def test_photos_are_checked_by_their_bytes(client, login, loop, env):  # type: ignore[no-untyped-def]
    duty = await login("duty")
    iid = (await client.post(f"{V1}/incidents", json=HOTLINE, headers=duty)).json()["id"]
    url = f"{V1}/incidents/{iid}/photos"
    r = await client.post(url, files={"file": ("a.jpg", b"<script>", "image/jpeg")}, headers=duty)
    assert r.status_code == 415
    big = b"\xff\xd8\xff" + b"0" * (8 * 1024 * 1024)
    r = await client.post(url, files={"file": ("b.jpg", big, "image/jpeg")}, headers=duty)
    assert r.status_code == 413


async def test_a_fire_report_is_the_communitys_at_once(client, login, loop):  # type: ignore[no-untyped-def]
    duty = await login("duty")
    body = {**HOTLINE, "category": "fire"}
    iid = (await client.post(f"{V1}/incidents", json=body, headers=duty)).json()["id"]
    assert (await client.get(f"{V1}/incidents/{iid}/case", headers=duty)).json()[
        "tier"
    ] == "community"
    assert iid not in [
        i["id"] for i in (await client.get(f"{V1}/loop/triage", headers=duty)).json()
    ]


async def test_a_patrol_hazard_is_reminded_then_escalated_when_overdue(
    client, login, loop, env, clock, recording_http_server, http
):  # type: ignore[no-untyped-def]
    worker = await login("worker_g1")
    body = {
        "source": "patrol",
        "category": "corridor",
        "grid_id": "demo.g1",
        "building_id": "demo.b01",
        "unit_room": "2-301",
        "description": "楼道堆放纸箱",
        "severity": "minor",
        "hazard": True,
        "deadline_ms": clock.now_ms() + 72 * HOUR,
        "responsible_kind": "household",
        "responsible_name": "2-301 住户",
    }
    r = await client.post(f"{V1}/incidents", json=body, headers=worker)
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    step = {"step": "notice", "note": "已张贴整改通知"}
    assert (
        await client.post(f"{V1}/incidents/{iid}/hazard", json=step, headers=worker)
    ).status_code == 200
    r = await client.post(
        f"{V1}/incidents/{iid}/hazard", json={"step": "rectified"}, headers=worker
    )
    assert r.status_code == 409  # not re-inspected yet

    pipeline = DeliveryPipeline(
        env.services.sessions,
        clock,
        {ChannelKind.SMS: SmsNotifier(http, f"{recording_http_server.url}/sms")},
    )
    directory = RegistryDirectory(env.registry, [ChannelKind.SMS])
    scheduler = EscalationScheduler(env.services.sessions, clock, directory, pipeline)
    watch = LoopWatch(env.services.sessions, clock, loop.desk)

    clock.advance(47 * HOUR)
    assert await watch.tick(clock.now_ms()) == 0
    clock.advance(2 * HOUR)  # 23 h before the deadline: the worker is reminded
    assert await watch.tick(clock.now_ms()) == 1
    await scheduler.due(clock.now_ms())
    assert any("提醒" in t for t in sms_to(recording_http_server, "13800000001"))
    clock.advance(24 * HOUR)  # past the deadline: overdue, the community is paged
    assert await watch.tick(clock.now_ms()) == 1
    await scheduler.due(clock.now_ms())
    paged = {r.json()["phone"] for r in recording_http_server.requests if r.path == "/sms"}
    assert paged - {"13800000001"}, paged  # someone above the grid worker
    svc = {"Authorization": f"Bearer {SERVICE_TOKEN}"}  # the logins of three days ago expired
    case = (await client.get(f"{V1}/incidents/{iid}/case", headers=svc)).json()
    assert case["hazard_state"] == "overdue"
    kinds = [
        e["kind"]
        for e in (await client.get(f"{V1}/incidents/{iid}", headers=svc)).json()["timeline"]
    ]
    assert "hazard_deadline_near" in kinds and "hazard_overdue" in kinds and "escalated" in kinds
    assert await watch.tick(clock.now_ms()) == 0  # once


async def test_the_monthly_ledger_and_its_excel_export_agree(client, login, loop, env, clock):  # type: ignore[no-untyped-def]
    import io

    from openpyxl import load_workbook

    from alerting.models import Severity

    duty, worker = await login("duty"), await login("worker_g1")
    device = await env.open_incident()  # a detector's fire alarm: community at once
    await env.open_incident("smk-b01-u1-f2", rule_id="smoke.self_test", severity=Severity.INFO)
    await client.post(f"{V1}/incidents/{device}/acknowledge", headers=worker)
    clock.advance(5 * 60_000)
    await client.post(
        f"{V1}/incidents/{device}/resolve", json={"category": "false_alarm"}, headers=worker
    )
    call = (await client.post(f"{V1}/incidents", json=HOTLINE, headers=duty)).json()["id"]
    await client.post(f"{V1}/incidents/{call}/triage", json={"tier": "grid"}, headers=duty)
    await client.post(f"{V1}/incidents/{call}/acknowledge", headers=worker)
    clock.advance(10 * 60_000)
    await client.post(f"{V1}/incidents/{call}/arrive", headers=worker)
    clock.advance(30 * 60_000)
    await client.post(
        f"{V1}/incidents/{call}/resolve", json={"category": "handled"}, headers=worker
    )
    assert (await client.post(f"{V1}/incidents/{call}/verify", headers=duty)).json()[
        "status"
    ] == "closed"

    r = await client.get(f"{V1}/reports/loop-ledger", headers=duty)
    assert r.status_code == 200, r.text
    report = r.json()
    assert [row["id"] for row in report["rows"]] == [device, call]  # the self-test not counted
    s = report["summary"]
    assert s["incidents"] == 2 and s["closed"] == 1
    assert s["closed_within_grid_share"] == 1.0
    assert s["false_alarm_rate"] == 0.5
    assert s["by_source"] == {"device": 1, "hotline": 1}
    assert report["rows"][0]["tier"] == "community"
    assert s["arrive_median_s"] == 600.0
    assert list(report["by_worker"]) == ["zhang-min"]
    hotline_only = (
        await client.get(f"{V1}/reports/loop-ledger", params={"source": "hotline"}, headers=duty)
    ).json()
    assert [row["id"] for row in hotline_only["rows"]] == [call]

    x = await client.get(f"{V1}/reports/loop-ledger.xlsx", headers=duty)
    assert x.status_code == 200
    wb = load_workbook(io.BytesIO(x.content))
    grid_name = env.registry.grid("demo.g1").name
    assert wb.sheetnames == ["汇总", grid_name]  # sheets named as people know the grids
    sheet = wb["汇总"]
    head = [c.value for c in sheet[1]]
    total = dict(zip(head, [c.value for c in sheet[2]], strict=True))
    for key, label in (
        ("incidents", "事件数"),
        ("closed", "已办结"),
        ("closed_within_grid_share", "网格内办结率"),
        ("false_alarm_rate", "误报率"),
        ("ack_median_s", "确认用时中位数（秒）"),
        ("arrive_median_s", "到场用时中位数（秒）"),
        ("resolve_p90_s", "办结用时P90（秒）"),
    ):
        assert total[label] == s[key], key
    assert total["按来源"] == "设备告警 1，24小时热线 1"  # words, not codes
    scopes = [row[0].value for row in sheet.iter_rows(min_row=2)]
    assert f"网格 {grid_name}" in scopes and "处置人 张敏" in scopes  # names, not ids or logins
    assert wb[grid_name].max_row == 3  # header + two incidents
    c = await client.get(f"{V1}/reports/loop-ledger.csv", headers=duty)
    assert c.text.count("\n") == 3
    # people read the ledger: Chinese headers and words, not field names and codes
    assert c.text.lstrip("\ufeff").startswith("事件编号,发生时间,网格")
    assert "24小时热线" in c.text and "hotline" not in c.text
    en = await client.get(f"{V1}/reports/loop-ledger.csv", params={"lang": "en"}, headers=duty)
    assert en.text.lstrip("\ufeff").startswith("Incident no.,Opened,Grid") and "Hotline" in en.text
    assert (await client.get(f"{V1}/reports/loop-ledger", headers=worker)).status_code == 403


async def test_a_department_that_does_not_reply_in_time_escalates(
    client, login, loop, env, clock, recording_http_server
):  # type: ignore[no-untyped-def]
    duty = await login("duty")
    iid = (await client.post(f"{V1}/incidents", json=HOTLINE, headers=duty)).json()["id"]
    await client.post(f"{V1}/incidents/{iid}/refer", json={"department": "fire_119"}, headers=duty)
    watch = LoopWatch(env.services.sessions, clock, loop.desk)
    clock.advance(59 * 60_000)
    assert await watch.tick(clock.now_ms()) == 0
    clock.advance(2 * 60_000)  # the brigade's hour to reply is over
    assert await watch.tick(clock.now_ms()) == 1
    assert await watch.tick(clock.now_ms()) == 0
    detail = (await client.get(f"{V1}/incidents/{iid}", headers=duty)).json()
    overdue = [e for e in detail["timeline"] if e["kind"] == "referral_overdue"]
    assert overdue and "消防救援站" in overdue[0]["note"]
    case = (await client.get(f"{V1}/incidents/{iid}/case", headers=duty)).json()
    assert case["referrals"][0]["overdue_at_ms"] == clock.now_ms()
    async with env.services.sessions() as s:
        timer = await s.get(EscalationTimerRow, iid)
    assert timer is not None and timer.due_at_ms == clock.now_ms() and timer.next_step >= 1


async def test_silence_an_incidents_device_from_the_incident(client, login, loop, env):  # type: ignore[no-untyped-def]
    duty, worker = await login("duty"), await login("worker_g1")
    iid = await env.open_incident()
    body = {"hours": 2, "reason": "更换烟感电池"}
    assert (await client.post(f"{V1}/incidents/{iid}/silence", json=body, headers=worker)).status_code == 403
    r = await client.post(f"{V1}/incidents/{iid}/silence", json=body, headers=duty)
    assert r.status_code == 200, r.text
    [silence] = (await client.get(f"{V1}/silences", headers=duty)).json()
    assert silence["matcher"] == "device" and silence["value"] == "smk-b01-u1-f1"
    report = (await client.post(f"{V1}/incidents", json=HOTLINE, headers=duty)).json()["id"]
    r = await client.post(f"{V1}/incidents/{report}/silence", json=body, headers=duty)
    assert r.status_code == 422  # a report has no device to silence


async def test_the_triage_queue_reads_in_english_too(client, login, loop, env):  # type: ignore[no-untyped-def]
    """The loop page's queue shows a device incident as the board does: its English title and
    its acknowledgement deadline come with it (the English toggle used to leave it Chinese)."""
    duty = await login("duty")
    iid = await env.open_incident()
    [queued] = [i for i in (await client.get(f"{V1}/loop/triage", headers=duty)).json() if i["id"] == iid]
    assert queued["title"] == "烟感报警"
    assert queued["title_en"] == "Smoke alarm"
    assert queued["ack_due_ms"] is not None


async def test_a_referral_survives_a_passing_provider_failure(
    client, login, loop, env, recording_http_server
):  # type: ignore[no-untyped-def]
    """The SMS gateway answers 503 once: the fire brigade still gets the referral (tried again),
    and when the gateway keeps failing the timeline says so, with how often it was tried."""
    duty = await login("duty")
    call = (await client.post(f"{V1}/incidents", json=HOTLINE, headers=duty)).json()["id"]
    recording_http_server.script = [503]
    body = {"department": "fire_119", "note": "请派员检查"}
    assert (await client.post(f"{V1}/incidents/{call}/refer", json=body, headers=duty)).status_code == 200
    sms = [r for r in recording_http_server.requests if r.path == "/sms"]
    assert [r.status for r in sms] == [503, 200]  # type: ignore[attr-defined]
    detail = (await client.get(f"{V1}/incidents/{call}", headers=duty)).json()
    kinds = [e["kind"] for e in detail["timeline"]]
    assert "referral_sent" in kinds and "referral_send_failed" not in kinds

    # the SMS gateway is down for good: the webhook still reaches the brigade, the SMS is
    # recorded as failed after its attempts (and the duty officer sees it on the timeline)
    recording_http_server.requests.clear()
    recording_http_server.script = [503, 503, 503]
    other = (await client.post(f"{V1}/incidents", json=HOTLINE, headers=duty)).json()["id"]
    await client.post(f"{V1}/incidents/{other}/refer", json=body, headers=duty)
    assert len([r for r in recording_http_server.requests if r.path == "/sms"]) == 3
    detail = (await client.get(f"{V1}/incidents/{other}", headers=duty)).json()
    [sent] = [e for e in detail["timeline"] if e["kind"] == "referral_sent"]
    assert "after 3 attempts" in sent["note"] and "sms 119" in sent["note"]
