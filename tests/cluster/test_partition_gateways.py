"""Two real Gateway objects (in this process) on one Mosquitto and one PostgreSQL, two sites:
each site's readings are handled by exactly one instance; a clean stop hands its partitions
over at once; an alarm published while its partition has no owner waits in the partition's
persistent MQTT session and is paged once by the next owner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import text

from gateway.app import Gateway
from gateway.settings import Settings
from tests.cluster.harness import site_devices, telemetry, write_communities
from tests.services import Mosquitto

SITES = ["s01", "s02"]
TOKEN = "cluster-test-metrics-token-0123456789abcdef"
Start = Callable[[str], Awaitable[Gateway]]


@pytest.fixture
async def cluster(
    tmp_path: Path, mosquitto: Mosquitto, postgres_url: str
) -> AsyncIterator[tuple[Start, Callable[[Gateway], Awaitable[None]]]]:
    files = write_communities(tmp_path / "communities", SITES, {"smoke": 2, "sos": 1})
    running: dict[int, asyncio.Task[None]] = {}

    async def start(instance: str) -> Gateway:
        settings = Settings(
            mode="development",
            data_dir=tmp_path / instance,
            community_files=files,
            mqtt={"url": mosquitto.url, "client_id": "gw"},
            database={"url": postgres_url},
            timeseries={"backend": "embedded"},
            ingest={"flush_interval_ms": 50},
            api={"port": 0, "metrics_token": TOKEN},
            alerting={"startup_grace_s": 0, "tick_interval_ms": 100},
            cluster={"enabled": True, "instance_id": instance, "lease_s": 3, "renew_s": 0.5},
        )
        gateway = Gateway(settings)
        task = asyncio.create_task(gateway.run())
        running[id(gateway)] = task
        ready = asyncio.create_task(gateway.ready.wait())
        done, _ = await asyncio.wait({ready, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            await task
        assert ready in done
        return gateway

    async def stop(gateway: Gateway) -> None:
        task = running.pop(id(gateway))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    yield start, stop
    for task in running.values():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def owned(gw: Gateway) -> set[str]:
    assert gw.cluster is not None
    return set(gw.cluster.lease.held)


async def until(cond: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


def publisher(mosquitto: Mosquitto) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="devices")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    return client


async def sessions_up(gw: Gateway) -> None:
    assert gw.cluster is not None
    await until(
        lambda: bool(gw.cluster and gw.cluster.sessions)
        and all(m.connected.is_set() for m in gw.cluster.sessions),
        20,
        "partition sessions connected",
    )


async def sql(gw: Gateway, query: str, **params: Any) -> list[Any]:
    async with gw.sessions() as s:
        return list((await s.execute(text(query), params)).all())


async def test_each_site_is_handled_by_one_instance_and_a_clean_stop_hands_over(
    cluster: tuple[Start, Callable[[Gateway], Awaitable[None]]], mosquitto: Mosquitto
) -> None:
    start, stop = cluster
    a = await start("a")
    await until(lambda: len(owned(a)) == 3, 10, "a alone owns s01, s02 and _vendor")
    b = await start("b")
    await until(lambda: len(owned(a)) + len(owned(b)) == 3 and owned(b) != set(), 15, "b gets a share")
    await until(lambda: not owned(a) & owned(b) and len(owned(a) | owned(b)) == 3, 5, "disjoint")
    await sessions_up(a)
    await sessions_up(b)
    owner = {site: (a if site in owned(a) else b) for site in SITES}
    assert owner["s01"] is not owner["s02"]  # 3 partitions over 2 instances: one site each

    # /health and /metrics say which partitions each instance owns, since when, at which epoch.
    await until(lambda: bool(b.cluster and b.cluster.feed.connected), 10, "b listens")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        health = (await http.get(f"http://127.0.0.1:{b.api_port}/health")).json()
        metrics = (await http.get(f"http://127.0.0.1:{b.api_port}/metrics")).text
    cluster = health["components"]["cluster"]
    assert cluster["instance_id"] == "b" and cluster["status"] == "ok"
    assert set(cluster["partitions"]) == owned(b)
    assert all(p["epoch"] >= 1 and p["owned_for_s"] >= 0 for p in cluster["partitions"].values())
    assert cluster["live_instances"] == 2 and cluster["takeovers"] == 0
    assert any(c.startswith("gw-p-") for c in health["components"]["mqtt"]["connections"])
    assert 'safety_cluster_instance{instance_id="b"} 1.0' in metrics
    assert f"safety_cluster_partitions_owned {float(len(owned(b)))}" in metrics
    assert "safety_cluster_lease_age_seconds{partition=" in metrics

    devices = publisher(mosquitto)
    sent = {"s01": 0, "s02": 0}
    for site, count in (("s01", 30), ("s02", 17)):
        for seq in range(count):
            for d in site_devices(site, {"smoke": 1}):
                devices.publish(f"{d.topic}/telemetry", json.dumps(telemetry(d, seq, int(time.time() * 1000) - 1000 + seq)), qos=1)
                sent[site] += 1
    await until(
        lambda: a.ingest.stats.stored + b.ingest.stats.stored >= 47, 20, "every reading stored"
    )
    await asyncio.sleep(0.5)
    # Each instance stored exactly its own site's readings: nothing twice, nothing lost.
    assert owner["s01"].ingest.stats.stored == sent["s01"]
    assert owner["s02"].ingest.stats.stored == sent["s02"]

    # A clean stop hands its partitions over at once (well before the 3 s lease runs out).
    leaving, staying = owner["s01"], owner["s02"]
    t0 = time.monotonic()
    await stop(leaving)
    took = await until(lambda: len(owned(staying)) == 3, 10, "the other instance owns everything")
    assert time.monotonic() - t0 < 3.0, f"hand-over took {time.monotonic() - t0:.1f} s"
    assert staying.cluster is not None and staying.cluster.lease.stats.takeovers == 0
    await sessions_up(staying)
    before = staying.ingest.stats.stored
    for seq in range(100, 110):
        for d in site_devices("s01", {"smoke": 1}):
            devices.publish(f"{d.topic}/telemetry", json.dumps(telemetry(d, seq, int(time.time() * 1000) + seq)), qos=1)
    await until(lambda: staying.ingest.stats.stored >= before + 10, 10, "s01 handled by the new owner")
    devices.loop_stop()
    assert took < 3.0


async def test_an_alarm_raised_while_its_partition_has_no_owner_is_paged_once(
    cluster: tuple[Start, Callable[[Gateway], Awaitable[None]]], mosquitto: Mosquitto
) -> None:
    start, stop = cluster
    a = await start("a")
    await until(lambda: len(owned(a)) == 3, 10, "a owns everything")
    await sessions_up(a)
    await stop(a)  # nobody owns anything now; the partition sessions stay at the broker

    devices = publisher(mosquitto)
    smoke = site_devices("s01", {"smoke": 1})[0]
    body = {"ts": int(time.time() * 1000), "seq": 5, "event": "alarm", "smoke_dbm": 0.41}
    devices.publish(f"{smoke.topic}/event", json.dumps(body), qos=1).wait_for_publish(5)
    devices.loop_stop()

    b = await start("b")
    await until(lambda: len(owned(b)) == 3, 10, "b owns everything")

    async def opened() -> list[Any]:
        return await sql(b, "SELECT id FROM incident WHERE device_id = :d", d=smoke.id)

    t0 = time.monotonic()
    while not await opened():
        assert time.monotonic() - t0 < 20, "the queued alarm was not handled after takeover"
        await asyncio.sleep(0.2)
    [(incident_id,)] = await opened()
    await asyncio.sleep(1.0)  # time for a second (wrong) page to appear
    notified = await sql(
        b,
        "SELECT count(*) FROM incident_event WHERE incident_id = :i AND kind = 'notified'",
        i=incident_id,
    )
    assert notified == [(1,)]
    pages = await sql(
        b, "SELECT idempotency_key FROM delivery WHERE incident_id = :i", i=incident_id
    )
    assert pages and len(pages) == len({p[0] for p in pages})


async def test_every_instance_s_board_follows_the_incidents_of_every_partition(
    cluster: tuple[Start, Callable[[Gateway], Awaitable[None]]], mosquitto: Mosquitto
) -> None:
    start, _stop = cluster
    a = await start("a")
    await until(lambda: len(owned(a)) == 3, 10, "a owns everything")
    b = await start("b")
    await until(lambda: bool(owned(b)) and len(owned(a)) + len(owned(b)) == 3, 15, "b gets a share")
    await sessions_up(a)
    await sessions_up(b)
    site_of_a = next(s for s in SITES if s in owned(a))
    assert b.cluster is not None
    await until(lambda: bool(b.cluster and b.cluster.feed.connected), 10, "b listens")

    seen: list[Any] = []

    async def watch_b() -> None:
        async for event in b.live.subscribe():
            if event.kind == "incident":
                seen.append(event)

    watcher = asyncio.create_task(watch_b())
    await asyncio.sleep(0.1)
    devices = publisher(mosquitto)
    smoke = site_devices(site_of_a, {"smoke": 1})[0]
    body = {"ts": int(time.time() * 1000), "seq": 9, "event": "alarm", "smoke_dbm": 0.41}
    devices.publish(f"{smoke.topic}/event", json.dumps(body), qos=1).wait_for_publish(5)
    devices.loop_stop()
    # a (the owner) opens the incident; b's board gets it through the database's NOTIFY.
    await until(lambda: any(e.site == site_of_a for e in seen), 15, "b's board shows a's incident")
    watcher.cancel()
    assert seen[0].data["device_id"] == smoke.id
    assert b.cluster.feed.received >= 1

    # A device added through a's API (a does not own the site) is known to b, the owner, at
    # once: its first reading is stored, not quarantined as an unknown device.
    site_of_b = next(s for s in SITES if s in owned(b))
    async with a.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO devices (site, device_id, device_type, profile, grid_id, location, "
                "name, model, enabled) VALUES (:site, 'SD-NEW-1', 'smoke', 'native', :grid, "
                "'new', 'new', '', true)"
            ),
            {"site": site_of_b, "grid": f"{site_of_b}.g1"},
        )
    await a.registry.refresh()  # what the API does after an edit
    await until(lambda: b.registry.context(site_of_b, "SD-NEW-1") is not None, 10, "b knows it")
    new = site_devices(site_of_b, {"smoke": 1})[0]
    stored = b.ingest.stats.stored
    devices = publisher(mosquitto)
    reading = telemetry(new, 1, int(time.time() * 1000))
    devices.publish(f"safety/{site_of_b}/smoke/SD-NEW-1/telemetry", json.dumps(reading), qos=1)
    await until(lambda: b.ingest.stats.stored > stored, 10, "the new device's reading stored")
    devices.loop_stop()
    assert not b.quarantine.counts.get("unknown_device")
