"""API test fixtures: the app over a real SQLite file (or PostgreSQL) with the sample community."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from core.clock import ManualClock
from tests.api.support import DEMO_PASSWORD, USERS, Env, build_env, prepare_db

Login = Callable[[str], Awaitable[dict[str, str]]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_764_000_000_000)


@pytest.fixture
async def env(sqlite_url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Env]:
    await prepare_db(sqlite_url)
    built = await build_env(sqlite_url, tmp_path, clock)
    yield built
    await built.close()


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(env.services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c
    await app.state.login_guard.aclose()  # no lifespan here: its password worker by hand


@pytest.fixture
def login(client: httpx.AsyncClient) -> Login:
    """``await login("duty")`` → auth headers for that sample-community role."""
    cache: dict[str, dict[str, str]] = {}

    async def get(who: str) -> dict[str, str]:
        if who not in cache:
            r = await client.post(
                "/api/v1/auth/login",
                data={"username": USERS.get(who, who), "password": DEMO_PASSWORD},
            )
            assert r.status_code == 200, r.text
            cache[who] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return cache[who]

    return get
