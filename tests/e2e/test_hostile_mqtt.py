"""A hostile flood for every device profile through a real Mosquitto into a real gateway.

Every message of tests/e2e/hostile_corpus.py (oversize, not JSON, deep nesting, huge numbers,
NaN, a wrong type for every field, unknown fields, NUL and non-UTF-8 bytes in topics and
payloads, wildcards, topic injection — for the native smoke/sos/gate/charger contracts and
every vendor model) is published to the broker. Then, as an operator would see it:

- every message the broker passes on is quarantined with a reason that fits it, once, with its
  topic and payload kept; the broker refused the rest (wildcards, NUL or invalid UTF-8 in a
  topic, past its packet limit), and the gateway's own downlink topics are only counted;
- nothing of the flood was stored and it opened no incident;
- the gateway is healthy: connected, every component ok, no store or alerting failure;
- a valid alarm sent right after the flood, native and vendor, opens its incident within a
  few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml
from sqlalchemy import select

from alerting.incidents.tables import IncidentRow
from device_profiles import load_profiles
from gateway.quarantine import KEEP_PAYLOAD_BYTES, QuarantinedMessage
from simulators.mqtt import raw_publish
from tests.conftest import E2E_COMMUNITY
from tests.e2e.hostile_corpus import Hostile, corpus
from tests.services import Mosquitto

pytestmark = pytest.mark.slow

ALARM_WITHIN_S = 5.0


def _key(topic: str, payload: bytes) -> tuple[str, bytes, int]:
    """How a quarantined message is recognised: topic, the payload kept, its full size."""
    return topic, payload[:KEEP_PAYLOAD_BYTES], len(payload)


async def _refused_by_broker(mosquitto: Mosquitto, message: Hostile) -> bool:
    """Send a hand-built PUBLISH; True when the broker closed the connection on it."""
    topic = message.topic if isinstance(message.topic, bytes) else message.topic.encode()
    try:
        return await asyncio.to_thread(raw_publish, mosquitto.url, topic, message.payload)
    except OSError:  # reset while still sending a packet past its limit
        return True


async def _publish(mosquitto: Mosquitto, messages: list[Hostile]) -> list[str]:
    """Publish the flood (QoS 1, each acknowledged by the broker); what the broker did not
    refuse that it should have."""
    not_refused = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hostile-flood") as client:
        for m in messages:
            if not m.raw:
                await client.publish(m.topic_text, m.payload, qos=1)
    for m in messages:
        if m.raw and not await _refused_by_broker(mosquitto, m):
            not_refused.append(f"{m.profile} {m.attack} {m.topic!r}")
    return not_refused


async def _quarantined(gateway: Any) -> list[QuarantinedMessage]:
    async with gateway.sessions() as s:
        return list((await s.scalars(select(QuarantinedMessage))).all())


async def _incidents(gateway: Any) -> list[IncidentRow]:
    async with gateway.sessions() as s:
        return list((await s.scalars(select(IncidentRow))).all())


async def _settled(gateway: Any, expected: int, timeout: float = 60.0) -> None:
    """Until the gateway has quarantined ``expected`` messages and written them down."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(gateway.quarantine.counts.values()) >= expected and not gateway.quarantine.pending:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # room for anything unexpected to arrive too
    while gateway.quarantine.pending:
        await asyncio.sleep(0.05)


def _check_quarantine(rows: list[QuarantinedMessage], flood: list[Hostile]) -> list[str]:
    """Each delivered message quarantined exactly once with a fitting reason; nothing else."""
    wanted = [m for m in flood if m.delivered and m.reasons]
    fits: dict[tuple[str, bytes, int], set[str]] = defaultdict(set)
    names: dict[tuple[str, bytes, int], str] = {}
    for m in wanted:
        key = _key(m.topic_text, m.payload)
        fits[key] |= m.reasons
        names.setdefault(key, f"{m.profile} {m.attack}")
    expected = Counter(_key(m.topic_text, m.payload) for m in wanted)
    got = Counter((r.topic, r.payload, r.payload_size) for r in rows)
    problems = [f"not quarantined ({n}x): {names[k]} {k[0]!r} {k[1][:80]!r}"
                for k, n in (expected - got).items()]
    problems += [f"quarantined, not expected ({n}x): {k[0]!r} {k[1][:80]!r}"
                 for k, n in (got - expected).items()]
    for r in rows:
        key = (r.topic, r.payload, r.payload_size)
        if key in fits and r.reason not in fits[key]:
            problems.append(f"{names[key]}: {r.reason} ({r.detail}), not one of {sorted(fits[key])}")
    return problems


async def test_hostile_flood_for_every_profile_is_quarantined_and_the_gateway_still_pages(
    start_gateway: Any, mosquitto: Mosquitto, db_url: str
) -> None:
    # On both relational stores: the quarantine keeps what PostgreSQL's text refuses too.
    gateway = await start_gateway(database={"url": db_url})
    assert gateway.db.url.get_backend_name() == db_url.split(":", 1)[0].split("+")[0]
    flood = corpus(load_profiles(), int(time.time() * 1000))
    covered = {m.profile for m in flood}
    assert covered >= {p.id for p in load_profiles().profiles()}, covered
    started = time.monotonic()

    not_refused = await _publish(mosquitto, flood)
    assert not not_refused, not_refused
    expected = sum(1 for m in flood if m.delivered and m.reasons)
    await _settled(gateway, expected)
    took = time.monotonic() - started

    rows = await _quarantined(gateway)
    problems = _check_quarantine(rows, flood)
    assert not problems, f"{len(problems)} problems, e.g.:\n" + "\n".join(problems[:40])
    assert sum(gateway.quarantine.counts.values()) == expected == len(rows)
    stats = gateway.ingest.stats
    downlink = sum(1 for m in flood if m.delivered and not m.reasons and not m.raw)
    assert stats.downlink >= downlink, stats
    assert stats.stored == 0 and stats.duplicates == 0, stats
    assert await _incidents(gateway) == [], "the flood opened an incident"

    health = gateway.health.components()
    assert {name: c["status"] for name, c in health.items()} == dict.fromkeys(health, "ok"), health
    assert stats.store_failures == 0 and gateway.alerts.failures == 0
    assert mosquitto.proc is not None and mosquitto.proc.poll() is None, "the broker died"
    print(f"{len(flood)} hostile messages, {expected} quarantined, in {took:.1f} s; "
          f"by reason {dict(gateway.quarantine.counts)}")

    # A real alarm right behind the flood, native and vendor, still opens its incident.
    now = int(time.time() * 1000)
    sent = time.monotonic()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="after-flood") as client:
        await client.publish("safety/demo/smoke/SD-0001/event",
                             b'{"ts": %d, "seq": 900001, "event": "alarm", "smoke_dbm": 0.4}' % now,
                             qos=1)
        await client.publish("/sys/a1SmkJs2024/SD_0301/thing/event/FireAlarm/post",
                             b'{"id": "900002", "params": {"value": {"SmokeConcentration": 0.35},'
                             b' "time": %d}}' % now, qos=1)
    opened: list[IncidentRow] = []
    while len(opened) < 2 and time.monotonic() - sent < ALARM_WITHIN_S:
        opened = await _incidents(gateway)
        await asyncio.sleep(0.05)
    assert sorted((i.device_id, i.rule_id) for i in opened) == [
        ("SD-0001", "smoke.alarm"), ("ali-smoke-1", "smoke.alarm")
    ], f"after {time.monotonic() - sent:.1f} s: {[(i.device_id, i.rule_id) for i in opened]}"
    assert gateway.health.components()["ingest"]["status"] == "ok"


async def test_a_vendor_device_cannot_raise_an_alarm_for_another_device(
    start_gateway: Any, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    community = yaml.safe_load(E2E_COMMUNITY.read_text(encoding="utf-8"))
    community["devices"].append(
        {"id": "hw-smoke-2", "type": "smoke", "building": "b02", "location": "2号楼 厨房",
         "profile": "huawei.smoke.ws2",
         "vendor_identity": "65f1c0a2e3b4d5c6a7b8c9d0_NB306-0043"})
    path = tmp_path / "community.yaml"
    path.write_text(yaml.safe_dump(community, allow_unicode=True), encoding="utf-8")
    gateway = await start_gateway(community_file=path)
    topic = "$oc/devices/65f1c0a2e3b4d5c6a7b8c9d0_NB306-0042/sys/events/up"
    payload = (b'{"object_device_id": "65f1c0a2e3b4d5c6a7b8c9d0_NB306-0043", "services": '
               b'[{"service_id": "Smoke", "event_type": "smoke_alarm"}]}')
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="nb306-0042") as client:
        await client.publish(topic, payload, qos=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if await _quarantined(gateway) or await _incidents(gateway):
            break
        await asyncio.sleep(0.05)
    assert [i.device_id for i in await _incidents(gateway)] == [], "an alarm for another device"
    assert [q.topic for q in await _quarantined(gateway)] == [topic]
