"""The SQLite driver that runs on the event loop, and its write-ahead-log checkpoints.

A write that finds the database held by another transaction must wait without stopping the
loop (the holder needs the loop to finish), then succeed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from core.db import make_engine, make_sessionmaker, sqlite_path, wal_checkpoint


class Ticker:
    """Counts event-loop turns: a loop blocked by a lock wait would stop counting."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.ticks += 1

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def _table(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
    await engine.dispose()


async def test_a_second_writer_waits_on_the_loop_for_a_transaction_that_yields(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    await _table(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    first_wrote = asyncio.Event()

    async def first() -> None:
        async with sessions.begin() as s:
            await s.execute(text("INSERT INTO t (who) VALUES ('first')"))
            first_wrote.set()
            await asyncio.sleep(0.3)  # holds the write lock across a turn of the loop

    async def second() -> float:
        await first_wrote.wait()
        started = time.monotonic()
        async with sessions.begin() as s:
            await s.execute(text("INSERT INTO t (who) VALUES ('second')"))
        return time.monotonic() - started

    with Ticker() as ticker:
        _, waited = await asyncio.gather(first(), second())
    async with sessions() as s:
        rows = (await s.execute(text("SELECT who FROM t ORDER BY id"))).scalars().all()
    await engine.dispose()
    assert rows == ["first", "second"]
    assert waited >= 0.25  # it did wait for the first to commit …
    assert ticker.ticks >= 20  # … while the loop kept running (0.3 s / 5 ms ≈ 60 turns)


async def test_a_write_waits_for_another_process_holding_the_database(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    url = f"sqlite+aiosqlite:///{path}"
    await _table(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    held = threading.Event()

    def other_process() -> None:
        con = sqlite3.connect(path)
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t (who) VALUES ('other')")
        held.set()
        time.sleep(0.4)
        con.commit()
        con.close()

    holder = threading.Thread(target=other_process)
    holder.start()
    await asyncio.to_thread(held.wait)
    with Ticker() as ticker:
        async with sessions.begin() as s:
            await s.execute(text("INSERT INTO t (who) VALUES ('gateway')"))
    await asyncio.to_thread(holder.join)
    async with sessions() as s:
        rows = (await s.execute(text("SELECT who FROM t ORDER BY id"))).scalars().all()
    await engine.dispose()
    assert rows == ["other", "gateway"]
    assert ticker.ticks >= 20


async def test_a_broken_statement_is_an_error_not_a_wait(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    await _table(url)
    engine = make_engine(url)
    async with asyncio.timeout(2):  # at once, not after the busy wait gives up
        with pytest.raises(Exception, match="no such table"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO missing VALUES (1)"))
    await engine.dispose()


async def test_the_write_ahead_log_is_checkpointed_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    url = f"sqlite+aiosqlite:///{path}"
    await _table(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as s:
        for i in range(500):
            await s.execute(text("INSERT INTO t (who) VALUES (:w)"), {"w": "x" * 200 + str(i)})
    async with sessions() as s:  # commits never checkpoint on the loop …
        assert (await s.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 0
    # … the log waits for a checkpoint in a thread
    busy, log_pages, done = await asyncio.to_thread(wal_checkpoint, str(path))
    assert busy == 0 and done == log_pages > 0
    await engine.dispose()
    assert sqlite_path(url) == str(path)
    assert sqlite_path("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_path("postgresql+asyncpg://u@h/db") is None
