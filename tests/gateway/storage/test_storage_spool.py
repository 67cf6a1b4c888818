"""SpoolingWriter: outage → batches on disk → replay in order when influxd returns; restarts."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from core.clock import ManualClock
from gateway.storage.config import TimeSeriesSettings
from gateway.storage.influx import Influx1Writer
from gateway.storage.spool import SpoolingWriter
from tests.gateway.storage.storage_helpers import T0, smoke
from tests.services import Influxd


def spooling(influxd: Influxd, db: str, spool: Path, clock: ManualClock, **kw: object):
    inner = Influx1Writer.from_settings(
        TimeSeriesSettings(backend="influxdb1", url=influxd.url, database=db, write_timeout_s=1)
    )
    return SpoolingWriter(
        inner,
        spool,
        max_bytes=kw.pop("max_bytes", 1 << 20),  # type: ignore[arg-type]
        max_age_s=60,
        clock=clock,
        write_timeout_s=1,
        retry_initial_s=0.05,
        retry_max_s=0.2,
        **kw,
    )  # type: ignore[arg-type]


def seqs(influxd: Influxd, db: str) -> list[int]:
    series = influxd.query('SELECT "seq" FROM "smoke"', db)["results"][0].get("series", [])
    return [row[1] for row in series[0]["values"]] if series else []


async def wait_empty(w: SpoolingWriter) -> None:
    async with asyncio.timeout(10):
        while w.stats().batches:
            await asyncio.sleep(0.02)


async def test_outage_spools_then_replays_in_order(influxd: Influxd, influx_db: str, tmp_path):
    clock = ManualClock(T0)
    w = spooling(influxd, influx_db, tmp_path / "spool", clock)
    await w.write([smoke(ts=T0, seq=0)])
    influxd.stop()
    try:
        for i in range(1, 6):
            await w.write([smoke(ts=T0 + i * 1000, seq=i * 10 + k) for k in range(3)])
        clock.advance(30_000)
        stats = w.stats()
        assert (stats.readings, stats.batches, stats.oldest_age_s) == (15, 5, 30.0)
        assert stats.bytes > 0
        assert not stats.over_limit
    finally:
        influxd.start()
    # store is back, but the spool is not empty: a new batch queues behind it (order).
    await w.write([smoke(ts=T0 + 9000, seq=99)])
    assert w.stats().batches == 6
    replay = asyncio.create_task(w.replay())
    await wait_empty(w)
    replay.cancel()
    assert seqs(influxd, influx_db) == [0, 12, 22, 32, 42, 52, 99]  # one point per ts (dedupe)
    assert list((tmp_path / "spool").iterdir()) == []
    await w.write([smoke(ts=T0 + 10_000, seq=100)])  # direct again
    assert w.stats().batches == 0
    await w.close()


async def test_spool_survives_restart(influxd: Influxd, influx_db: str, tmp_path):
    clock = ManualClock(T0)
    influxd.stop()
    try:
        first = spooling(influxd, influx_db, tmp_path / "spool", clock)
        await first.write([smoke(ts=T0 + i, seq=i) for i in range(100)])
        await first.write([smoke(ts=T0 + 100 + i, seq=100 + i) for i in range(50)])
        await first.close()  # the process ends
    finally:
        influxd.start()
    second = spooling(influxd, influx_db, tmp_path / "spool", clock)
    assert second.stats().readings == 150
    replay = asyncio.create_task(second.replay())
    await wait_empty(second)
    replay.cancel()
    assert seqs(influxd, influx_db) == list(range(150))
    await second.close()


async def test_torn_record_is_truncated_and_rest_replayed(influxd, influx_db, tmp_path):
    clock = ManualClock(T0)
    influxd.stop()
    try:
        w = spooling(influxd, influx_db, tmp_path / "spool", clock)
        await w.write([smoke(seq=1)])
        await w.close()
    finally:
        influxd.start()
    segment = next((tmp_path / "spool").iterdir())
    with segment.open("ab") as fh:
        fh.write(b"\x10\x00\x00")  # a crash in the middle of the next header
    w = spooling(influxd, influx_db, tmp_path / "spool", clock)
    assert w.stats().batches == 1
    replay = asyncio.create_task(w.replay())
    await wait_empty(w)
    replay.cancel()
    assert seqs(influxd, influx_db) == [1]
    await w.close()


async def test_over_limit_keeps_accepting_and_says_so(influxd, influx_db, tmp_path, caplog):
    clock = ManualClock(T0)
    w = spooling(influxd, influx_db, tmp_path / "spool", clock, max_bytes=200)
    influxd.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.storage.spool"):
            for i in range(5):
                await w.write([smoke(ts=T0 + i, seq=i) for _ in range(3)])
    finally:
        influxd.start()
    assert w.stats().over_limit
    assert w.stats().batches == 5
    assert len([r for r in caplog.records if "over its limit" in r.message]) == 1
    await w.close()


@pytest.mark.parametrize("slow_s", [0.5])
async def test_slow_store_counts_as_down(tmp_path, slow_s):
    class Slow:
        async def write(self, batch):
            await asyncio.sleep(slow_s)

        async def close(self):
            pass

    w = SpoolingWriter(
        Slow(), tmp_path, max_bytes=1 << 20, max_age_s=60, clock=ManualClock(), write_timeout_s=0.05
    )
    await w.write([smoke()])
    assert w.stats().readings == 1
    await w.close()
