"""Relational store: the declarative base every table derives from, engine and session factory.

SQLite by default (run inline on the event loop: :class:`InlineSqlite`), PostgreSQL (asyncpg)
by URL; the schema is created by Alembic
migrations (gateway/migrations).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import BigInteger, Integer, MetaData, event, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import QueuePool

log = logging.getLogger(__name__)

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


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
IdType = BigInteger().with_variant(Integer(), "sqlite")


def make_engine(url: str, *, application_name: str | None = None) -> AsyncEngine:
    """Create the async engine. SQLite runs inline on the event loop over one connection (see
    :class:`InlineSqlite`), in WAL mode with foreign keys; PostgreSQL goes through asyncpg,
    its connections named ``application_name`` (a cluster instance: the database's change
    notifications say which instance made a change)."""
    if url.startswith("sqlite"):
        path = make_url(url).database or ":memory:"

        async def connect() -> InlineSqlite:
            # timeout=0: SQLite's own lock wait would sleep on the event loop; InlineSqlite
            # waits for a busy database asynchronously instead.
            return InlineSqlite(sqlite3.connect(path, timeout=0, check_same_thread=False))

        engine = create_async_engine(url, async_creator=connect)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Checkpoints copy megabytes and fsync: not on the loop, in the middle of an alarm's
            # commit. The gateway runs them in a thread (wal_checkpoint); the last connection
            # to close checkpoints too.
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    if application_name:
        connect_args["server_settings"] = {"application_name": application_name[:63]}
    return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args)


#: The alarm pool's connections are named after the instance with this suffix (the cluster's
#: change feed knows its own instance's changes by that name).
ALARM_POOL_SUFFIX = "-alarms"


def make_alarm_engine(url: str, *, application_name: str | None = None) -> AsyncEngine | None:
    """A small PostgreSQL pool of its own for the alarm path (opening an incident and planning
    its first page), or ``None`` for SQLite (one inline connection serves everything).

    No ping on checkout: the pool's ping is three round trips (BEGIN, a query, ROLLBACK)
    before every alarm. A connection the database dropped fails the alarm's transaction at
    once instead, and the alarm path retries it on a fresh one (:func:`dropped`). Its few
    statements stay prepared on its own connections, not evicted by the API's many."""
    if url.startswith("sqlite"):
        return None
    name = f"{application_name or 'safety-gateway'}{ALARM_POOL_SUFFIX}"[:63]
    return create_async_engine(
        url,
        pool_size=2,
        max_overflow=4,
        pool_recycle=3600,
        connect_args={
            "server_settings": {"application_name": name},
            "prepared_statement_cache_size": 500,
        },
    )


async def warm(engine: AsyncEngine) -> None:
    """Open the pool's standing connections now, so the first alarm does not wait for a
    connection handshake."""
    size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
    connections = [await engine.connect() for _ in range(size)]
    for connection in connections:
        await connection.close()


class IdReserve:
    """Primary keys drawn from PostgreSQL's sequences ahead of use (PostgreSQL only).

    With ids in hand, the alarm path addresses a new incident and its pages (the page names its
    incident and delivery) before writing a row: the pages go out after the one query that
    decides whether to page, and the rows follow in the same transaction. Every INSERT is a
    round trip that waits for both processes to be scheduled on a busy box. An id drawn and
    never used is a gap in the sequence, nothing more. Taken from :meth:`take`, topped up in
    the background; when the reserve is short, the caller writes first as usual.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], tables: Iterable[str], *, block: int = 32
    ) -> None:
        self._sessions = sessions
        self._block = block
        self._ids: dict[str, collections.deque[int]] = {t: collections.deque() for t in tables}
        self._topping_up: asyncio.Task[None] | None = None
        self._filling = asyncio.Lock()  # one draw at a time, or two would both fill the gap

    def take(self, table: str, n: int = 1) -> list[int] | None:
        """``n`` ids of ``table``, or ``None`` if the reserve has fewer (then none are taken)."""
        ids = self._ids[table]
        taken = [ids.popleft() for _ in range(n)] if len(ids) >= n else None
        if len(ids) < self._block // 2:
            self._top_up()
        return taken

    def left(self, table: str) -> int:
        return len(self._ids[table])

    def _top_up(self) -> None:
        if self._topping_up is None or self._topping_up.done():
            self._topping_up = asyncio.get_running_loop().create_task(self._fill_logged())

    async def _fill_logged(self) -> None:
        try:
            await self.fill()
        except Exception:
            # Only the speed-up is lost: with no ids in hand the alarm path writes first.
            log.warning("drawing ids ahead from the database failed", exc_info=True)

    async def fill(self) -> None:
        """Top every table's reserve up to a block (one query per table)."""
        async with self._filling, self._sessions() as s:
            for table, ids in self._ids.items():
                want = self._block - len(ids)
                if want <= 0:
                    continue
                drawn = await s.scalars(
                    text(
                        "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                        "FROM generate_series(1, :n)"
                    ),
                    {"table": table, "n": want},
                )
                ids.extend(drawn)


class IdDraw:
    """The ids one alarm's opening takes from an :class:`IdReserve`, kept for its retry.

    Its pages name those ids before the rows are written. When the transaction is then cut
    (PostgreSQL restarts or fails over), :meth:`again` hands the same ids to the retry, so
    the incident on record is the one the worker's phone already shows, and acknowledging
    it there stops the ladder. Ids the retry does not ask for are a gap, nothing more.
    """

    def __init__(self, reserve: IdReserve) -> None:
        self._reserve = reserve
        self._taken: dict[str, list[int]] = {}
        self._again: dict[str, collections.deque[int]] = {}

    def take(self, table: str, n: int = 1) -> list[int] | None:
        """``n`` ids of ``table``: the failed attempt's first, else fresh ones from the reserve."""
        again = self._again.get(table)
        if again is not None and len(again) >= n:
            taken: list[int] | None = [again.popleft() for _ in range(n)]
        else:
            taken = self._reserve.take(table, n)
        if taken:
            self.note(table, taken)
        return taken

    def note(self, table: str, ids: list[int]) -> None:
        """Ids the pages may name: taken here, or given by a flush when the reserve was short."""
        self._taken.setdefault(table, []).extend(ids)

    def again(self) -> None:
        """The transaction that used the ids taken so far failed: offer them once more."""
        self._again = {table: collections.deque(ids) for table, ids in self._taken.items()}
        self._taken = {}


_RESERVE = "id_reserve"


def draw_ids_from(s: AsyncSession, source: IdReserve | IdDraw) -> None:
    """Let code in this session's transaction address new rows with ``source``'s ids."""
    s.info[_RESERVE] = source


def note_ids(s: AsyncSession, table: str, ids: list[int]) -> None:
    """Tell this session's :class:`IdDraw` (if any) the ids a flush gave new rows."""
    source: IdReserve | IdDraw | None = s.info.get(_RESERVE)
    if isinstance(source, IdDraw):
        source.note(table, ids)


def reserved_ids(s: AsyncSession, table: str, n: int = 1) -> list[int] | None:
    """``n`` ids for new rows of ``table`` if this session draws them ahead
    (:func:`draw_ids_from`) and has enough; otherwise ``None``: flush to get ids."""
    source: IdReserve | IdDraw | None = s.info.get(_RESERVE)
    return None if source is None else source.take(table, n)


def dropped(exc: BaseException) -> bool:
    """Did this database error come from a connection that was lost (and is now discarded)?
    Such a transaction did nothing and can be retried on a fresh connection."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


BUSY_WAIT_S = 30.0  # as long as a writer may keep the database before we give up


def _busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


async def _when_free(
    connection: sqlite3.Connection, run: Callable[[], Any], *, starts_tx: bool
) -> Any:
    """Run ``run``; while another connection has the database, wait on the loop and retry.

    In WAL mode only a transaction's first write (or a commit) can find the database busy;
    a first write that failed leaves nothing behind but an empty transaction, which is rolled
    back so the retry starts from a fresh snapshot.
    """
    delay, waited = 0.0005, 0.0
    while True:
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or waited >= BUSY_WAIT_S:
                raise
        if starts_tx and connection.in_transaction:
            connection.rollback()
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.05)


def sqlite_path(url: str) -> str | None:
    """The database file of a SQLite URL; None for other databases and in-memory ones."""
    if not url.startswith("sqlite"):
        return None
    path = make_url(url).database
    return path if path and path != ":memory:" else None


def wal_checkpoint(path: str) -> tuple[int, int, int]:
    """Copy the write-ahead log into the database file; PASSIVE never waits for or blocks
    readers and writers. Blocking: run it in a thread. Returns SQLite's (busy, log pages,
    pages checkpointed)."""
    con = sqlite3.connect(path, timeout=1)
    try:
        busy, log, done = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(log), int(done)
    finally:
        con.close()


async def keep_wal_short(path: str, every_s: float = 5.0) -> None:
    """Checkpoint the SQLite write-ahead log every ``every_s``, off the event loop, until
    cancelled (automatic checkpoints are off: they would run inline, mid-alarm)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(wal_checkpoint, path)
        except sqlite3.Error as exc:  # busy or gone for a moment: the next round retries
            log.warning("SQLite checkpoint failed: %s", exc)


class _InlineCursor:
    """aiosqlite's cursor interface over a plain ``sqlite3`` cursor, run inline."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self._conn = cursor.connection

    async def __aenter__(self) -> _InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> _InlineCursor:
        starts_tx = not self._conn.in_transaction
        await _when_free(
            self._conn, lambda: self._cursor.execute(sql, parameters), starts_tx=starts_tx
        )
        return self

    async def executemany(self, sql: str, seq: Iterable[Any]) -> _InlineCursor:
        rows = list(seq)
        starts_tx = not self._conn.in_transaction
        await _when_free(
            self._conn, lambda: self._cursor.executemany(sql, rows), starts_tx=starts_tx
        )
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _InlineQueue:
    """Stands in for aiosqlite's work queue (SQLAlchemy sets the isolation level through it)."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting caller
            future.set_exception(exc)


class InlineSqlite:
    """The aiosqlite connection interface, but every call runs at once on the calling thread.

    aiosqlite runs each statement on a helper thread and wakes the event loop for the result:
    three or four thread hand-offs per statement, forty for an alarm's transaction. On a
    2-core box busy with telemetry each hand-off waits for a CPU, which put the alarm path at
    tens of milliseconds (benchmarks/alarm_latency.py). SQLite statements here take micro- to
    milliseconds, so running them inline is faster. What must not happen inline is SQLite's
    own wait for a lock another connection holds (it would stop the loop that connection
    needs to finish): connections open with no busy timeout and wait in :func:`_when_free`.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection
        self._tx = _InlineQueue()

    def cursor(self) -> _InlineCursor:
        return _InlineCursor(self._conn.cursor())

    async def commit(self) -> None:
        await _when_free(self._conn, self._conn.commit, starts_tx=False)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        self._connection = None
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._conn.isolation_level = value


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
