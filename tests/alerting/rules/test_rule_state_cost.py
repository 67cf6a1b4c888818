"""Cheap rule state: last-seen times stay in memory between coarse checkpoints, and a crash
before a checkpoint neither raises a false offline nor loses a real one (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from rules_support import FLEET, T0, ctx, reading
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.models import AlertState
from alerting.rules import RuleEngine, load_rules
from alerting.rules.engine import REFRESH_REWRITE_MS
from alerting.state import SqlAlertStateStore
from core.readings import DeviceContext

RULES = load_rules()
S = 1000
MIN = 60 * S


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    from core.db import Base, make_engine, make_sessionmaker

    engine = make_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def boot(
    store: SqlAlertStateStore,
    devices: list[DeviceContext],
    now: int,
    *,
    grace_ms: int,
    checkpoint_ms: int = MIN,
) -> RuleEngine:
    """What gateway/app.py does at start."""
    engine = RuleEngine(RULES, grace_ms=grace_ms, store=store, checkpoint_ms=checkpoint_ms)
    await engine.load()
    for device in devices:
        engine.register_device(device, now)
    engine.start(now)
    return engine


def in_turn(fleet: list[DeviceContext], second: int, *, every_s: int) -> list[DeviceContext]:
    """The devices reporting at this second when each reports every ``every_s`` seconds,
    spread evenly over them."""
    return [d for i, d in enumerate(fleet) if i % every_s == second % every_s]


def heard(engine: RuleEngine, device: DeviceContext, now: int) -> list[object]:
    FLEET[device.device_id] = device
    r = reading(device.device_id, "telemetry", now, port=1, temp_c=30, leak_ma=0, power_w=200)
    return list(engine.on_reading(r, device, now))


async def test_crash_before_a_checkpoint_raises_no_false_offline_and_still_a_real_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Charger ports: offline after 5 minutes of silence. Both check in every 4 minutes.
    alive, dying = ctx("CH-ALIVE", "charger"), ctx("CH-DYING", "charger")
    store = SqlAlertStateStore(sessions)
    first = await boot(store, [alive, dying], T0, grace_ms=MIN, checkpoint_ms=3600 * S)
    for t in range(0, 10 * MIN, S):
        now = T0 + t
        assert first.tick(now) == []
        if t and t % (4 * MIN) == 0:
            assert heard(first, alive, now) == []
            assert heard(first, dying, now) == []
        await first.persist(now)  # the timer loop's once-a-second save
    # Both were heard at T0 + 8 min; the process dies at T0 + 10 min, never checkpointed:
    # the database still says "last heard at T0", overdue by 5 minutes on paper.
    del first

    restart = T0 + 10 * MIN + 5 * S
    second = await boot(store, [alive, dying], restart, grace_ms=MIN, checkpoint_ms=3600 * S)
    fired = []
    for t in range(restart, restart + 20 * MIN, S):
        fired += second.tick(t)
        if (t - T0) % (4 * MIN) == 0:  # the live one keeps its 4-minute rhythm; the other
            assert heard(second, alive, t) == []  # is dead
    assert [(tr.device_id, tr.rule_id, tr.state) for tr in fired] == [
        ("CH-DYING", "charger.offline", AlertState.FIRING)
    ]
    # Not before its true deadline (heard at T0 + 8 min), not later than grace + timeout.
    assert T0 + 13 * MIN <= fired[0].at_ms <= restart + MIN + 5 * MIN


async def test_clean_stop_keeps_exact_deadlines(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    gate = ctx("GT-CLEAN", "gate")
    store = SqlAlertStateStore(sessions)
    first = await boot(store, [gate], T0, grace_ms=0)
    heard(first, gate, T0 + 30 * S)
    await first.checkpoint(T0 + 40 * S, clean=True)
    second = await boot(store, [gate], T0 + 60 * S, grace_ms=0)
    fired = [tr for t in range(60, 20 * 60) for tr in second.tick(T0 + t * S)]
    assert [(tr.device_id, (tr.at_ms - T0) // S) for tr in fired] == [("GT-CLEAN", 30 + 15 * 60)]


async def test_save_count_does_not_grow_with_quietly_reporting_devices(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def run(prefix: str, devices: int) -> tuple[int, int, int]:
        fleet = [ctx(f"{prefix}-{i:04d}", "charger") for i in range(devices)]
        store = SqlAlertStateStore(sessions)
        engine = await boot(store, fleet, T0, grace_ms=0)
        saves = []
        for second in range(1, 5 * 60 + 1):
            now = T0 + second * S
            for device in in_turn(fleet, second, every_s=10):
                assert heard(engine, device, now) == []
            await engine.persist(now)
            saves.append(store.saves)
        between = saves[118] - saves[59]  # after the 60 s checkpoint, before the 120 s one
        return store.saves, between, engine.checkpoints

    small = await run("Q", 3)
    large = await run("L", 400)
    # Five minutes: one write per checkpoint (every 60 s), none in between, whatever the size.
    assert small == large == (5, 0, 5)


async def test_a_big_fleets_checkpoint_lets_other_work_run_while_it_is_built(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 devices' last-seen times are about half a second of serialising: built in one
    go, a fire alarm arriving meanwhile waited that long (fleet_bench with 100,000 devices)."""
    monkeypatch.setattr("alerting.rules.engine.CHECKPOINT_SLICE", 100)  # a smaller fleet
    fleet = [ctx(f"BIG-{i:05d}", "charger") for i in range(301)]
    engine = await boot(SqlAlertStateStore(sessions), fleet, T0, grace_ms=0)
    for device in fleet:
        assert heard(engine, device, T0 + S) == []
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    before = turns
    rows = await engine.checkpoint_snapshot_yielding(T0 + 2 * S)
    during = turns - before
    # A device heard while the checkpoint is built goes into the next one.
    assert heard(engine, fleet[0], T0 + 3 * S) == []
    other.cancel()
    assert during >= 3  # the loop ran between the slices
    written = {row.subject for row in rows if row.rule_id == "charger.offline"}
    assert len(written) == len(fleet)
    assert rows[-1].rule_id == "_engine"  # the marker, last
    later = engine.checkpoint_snapshot(T0 + 4 * S)
    assert [row.subject for row in later if row.rule_id == "charger.offline"] == [
        fleet[0].device_id
    ]


async def test_a_fleet_heard_every_few_seconds_is_not_rewritten_every_minute(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """With 100,000 devices every checkpoint rewrote all of them (3.6 s of gateway and
    PostgreSQL CPU a minute), and the first one after a first start wrote every new timer;
    a stored last-seen time is now rewritten once it is REFRESH_REWRITE_MS old, new timers
    are spread over that interval, and none is further behind than that plus one checkpoint."""
    fleet = [ctx(f"RW-{i:03d}", "charger") for i in range(300)]
    store = SqlAlertStateStore(sessions)
    engine = await boot(store, fleet, T0, grace_ms=0)
    last_heard = {d.device_id: T0 for d in fleet}
    per_checkpoint = []
    for second in range(1, 25 * 60 + 1):
        now = T0 + second * S
        for device in in_turn(fleet, second, every_s=20):
            assert heard(engine, device, now) == []
            last_heard[device.device_id] = now
        before = store.rows
        await engine.persist(now)
        if store.rows != before:
            per_checkpoint.append(store.rows - before - 1)  # less the marker row
            stored = await store.load_all()
            for device, at in last_heard.items():
                row = stored.get(("charger.offline", device))
                # A timer not written yet is as far behind as its registration.
                assert at - (row["last_ms"] if row else T0) <= REFRESH_REWRITE_MS + MIN
    # About a tenth of the fleet a minute, from the first checkpoint on (new timers spread too).
    assert len(per_checkpoint) == 25
    assert max(per_checkpoint) <= len(fleet) // 5
    assert sum(per_checkpoint[11:]) >= len(fleet)  # yet every device was rewritten again

    # A clean stop still writes every last-seen time exactly.
    await engine.checkpoint(T0 + 25 * MIN + S, clean=True)
    stored = await store.load_all()
    assert all(stored[("charger.offline", d)]["last_ms"] == t for d, t in last_heard.items())
