"""What an outsider or a former holder of a token can get from the API: security headers,
/health and /metrics without credentials, tokens after a password change."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx

from tests.api.conftest import Login
from tests.api.support import DEMO_PASSWORD, METRICS_TOKEN, SERVICE_TOKEN, Env

V1 = "/api/v1"
ME = f"{V1}/auth/me"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _token(client: httpx.AsyncClient, user: str, password: str = DEMO_PASSWORD) -> str:
    r = await client.post(f"{V1}/auth/login", data={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


# -- (e) /health -------------------------------------------------------------------------------


async def test_health_tells_an_anonymous_caller_only_up_or_down(
    client: httpx.AsyncClient, env: Env, login: Login
) -> None:
    async def detailed() -> dict[str, dict[str, object]]:
        return {
            "mqtt": {"status": "ok", "connections": {"safety-gateway-7f3a": {"received": 123}}},
            "ingest": {"status": "degraded", "quarantine_counts": {"not_json": 4}},
        }

    env.services.health = detailed
    for headers in ({}, _bearer("not-a-token"), await login("worker_g1")):
        r = await client.get("/health", headers=headers)
        assert r.status_code == 200
        assert r.json() == {"status": "up"}, headers
        assert "safety-gateway-7f3a" not in r.text and "not_json" not in r.text

    for headers in (
        await login("duty"),
        await login("admin"),
        _bearer(SERVICE_TOKEN),
        _bearer(METRICS_TOKEN),
    ):
        r = await client.get("/health", headers=headers)
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "degraded"
        assert body["components"]["mqtt"]["connections"] == {
            "safety-gateway-7f3a": {"received": 123}
        }

    async def down() -> dict[str, dict[str, object]]:
        return {"mqtt": {"status": "down", "detail": "connection refused by 10.0.0.5"}}

    env.services.health = down
    r = await client.get("/health")
    assert r.status_code == 503
    assert r.json() == {"status": "down"}


# -- (d) /metrics ------------------------------------------------------------------------------


async def test_metrics_need_the_metrics_token_or_a_service_token(
    client: httpx.AsyncClient, login: Login
) -> None:
    for headers in ({}, _bearer("guess"), await login("admin")):
        r = await client.get("/metrics", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert "api_requests" not in r.text
    for token in (METRICS_TOKEN, SERVICE_TOKEN):
        r = await client.get("/metrics", headers=_bearer(token))
        assert r.status_code == 200
        assert "api_requests_total" in r.text


async def test_the_metrics_token_opens_nothing_else(client: httpx.AsyncClient) -> None:
    for path in (ME, f"{V1}/incidents", f"{V1}/quarantine"):
        assert (await client.get(path, headers=_bearer(METRICS_TOKEN))).status_code == 401


# -- (c) tokens and password changes -----------------------------------------------------------


async def test_changing_ones_password_voids_the_tokens_issued_before(
    client: httpx.AsyncClient,
) -> None:
    phone = await _token(client, "zhang-min")
    stolen = await _token(client, "zhang-min")
    r = await client.put(
        f"{V1}/auth/password",
        headers=_bearer(phone),
        json={"current_password": DEMO_PASSWORD, "new_password": "new-secret-22"},
    )
    assert r.status_code == 204
    for old in (stolen, phone):
        assert (await client.get(ME, headers=_bearer(old))).status_code == 401
    fresh = await _token(client, "zhang-min", "new-secret-22")
    assert (await client.get(ME, headers=_bearer(fresh))).json()["id"] == "zhang-min"


async def test_an_admin_reset_voids_the_persons_tokens_only(client: httpx.AsyncClient) -> None:
    worker = await _token(client, "zhang-min")
    other = await _token(client, "wang-fang")
    admin = await _token(client, "admin")
    r = await client.put(
        f"{V1}/people/zhang-min/password",
        headers=_bearer(admin),
        json={"new_password": "reset-by-admin-1"},
    )
    assert r.status_code == 204
    assert (await client.get(ME, headers=_bearer(worker))).status_code == 401
    assert (await client.get(ME, headers=_bearer(other))).status_code == 200
    assert (await client.get(ME, headers=_bearer(admin))).status_code == 200


# -- (b) security headers ----------------------------------------------------------------------


def _policy(response: httpx.Response) -> dict[str, str]:
    csp = response.headers["content-security-policy"]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] for d in (p.strip() for p in csp.split(";"))}


async def test_board_and_api_answer_with_security_headers(
    client: httpx.AsyncClient, login: Login
) -> None:
    answers = [
        await client.get("/board/"),
        await client.get("/board/reports.js"),
        await client.get(ME, headers=await login("duty")),
        await client.get(ME),  # 401
    ]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        policy = _policy(r)
        assert policy["script-src"] == "'self'"
        assert policy["style-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'"
        assert policy["object-src"] == "'none'"


async def test_board_pages_need_no_inline_script_or_style(client: httpx.AsyncClient) -> None:
    for page in ("/board/", "/board/worker.html", "/board/reports.html"):
        html = (await client.get(page)).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page
        assert not re.search(r"\son[a-z]+\s*=", html), page
        assert "style=" not in html, page


async def test_api_docs_page_allows_its_own_boot_script_only(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{V1}/docs")
    assert r.status_code == 200
    inline = re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL)
    assert inline, "the Swagger UI page boots from an inline script"
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    script_src = _policy(r)["script-src"].split()
    assert script_src == ["'self'", f"'sha256-{digest}'"]
    assert "'unsafe-inline'" not in script_src
    assert r.headers["x-frame-options"] == "DENY"
