"""A reading a store refuses for its data is quarantined; the rest of its batch is stored and
acknowledged, and nothing is retried forever (which used to stop every later reading)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from core.clock import ManualClock
from core.db import Base, make_engine, make_sessionmaker
from core.readings import DeviceContext, Reading
from device_profiles import load_profiles
from gateway.ingest import Ingest
from gateway.quarantine import Quarantine, QuarantinedMessage
from gateway.storage import StoredReading, write_isolating
from gateway.storage.config import TimeSeriesSettings
from gateway.storage.embedded import EmbeddedStore
from gateway.storage.influx import Influx1Writer
from gateway.storage.spool import SpoolingWriter
from tests.gateway.storage.storage_helpers import T0, smoke
from tests.services import Influxd


async def test_the_embedded_store_keeps_a_batch_but_the_reading_it_cannot_hold(
    tmp_path: Path,
) -> None:
    store = EmbeddedStore(tmp_path / "ts.sqlite3")
    good = [smoke(f"SD-{i}", seq=i) for i in range(9)]
    # Past 64 bits: decode refuses this now, but a store must not be wedged by one anyway.
    poison = StoredReading(Reading("demo", "smoke", "SD-X", "event", T0, 2**64, {}, "alarm"), "g1")
    refused = await write_isolating(store, [*good[:4], poison, *good[4:]])
    assert [r.reading.device_id for r, _why in refused] == ["SD-X"]
    assert "too large" in refused[0][1]
    for i in range(9):
        assert (await store.last("demo", f"SD-{i}"))["temp_c"][1] == 21.5
    assert await store.last("demo", "SD-X") == {}
    await store.close()


def _telemetry(seq: int, **fields: object) -> bytes:
    return json.dumps({"ts": T0 + seq, "seq": seq, **fields}).encode()


async def test_influxdb_refusing_one_reading_quarantines_it_and_stores_the_rest(
    tmp_path: Path, influxd: Influxd, influx_db: str
) -> None:
    # An older tool wrote rssi_dbm into this database as a float: InfluxDB now refuses the
    # gateway's integer rssi_dbm ("field type conflict") — for that reading only.
    influxd.write_lines(influx_db, f"smoke,device=OLD rssi_dbm=-70.5 {T0}000000")
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    quarantine = Quarantine(make_sessionmaker(engine))
    clock = ManualClock(T0 + 60_000)
    writer = Influx1Writer.from_settings(
        TimeSeriesSettings(backend="influxdb1", url=influxd.url, database=influx_db)
    )
    spool = SpoolingWriter(writer, tmp_path / "spool", max_bytes=1 << 30, max_age_s=3600, clock=clock)
    detector = DeviceContext("demo", "SD-0001", "smoke", "g1")
    acked: list[int] = []
    ingest = Ingest(load_profiles(), lambda _r: detector, quarantine, spool, clock)
    handle = ingest.connection(acked.extend)
    topic = "safety/demo/smoke/SD-0001/telemetry"
    for seq in range(1, 11):
        fields = {"temp_c": 20.0 + seq}
        if seq == 6:
            fields["rssi_dbm"] = -71
        handle(topic, _telemetry(seq, **fields), 1, seq, False)
    await ingest.flush()

    assert acked == list(range(1, 11)), "every message is accounted for and acknowledged"
    assert ingest.stats.store_failures == 0, "a refusal is not retried"
    stored = influxd.query('SELECT count("temp_c") FROM "smoke"', influx_db)
    assert stored["results"][0]["series"][0]["values"][0][1] == 9
    async with make_sessionmaker(engine)() as s:
        kept = (await s.scalars(select(QuarantinedMessage))).all()
    assert [(q.reason, q.device_id, q.topic) for q in kept] == [("unstorable", "SD-0001", topic)]
    assert json.loads(kept[0].payload)["seq"] == 6
    assert "field type conflict" in kept[0].detail
    await spool.close()
    await engine.dispose()
