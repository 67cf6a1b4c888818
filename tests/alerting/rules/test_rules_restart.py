"""Restart safety: pending durations, absence timers and firing alerts survive, nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from rules_support import FLEET, T0, ctx, play, reading, summary
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.models import AlertState
from alerting.rules import RuleEngine, load_rules
from alerting.state import SqlAlertStateStore, StateChange
from core.db import Base, make_engine, make_sessionmaker

RULES = load_rules()
S = 1000


@pytest.fixture
async def sessions(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(sqlite_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def boot(
    store: SqlAlertStateStore, devices: list[str], now: int, grace_ms: int
) -> RuleEngine:
    """What gateway/app.py does at start: restore, register the registry, open the grace."""
    engine = RuleEngine(RULES, grace_ms=grace_ms, store=store)
    await engine.load()
    for device in devices:
        engine.register_device(FLEET[device], now)
    engine.start(now)
    return engine


async def test_restart_resumes_duration_and_absence_and_fires_each_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = SqlAlertStateStore(sessions)
    first = await boot(store, ["CH-1"], T0, grace_ms=30 * S)
    found = play(first, [("T", 0, "CH-1", {"port": 1, "temp_c": 70})])
    assert summary(found) == [(0, "CH-1#1", "pending")]
    await first.persist()  # before acting on the pending transition
    del first  # the process dies at T0 + 1 s

    second = await boot(store, ["CH-1"], T0 + 60 * S, grace_ms=30 * S)
    fired: list[Any] = []
    for t in range(60, 400, 1):
        fired += second.tick(T0 + t * S)
        if fired:
            await second.persist()
    # The duration was saved promptly and resumes exactly; after a crash the offline timer
    # restarts at the restart (60 s), so it fires 5 minutes after it.
    assert summary(fired) == [(120, "CH-1#1", "firing"), (360, "CH-1", "firing")]
    assert fired[0].value == 70
    assert fired[0].reading_ts_ms == T0
    assert fired[0].actions == ("cut_power",)

    # Another restart: both alerts come back firing and are not emitted again.
    third = await boot(store, ["CH-1"], T0 + 500 * S, grace_ms=30 * S)
    assert {k for k, _ in third.firing()} == {
        ("charger.temp_high", "CH-1#1"),
        ("charger.offline", "CH-1"),
    }
    assert [tr for t in range(500, 5000, 10) for tr in third.tick(T0 + t * S)] == []
    back = third.on_reading(
        reading("CH-1", "telemetry", T0 + 5000 * S, port=1, temp_c=40), FLEET["CH-1"], T0 + 5000 * S
    )
    assert sorted((tr.rule_id, tr.state) for tr in back) == [
        ("charger.offline", AlertState.RESOLVED),
        ("charger.temp_high", AlertState.RESOLVED),
    ]


async def test_grace_period_prevents_an_offline_flood(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    gates = [ctx(f"G-{i:03d}", "gate") for i in range(100)]
    FLEET.update({g.device_id: g for g in gates})
    store = SqlAlertStateStore(sessions)
    first = await boot(store, [g.device_id for g in gates], T0, grace_ms=10 * 60 * S)
    await first.checkpoint(T0, clean=True)  # stopped cleanly

    # The gateway was down for an hour: every gate is overdue on paper.
    restart = T0 + 3600 * S
    second = await boot(store, [g.device_id for g in gates], restart, grace_ms=10 * 60 * S)
    assert second.tick(restart) == []
    for i, gate in enumerate(gates[:60]):  # most gates check in during the grace period
        now = restart + (i + 1) * 5 * S
        assert (
            second.on_reading(reading(gate.device_id, "telemetry", now, door_open=False), gate, now)
            == []
        )
        assert second.tick(now) == []
    found = second.tick(restart + 10 * 60 * S)
    assert len(found) == 40
    assert {tr.device_id for tr in found} == {g.device_id for g in gates[60:]}
    assert all(tr.rule_id == "gate.offline" for tr in found)
    assert second.tick(restart + 11 * 60 * S) == []


async def test_store_round_trip_and_delete(sessions: async_sessionmaker[AsyncSession]) -> None:
    store = SqlAlertStateStore(sessions)
    await store.save(
        [
            StateChange("r", "SD-1", {"status": "firing", "since_ms": 5}, T0),
            StateChange("r", "SD-2", {"status": "pending"}, T0),
        ]
    )
    await store.save(
        [
            StateChange("r", "SD-1", {"status": "firing", "since_ms": 6}, T0 + 1),
            StateChange("r", "SD-2", None, T0 + 1),
        ]
    )
    assert await store.load_all() == {("r", "SD-1"): {"status": "firing", "since_ms": 6}}


def test_dirty_snapshot_marks_only_what_matters() -> None:
    engine = RuleEngine(RULES, grace_ms=0)
    engine.register_device(FLEET["CH-1"], T0)
    assert engine.dirty_snapshot() == []  # a new offline timer waits for the checkpoint
    quiet = [
        reading("CH-1", "telemetry", T0 + i * S, port=1, temp_c=30, leak_ma=0) for i in range(1, 90)
    ]
    for r in quiet:  # quiet telemetry and absence bookkeeping: no prompt writes at all
        assert engine.on_reading(r, FLEET["CH-1"], r.ts_ms) == []
    assert engine.dirty_snapshot() == []
    # ... only the coarse checkpoint writes the last-seen time (and its marker row).
    assert [c.rule_id for c in engine.checkpoint_snapshot(T0 + 90 * S)] == [
        "charger.offline",
        "_engine",
    ]
    hot = reading("CH-1", "telemetry", T0 + 92 * S, port=1, temp_c=70)
    engine.on_reading(hot, FLEET["CH-1"], hot.ts_ms)
    [change] = engine.dirty_snapshot()
    assert (change.rule_id, change.subject, change.state["status"]) == (
        "charger.temp_high",
        "CH-1#1",
        "pending",
    )
    cool = reading("CH-1", "telemetry", T0 + 93 * S, port=1, temp_c=20)
    engine.on_reading(cool, FLEET["CH-1"], cool.ts_ms)
    [change] = engine.dirty_snapshot()
    assert change.state is None  # back to a blank ok: the row is deleted


async def test_failed_save_keeps_keys_dirty() -> None:
    class Broken:
        async def save(self, changes: Any) -> None:
            raise OSError("disk full")

        async def load_all(self) -> dict[Any, Any]:
            return {}

    engine = RuleEngine(RULES, grace_ms=0, store=Broken())
    engine.register_device(FLEET["SD-1"], T0)
    with pytest.raises(OSError, match="disk full"):
        await engine.checkpoint(T0)
    assert [c.subject for c in engine.dirty_snapshot()] == ["SD-1"]


def test_restore_drops_rows_of_removed_rules() -> None:
    engine = RuleEngine(RULES, grace_ms=0)
    engine.restore(
        {
            ("gone.rule", "SD-1"): {"status": "firing"},
            ("smoke.alarm", "SD-1"): {"status": "firing", "due_ms": T0 + S},
        }
    )
    assert [(c.rule_id, c.state) for c in engine.dirty_snapshot()] == [("gone.rule", None)]
    assert engine.next_due_ms() == T0 + S
