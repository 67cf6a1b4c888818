"""Registry CRUD for every resource, role boundaries, references and malformed input."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from api.audit import AuditRow

V1 = "/api/v1"

# resource, create body, key of the created row, a valid update
CASES = [
    ("sites", {"code": "moon", "name": "月亮社区"}, "moon", {"name": "新月社区"}),
    ("grids", {"site": "demo", "code": "g9", "name": "第九网格"}, "demo.g9", {"name": "九"}),
    (
        "buildings",
        {"site": "demo", "code": "b99", "name": "99号楼", "grid_id": "demo.g1"},
        "demo.b99",
        {"address": "阳光路99号"},
    ),
    (
        "households",
        {
            "site": "demo",
            "building_id": "demo.b01",
            "unit": "9",
            "room": "999",
            "flags": ["elderly_alone"],
            "contacts": [{"name": "李", "relation": "子", "phone": "13900000000"}],
        },
        "demo.b01.9-999",
        {"note": "独居老人"},
    ),
    (
        "rosters",
        {
            "site": "demo",
            "person_id": "duty-ma",
            "starts_at": "2026-12-01T08:00:00+08:00",
            "ends_at": "2026-12-01T20:00:00+08:00",
        },
        None,
        {"role": "secretary"},
    ),
]


@pytest.mark.parametrize(("name", "body", "key", "update"), CASES, ids=[c[0] for c in CASES])
async def test_crud(client, login, env, name, body, key, update):
    h = await login("admin")
    r = await client.post(f"{V1}/{name}", json=body, headers=h)
    assert r.status_code == 201, r.text
    key = key or r.json()["id"]
    assert (await client.get(f"{V1}/{name}/{key}", headers=h)).status_code == 200
    listed = (await client.get(f"{V1}/{name}", headers=h)).json()
    assert any(str(row.get("id", row.get("code"))) == str(key) for row in listed)
    r = await client.patch(f"{V1}/{name}/{key}", json=update, headers=h)
    assert r.status_code == 200, r.text
    assert all(r.json()[k] == v for k, v in update.items())
    assert (await client.post(f"{V1}/{name}", json=body, headers=h)).status_code in (201, 409)
    assert (await client.delete(f"{V1}/{name}/{key}", headers=h)).status_code == 204
    assert (await client.get(f"{V1}/{name}/{key}", headers=h)).status_code == 404
    async with env.services.sessions() as s:
        actions = [
            a.action for a in await s.scalars(select(AuditRow).where(AuditRow.actor == "admin"))
        ]
    assert {a.split(".")[-1] for a in actions} >= {"create", "update", "delete"}


@pytest.mark.parametrize("who", ["duty", "worker_g1"])
async def test_only_registry_writers_change_it(client, login, who):
    h = await login(who)
    r = await client.post(
        f"{V1}/grids", json={"site": "demo", "code": "g9", "name": "x"}, headers=h
    )
    assert r.status_code == 403
    assert (
        await client.patch(f"{V1}/grids/demo.g1", json={"name": "x"}, headers=h)
    ).status_code == 403
    assert (await client.delete(f"{V1}/grids/demo.g1", headers=h)).status_code == 403


async def test_grid_worker_reads_only_own_grids(client, login):
    h = await login("worker_g1")
    grids = [g["id"] for g in (await client.get(f"{V1}/grids", headers=h)).json()]
    assert grids == ["demo.g1"]
    assert (await client.get(f"{V1}/grids/demo.g2", headers=h)).status_code == 404
    buildings = {b["grid_id"] for b in (await client.get(f"{V1}/buildings", headers=h)).json()}
    assert buildings == {"demo.g1"}
    assert (await client.get(f"{V1}/buildings/demo.b04", headers=h)).status_code == 404
    households = (await client.get(f"{V1}/households", headers=h)).json()
    assert households
    assert all(x["building_id"] in {"demo.b01", "demo.b02", "demo.b03"} for x in households)
    assert (await client.get(f"{V1}/people", headers=h)).status_code == 403
    assert (await client.get(f"{V1}/rosters", headers=h)).status_code == 403


async def test_nested_grid_is_inside_its_parent(client, login):
    r = await client.get(f"{V1}/grids", headers=await login("duty"))
    ids = {g["id"] for g in r.json()}
    assert {"demo.g3", "demo.g3a"} <= ids


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("grids", {"site": "demo", "code": "has space", "name": "x"}, "code"),
        ("grids", {"site": "demo", "code": "g9", "name": "x", "colour": "red"}, "colour"),
        (
            "grids",
            {"site": "demo", "code": "g9", "name": "x", "parent_id": "demo.nope"},
            "parent_id",
        ),
        (
            "buildings",
            {"site": "demo", "code": "b9", "name": "x", "grid_id": "demo.nope"},
            "grid_id",
        ),
        ("buildings", {"site": "demo", "code": "b9", "name": "x"}, "grid_id"),
        (
            "households",
            {
                "site": "demo",
                "building_id": "demo.b01",
                "room": "1",
                "contacts": [{"name": "x", "phone": "call me"}],
            },
            "contacts.0.phone",
        ),
        (
            "rosters",
            {
                "site": "demo",
                "person_id": "duty-ma",
                "starts_at": "2026-12-01T08:00:00+08:00",
                "ends_at": "2026-12-01T07:00:00+08:00",
            },
            "",
        ),
        (
            "rosters",
            {
                "site": "demo",
                "person_id": "duty-ma",
                "starts_at": "2026-12-01T08:00:00",
                "ends_at": "2026-12-01T09:00:00+08:00",
            },
            "starts_at",
        ),
        (
            "rosters",
            {
                "site": "demo",
                "person_id": "ghost",
                "starts_at": "2026-12-01T08:00:00+08:00",
                "ends_at": "2026-12-01T09:00:00+08:00",
            },
            "person_id",
        ),
    ],
)
async def test_malformed_bodies_name_the_field(client, login, name, body, field):
    r = await client.post(f"{V1}/{name}", json=body, headers=await login("admin"))
    assert r.status_code == 422, r.text
    if field:
        assert r.json()["errors"][0]["field"] == field
    assert "Traceback" not in r.text


async def test_deleting_a_grid_in_use_is_a_conflict(client, login):
    r = await client.delete(f"{V1}/grids/demo.g1", headers=await login("admin"))
    assert r.status_code == 409


async def test_secretary_cannot_touch_another_site(client, login):
    h = await login("secretary")
    r = await client.post(
        f"{V1}/grids", json={"site": "moon", "code": "g1", "name": "x"}, headers=h
    )
    assert r.status_code == 403
    assert r.json()["errors"][0]["field"] == "site"


async def test_people(client, login, env):
    admin = await login("admin")
    sec = await login("secretary")
    body = {
        "id": "new-worker",
        "site": "demo",
        "name": "新人",
        "role": "grid_worker",
        "password": "a-good-password",
        "grids": ["demo.g2"],
    }
    r = await client.post(f"{V1}/people", json=body, headers=sec)
    assert r.status_code == 201
    assert r.json()["grids"] == ["demo.g2"]
    assert "password" not in r.json()
    assert "password_hash" not in r.json()
    assert (await client.post(f"{V1}/people", json=body, headers=sec)).status_code == 409
    r = await client.post(
        "/api/v1/auth/login", data={"username": "new-worker", "password": "a-good-password"}
    )
    assert r.status_code == 200
    r = await client.patch(f"{V1}/people/new-worker", json={"grids": ["demo.g1"]}, headers=sec)
    assert r.json()["grids"] == ["demo.g1"]
    r = await client.patch(f"{V1}/people/new-worker", json={"grids": ["demo.zz"]}, headers=sec)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "grids.0"
    r = await client.post(f"{V1}/people", json=body | {"id": "boss", "role": "admin"}, headers=sec)
    assert r.status_code == 403
    r = await client.post(f"{V1}/people", json=body | {"id": "x", "role": "emperor"}, headers=sec)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "role"
    assert (
        await client.get(f"{V1}/people/new-worker", headers=await login("duty"))
    ).status_code == 200
    people = (await client.get(f"{V1}/people", params={"role": "duty_staff"}, headers=sec)).json()
    assert {p["id"] for p in people} == {"duty-sun", "duty-ma", "duty-zhu"}
    assert (await client.delete(f"{V1}/people/new-worker", headers=admin)).status_code == 204
    assert (await client.get(f"{V1}/people/new-worker", headers=admin)).status_code == 404
    assert env.registry.person("new-worker") is None
