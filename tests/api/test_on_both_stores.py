"""The API's queries on SQLite and on PostgreSQL: login, scoping, actions, audit, figures, CSV."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from api.audit import AuditRow
from api.paged import PAGE
from core.clock import ManualClock
from tests.api.support import G1_DEVICE, G2_DEVICE, Env, build_env, prepare_db

V1 = "/api/v1"


@pytest.fixture
async def env(db_url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Env]:
    await prepare_db(db_url)
    built = await build_env(db_url, tmp_path, clock)
    yield built
    await built.close()


async def test_incident_flow_scoping_and_audit(client, login, env, clock):
    g1 = await env.open_incident(G1_DEVICE)
    await env.open_incident(G2_DEVICE)
    worker = await login("worker_g1")
    listed = (await client.get(f"{V1}/incidents", headers=worker)).json()
    assert [i["id"] for i in listed["data"]] == [g1]
    assert listed["count"] == 1
    clock.advance(30_000)
    r = await client.post(f"{V1}/incidents/{g1}/acknowledge", headers=worker)
    assert r.status_code == 200
    r = await client.post(
        f"{V1}/incidents/{g1}/resolve", json={"category": "device_test"}, headers=worker
    )
    assert r.json()["status"] == "resolved"
    stats = (
        await client.get(
            f"{V1}/stats", params={"start_ms": 0, "end_ms": clock.now_ms() + 1}, headers=worker
        )
    ).json()
    assert stats["total"]["mean_ack_s"] == 30
    async with env.services.sessions() as s:
        actions = [a.action for a in await s.scalars(select(AuditRow).order_by(AuditRow.id))]
    assert actions[-2:] == ["incident.acknowledge", "incident.resolve"]


async def test_registry_writes_and_ledger(client, login):
    h = await login("secretary")
    r = await client.post(
        f"{V1}/grids", json={"site": "demo", "code": "g9", "name": "第九网格"}, headers=h
    )
    assert r.status_code == 201
    assert (await client.delete(f"{V1}/grids/demo.g1", headers=h)).status_code == 409
    csv_text = (await client.get(f"{V1}/devices/ledger.csv", headers=h)).text
    assert G1_DEVICE in csv_text


async def test_reports_over_many_pages_keep_every_incident_once(client, login, env, clock):
    # More incidents than a few pages of api/paged.py, many opened in the same millisecond:
    # the ledger, the stats and the trend must each count every incident exactly once.
    opened: list[int] = []
    start = clock.now_ms()
    for rule in ("smoke.alarm", "smoke.low_battery"):
        for i, ctx in enumerate(env.registry.devices("demo")):
            if i % 7 == 0:
                clock.advance(1_000)
            opened.append(await env.open_incident(ctx.device_id, rule_id=rule))
    assert len(opened) > 2 * PAGE
    h = await login("secretary")
    ledger = (await client.get(f"{V1}/reports/ledger", params={"month": "2025-11"}, headers=h))
    assert ledger.status_code == 200
    rows = ledger.json()["rows"]
    assert sorted(r["id"] for r in rows) == sorted(opened)
    assert rows == sorted(rows, key=lambda r: (r["opened_at"], r["id"]))
    assert ledger.json()["totals"]["incidents"] == len(opened)
    csv_text = (
        await client.get(f"{V1}/reports/ledger.csv", params={"month": "2025-11"}, headers=h)
    ).text
    assert len(csv_text.strip().splitlines()) == len(opened) + 1  # and the header
    stats = (
        await client.get(
            f"{V1}/stats",
            params={"start_ms": start, "end_ms": clock.now_ms() + 1},
            headers=await login("duty"),
        )
    ).json()
    assert stats["total"]["incidents"] == len(opened)
    assert sum(g["incidents"] for g in stats["grids"]) == len(opened)
    trend = (
        await client.get(f"{V1}/reports/trend", params={"month": "2025-11", "months": 1}, headers=h)
    ).json()
    assert trend[0]["stats"]["incidents"] == len(opened)
