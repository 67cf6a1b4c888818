"""Many sites in one database: a community's staff see only their own site, a street office
(街道) sees all of its street's communities with the same figures their secretaries see, and a
community file loaded through the API is a working site at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from alerting.incidents.tables import IncidentRow
from alerting.models import AlertState, AlertTransition, Category, Severity
from api.app import create_app
from api.incident_view import publish
from core.clock import ManualClock
from gateway.registry.tables import Device
from tests.api.support import DEMO_PASSWORD, G1_DEVICE, G2_DEVICE, Env, build_env, prepare_db

V1 = "/api/v1"
YAML = {"Content-Type": "application/yaml"}
HASH = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(DEMO_PASSWORD)

# Site B: its code and every name in it are strings that must never reach site A's staff.
HEXIE = f"""
site:
  code: hexie
  name: 和谐社区
  street: {{code: qingshan, name: 青山街道}}
grids:
- {{code: g1, name: 和谐一网格}}
buildings:
- {{code: b1, name: 和谐1号楼, grid: g1}}
households:
- {{building: b1, unit: '1', room: '101', flags: [elderly_alone], resident: 和谐住户}}
devices:
- {{id: hx-smoke-1, type: smoke, building: b1, unit: '1', room: '101', location: 和谐1号楼101}}
- {{id: hx-smoke-2, type: smoke, building: b1, location: 和谐1号楼楼道}}
people:
- {{id: secretary-li, name: 李和谐, role: secretary, password_hash: '{HASH}'}}
- {{id: worker-hx, name: 和谐网格员, role: grid_worker, grids: [g1], password_hash: '{HASH}'}}
- {{id: jiedao-chen, name: 陈街道, role: street_office, password_hash: '{HASH}'}}
roster:
  weekly:
  - {{person: worker-hx, days: daily, start: '08:00', end: '20:00', role: grid_worker}}
"""
# Joins the sample community (site A, "demo") to the same street: only the site section.
DEMO_IN_STREET = "site: {code: demo, name: 阳光社区, street: {code: qingshan, name: 青山街道}}\n"
SITE_B_MARKS = ("hexie", "和谐", "secretary-li", "jiedao-chen")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_764_000_000_000)


@pytest.fixture
async def env(db_url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Env]:
    await prepare_db(db_url)
    built = await build_env(db_url, tmp_path, clock)
    yield built
    await built.close()


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(env.services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c
    await app.state.login_guard.aclose()


async def login(client: httpx.AsyncClient, who: str) -> dict[str, str]:
    r = await client.post(f"{V1}/auth/login", data={"username": who, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def open_incident(env: Env, site: str, device_id: str) -> int:
    ctx = env.registry.context(site, device_id)
    assert ctx is not None, (site, device_id)
    now = env.clock.now_ms()
    change = await env.incident_service.apply(
        AlertTransition(
            rule_id="smoke.alarm", subject=device_id, site=site, device_id=device_id,
            state=AlertState.FIRING, severity=Severity.CRITICAL, category=Category.SAFETY,
            title="烟感报警", at_ms=now, dedupe_key=f"smoke.alarm:{site}:{device_id}",
            reading_ts_ms=now, reading_seq=1,
        ),
        ctx,
    )  # fmt: skip
    assert change is not None
    async with env.services.sessions() as session:
        row = await session.get(IncidentRow, change.incident_id)
        assert row is not None
        publish(env.services.live, row)
    return change.incident_id


@pytest.fixture
async def two_sites(client: httpx.AsyncClient, env: Env) -> dict[str, Any]:
    """Site B loaded through the API next to the sample site A, both in street 青山街道, and
    incidents open in both."""
    admin = await login(client, "admin")
    r = await client.put(f"{V1}/sites/demo", content=DEMO_IN_STREET, headers=admin | YAML)
    assert r.status_code == 200, r.text
    r = await client.post(f"{V1}/sites", content=HEXIE, headers=admin | YAML)
    assert r.status_code == 201, r.text
    assert r.json() == {
        "site": "hexie", "created": True, "street": "qingshan", "grids": 1, "buildings": 1,
        "households": 1, "devices": 2, "people": 3,
    }  # fmt: skip
    ids = {
        "a": [await open_incident(env, "demo", G1_DEVICE), await open_incident(env, "demo", G2_DEVICE)],
        "b": [await open_incident(env, "hexie", "hx-smoke-1")],
    }
    return ids


def leaks(text: str) -> list[str]:
    return [m for m in SITE_B_MARKS if m in text]


# Every list, figure, ledger, export and screen a community's secretary opens.
SECRETARY_READS = [
    "/sites",
    "/incidents",
    "/incidents?site=hexie",
    "/devices",
    "/devices?site=hexie",
    "/grids",
    "/buildings",
    "/households",
    "/people",
    "/people?site=hexie",
    "/rosters",
    "/rosters?site=hexie",
    "/roster/week?site=hexie",
    "/roster/swaps",
    "/silences?active=false",
    "/stats?start_ms=0&end_ms=9999999999999",
    "/stats?start_ms=0&end_ms=9999999999999&site=hexie",
    "/stats/overview",
    "/stats/overview?site=hexie",
    "/screen",
    "/screen?site=hexie",
    "/reports/ledger?site=hexie&month=2025-11",
    "/reports/ledger.csv?site=hexie&month=2025-11",
    "/reports/loop-ledger?site=hexie",
    "/reports/loop-ledger.csv?site=hexie",
    "/reports/loop-ledger.xlsx?site=hexie",
    "/incidents/3",  # site B's incident (the fixture opens A's 1 and 2 first)
    "/incidents/3/case",
    "/incidents/3/deliveries",
    "/incidents/3/commands",
    "/reports/trend?site=hexie",
    "/loop/triage",
    "/devices/ledger.csv?site=hexie",
    "/households/elderly",
    "/visits/overdue",
    "/visits/figures?month=2025-11&site=hexie",
    "/history/site/hexie",
    "/history/device/hx-smoke-1?site=hexie",
    "/quarantine",
    "/quarantine/counts",
]


async def test_a_secretary_sees_nothing_of_another_site(
    client: httpx.AsyncClient, two_sites: dict[str, Any]
) -> None:
    """Every route of SECRETARY_READS in one database (one setup: the table is the parameter;
    every leaking route is reported, not only the first)."""
    assert two_sites["b"] == [3]
    secretary = await login(client, "secretary-guo")
    leaked = {}
    for path in SECRETARY_READS:
        r = await client.get(f"{V1}{path}", headers=secretary)
        assert r.status_code in (200, 403, 404, 422), (path, r.status_code, r.text)
        body = r.content.decode("latin-1") if path.endswith(".xlsx") else r.text
        if r.status_code >= 400:  # a refusal may echo the code the caller asked for
            body = body.replace("'hexie'", "")
        if found := leaks(body):
            leaked[path] = (r.status_code, found, body[:300])
    assert not leaked, leaked


async def test_a_secretary_can_not_touch_another_sites_incident(
    client: httpx.AsyncClient, two_sites: dict[str, Any]
) -> None:
    secretary = await login(client, "secretary-guo")
    b = two_sites["b"][0]
    assert (await client.get(f"{V1}/incidents/{b}", headers=secretary)).status_code == 404
    r = await client.post(f"{V1}/incidents/{b}/acknowledge", headers=secretary)
    assert r.status_code == 404
    assert (await client.get(f"{V1}/incidents/{b}/deliveries", headers=secretary)).status_code == 404


async def test_the_live_stream_of_a_secretary_skips_the_other_site(
    client: httpx.AsyncClient, env: Env, two_sites: dict[str, Any]
) -> None:
    secretary = await login(client, "secretary-guo")
    task = asyncio.create_task(
        client.get(f"{V1}/live", params={"limit": 1}, headers=secretary)
    )
    for _ in range(200):
        if env.services.live.subscribers:
            break
        await asyncio.sleep(0.01)
    await open_incident(env, "hexie", "hx-smoke-2")  # site B first: must be skipped
    await open_incident(env, "demo", "smk-b02-u1-f1")
    text = (await asyncio.wait_for(task, 10)).text
    assert "smk-b02-u1-f1" in text
    assert not leaks(text), text


async def test_the_street_office_sees_both_sites_with_their_secretaries_figures(
    client: httpx.AsyncClient, env: Env, two_sites: dict[str, Any]
) -> None:
    office = await login(client, "jiedao-chen")
    # A hazard the street office finds on a patrol in 和谐社区: the grid says which site.
    hazard = {
        "source": "patrol", "category": "corridor", "grid_id": "hexie.g1",
        "building_id": "hexie.b1", "description": "楼道堆放纸箱", "severity": "minor",
        "hazard": True, "deadline_ms": env.clock.now_ms() + 72 * 3600 * 1000,
        "responsible_kind": "household", "responsible_name": "住户",
    }  # fmt: skip
    r = await client.post(f"{V1}/incidents", json=hazard, headers=office)
    assert r.status_code == 201, r.text
    assert r.json()["site"] == "hexie"
    r = await client.get(f"{V1}/sites", headers=office)
    assert r.status_code == 200, r.text
    cards = {s["code"]: s for s in r.json()}
    assert set(cards) == {"demo", "hexie"}
    assert {s["street_name"] for s in cards.values()} == {"青山街道"}
    assert cards["hexie"]["figures"]["devices"] == 2
    assert cards["hexie"]["figures"]["open_incidents"] == 2
    assert cards["hexie"]["figures"]["hazards"] == 1
    assert cards["hexie"]["figures"]["rectification_rate"] == 0.0
    assert cards["demo"]["figures"]["open_incidents"] == 2

    for site, secretary_id in (("demo", "secretary-guo"), ("hexie", "secretary-li")):
        secretary = await login(client, secretary_id)
        own = (await client.get(f"{V1}/sites", headers=secretary)).json()
        assert [s["code"] for s in own] == [site], "a secretary has one site and no switcher"
        assert own[0]["figures"] == cards[site]["figures"]
        overview = (await client.get(f"{V1}/stats/overview", headers=secretary)).json()
        figures = cards[site]["figures"]
        assert overview["devices"] == figures["devices"]
        assert overview["offline_devices"] == figures["offline"]
        assert overview["open_incidents"] == figures["open_incidents"]
        assert overview["unacknowledged"] == figures["unacknowledged"]
        by_site = (
            await client.get(f"{V1}/stats/overview", params={"site": site}, headers=office)
        ).json()
        assert by_site == overview, "the office's site filter shows what the secretary sees"
        ledger = (await client.get(f"{V1}/reports/loop-ledger", headers=secretary)).json()
        assert ledger["summary"]["rectification_rate"] == figures["rectification_rate"]

    incidents = (await client.get(f"{V1}/incidents", headers=office)).json()
    assert {i["site"] for i in incidents["data"]} == {"demo", "hexie"}
    assert all(c["figures"]["overdue"] == 0 for c in cards.values())
    env.clock.advance(121_000)  # past the critical alarms' acknowledgement deadline (120 s)
    late = (await client.get(f"{V1}/sites", headers=office)).json()
    assert {c["code"]: c["figures"]["overdue"] for c in late} == {"demo": 2, "hexie": 1}


async def test_what_a_street_office_may_do(
    client: httpx.AsyncClient, two_sites: dict[str, Any]
) -> None:
    office = await login(client, "jiedao-chen")
    b = two_sites["b"][0]
    # It covers a community's desk: acknowledging is allowed in every site of its street.
    r = await client.post(f"{V1}/incidents/{b}/acknowledge", headers=office)
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_by"] == "jiedao-chen"
    # A site's ledger needs the site named when the caller has several.
    r = await client.get(f"{V1}/reports/loop-ledger", headers=office)
    assert r.status_code == 422 and "site" in r.text
    # The registry stays the community's: no piecemeal edits...
    r = await client.post(
        f"{V1}/grids", json={"site": "hexie", "code": "g9", "name": "新网格"}, headers=office
    )
    assert r.status_code == 403
    # ...but it may replace one of its communities' files, without moving it out of the street
    r = await client.put(f"{V1}/sites/hexie", content=HEXIE, headers=office | YAML)
    assert r.status_code == 200, r.text
    moved = HEXIE.replace("code: qingshan", "code: other")
    r = await client.put(f"{V1}/sites/hexie", content=moved, headers=office | YAML)
    assert r.status_code == 403 and "site.street" in r.text


async def test_who_may_load_community_files(
    client: httpx.AsyncClient, two_sites: dict[str, Any]
) -> None:
    secretary_a = await login(client, "secretary-guo")
    secretary_b = await login(client, "secretary-li")
    new_site = HEXIE.replace("code: hexie", "code: pingan")
    r = await client.post(f"{V1}/sites", content=new_site, headers=secretary_a | YAML)
    assert r.status_code == 403, "only an admin adds a site"
    r = await client.put(f"{V1}/sites/hexie", content=HEXIE, headers=secretary_a | YAML)
    assert r.status_code == 404, "another site's file is not a secretary's to see"
    # Its own secretary may replace it, but may not make anyone a street office or admin...
    r = await client.put(f"{V1}/sites/hexie", content=HEXIE, headers=secretary_b | YAML)
    assert r.status_code == 403 and "people[2].role" in r.text
    mine = HEXIE.replace(
        f"- {{id: jiedao-chen, name: 陈街道, role: street_office, password_hash: '{HASH}'}}\n", ""
    )
    r = await client.put(f"{V1}/sites/hexie", content=mine, headers=secretary_b | YAML)
    assert r.status_code == 200, r.text
    # ...nor take over a login of another site.
    stolen = mine + "- {id: secretary-guo, name: 冒名, role: grid_worker}\n"
    stolen = stolen.replace("roster:\n  weekly:\n  - {person: worker-hx, days: daily, start: '08:00', end: '20:00', role: grid_worker}\n", "")
    r = await client.put(f"{V1}/sites/hexie", content=stolen, headers=secretary_b | YAML)
    assert r.status_code in (409, 422), r.text


async def test_a_bad_community_file_names_the_field_and_the_line(
    client: httpx.AsyncClient, env: Env
) -> None:
    admin = await login(client, "admin")
    bad = HEXIE.replace("type: smoke, building: b1, location", "type: smoke, building: b9, location")
    r = await client.post(f"{V1}/sites", content=bad, headers=admin | YAML)
    assert r.status_code == 422
    problems = r.json()["detail"]["problems"]
    assert any("devices[1].building: unknown building 'b9' (line 14)" in p for p in problems), problems
    r = await client.post(f"{V1}/sites", content="site: [unclosed", headers=admin | YAML)
    assert r.status_code == 422 and "not valid YAML" in r.text and "line 1" in r.text
    r = await client.post(f"{V1}/sites", content=HEXIE + "device_ledgers: [/etc/passwd]\n",
                          headers=admin | YAML)  # fmt: skip
    assert r.status_code == 422 and "device_ledgers" in r.text
    assert "root:" not in r.text
    bomb = "x: &a [1, 1, 1, 1, 1, 1, 1, 1]\ny: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n" + HEXIE
    r = await client.post(f"{V1}/sites", content=bomb, headers=admin | YAML)
    assert r.status_code == 422 and "aliases" in r.text
    taken = HEXIE.replace(
        "location: 和谐1号楼楼道}", "location: 和谐1号楼楼道, vendor_identity: a1SmkJs2024/SD_0301}"
    )
    async with env.services.sessions() as s:  # a device of site A speaks through a vendor cloud
        row = await s.get(Device, ("demo", G1_DEVICE))
        assert row is not None
        row.vendor_identity = "a1SmkJs2024/SD_0301"
        await s.commit()
    r = await client.post(f"{V1}/sites", content=taken, headers=admin | YAML)
    assert r.status_code == 409 and "vendor_identity" in r.text, r.text
    r = await client.post(f"{V1}/sites", content=b"\x00\x01", headers=admin)
    assert r.status_code == 415
    # Nothing half-loaded: the site does not exist after the refusals.
    assert (await client.get(f"{V1}/sites/hexie", headers=admin)).status_code == 404


async def test_a_site_loaded_through_the_api_is_known_to_the_pipeline_at_once(
    client: httpx.AsyncClient, env: Env
) -> None:
    assert env.registry.context("hexie", "hx-smoke-1") is None
    admin = await login(client, "admin")
    r = await client.post(f"{V1}/sites", content=HEXIE, headers=admin | YAML)
    assert r.status_code == 201, r.text
    ctx = env.registry.context("hexie", "hx-smoke-1")
    assert ctx is not None and ctx.grid_id == "hexie.g1"
