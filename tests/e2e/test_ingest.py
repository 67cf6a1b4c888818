"""Through a real broker: every profile's sample payloads end stored in InfluxDB or quarantined."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from core.readings import Rejection
from core.topics import is_downlink
from device_profiles import load_profiles
from tests.services import Influxd, Mosquitto


def publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1 and wait until the broker has acknowledged every message."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


async def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sample_payloads_of_every_profile_land_in_influxdb_or_quarantine(
    start_gateway,
    mosquitto: Mosquitto,
    influxd: Influxd,
    influx_db: str,  # type: ignore[no-untyped-def]
) -> None:
    gateway = await start_gateway(
        timeseries={"backend": "influxdb1", "url": influxd.url, "database": influx_db}
    )
    profiles = load_profiles()
    now = int(time.time() * 1000)
    messages = [(e.example.topic, e.payload_bytes()) for e in profiles.examples()]
    expected_points: set[tuple[str, str, int]] = set()
    expected_reasons: Counter[str] = Counter()
    commands = sum(is_downlink(topic) for topic, _ in messages)
    for topic, payload in messages:
        outcome = profiles.decode(topic, payload, now)
        if isinstance(outcome, Rejection) and is_downlink(topic):
            continue  # a command topic: counted as downlink traffic, not a device's uplink
        if isinstance(outcome, Rejection):
            expected_reasons[outcome.reason.value] += 1
        for r in outcome if isinstance(outcome, list) else []:
            ctx = gateway._lookup(r)
            assert ctx is not None, f"test community lacks {r.device_id}"
            expected_points.add((r.device_type, ctx.device_id, r.ts_ms))

    await asyncio.to_thread(publish_all, mosquitto.port, messages)

    async def all_accounted() -> bool:
        s = gateway.ingest.stats
        return (
            s.received - s.downlink >= len(messages) - commands
            and gateway.quarantine.pending == 0
            and (sum(gateway.quarantine.counts.values()) == sum(expected_reasons.values()))
            and s.stored + s.duplicates >= len(expected_points)
        )

    await wait_for(all_accounted, what="every message stored or quarantined")

    missing = []
    for measurement, device_id, ts in sorted(expected_points):
        # A payload without ``ts`` is stamped with the gateway's receive time, just after ``now``.
        when = f"time = {ts}ms" if ts != now else f"time >= {now}ms"
        out = influxd.query(
            f"SELECT * FROM \"{measurement}\" WHERE device = '{device_id}' AND {when}",
            influx_db,
        )
        if not out["results"][0].get("series"):
            missing.append((measurement, device_id, ts))
    assert missing == [], f"readings not in InfluxDB: {missing}"

    rows = await gateway.quarantine.recent(limit=1000)
    assert Counter(r.reason for r in rows) == expected_reasons
    assert all(r.detail for r in rows), "every quarantined message says why"
