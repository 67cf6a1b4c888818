"""A poison message (a value no store can hold) is quarantined at once, before and after a
restart, and never silences the detector that sent it or the readings of anyone else."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from alerting.incidents.tables import IncidentRow
from gateway.quarantine import QuarantinedMessage
from tests.e2e.test_alarm_path import publish
from tests.services import Mosquitto

POISON_SEQ = 2**63  # one past what SQLite, PostgreSQL and InfluxDB integers hold


async def _quarantined(gateway) -> list[QuarantinedMessage]:  # type: ignore[no-untyped-def]
    async with gateway.sessions() as s:
        return list((await s.scalars(select(QuarantinedMessage))).all())


async def _incidents(gateway) -> list[IncidentRow]:  # type: ignore[no-untyped-def]
    async with gateway.sessions() as s:
        return list((await s.scalars(select(IncidentRow))).all())


async def test_an_alarm_with_a_seq_past_64_bits_is_quarantined_and_the_next_alarm_pages(
    start_gateway,
    mosquitto: Mosquitto,  # type: ignore[no-untyped-def]
) -> None:
    gateway = await start_gateway()
    now = int(time.time() * 1000)
    topic = "safety/demo/smoke/SD-0001/event"
    await publish(mosquitto.port, topic, {"ts": now, "seq": POISON_SEQ, "event": "alarm"})
    # Another detector's telemetry right behind it must still be stored.
    await publish(
        mosquitto.port,
        "safety/demo/smoke/SD-0003/telemetry",
        {"ts": now, "seq": 7, "smoke_dbm": 0.01, "temp_c": 21.5, "battery_pct": 88},
    )
    found: list[QuarantinedMessage] = []

    async def poison_kept() -> None:
        while not found:
            found.extend(q for q in await _quarantined(gateway) if q.topic == topic)
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poison_kept(), 15)
    assert found[0].reason == "out_of_range" and "seq" in found[0].detail

    async def stored(device: str) -> dict[str, object]:
        while not (last := await gateway.store.last("demo", device)):
            await asyncio.sleep(0.05)
        return last

    assert (await asyncio.wait_for(stored("SD-0003"), 15))["temp_c"][1] == 21.5  # type: ignore[index]
    assert await _incidents(gateway) == [], "the poison opened nothing"

    # The same detector's next, valid alarm is not silenced by the poison before it.
    await publish(mosquitto.port, topic, {"ts": now + 1000, "seq": 12, "event": "alarm"})
    incidents: list[IncidentRow] = []

    async def opened() -> None:
        while not incidents:
            incidents.extend(await _incidents(gateway))
            await asyncio.sleep(0.05)

    await asyncio.wait_for(opened(), 15)
    assert [(i.device_id, i.rule_id, i.reading_seq) for i in incidents] == [
        ("SD-0001", "smoke.alarm", 12)
    ]
    health = gateway.health.components()
    assert health["ingest"]["status"] == "ok", health


async def test_a_poison_message_redelivered_after_a_restart_is_quarantined_at_once(
    start_gateway,
    mosquitto: Mosquitto,  # type: ignore[no-untyped-def]
) -> None:
    gateway = await start_gateway(mqtt={"url": mosquitto.url, "client_id": "gw-poison"})
    # Stop it: the broker keeps its persistent session and queues what comes in meanwhile.
    await start_gateway.stop(gateway)
    now = int(time.time() * 1000)
    topic = "safety/demo/smoke/SD-0002/event"
    await publish(mosquitto.port, topic, {"ts": now, "seq": POISON_SEQ, "event": "alarm"})
    await publish(mosquitto.port, topic, {"ts": now + 1, "seq": 3, "event": "alarm"})

    again = await start_gateway(mqtt={"url": mosquitto.url, "client_id": "gw-poison"})
    incidents: list[IncidentRow] = []

    async def opened() -> None:
        while not incidents:
            incidents.extend(await _incidents(again))
            await asyncio.sleep(0.05)

    await asyncio.wait_for(opened(), 20)
    assert [(i.device_id, i.reading_seq) for i in incidents] == [("SD-0002", 3)]
    kept = [q for q in await _quarantined(again) if q.topic == topic]
    assert [q.reason for q in kept] == ["out_of_range"]
    assert again.ingest.stats.store_failures == 0
