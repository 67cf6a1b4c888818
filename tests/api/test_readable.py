"""What people read from the API: the ledger CSV in words, the incident's time pressure, one
definition of each count, and the screens' names and time zone (issue 11 items 1, 3, 4, 5)."""

from __future__ import annotations

import csv
import io

from tests.api.support import G1_DEVICE, G2_DEVICE

V1 = "/api/v1"
MONTH = "2025-11"  # the manual clock starts on 2025-11-24 (Asia/Shanghai)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


async def test_ledger_csv_has_chinese_headers_and_readable_values(client, login, env, clock):
    duty = await login("duty")
    done = await env.open_incident(G1_DEVICE)
    clock.advance(90_000)
    await client.post(f"{V1}/incidents/{done}/acknowledge", headers=duty)
    await client.post(
        f"{V1}/incidents/{done}/resolve", json={"category": "real_emergency"}, headers=duty
    )
    await env.open_incident(G2_DEVICE)
    h = await login("secretary")

    r = await client.get(f"{V1}/reports/ledger.csv", params={"month": MONTH}, headers=h)
    rows = _rows(r.text)
    first = next(row for row in rows if row["事件编号"] == str(done))
    assert first["发生时间（北京时间）"] == "2025-11-25 00:00"
    assert first["网格"] == "第一网格"
    assert first["级别"] == "紧急"
    assert first["状态"] == "已办结"
    assert first["处置结果"] == "真实警情"
    assert first["处置人"] == "孙涛"  # duty-sun's name, not the login
    assert first["确认用时（分钟）"] == "1.5"
    assert first["按时处置"] == "是"
    assert first["设备类型"] == "烟感"
    still_open = next(row for row in rows if row["事件编号"] != str(done))
    assert still_open["状态"] == "待确认"
    assert still_open["按时处置"] == "否"
    for raw in ("critical", "acknowledged", "real_emergency", "False", "demo.g1", "duty-sun"):
        assert raw not in r.text

    r = await client.get(
        f"{V1}/reports/ledger.csv", params={"month": MONTH, "lang": "en"}, headers=h
    )
    english = next(row for row in _rows(r.text) if row["Incident no."] == str(done))
    assert english["Opened (Beijing time)"] == "2025-11-25 00:00"
    assert (english["Severity"], english["Status"], english["Resolution"]) == (
        "Critical",
        "Resolved",
        "Real emergency",
    )
    assert english["Handled in time"] == "Yes"
    assert english["What"] == "Smoke alarm"


async def test_incident_carries_its_deadline_and_arrival(client, login, env, clock):
    worker = await login("worker_g1")
    incident = await env.open_incident(G1_DEVICE)
    body = (await client.get(f"{V1}/incidents/{incident}", headers=worker)).json()["incident"]
    # critical: acknowledged within 2 minutes (ApiConfig.ack_deadline_s), as the ledger counts
    assert body["ack_deadline_ms"] == body["opened_at_ms"] + 120_000
    assert body["arrived_at_ms"] is None
    assert body["escalations"] == 0
    assert body["title_en"] == "Smoke alarm"  # the English screens' title
    clock.advance(30_000)
    arrived = (await client.post(f"{V1}/incidents/{incident}/arrive", headers=worker)).json()
    assert arrived["arrived_at_ms"] == clock.now_ms()
    assert arrived["arrived_by"] == "zhang-min"
    listed = (await client.get(f"{V1}/incidents", headers=worker)).json()["data"]
    assert listed[0]["arrived_at_ms"] == clock.now_ms()


async def test_grid_cards_and_header_count_unacknowledged_alike(client, login, env):
    duty = await login("duty")
    acked = await env.open_incident(G1_DEVICE)
    await env.open_incident("smk-b01-u1-f2")
    await client.post(f"{V1}/incidents/{acked}/acknowledge", headers=duty)
    body = (await client.get(f"{V1}/stats/overview", headers=duty)).json()
    g1 = next(g for g in body["grids"] if g["id"] == "demo.g1")
    assert (g1["open_incidents"], g1["unacknowledged"]) == (2, 1)
    assert body["unacknowledged"] == sum(g["unacknowledged"] for g in body["grids"]) == 1
    assert body["open_incidents"] == sum(g["open_incidents"] for g in body["grids"]) == 2


async def test_screen_context_names_and_site_time_zone(client, login):
    body = (await client.get(f"{V1}/screen", headers=await login("worker_g1"))).json()
    assert body["timezone"] == "Asia/Shanghai"
    assert body["utc_offset_minutes"] == 480
    assert body["grids"] == {"demo.g1": "第一网格"}  # only the worker's own grid
    assert body["people"]["zhang-min"] == "张敏"
    assert (
        await client.get(f"{V1}/screen", params={"site": "x"}, headers=await login("duty"))
    ).status_code == 404
