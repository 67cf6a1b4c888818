"""The quarantine is read per site: the staff of one community never see another's raw payloads
or counts; rows whose site cannot be known are for those who see every site. On SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, select

from api.app import create_app
from core.clock import ManualClock
from core.db import make_engine, make_sessionmaker
from core.readings import Rejection, RejectReason
from gateway.migrations import runner as migrate
from gateway.quarantine import QuarantinedMessage
from gateway.registry import hash_password
from gateway.registry.tables import Device, Grid, Person, Site
from tests.api.support import DEMO_PASSWORD, SERVICE_TOKEN, build_env, prepare_db

V1 = "/api/v1"
DEMO_VENDOR = "a1SmkJs2024/JSSD01000048"  # smk-b03-1-101 of site demo speaks Alink

# (topic, reason, device_id, payload) -> the site the row belongs to
ROWS = [
    ("safety/demo/smoke/smk-b01-u1-f1/telemetry", RejectReason.NOT_JSON, None, b"{demo", "demo"),
    ("safety/east/smoke/e-1/telemetry", RejectReason.NOT_JSON, None, b"{east-secret", "east"),
    (
        "/sys/a1SmkJs2024/JSSD01000048/thing/event/property/post",
        RejectReason.WRONG_TYPE,
        DEMO_VENDOR,
        b'{"params": 1}',
        "demo",
    ),
    (
        "/sys/pk9/nobody/thing/event/property/post",
        RejectReason.UNKNOWN_DEVICE,
        "pk9/nobody",
        b'{"who": "?"}',
        None,
    ),
    ("stray/topic", RejectReason.UNKNOWN_TOPIC, None, b"?", None),
]


@pytest.fixture
async def client(db_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    await prepare_db(db_url)
    env = await build_env(db_url, tmp_path, ManualClock(1_764_000_000_000))
    async with env.services.sessions() as session:
        session.add(Site(code="east", name="东区社区", timezone="Asia/Shanghai", address=""))
        await session.flush()
        session.add(
            Person(
                id="duty-east",
                site="east",
                name="东区值班员",
                role="duty_staff",
                password_hash=hash_password(DEMO_PASSWORD),
                active=True,
                channels={},
            )
        )
        await session.commit()
    q = env.services.quarantine
    for topic, reason, device_id, payload, _site in ROWS:
        q.add(env.clock.now_ms(), topic, payload, Rejection(reason, "test", topic, device_id))
    await q.flush()
    app = create_app(env.services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c
    await app.state.login_guard.aclose()
    await env.close()


async def _headers(client: httpx.AsyncClient, user: str) -> dict[str, str]:
    r = await client.post(f"{V1}/auth/login", data={"username": user, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _topics(site: str | None) -> set[str]:
    return {topic for topic, *_, s in ROWS if site is None or s == site}


async def test_staff_read_only_their_sites_quarantine(client: httpx.AsyncClient) -> None:
    for user, site in (("duty-sun", "demo"), ("secretary-guo", "demo"), ("duty-east", "east")):
        h = await _headers(client, user)
        rows = (await client.get(f"{V1}/quarantine", headers=h)).json()
        assert {r["topic"] for r in rows} == _topics(site), user
        assert {r["site"] for r in rows} == {site}
        # Raw payloads of the other site never show, whatever the filter.
        everything = (await client.get(f"{V1}/quarantine", params={"limit": 1000}, headers=h)).text
        assert ("east-secret" in everything) == (site == "east")
        unknown = await client.get(
            f"{V1}/quarantine", params={"reason": "unknown_device"}, headers=h
        )
        assert unknown.json() == []
        counts = (await client.get(f"{V1}/quarantine/counts", headers=h)).json()
        expected = {"not_json": 1, "wrong_type": 1} if site == "demo" else {"not_json": 1}
        assert counts == {"since_start": expected, "stored": expected}, user


async def test_rows_of_unknown_site_only_for_those_who_see_every_site(
    client: httpx.AsyncClient,
) -> None:
    every = {"not_json": 2, "wrong_type": 1, "unknown_device": 1, "unknown_topic": 1}
    for headers in (
        await _headers(client, "admin"),
        {"Authorization": f"Bearer {SERVICE_TOKEN}"},
    ):
        rows = (await client.get(f"{V1}/quarantine", headers=headers)).json()
        assert {r["topic"] for r in rows} == _topics(None)
        assert {r["topic"]: r["site"] for r in rows} == {t: s for t, *_, s in ROWS}
        counts = (await client.get(f"{V1}/quarantine/counts", headers=headers)).json()
        assert counts == {"since_start": every, "stored": every}


async def test_rows_kept_from_before_the_upgrade_get_their_site(db_url: str) -> None:
    """The migration gives the rows already kept a site, as new rows get one."""
    await migrate.upgrade(db_url, "0003_rule_override")
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        async with engine.begin() as conn:
            # The registry as it was then: only the vendor device the migration looks up (the
            # community file's loader writes today's columns, which 0003 does not have).
            await conn.execute(insert(Site.__table__), [{"code": "demo", "name": "阳光社区"}])
            await conn.execute(
                insert(Grid.__table__), [{"id": "demo.g1", "site": "demo", "code": "g1", "name": "g1"}]
            )
            await conn.execute(
                insert(Device.__table__),
                [{"site": "demo", "device_id": "smk-b03-1-101", "device_type": "smoke",
                  "profile": "aliyun.smoke.js_sd01", "vendor_identity": DEMO_VENDOR,
                  "grid_id": "demo.g1", "location": "", "name": "", "model": "",
                  "enabled": True}],
            )  # fmt: skip
            await conn.execute(  # no site: the column does not exist yet
                insert(QuarantinedMessage.__table__),
                [
                    {
                        "received_ms": 1,
                        "topic": topic,
                        "reason": reason.value,
                        "detail": "kept from before",
                        "device_id": device_id,
                        "payload": payload,
                        "payload_size": len(payload),
                    }
                    for topic, reason, device_id, payload, _ in ROWS
                ],
            )
        await migrate.upgrade(db_url)
        async with sessions() as session:
            rows = await session.execute(select(QuarantinedMessage.topic, QuarantinedMessage.site))
            found = {topic: site for topic, site in rows}
    finally:
        await engine.dispose()
    assert found == {topic: site for topic, *_, site in ROWS}
