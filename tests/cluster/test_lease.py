"""Partition leases on a real PostgreSQL: two or three lease managers (as several gateway
instances would run them) share partitions, take over an expired one, hand over at once on a
clean stop, rebalance when one joins, and the fence refuses a stale owner's write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.cluster.lease import LeaseManager, NotOwner
from gateway.cluster.partitions import VENDOR, fair_share, partition_of, partitions_for, sites_of
from gateway.migrations import runner as migrate

PARTS = ["s01", "s02", "s03", "s04", "s05", VENDOR]


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    await migrate.upgrade(postgres_url)
    engine = create_async_engine(postgres_url)
    yield engine
    await engine.dispose()


def manager(db: AsyncEngine, name: str, log: list[tuple[str, str, object]], **kw: float) -> LeaseManager:
    async def partitions() -> list[str]:
        return PARTS

    async def start(partition: str, epoch: int) -> None:
        log.append((name, "start", (partition, epoch)))

    async def stop(partition: str, lost: bool) -> None:
        log.append((name, "lost" if lost else "stop", partition))

    return LeaseManager(
        db,
        name,
        partitions,
        lease_s=kw.get("lease_s", 2.0),
        renew_s=kw.get("renew_s", 0.5),
        start_work=start,
        stop_work=stop,
    )


def test_partition_maths_is_stable_and_even() -> None:
    assert partition_of("s01", "site") == "s01"
    # crc32 buckets: the same in every process (hash() would differ per process).
    assert partition_of("s01", 4) == "b2" and partition_of("s02", 4) == "b0"
    assert partitions_for(["b", "a"], "site") == ["a", "b", VENDOR]
    assert partitions_for(["x"], 3) == ["b0", "b1", "b2", VENDOR]
    assert sites_of("b2", ["s01", "s02"], 4) == {"s01"}
    assert sites_of(VENDOR, ["s01"], "site") == frozenset()
    shares = [fair_share(10, ["c", "a", "b"], me) for me in "abc"]
    assert shares == [4, 3, 3] and sum(shares) == 10


async def test_two_instances_split_the_partitions_and_one_takes_over_when_the_other_dies(
    db: AsyncEngine,
) -> None:
    log: list[tuple[str, str, object]] = []
    a, b = manager(db, "a", log), manager(db, "b", log)
    await a.cycle()  # alone: a takes everything
    assert sorted(a.held) == sorted(PARTS)
    await b.cycle()  # b joins: a counts two live instances at its next cycle
    await a.cycle()  # a gives back its surplus
    await b.cycle()  # b takes it
    assert len(a.held) == 3 and len(b.held) == 3
    assert not set(a.held) & set(b.held)
    assert a.stats.released == 3 and b.stats.takeovers == 0

    # a dies (no more cycles): within lease_s + renew_s, b owns everything again.
    epochs = {p: a.epoch(p) for p in a.held}
    loop = asyncio.get_running_loop()
    started = loop.time()
    while len(b.held) < len(PARTS):
        assert loop.time() - started < a.lease_s + b.renew_s + 1.0, "takeover too slow"
        await asyncio.sleep(b.renew_s)
        await b.cycle()
    assert b.stats.takeovers == 3
    for p, e in epochs.items():
        assert b.epoch(p) == (e or 0) + 1  # the fencing token moved on

    # a wakes up (a long pause, not dead): its next renewal finds every lease lost and stops.
    await a.cycle()
    assert a.held == {}
    assert sorted(x[2] for x in log if x[0] == "a" and x[1] == "lost") == sorted(epochs)


async def test_a_clean_stop_hands_over_at_once(db: AsyncEngine) -> None:
    log: list[tuple[str, str, object]] = []
    a, b = manager(db, "a", log, lease_s=30.0), manager(db, "b", log, lease_s=30.0)
    for m in (a, b, a, b):
        await m.cycle()
    assert len(a.held) == 3
    await a.release_all()
    assert a.held == {}
    assert len([x for x in log if x[:2] == ("a", "stop")]) == 6  # 3 rebalanced, 3 at the stop
    await b.cycle()  # its next renewal: a's leases are free and a is no longer live
    assert sorted(b.held) == sorted(PARTS)
    assert b.stats.takeovers == 0  # handed over, not taken from a dead instance


async def test_a_third_instance_joining_gets_its_share(db: AsyncEngine) -> None:
    log: list[tuple[str, str, object]] = []
    a, b, c = (manager(db, n, log) for n in "abc")
    for m in (a, b, a, b):
        await m.cycle()
    assert (len(a.held), len(b.held)) == (3, 3)
    await c.cycle()
    for m in (a, b, c, a, b, c):
        await m.cycle()
    assert sorted(len(m.held) for m in (a, b, c)) == [2, 2, 2]
    owned = [p for m in (a, b, c) for p in m.held]
    assert sorted(owned) == sorted(PARTS)  # every partition exactly once


async def test_the_fence_refuses_a_stale_owner_and_holds_off_a_takeover(db: AsyncEngine) -> None:
    log: list[tuple[str, str, object]] = []
    a, b = manager(db, "a", log, lease_s=1.0, renew_s=0.3), manager(db, "b", log, lease_s=1.0, renew_s=0.3)
    await a.cycle()
    async with db.begin() as conn:
        await a.check(conn, "s01")  # the owner passes

    # a's lease expires while it is paused; b takes over (a still believes it owns s01).
    await asyncio.sleep(1.2)
    await b.cycle()
    assert b.owns("s01") and a.owns("s01")
    async with db.begin() as conn:
        with pytest.raises(NotOwner):
            await a.check(conn, "s01")  # before the write a stale owner must not make

    # While b's write holds the fence, a takeover waits for it to commit.
    c = manager(db, "c", log, lease_s=1.0, renew_s=0.3)
    async with db.begin() as conn:
        await b.check(conn, "s01")
        await asyncio.sleep(1.2)  # b's lease has expired meanwhile, but its row is share-locked
        take = asyncio.create_task(c.cycle())
        await asyncio.sleep(0.5)
        assert not c.owns("s01")
    await take
    assert not c.owns("s01")  # skipped, not stolen, while the owner's write was open
