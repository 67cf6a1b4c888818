"""A second community loaded through the API of a running gateway: its devices' alarms open
incidents at once, with no restart, and only its own staff and the street office see them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import httpx
from sqlalchemy import select

from alerting.incidents.tables import IncidentRow
from gateway.app import Gateway
from gateway.quarantine import QuarantinedMessage
from gateway.sample import demo_community_path
from tests.api.test_sites import HEXIE
from tests.services import Mosquitto

PASSWORD = "yangguang-demo"


async def _login(c: httpx.AsyncClient, who: str) -> dict[str, str]:
    r = await c.post("/api/v1/auth/login", data={"username": who, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _alarm(port: int, seq: int) -> None:
    payload: dict[str, Any] = {
        "ts": int(time.time() * 1000), "seq": seq, "event": "alarm", "smoke_dbm": 0.4,
    }  # fmt: skip
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.publish("safety/hexie/smoke/hx-smoke-1/event", json.dumps(payload), qos=1)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_a_site_loaded_through_the_api_opens_incidents_without_restart(
    start_gateway: Callable[..., Awaitable[Gateway]], mosquitto: Mosquitto
) -> None:
    gateway = await start_gateway(community_file=demo_community_path())

    async def hexie_rows(model: Any) -> list[Any]:
        async with gateway.sessions() as s:
            return list(await s.scalars(select(model).where(model.site == "hexie")))

    # Before the site exists its device is unknown: the reading is quarantined, not lost.
    await _alarm(mosquitto.port, 1)

    async def quarantined() -> bool:
        return bool(await hexie_rows(QuarantinedMessage))

    await _eventually(quarantined)
    assert await hexie_rows(IncidentRow) == []

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.api_port}") as c:
        admin = await _login(c, "admin")
        r = await c.post(
            "/api/v1/sites", content=HEXIE, headers=admin | {"Content-Type": "application/yaml"}
        )
        assert r.status_code == 201, r.text

        await _alarm(mosquitto.port, 2)  # the same gateway process, no restart

        async def opened() -> bool:
            return bool(await hexie_rows(IncidentRow))

        await _eventually(opened)
        [row] = await hexie_rows(IncidentRow)
        assert (row.device_id, row.rule_id, row.grid_id) == ("hx-smoke-1", "smoke.alarm", "hexie.g1")

        own = (await c.get("/api/v1/incidents", headers=await _login(c, "secretary-li"))).json()
        assert [i["device_id"] for i in own["data"]] == ["hx-smoke-1"]
        other = (await c.get("/api/v1/incidents", headers=await _login(c, "secretary-guo"))).json()
        assert all(i["site"] == "demo" for i in other["data"])
