"""Browser fixtures: the API on a real uvicorn server, headless Chromium, an incident source."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiomqtt
import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy import select

from alerting.incidents.tables import IncidentRow
from gateway.app import Gateway
from gateway.sample import demo_community_path
from simulators.device import SimulatedDevice
from simulators.inventory import DeviceSpec
from tests.services import Mosquitto

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


@pytest.fixture
async def gateway(start_gateway: Callable[..., Awaitable[Gateway]]) -> Gateway:
    """The whole gateway (broker, ingest, rules, incidents, API and board) on the sample community."""
    return await start_gateway(community_file=demo_community_path())


@pytest.fixture
def server_url(gateway: Gateway) -> str:
    return f"http://127.0.0.1:{gateway.api_port}"


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
def incident_source(gateway: Gateway, mosquitto: Mosquitto) -> IncidentSource:
    """A simulated smoke detector publishes an alarm through the broker; returns the incident
    the gateway opened for it."""

    async def raise_alarm(device_id: str) -> int:
        ctx = gateway.registry.context("demo", device_id)
        assert ctx is not None
        device = SimulatedDevice(DeviceSpec("demo", ctx.device_type, device_id, ctx.building_id or ""))
        now = int(time.time() * 1000)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            for topic, payload, retain in device.messages(
                "event", {"event": "alarm", "smoke_dbm": 0.42}, now
            ):
                await client.publish(topic, payload, qos=1, retain=retain)
        for _ in range(200):
            async with gateway.sessions() as session:
                found = await session.scalar(
                    select(IncidentRow.id).where(IncidentRow.device_id == device_id)
                )
            if found is not None:
                return int(found)
            await asyncio.sleep(0.05)
        raise AssertionError(f"no incident opened for the alarm of {device_id}")

    return raise_alarm


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
