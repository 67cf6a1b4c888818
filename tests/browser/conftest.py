"""Browser fixtures: the API on a real uvicorn server, headless Chromium, an incident source."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, async_playwright

from api.app import create_app
from gateway.clock import SystemClock
from tests.api.support import Env, build_env, prepare_db

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

IncidentSource = Callable[[str], Awaitable[int]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def env(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    await prepare_db(sqlite_url)
    built = await build_env(sqlite_url, tmp_path, SystemClock())
    yield built
    await built.close()


@pytest.fixture
async def server_url(env: Env) -> AsyncIterator[str]:
    """The app served by uvicorn on a free port, in this test's event loop."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(env.services),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (never downloaded by tests)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        yield b
        await b.close()


@pytest.fixture
def incident_source(env: Env) -> IncidentSource:
    """Raises an alarm on a device and returns the incident id it opened.

    Today: an alert transition into the incident service, published on the live hub the way
    the pipeline does. Once gateway/app.py is wired this becomes a simulator publishing the
    alarm through the broker; the tests only depend on this signature.
    """

    async def raise_alarm(device_id: str) -> int:
        return await env.open_incident(device_id)

    return raise_alarm


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
