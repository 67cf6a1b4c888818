"""EmbeddedStore (SQLite): write, dedupe, last, downsampled range."""

from __future__ import annotations

from gateway.storage import RangeBucket
from gateway.storage.embedded import EmbeddedStore
from tests.gateway.storage.storage_helpers import T0, alarm, smoke


async def test_write_dedupe_last_range(tmp_path):
    store = EmbeddedStore(tmp_path / "ts.sqlite3")
    batch = [smoke(ts=T0 + i * 10_000, seq=i, temp_c=20.0 + i, door=i % 3 == 0) for i in range(12)]
    batch.append(alarm(ts=T0 + 5_000, seq=100))
    batch.append(smoke("SD-2", temp_c=99.0))
    await store.write(batch)
    await store.write(batch[:3])  # redelivery
    # counter restarted after a reboot: old seq, new timestamp — a new reading, not a duplicate
    await store.write([smoke(ts=T0 + 115_000, seq=1, temp_c=40.0)])

    last = await store.last("demo", "SD-1")
    assert last["temp_c"] == (T0 + 115_000, 40.0)
    assert last["battery_pct"] == (T0 + 115_000, 90)
    assert last["door"] == (T0 + 110_000, False)
    assert last["event"] == (T0 + 5_000, "alarm")
    assert await store.last("demo", "nobody") == {}

    temps = await store.range("demo", "SD-1", "temp_c", T0, T0 + 120_000, 60_000)
    assert temps == [
        RangeBucket(T0, 6, 22.5, 20.0, 25.0, 25.0),
        RangeBucket(T0 + 60_000, 7, (26 + 27 + 28 + 29 + 30 + 31 + 40) / 7, 26.0, 40.0, 40.0),
    ]
    doors = await store.range("demo", "SD-1", "door", T0, T0 + 60_000, 60_000)
    assert doors == [RangeBucket(T0, 6, 2 / 6, 0.0, 1.0, False)]
    events = await store.range("demo", "SD-1", "event", T0, T0 + 120_000, 60_000)
    assert events == [RangeBucket(T0, 1, None, None, None, "alarm")]
    await store.close()


async def test_data_survives_reopen(tmp_path):
    store = EmbeddedStore(tmp_path / "ts.sqlite3")
    await store.write([smoke()])
    await store.close()
    again = EmbeddedStore(tmp_path / "ts.sqlite3")
    assert (await again.last("demo", "SD-1"))["temp_c"] == (T0, 21.5)
    await again.close()
