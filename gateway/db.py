"""Relational store: the declarative base every table derives from, engine and session factory.

SQLite (aiosqlite) by default, PostgreSQL (asyncpg) by URL; the schema is created by Alembic
migrations (gateway/migrations).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import MetaData, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names so migrations diff the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL and foreign keys on every connection."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class WriteTurns:
    """Turns at the database for the writers of one process, alarms first.

    SQLite has one writer at a time; a second connection that finds the lock taken sleeps and
    retries (1, 2, 5, 10 … ms), which put tens of milliseconds on an alarm that met a routine
    write. Writers that take turns here never meet inside SQLite, and an alarm waits at most for
    the routine write already under way (those are kept small). Harmless on PostgreSQL.
    """

    def __init__(self) -> None:
        self._busy = False
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()
        self._routine: collections.deque[asyncio.Future[None]] = collections.deque()

    @contextlib.asynccontextmanager
    async def urgent(self) -> AsyncIterator[None]:
        """An alarm's writes: go before any routine writer that is still waiting."""
        await self._take(self._urgent)
        try:
            yield
        finally:
            self._hand_on()

    @contextlib.asynccontextmanager
    async def routine(self) -> AsyncIterator[None]:
        """Bookkeeping writes (rule state, delivery outcomes, quarantine): after alarms."""
        await self._take(self._routine)
        try:
            yield
        finally:
            self._hand_on()

    async def _take(self, queue: collections.deque[asyncio.Future[None]]) -> None:
        ahead = self._urgent if queue is self._urgent else (self._urgent or self._routine)
        if not self._busy and not ahead:
            self._busy = True
            return
        turn = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._hand_on()  # the turn came with the cancellation: pass it on
            else:
                queue.remove(turn)
            raise

    def _hand_on(self) -> None:
        """Give the turn to the next waiter (alarms first) or free it; never blocks."""
        for queue in (self._urgent, self._routine):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._busy = False
