"""Statistics, the overview, the monthly ledger, health, metrics, the live stream and the docs."""

from __future__ import annotations

import asyncio
import csv
import io
import re

import pytest

from alerting.models import Severity
from core.readings import Reading
from gateway.storage import StoredReading
from tests.api.support import G1_DEVICE, G2_DEVICE, METRICS_TOKEN, Env

V1 = "/api/v1"


async def _worked_incidents(client, login, env: Env, clock) -> tuple[int, int, int]:
    duty = await login("duty")
    fast = await env.open_incident(G1_DEVICE)
    clock.advance(60_000)  # acknowledged after 1 min: within the 2 min critical deadline
    await client.post(f"{V1}/incidents/{fast}/acknowledge", headers=duty)
    clock.advance(60_000)
    await client.post(
        f"{V1}/incidents/{fast}/resolve", json={"category": "false_alarm"}, headers=duty
    )
    slow = await env.open_incident(G2_DEVICE)
    clock.advance(600_000)  # 10 min: too late
    await client.post(f"{V1}/incidents/{slow}/acknowledge", headers=duty)
    minor = await env.open_incident(
        "smk-b01-u1-f2", rule_id="smoke.low_battery", severity=Severity.MINOR
    )
    return fast, slow, minor


async def test_stats_per_grid(client, login, env, clock):
    start = clock.now_ms()
    await _worked_incidents(client, login, env, clock)
    params = {"start_ms": start, "end_ms": clock.now_ms() + 1}
    body = (await client.get(f"{V1}/stats", params=params, headers=await login("duty"))).json()
    total = body["total"]
    assert total["incidents"] == 3
    assert total["acknowledged"] == 2
    assert total["resolved"] == 1
    assert total["mean_ack_s"] == (60 + 600) / 2
    assert total["mean_resolve_s"] == 120
    assert total["within_deadline_share"] == pytest.approx(1 / 3, abs=1e-3)
    assert total["resolution_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert total["by_type"] == {"smoke": 3}
    assert total["by_rule"] == {"smoke.alarm": 2, "smoke.low_battery": 1}
    assert {g["grid_id"] for g in body["grids"]} == {"demo.g1", "demo.g2"}
    mine = (await client.get(f"{V1}/stats", params=params, headers=await login("worker_g1"))).json()
    assert [g["grid_id"] for g in mine["grids"]] == ["demo.g1"]
    assert mine["total"]["incidents"] == 2
    r = await client.get(
        f"{V1}/stats", params={"start_ms": 10, "end_ms": 5}, headers=await login("duty")
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "end_ms"


async def test_overview(client, login, env, clock):
    await env.open_incident(G1_DEVICE)
    await env.store.write(
        [
            StoredReading(
                Reading("demo", "smoke", G2_DEVICE, "status", clock.now_ms(), 1, {"online": False}),
                "demo.g2",
            )
        ]
    )
    body = (await client.get(f"{V1}/stats/overview", headers=await login("duty"))).json()
    assert body["open_incidents"] == 1
    assert body["open_critical"] == 1
    assert body["offline_devices"] == 1
    g2 = next(g for g in body["grids"] if g["id"] == "demo.g2")
    assert g2["offline_devices"] == [G2_DEVICE]
    mine = (await client.get(f"{V1}/stats/overview", headers=await login("worker_g2"))).json()
    assert mine["open_incidents"] == 0
    assert [g["id"] for g in mine["grids"]] == ["demo.g2"]


async def test_monthly_ledger_and_trend(client, login, env, clock):
    fast, _slow, _minor = await _worked_incidents(client, login, env, clock)
    h = await login("secretary")
    month = "2025-11"  # the manual clock starts on 2025-11-24 (Asia/Shanghai)
    body = (await client.get(f"{V1}/reports/ledger", params={"month": month}, headers=h)).json()
    assert body["month"] == month
    assert len(body["rows"]) == 3
    row = next(r for r in body["rows"] if r["id"] == fast)
    assert row["handled_by"] == "duty-sun"
    assert row["resolution"] == "false_alarm"
    assert row["within_deadline"] is True
    assert row["ack_s"] == 60
    r = await client.get(f"{V1}/reports/ledger.csv", params={"month": month}, headers=h)
    assert r.status_code == 200
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert len(rows) == 3
    assert rows[0]["事件"] == "烟感报警"
    trend = (
        await client.get(f"{V1}/reports/trend", params={"month": month, "months": 3}, headers=h)
    ).json()
    assert [p["month"] for p in trend] == ["2025-09", "2025-10", "2025-11"]
    assert trend[-1]["stats"]["incidents"] == 3
    assert trend[0]["stats"]["incidents"] == 0
    empty = (
        await client.get(f"{V1}/reports/ledger", params={"month": "2025-10"}, headers=h)
    ).json()
    assert empty["rows"] == []
    r = await client.get(f"{V1}/reports/ledger", params={"month": "2025-13"}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "month"
    r = await client.get(f"{V1}/reports/ledger", params={"site": "elsewhere"}, headers=h)
    assert r.status_code == 404
    assert (
        await client.get(f"{V1}/reports/ledger", headers=await login("admin"))
    ).status_code == 422
    assert (
        await client.get(f"{V1}/reports/ledger", headers=await login("worker_g1"))
    ).status_code == 403


async def test_health_answers_anyone_and_reports_components_to_staff(client, env, login):
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "up"}
    r = await client.get("/health", headers=await login("duty"))
    assert r.json()["components"]["database"]["status"] == "ok"

    async def broken():
        return {"database": {"status": "ok"}, "mqtt": {"status": "down", "detail": "refused"}}

    env.services.health = broken
    r = await client.get("/health")
    assert r.status_code == 503
    assert r.json() == {"status": "down"}


async def test_metrics(client, login):
    await client.get(f"{V1}/incidents", headers=await login("duty"))
    r = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200
    assert 'api_requests_total{method="GET",route="/incidents",status="2xx"}' in r.text


async def test_openapi_and_docs(client):
    spec = (await client.get(f"{V1}/openapi.json")).json()
    paths = set(spec["paths"])
    for p in (
        "/api/v1/incidents/{incident_id}/acknowledge",
        "/api/v1/devices/ledger.csv",
        "/api/v1/rules/route-test",
        "/api/v1/live",
        "/api/v1/reports/ledger",
        "/health",
    ):
        assert p in paths
    docs = await client.get(f"{V1}/docs")
    assert docs.status_code == 200
    # Everything the page loads comes from the gateway (offline sites have no CDN).
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", docs.text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), docs.text
    for asset in assets:
        assert asset.startswith("/"), f"the docs page loads {asset} from elsewhere"
        assert (await client.get(asset)).status_code == 200, asset


async def _stream(client, headers, env, publish) -> str:
    task = asyncio.create_task(client.get(f"{V1}/live", params={"limit": 1}, headers=headers))
    for _ in range(200):
        if env.services.live.subscribers:
            break
        await asyncio.sleep(0.01)
    await publish()
    return (await asyncio.wait_for(task, 10)).text


async def test_live_stream_is_scoped(client, login, env):
    worker_g2 = await login("worker_g2")

    async def publish():
        await env.open_incident(G1_DEVICE)  # invisible to the g2 worker
        await env.open_incident(G2_DEVICE)

    text = await _stream(client, worker_g2, env, publish)
    assert "event: hello" in text
    assert G2_DEVICE in text
    assert G1_DEVICE not in text


async def test_live_stream_accepts_a_query_token(client, login, env):
    token = (await login("duty"))["Authorization"].split()[1]
    task = asyncio.create_task(client.get(f"{V1}/live", params={"limit": 1, "access_token": token}))
    for _ in range(200):
        if env.services.live.subscribers:
            break
        await asyncio.sleep(0.01)
    env.services.live.publish(
        "device_status", "demo", "demo.g1", {"device_id": "d1", "online": False}
    )
    text = (await asyncio.wait_for(task, 10)).text
    assert "event: device_status" in text
    assert (await client.get(f"{V1}/live")).status_code == 401


@pytest.mark.allow_logged_exceptions
async def test_unexpected_errors_hide_the_trace(client, login, env):
    async def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    env.services.timeseries.range = boom  # type: ignore[method-assign]
    params = {"field": "smoke_dbm", "start_ms": 0, "end_ms": 60_000}
    r = await client.get(
        f"{V1}/devices/demo/{G1_DEVICE}/telemetry", params=params, headers=await login("duty")
    )
    assert r.status_code == 500
    assert "secret internals" not in r.text
    assert "Traceback" not in r.text


async def test_the_board_gets_a_storm_incident_s_last_state_without_a_read_per_device(env):
    """A storm attaches thousands of devices to one incident within a minute. The board must
    show its latest state, but reading the incident back once per device held the database
    and the loop for minutes (benchmarks/fleet_bench.py --storm): changes to one incident
    that keep coming are published together, the last one always."""
    from sqlalchemy import update

    from alerting.incidents.service import ChangeKind, IncidentChange
    from alerting.incidents.tables import IncidentRow
    from api.app import _BoardFollower

    incident_id = await env.open_incident(G1_DEVICE)
    board = _BoardFollower(env.services)
    changed = board.changed
    first = env.services.live.last_id
    for count in range(1, 301):  # 300 devices attached, each its own committed change
        async with env.services.sessions.begin() as s:
            await s.execute(
                update(IncidentRow).where(IncidentRow.id == incident_id).values(repeat_count=count)
            )
        changed(IncidentChange(ChangeKind.ATTACHED, incident_id, Severity.CRITICAL))
        await asyncio.sleep(0.002)
    await asyncio.sleep(1.5)
    events = [
        e for e in env.services.live.since(first) or [] if e.data.get("id") == incident_id
    ]
    assert events, "the board heard of the incident"
    assert len(events) <= 10, f"{len(events)} reads for one incident's 300 changes"
    assert events[-1].data["repeat_count"] == 300, "the board shows the last state"

    # A quiet incident's change still reaches the board at once.
    other = await env.open_incident(G2_DEVICE)
    mark = env.services.live.last_id
    changed(IncidentChange(ChangeKind.OPENED, other, Severity.CRITICAL))
    await asyncio.sleep(0.2)
    assert any(e.data.get("id") == other for e in env.services.live.since(mark) or [])

    # Once the API stops (before the gateway closes its database pools), no more read-backs:
    # one under way is cancelled, a change after it starts none.
    changed(IncidentChange(ChangeKind.REPEATED, other, Severity.CRITICAL))
    await board.close()
    mark = env.services.live.last_id
    changed(IncidentChange(ChangeKind.REPEATED, other, Severity.CRITICAL))
    await asyncio.sleep(0.8)
    assert not any(e.data.get("id") == other for e in env.services.live.since(mark) or [])
