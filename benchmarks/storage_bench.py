"""Storage write path figures: line-protocol cost, and SQLite layouts for the embedded store.

DuckDB is not installed here, so only SQLite variants are measured:
  json+latest    one row per reading, fields as JSON, plus a `latest` upsert table (CHOSEN,
                 gateway.storage.embedded.EmbeddedStore)
  json           the same without `latest`: `last` merges the device's newest rows
  narrow         one row per (reading, field), WITHOUT ROWID, `last` by GROUP BY field
all WAL with synchronous=NORMAL, and json+latest also with synchronous=FULL.

Run: .venv/bin/python benchmarks/storage_bench.py [readings]
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from core.readings import Reading
from gateway.storage import StoredReading
from gateway.storage.embedded import EmbeddedStore
from gateway.storage.lineprotocol import LineEncoder

BASE_TS = 1_764_000_000_000
BATCH = 5000


def readings(count: int, devices: int = 1000) -> list[StoredReading]:
    rng = random.Random(3)
    out = []
    for i in range(count):
        d = rng.randrange(devices)
        fields: dict[str, float | int | bool | str] = {
            "temp_c": round(rng.uniform(18, 30), 1),
            "battery_pct": rng.randrange(100),
            "rssi_dbm": -rng.randrange(40, 100),
            "smoke_dbm": round(rng.random() * 0.1, 3),
            "door_open": rng.random() < 0.1,
        }
        r = Reading("site-1", "smoke", f"SD-{d:05d}", "telemetry", BASE_TS + i * 10, i, fields)
        out.append(StoredReading(r, f"grid-{d % 20}"))
    return out


def bench_line_protocol(batch: list[StoredReading]) -> None:
    enc = LineEncoder()
    enc.encode(batch[:BATCH])  # warm the prefix cache, as a running gateway has
    t = time.perf_counter()
    body = enc.encode(batch)
    dt = time.perf_counter() - t
    print(
        f"line protocol: {dt / len(batch) * 1e6:.2f} µs/reading, "
        f"{len(body) / len(batch):.0f} B/reading ({len(batch)} readings)"
    )


NARROW = """
CREATE TABLE IF NOT EXISTS samples (
  site TEXT NOT NULL, device_id TEXT NOT NULL, field TEXT NOT NULL, ts_ms INTEGER NOT NULL,
  kind TEXT NOT NULL, seq_key INTEGER NOT NULL, num, txt TEXT,
  PRIMARY KEY (site, device_id, field, ts_ms, kind, seq_key)) WITHOUT ROWID;
"""


def narrow_write(con: sqlite3.Connection, batch: list[StoredReading]) -> None:
    rows = [
        (r.site, r.device_id, k, r.ts_ms, r.kind, r.seq, v, None)
        for r, _ in batch
        for k, v in r.fields.items()
    ]
    con.execute("BEGIN")
    con.executemany("INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?,?,?,?)", rows)
    con.execute("COMMIT")


def narrow_last(con: sqlite3.Connection, site: str, dev: str) -> list[tuple[object, ...]]:
    return con.execute(
        "SELECT field, max(ts_ms), num, txt FROM samples WHERE site=? AND device_id=? "
        "GROUP BY field",
        (site, dev),
    ).fetchall()


def narrow_range(
    con: sqlite3.Connection, site: str, dev: str, f: str, a: int, b: int, every: int
) -> list[tuple[object, ...]]:
    return con.execute(
        "SELECT (ts_ms / ?) * ? AS t, count(num), avg(num), min(num), max(num) FROM samples "
        "WHERE site=? AND device_id=? AND field=? AND ts_ms >= ? AND ts_ms < ? GROUP BY t",
        (every, every, site, dev, f, a, b),
    ).fetchall()


def timed(fn: Callable[[], object], repeat: int = 200) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat * 1e3


def bench_embedded(variant: str, data: list[StoredReading], synchronous: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ts.sqlite3"
        end = BASE_TS + len(data) * 10
        if variant == "narrow":
            con = sqlite3.connect(path, isolation_level=None)
            con.executescript(
                f"PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};" + NARROW
            )

            def write(b: list[StoredReading]) -> object:
                return narrow_write(con, b)

            def last() -> object:
                return narrow_last(con, "site-1", "SD-00007")

            def rng() -> object:
                return narrow_range(con, "site-1", "SD-00007", "temp_c", BASE_TS, end, 60_000)
        else:
            store = EmbeddedStore(
                path, synchronous=synchronous, keep_latest=variant == "json+latest"
            )
            con = store.connect_sync()

            def write(b: list[StoredReading]) -> object:
                return store.write_sync(con, b)

            def last() -> object:
                return store.last_sync(con, "site-1", "SD-00007")

            def rng() -> object:
                return store.range_sync(con, "site-1", "SD-00007", "temp_c", BASE_TS, end, 60_000)

        t = time.perf_counter()
        for i in range(0, len(data), BATCH):
            write(data[i : i + BATCH])
        dt = time.perf_counter() - t
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / len(data)
        dup = time.perf_counter()
        write(data[:BATCH])  # redelivery: all ignored
        dup_ms = (time.perf_counter() - dup) * 1e3
        print(
            f"{variant:14} sync={synchronous:6} write {len(data) / dt:>9,.0f} readings/s  "
            f"{size:5.0f} B/reading  dup batch {dup_ms:5.1f} ms  "
            f"last {timed(last):6.3f} ms  range(1 min buckets) {timed(rng, 50):6.2f} ms"
        )
        con.close()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    data = readings(count)
    bench_line_protocol(data)
    print(
        f"SQLite {sqlite3.sqlite_version}, {count} readings of 5 fields, 1000 devices, "
        f"batches of {BATCH}; last/range on one device (~{count // 1000} readings)"
    )
    for variant, sync in [
        ("json+latest", "NORMAL"),
        ("json+latest", "FULL"),
        ("json", "NORMAL"),
        ("narrow", "NORMAL"),
    ]:
        bench_embedded(variant, data, sync)


if __name__ == "__main__":
    main()
