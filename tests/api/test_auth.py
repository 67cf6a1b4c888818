"""Logging in, tokens (expiry, forgery, service tokens), passwords, and the login audit."""

from __future__ import annotations

from sqlalchemy import select

from api.audit import AuditRow
from tests.api.support import DEMO_PASSWORD, SERVICE_TOKEN

LOGIN = "/api/v1/auth/login"


async def test_login_returns_a_token_and_the_person(client):
    r = await client.post(LOGIN, data={"username": "duty-sun", "password": DEMO_PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["person"]["role"] == "duty_staff"
    assert "password_hash" not in body["person"]


async def test_wrong_password_and_unknown_user_look_the_same(client, env):
    wrong = await client.post(LOGIN, data={"username": "duty-sun", "password": "nope-nope"})
    unknown = await client.post(LOGIN, data={"username": "nobody", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    async with env.services.sessions() as s:
        denied = (await s.scalars(select(AuditRow).where(AuditRow.outcome == "denied"))).all()
    assert {d.actor for d in denied} == {"duty-sun", "nobody"}


async def test_login_without_password_names_the_field(client):
    r = await client.post(LOGIN, data={"username": "duty-sun"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "password"
    assert "Traceback" not in r.text


async def test_me(client, login):
    r = await client.get("/api/v1/auth/me", headers=await login("worker_g1"))
    assert r.status_code == 200
    assert r.json()["grids"] == ["demo.g1"]


async def test_no_token_forged_token_and_expired_token_are_refused(client, login, clock):
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.bad"}
    assert (await client.get("/api/v1/auth/me", headers=forged)).status_code == 401
    headers = await login("duty")
    clock.advance(13 * 3600 * 1000)
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401


async def test_inactive_person_loses_access(client, login):
    headers = await login("worker_g1")
    r = await client.patch(
        "/api/v1/people/zhang-min", json={"active": False}, headers=await login("secretary")
    )
    assert r.status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401


async def test_service_token(client):
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    r = await client.get("/api/v1/auth/me", headers=headers)
    assert r.json()["role"] == "service"
    assert (await client.get("/api/v1/incidents", headers=headers)).status_code == 200
    r = await client.post(
        "/api/v1/grids", headers=headers, json={"site": "demo", "code": "gx", "name": "x"}
    )
    assert r.status_code == 403


async def test_change_password(client, login):
    headers = await login("worker_g1")
    r = await client.put(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": "wrong-one", "new_password": "new-secret-1"},
    )
    assert r.status_code == 403
    r = await client.put(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": DEMO_PASSWORD, "new_password": "short"},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "new_password"
    r = await client.put(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": DEMO_PASSWORD, "new_password": "new-secret-1"},
    )
    assert r.status_code == 204
    r = await client.post(LOGIN, data={"username": "zhang-min", "password": "new-secret-1"})
    assert r.status_code == 200
