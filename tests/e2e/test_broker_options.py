"""Broker connection options: MQTT 3.1.1 as well as 5, TLS with a CA file, username/password."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path

import aiomqtt
import pytest

from tests.services import Mosquitto


async def _reading_is_stored(gateway, port: int, *, tls: ssl.SSLContext | None = None,  # type: ignore[no-untyped-def]
                             auth: tuple[str, str] | None = None) -> None:
    user, password = auth or (None, None)
    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password,
                              tls_context=tls) as client:
        payload = {"ts": int(time.time() * 1000), "seq": 7, "smoke_dbm": 0.02, "temp_c": 21.0}
        await client.publish("safety/demo/smoke/SD-0002/telemetry", json.dumps(payload), qos=1)
    for _ in range(100):
        if gateway.ingest.stats.stored >= 1:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the reading was not stored")


async def test_mqtt_311_session(start_gateway, mosquitto: Mosquitto) -> None:  # type: ignore[no-untyped-def]
    gateway = await start_gateway(mqtt={"url": mosquitto.url, "protocol": "3.1.1",
                                        "client_id": "gw-311"})
    await _reading_is_stored(gateway, mosquitto.port)


async def test_tls_with_username_and_password(start_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broker = Mosquitto(tmp_path / "tls-broker", users={"gateway": "gw-secret", "SD-0002": "d-secret"},
                       tls=True)
    broker.start()
    try:
        gateway = await start_gateway(mqtt={
            "url": broker.url, "username": "gateway", "password": "gw-secret",
            "client_id": "gw-tls", "tls": {"ca_file": str(broker.ca_file)},
        })
        assert gateway.mqtt.connected.is_set()
        device_tls = ssl.create_default_context(cafile=str(broker.ca_file))
        await _reading_is_stored(gateway, broker.port, tls=device_tls, auth=("SD-0002", "d-secret"))
    finally:
        broker.stop()


@pytest.mark.allow_logged_exceptions
async def test_wrong_password_is_reported_and_the_gateway_keeps_trying(
    start_gateway, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    broker = Mosquitto(tmp_path / "auth-broker", users={"gateway": "right"})
    broker.start()
    try:
        from gateway.app import Gateway
        from gateway.settings import Settings

        settings = Settings(
            mode="development", data_dir=tmp_path / "gw",
            mqtt={"url": broker.url, "username": "gateway", "password": "wrong", "client_id": "gw-x"},
            database={"url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"}, api={"port": 0},
        )
        gateway = Gateway(settings)
        task = asyncio.create_task(gateway.run())
        await asyncio.wait_for(gateway.ready.wait(), 60)
        await asyncio.sleep(2)
        assert not task.done(), "a refused login must not stop the gateway"
        assert gateway.health.components()["mqtt"]["status"] == "down"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        broker.stop()
