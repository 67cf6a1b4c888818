"""Influx1Writer against a real influxd (1.x): points, tags, dedupe, retention policy, queries."""

from __future__ import annotations

import time

import pytest

from core.readings import Reading
from gateway.storage import RangeBucket, StorageUnavailable, StoredReading
from gateway.storage.config import TimeSeriesSettings
from gateway.storage.influx import Influx1Writer
from gateway.storage.lineprotocol import LineEncoder
from tests.gateway.storage.storage_helpers import T0, alarm, bytes_kept_by_writes, smoke
from tests.services import Influxd


def writer(influxd: Influxd, db: str, **kw: object) -> Influx1Writer:
    settings = TimeSeriesSettings(backend="influxdb1", url=influxd.url, database=db, **kw)
    return Influx1Writer.from_settings(settings)


def rows(influxd: Influxd, q: str, db: str) -> list[dict[str, object]]:
    result = influxd.query(q, db)["results"][0]
    out = []
    for series in result.get("series", []):
        for values in series["values"]:
            out.append(dict(zip(series["columns"], values, strict=True)) | series.get("tags", {}))
    return out


async def test_points_carry_tags_fields_and_device_timestamp(influxd: Influxd, influx_db: str):
    w = writer(influxd, influx_db)
    charger = Reading(
        "demo",
        "charger",
        "CH 1",
        "telemetry",
        T0 + 5,
        7,
        {"port": 2, "state": 'char"ging', "power_w": 812.5, "leak_ma": 1.0},
    )
    await w.write([smoke(door=True), StoredReading(charger, "grid, A=1"), alarm(ts=T0 + 9, seq=2)])
    await w.close()

    got = rows(influxd, 'SELECT * FROM "smoke" GROUP BY *', influx_db)
    telemetry = next(r for r in got if r["kind"] == "telemetry")
    assert telemetry["time"] == "2025-11-24T16:00:00Z"
    assert (telemetry["site"], telemetry["grid"], telemetry["device"]) == ("demo", "g1", "SD-1")
    assert (telemetry["temp_c"], telemetry["battery_pct"], telemetry["door"]) == (21.5, 90, True)
    assert telemetry["seq"] == 1
    event = next(r for r in got if r["kind"] == "event")
    assert event["event"] == "alarm"
    ch = rows(influxd, 'SELECT * FROM "charger" GROUP BY *', influx_db)
    assert ch[0]["device"] == "CH 1"
    assert ch[0]["grid"] == "grid, A=1"
    assert ch[0]["port"] == "2"
    assert ch[0]["state"] == 'char"ging'
    assert ch[0]["power_w"] == 812.5


async def test_redelivered_reading_is_stored_once(influxd: Influxd, influx_db: str):
    w = writer(influxd, influx_db)
    await w.write([smoke(seq=1), smoke(ts=T0 + 1000, seq=2)])
    await w.write([smoke(seq=1)])  # QoS 1 redelivery
    await w.close()
    assert rows(influxd, 'SELECT count("temp_c") FROM "smoke"', influx_db)[0]["count"] == 2


async def test_retention_policy_is_used(influxd: Influxd, influx_db: str):
    influxd.query(
        f'CREATE RETENTION POLICY "week" ON "{influx_db}" DURATION 7d REPLICATION 1', influx_db
    )
    w = writer(influxd, influx_db, retention_policy="week")
    now = int(time.time() * 1000)  # a 7-day policy refuses points older than a week
    await w.write([smoke(ts=now)])
    assert rows(influxd, f'SELECT count("temp_c") FROM "{influx_db}"."week"."smoke"', influx_db)
    assert not rows(influxd, 'SELECT count("temp_c") FROM "autogen"."smoke"', influx_db)
    assert (await w.last("demo", "SD-1"))["temp_c"] == (now, 21.5)
    await w.close()


async def test_last_and_downsampled_range(influxd: Influxd, influx_db: str):
    w = writer(influxd, influx_db)
    batch = [smoke(ts=T0 + i * 10_000, seq=i, temp_c=20.0 + i, door=i % 3 == 0) for i in range(12)]
    batch.append(alarm(ts=T0 + 5_000, seq=100))
    batch.append(smoke("SD-2", temp_c=99.0))
    await w.write(batch)

    last = await w.last("demo", "SD-1")
    assert last["temp_c"] == (T0 + 110_000, 31.0)
    assert last["door"] == (T0 + 110_000, False)
    assert last["event"] == (T0 + 5_000, "alarm")
    assert "seq" not in last
    assert await w.last("demo", "nobody") == {}

    temps = await w.range("demo", "SD-1", "temp_c", T0, T0 + 120_000, 60_000)
    assert temps == [
        RangeBucket(T0, 6, 22.5, 20.0, 25.0, 25.0),
        RangeBucket(T0 + 60_000, 6, 28.5, 26.0, 31.0, 31.0),
    ]
    doors = await w.range("demo", "SD-1", "door", T0, T0 + 120_000, 60_000)
    assert doors[0] == RangeBucket(T0, 6, 2 / 6, 0.0, 1.0, False)
    events = await w.range("demo", "SD-1", "event", T0, T0 + 120_000, 60_000)
    assert events == [RangeBucket(T0, 1, None, None, None, "alarm")]
    await w.close()


async def test_unreachable_server_raises_unavailable():
    w = Influx1Writer.from_settings(
        TimeSeriesSettings(backend="influxdb1", url="http://127.0.0.1:9", write_timeout_s=1)
    )
    with pytest.raises(StorageUnavailable):
        await w.write([smoke()])
    await w.close()


async def test_a_written_batch_is_freed_without_waiting_for_the_garbage_collector(
    influxd: Influxd, influx_db: str
):
    # Under a backlog the cyclic collector seldom runs (the gateway makes it rare on purpose):
    # each request body must be freed by reference counting alone, or RSS climbs by a
    # megabyte per batch (seen in benchmarks/ingest_bench.py before this was fixed).
    batch = [smoke(device=f"SD-{i}", seq=i) for i in range(5000)]
    kept = await bytes_kept_by_writes(writer(influxd, influx_db), batch, 5)
    body = len(LineEncoder().encode(batch))  # the size of one request body
    assert body > 300_000
    assert kept < body, f"{kept} bytes still held after 5 writes of {body} bytes each"
