"""Ingest stores a QoS 1 redelivery once, but never mistakes a rebooted device's alarm for one."""

from __future__ import annotations

import json
from pathlib import Path

from device_profiles import load_profiles
from gateway.clock import ManualClock
from gateway.db import Base, make_engine, make_sessionmaker
from gateway.envelope import DeviceContext, Reading
from gateway.ingest import Ingest
from gateway.quarantine import Quarantine
from gateway.storage.embedded import EmbeddedStore

SMOKE = DeviceContext(site="demo", device_id="SD-0001", device_type="smoke", grid_id="demo.g1")


async def _ingest(tmp_path: Path) -> tuple[Ingest, EmbeddedStore, list[Reading]]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    store = EmbeddedStore(tmp_path / "ts.sqlite3")
    seen: list[Reading] = []
    clock = ManualClock(1_764_000_000_000)
    ingest = Ingest(
        load_profiles(),
        lambda r: SMOKE if r.device_id == "SD-0001" else None,
        Quarantine(make_sessionmaker(engine)),
        store,
        clock,
        on_reading=lambda r, _ctx, _now: seen.append(r),
    )
    return ingest, store, seen


def _alarm(seq: int, ts: int) -> bytes:
    return json.dumps({"ts": ts, "seq": seq, "event": "alarm", "smoke_dbm": 0.4}).encode()


async def test_redelivery_is_stored_and_evaluated_once(tmp_path: Path) -> None:
    ingest, store, seen = await _ingest(tmp_path)
    for _ in range(3):  # the same message, delivered three times
        ingest.handle("safety/demo/smoke/SD-0001/event", _alarm(42, 1_764_000_000_000), 1, 7)
    await ingest.flush()
    assert [r.seq for r in seen] == [42], "the rules see the alarm once"
    assert ingest.stats.duplicates == 2
    assert ingest.stats.stored == 1
    await store.close()


async def test_a_rebooted_device_reusing_a_seq_is_not_a_duplicate(tmp_path: Path) -> None:
    ingest, store, seen = await _ingest(tmp_path)
    ingest.handle("safety/demo/smoke/SD-0001/event", _alarm(3, 1_764_000_000_000), 1, 1)
    # After a reboot the counter starts again; same seq, a new time: a new alarm.
    ingest.handle("safety/demo/smoke/SD-0001/event", _alarm(3, 1_764_000_090_000), 1, 2)
    await ingest.flush()
    assert [r.ts_ms for r in seen] == [1_764_000_000_000, 1_764_000_090_000]
    assert ingest.stats.duplicates == 0
    await store.close()
