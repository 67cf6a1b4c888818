"""Nothing is lost: InfluxDB down for 30 s under traffic, and the gateway SIGKILLed under QoS 1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import E2E_COMMUNITY
from tests.services import Influxd, Mosquitto, free_port

DEVICES = ["SD-0001", "SD-0002", "SD-0003"]


class Publisher(threading.Thread):
    """Publishes ``total`` smoke telemetry messages at QoS 1 at about ``rate`` per second."""

    def __init__(self, port: int, total: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.port, self.total, self.rate = port, total, rate
        self.base_ms = int(time.time() * 1000) - 600_000
        self.published = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="resilience-pub")
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)

    def run(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        start = time.monotonic()
        infos = []
        for i in range(self.total):
            device = DEVICES[i % len(DEVICES)]
            payload = {
                "ts": self.base_ms + i,
                "seq": i,
                "smoke_dbm": 0.01,
                "temp_c": 22.0,
                "battery_pct": 90,
            }
            infos.append(
                self.client.publish(
                    f"safety/demo/smoke/{device}/telemetry", json.dumps(payload), qos=1
                )
            )
            self.published += 1
            lag = start + (i + 1) / self.rate - time.monotonic()
            if lag > 0:
                time.sleep(lag)
        for info in infos:
            info.wait_for_publish(30)
        self.client.loop_stop()
        self.client.disconnect()


def influx_count(influxd: Influxd, db: str) -> int:
    out = influxd.query('SELECT count("seq") FROM "smoke"', db)
    series = out["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


async def wait_count(influxd: Influxd, db: str, total: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = await asyncio.to_thread(influx_count, influxd, db)
        if count >= total:
            return count
        await asyncio.sleep(0.5)
    return count


@pytest.mark.slow
async def test_influxdb_down_for_30_s_under_traffic_loses_nothing(
    start_gateway,
    mosquitto: Mosquitto,
    influxd: Influxd,
    influx_db: str,  # type: ignore[no-untyped-def]
) -> None:
    gateway = await start_gateway(
        timeseries={
            "backend": "influxdb1",
            "url": influxd.url,
            "database": influx_db,
            "write_timeout_s": 1.0,
        }
    )
    total = 8000
    pub = Publisher(mosquitto.port, total, rate=200)  # 40 s of traffic
    pub.start()
    await asyncio.sleep(3)
    influxd.stop()
    try:
        await asyncio.sleep(30)
        assert gateway.spool is not None
        spooled = gateway.spool.stats()
        assert spooled.readings > 0, "readings should be buffered on disk while InfluxDB is down"
    finally:
        influxd.start()
    await asyncio.to_thread(pub.join, 60)
    count = await wait_count(influxd, influx_db, total, 60)
    assert count == total, f"{total - count} readings lost across the outage"
    assert gateway.spool.stats().readings == 0, "the spool drains once InfluxDB is back"


# /health shows component figures to a monitoring token only (and to staff).
MONITOR_TOKEN = "resilience-metrics-token-0123456789abcdef"


def gateway_config(
    tmp: Path, mosquitto: Mosquitto, influxd: Influxd, db: str, api_port: int
) -> Path:
    config = {
        "mode": "development",
        "data_dir": str(tmp / "gw"),
        "community_file": str(E2E_COMMUNITY),
        "mqtt": {"url": mosquitto.url, "client_id": "gateway-under-test"},
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'gw.db'}"},
        "timeseries": {"backend": "influxdb1", "url": influxd.url, "database": db},
        "ingest": {"flush_interval_ms": 50},
        "api": {"port": api_port, "metrics_token": MONITOR_TOKEN},
        "log_level": "WARNING",
    }
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_process(config: Path, api_port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited: {log.read_text()[-2000:]}")
        try:
            if _health(api_port, timeout=1)["mqtt"]["status"] == "ok":
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"gateway did not come up: {log.read_text()[-2000:]}")


@pytest.mark.slow
async def test_sigkill_under_qos1_traffic_then_restart_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    api_port = free_port()
    config = gateway_config(tmp_path, mosquitto, influxd, influx_db, api_port)
    log = tmp_path / "gateway.log"
    proc = await asyncio.to_thread(start_process, config, api_port, log)
    total = 6000
    pub = Publisher(mosquitto.port, total, rate=1000)
    pub.start()
    try:
        while pub.published < total // 3:
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        await asyncio.sleep(1.0)  # traffic keeps coming while the gateway is dead
        proc = await asyncio.to_thread(start_process, config, api_port, log)
        await asyncio.to_thread(pub.join, 60)
        count = await wait_count(influxd, influx_db, total, 60)
        assert count == total, f"{total - count} of {total} readings lost across SIGKILL"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
async def test_sigterm_stops_the_gateway_within_its_deadline_while_the_store_is_failing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    api_port = free_port()
    broken = tmp_path / "not-a-database"
    broken.mkdir()  # SQLite cannot open a directory: every write fails as "unavailable"
    config = {
        "mode": "development",
        "data_dir": str(tmp_path / "gw"),
        "community_file": str(E2E_COMMUNITY),
        "mqtt": {"url": mosquitto.url, "client_id": "gateway-stuck-store"},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"},
        "timeseries": {"backend": "embedded", "embedded_path": str(broken)},
        "ingest": {"flush_interval_ms": 50},
        "api": {"port": api_port, "metrics_token": MONITOR_TOKEN},
        "shutdown_timeout_s": 3,
        "log_level": "CRITICAL",
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = tmp_path / "gateway.log"
    proc = await asyncio.to_thread(start_process, path, api_port, log)
    try:
        pub = Publisher(mosquitto.port, 50, rate=500)
        pub.start()
        await asyncio.to_thread(pub.join, 30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the flush is now retrying against the dead store
            if (await asyncio.to_thread(_health, api_port))["ingest"]["store_failures"] > 0:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the store never failed; the test proves nothing")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        took = time.monotonic() - started
        assert code == 0
        assert took < 3 + 5 + 2, f"SIGTERM took {took:.1f} s with a 3 s shutdown deadline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _health(api_port: int, timeout: float = 2) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/health",
        headers={"Authorization": f"Bearer {MONITOR_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.loads(r.read())["components"]  # type: ignore[no-any-return]
