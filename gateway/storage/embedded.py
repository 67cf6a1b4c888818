"""The embedded time-series store: one SQLite file (WAL), written from a worker thread.

Layout (chosen by benchmarks/storage_bench.py): one ``readings`` row per reading with its
fields as JSON, keyed ``(site, device_id, ts_ms, kind, seq_key)`` WITHOUT ROWID so that the key
is both the dedupe constraint and the index every query walks; plus a ``latest`` table kept by
upsert so ``last()`` is a handful of key lookups however long the history is. A narrow table
(one row per field) wrote 5x slower for the same query speed.

Duplicates: ``INSERT OR IGNORE`` on that key. The key holds ``ts`` as well as ``seq``: a QoS 1
redelivery repeats both, while a device whose counter restarted after a reboot sends old ``seq``
values with new timestamps — keyed on ``seq`` alone those readings would be dropped as
"duplicates" for good.
"""

# ruff: noqa: S608 - only fixed SQL fragments are formatted in; values are bound parameters
from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from core.readings import FieldValue
from gateway.storage import RangeBucket, StorageRejected, StorageUnavailable, StoredReading

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
  site TEXT NOT NULL, device_id TEXT NOT NULL, ts_ms INTEGER NOT NULL, kind TEXT NOT NULL,
  seq_key INTEGER NOT NULL, event TEXT, fields TEXT NOT NULL,
  PRIMARY KEY (site, device_id, ts_ms, kind, seq_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
  site TEXT NOT NULL, device_id TEXT NOT NULL, field TEXT NOT NULL, ts_ms INTEGER NOT NULL,
  vtype INTEGER NOT NULL, num, txt TEXT,
  PRIMARY KEY (site, device_id, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
  site TEXT NOT NULL, device_id TEXT NOT NULL, device_type TEXT NOT NULL, grid TEXT NOT NULL,
  PRIMARY KEY (site, device_id)
) WITHOUT ROWID;
"""
_INSERT = "INSERT OR IGNORE INTO readings VALUES (?,?,?,?,?,?,?)"
_UPSERT_LATEST = (
    "INSERT INTO latest VALUES (?,?,?,?,?,?,?) ON CONFLICT (site, device_id, field) DO UPDATE "
    "SET ts_ms = excluded.ts_ms, vtype = excluded.vtype, num = excluded.num, txt = excluded.txt "
    "WHERE excluded.ts_ms >= latest.ts_ms"
)
_UPSERT_DEVICE = "INSERT OR REPLACE INTO devices VALUES (?,?,?,?)"
_FLOAT, _INT, _BOOL, _STR = 0, 1, 2, 3
_Latest = tuple[str, str, str, int, int, float | int | None, str | None]


def _encode(value: FieldValue) -> tuple[int, float | int | None, str | None]:
    if isinstance(value, bool):
        return _BOOL, int(value), None
    if isinstance(value, int):
        return _INT, value, None
    if isinstance(value, float):
        return _FLOAT, value, None
    return _STR, None, value


def _decode(vtype: int, num: Any, txt: str | None) -> FieldValue:
    if vtype == _STR:
        return txt or ""
    if vtype == _BOOL:
        return bool(num)
    return int(num) if vtype == _INT else float(num)


class EmbeddedStore:
    """SQLite time-series store; writes and reads each run on a thread of their own."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL", keep_latest: bool = True):
        self._path = path
        self._synchronous = synchronous
        self._keep_latest = keep_latest
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ts-write")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="ts-read")
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)

    def connect_sync(self) -> sqlite3.Connection:
        con = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        # WAL: readers never wait for the writer. NORMAL: a batch is safe against a process
        # crash; a power cut may lose the last batches (FULL fsyncs every commit; see bench).
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={self._synchronous}")
        con.execute("PRAGMA busy_timeout=5000")
        con.executescript(SCHEMA)
        return con

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self.connect_sync()
        return con

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        def call() -> T:
            return fn(self._con(), *args)

        return await asyncio.get_running_loop().run_in_executor(pool, call)

    # -- write -----------------------------------------------------------------------------

    async def write(self, batch: Sequence[StoredReading]) -> None:
        if not batch:
            return
        try:
            await self._run(self._writer, self.write_sync, batch)
        except sqlite3.OperationalError as exc:  # locked, disk full, I/O error, cannot open
            raise StorageUnavailable(f"embedded store {self._path}: {exc}") from exc
        except (sqlite3.Error, OverflowError, TypeError, ValueError) as exc:
            # The data itself cannot be bound or stored (a value past 64 bits, a string with
            # a lone surrogate): retrying cannot help; the caller finds the reading at fault.
            raise StorageRejected(f"embedded store refused the batch: {exc!r}"[:300]) from exc

    def write_sync(self, con: sqlite3.Connection, batch: Sequence[StoredReading]) -> None:
        rows = []
        newest: dict[tuple[str, str, str], _Latest] = {}
        devices = {}
        dumps = orjson.dumps
        for r, grid in batch:
            seq_key = -1 if r.seq is None else r.seq
            rows.append((r.site, r.device_id, r.ts_ms, r.kind, seq_key, r.event, dumps(r.fields)))
            devices[(r.site, r.device_id)] = (r.site, r.device_id, r.device_type, grid)
            if not self._keep_latest:
                continue
            items = list(r.fields.items())
            if r.event is not None:
                items.append(("event", r.event))
            for name, value in items:
                old = newest.get((r.site, r.device_id, name))
                if old is None or old[3] <= r.ts_ms:
                    newest[(r.site, r.device_id, name)] = (
                        r.site,
                        r.device_id,
                        name,
                        r.ts_ms,
                        *_encode(value),
                    )
        con.execute("BEGIN")
        try:
            con.executemany(_INSERT, rows)
            con.executemany(_UPSERT_LATEST, list(newest.values()))
            con.executemany(_UPSERT_DEVICE, list(devices.values()))
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    # -- query -----------------------------------------------------------------------------

    async def last(self, site: str, device_id: str) -> dict[str, tuple[int, FieldValue]]:
        return await self._run(self._reader, self.last_sync, site, device_id)

    def last_sync(
        self, con: sqlite3.Connection, site: str, device_id: str
    ) -> dict[str, tuple[int, FieldValue]]:
        if not self._keep_latest:  # the benchmark's alternative: merge the newest rows
            out: dict[str, tuple[int, FieldValue]] = {}
            for ts, event, fields in con.execute(
                "SELECT ts_ms, event, fields FROM readings WHERE site = ? AND device_id = ? "
                "ORDER BY ts_ms DESC LIMIT 500",
                (site, device_id),
            ):
                for name, value in orjson.loads(fields).items():
                    out.setdefault(name, (ts, value))
                if event is not None:
                    out.setdefault("event", (ts, event))
            return out
        sql = "SELECT field, ts_ms, vtype, num, txt FROM latest WHERE site = ? AND device_id = ?"
        return {
            field: (ts, _decode(vtype, num, txt))
            for field, ts, vtype, num, txt in con.execute(sql, (site, device_id))
        }

    async def range(
        self, site: str, device_id: str, field: str, start_ms: int, end_ms: int, every_ms: int
    ) -> list[RangeBucket]:
        return await self._run(
            self._reader, self.range_sync, site, device_id, field, start_ms, end_ms, every_ms
        )

    def range_sync(
        self,
        con: sqlite3.Connection,
        site: str,
        device_id: str,
        field: str,
        start_ms: int,
        end_ms: int,
        every_ms: int,
    ) -> list[RangeBucket]:
        if field == "event":
            value, vtype = "event", "'text'"
        else:
            path = '$."' + field.replace('"', '""') + '"'
            value, vtype = "json_extract(fields, :p)", "json_type(fields, :p)"
        sql = (
            f"SELECT (ts_ms / :e) * :e AS b, count(v), avg(v), min(v), max(v), v, t, max(ts_ms) "
            f"FROM (SELECT ts_ms, {value} AS v, {vtype} AS t FROM readings WHERE site = :s "
            "AND device_id = :d AND ts_ms >= :a AND ts_ms < :z) WHERE v IS NOT NULL GROUP BY b"
        )
        args = {"e": every_ms, "s": site, "d": device_id, "a": start_ms, "z": end_ms}
        if field != "event":
            args["p"] = path
        out = []
        for b, n, mean, lo, hi, _, t, _ in con.execute(sql, args):
            if t == "text":  # strings: only the count and the last value mean anything
                out.append(RangeBucket(b, n, None, None, None, None))
            else:  # JSON true/false extract as 1/0, so avg() is the fraction of True
                out.append(RangeBucket(b, n, _float(mean), _float(lo), _float(hi), None))
        # last per bucket: a second pass, because with several aggregates SQLite does not
        # promise which row bare columns come from (it does with a lone max()).
        lasts = {
            b: v if t in ("text", "real", "integer") else t == "true"
            for b, _, v, t in con.execute(
                f"SELECT (ts_ms / :e) * :e AS b, max(ts_ms), {value}, {vtype} FROM readings "
                "WHERE site = :s AND device_id = :d AND ts_ms >= :a AND ts_ms < :z "
                f"AND {value} IS NOT NULL GROUP BY b",
                args,
            )
        }
        return [bucket._replace(last=lasts.get(bucket.ts_ms)) for bucket in out]

    async def close(self) -> None:
        for pool in (self._writer, self._reader):
            await asyncio.get_running_loop().run_in_executor(pool, self._close_thread)
            pool.shutdown()

    def _close_thread(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
