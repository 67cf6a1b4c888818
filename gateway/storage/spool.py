"""Store-and-forward: batches the store cannot take now wait on local disk, then replay in order.

On disk: append-only segment files ``seg-<n>.spool`` in ``spool_dir``; each record is one batch::

    <u32 payload length> <u32 readings> <u32 crc32> <i64 spooled_at_ms> <orjson payload>

written and fsync'ed before ``write()`` returns. A segment is deleted once every record in it
has been delivered. After a crash, a partly replayed segment is replayed again from its start:
harmless, because both stores keep a redelivered reading once (same series and timestamp).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, NamedTuple

import orjson

from core.clock import Clock
from core.readings import Reading
from gateway.storage import (
    StorageRejected,
    StorageUnavailable,
    StoredReading,
    TimeSeriesWriter,
    write_isolating,
)

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<IIIq")
_OVER_LIMIT_LOG_EVERY_MS = 60_000


class SpoolStats(NamedTuple):
    """What the spool holds right now (exported as metrics and shown on the health page)."""

    readings: int
    batches: int
    bytes: int
    oldest_age_s: float
    over_limit: bool
    rejected_readings: int
    corrupt_records: int


class _Record(NamedTuple):
    segment: int
    offset: int
    size: int
    readings: int
    spooled_at_ms: int


def encode_batch(batch: Sequence[StoredReading]) -> bytes:
    return orjson.dumps(
        [
            (
                r.site,
                r.device_type,
                r.device_id,
                r.kind,
                r.ts_ms,
                r.seq,
                r.fields,
                r.event,
                r.profile,
                grid,
            )
            for r, grid in batch
        ]
    )


def decode_batch(payload: bytes) -> list[StoredReading]:
    return [
        StoredReading(Reading(site, dtype, dev, kind, ts, seq, fields, event, profile), grid)
        for site, dtype, dev, kind, ts, seq, fields, event, profile, grid in orjson.loads(payload)
    ]


class SpoolingWriter:
    """Wraps a writer so that a returned ``write()`` always means durable: in the store or on disk.

    Start :meth:`replay` as a task in the application's TaskGroup; it drains the spool whenever
    the inner writer takes batches again. Calls to ``write()`` are serialized so order is kept.

    Limits: past ``max_bytes`` or ``max_age_s`` the spool does NOT drop data. Dropping the oldest
    readings would silently erase exactly the outage a fire investigation asks about; instead it
    keeps accepting, raises ``over_limit`` in :meth:`stats` and logs an error once a minute so
    an operator fixes InfluxDB or the disk. Only a full disk stops it, and then ``write()``
    raises ``StorageUnavailable`` so the caller knows the batch is not durable.
    """

    def __init__(
        self,
        inner: TimeSeriesWriter,
        spool_dir: Path,
        *,
        max_bytes: int,
        max_age_s: float,
        clock: Clock,
        write_timeout_s: float = 5.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        segment_max_bytes: int = 16 << 20,
        refused: Callable[[Reading, str], None] | None = None,
    ) -> None:
        self._inner = inner
        self._dir = spool_dir
        self._max_bytes = max_bytes
        self._max_age_ms = max_age_s * 1000
        self._clock = clock
        self._timeout_s = write_timeout_s
        self._retry = (retry_initial_s, retry_max_s)
        self._segment_max = segment_max_bytes
        # Where a spooled reading the store refuses on replay goes (the quarantine): the
        # rest of its batch is stored, and it is kept and visible rather than retried forever.
        self._refused = refused or _log_refused
        self._records: deque[_Record] = deque()
        self._bytes = 0
        self._readings = 0
        self._active: tuple[int, IO[bytes]] | None = None
        self._next_segment = 0
        self._write_lock = asyncio.Lock()
        self._disk_lock = asyncio.Lock()
        self._pending = asyncio.Event()
        self._last_limit_log_ms: int | None = None
        self._rejected = 0
        self._corrupt = 0
        self._corrupt_segments: set[int] = set()
        self._dir.mkdir(parents=True, exist_ok=True)
        self._load()

    # -- write path ----------------------------------------------------------------------

    async def write(self, batch: Sequence[StoredReading]) -> None:
        if not batch:
            return
        async with self._write_lock:
            # While anything is spooled, new batches queue behind it: replay keeps order.
            if not self._records:
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await self._inner.write(batch)
                except StorageRejected:
                    raise  # the caller finds the readings at fault (write_isolating)
                except (StorageUnavailable, TimeoutError) as exc:
                    log.warning("time-series store unavailable, spooling to disk: %s", exc)
                except Exception:
                    log.exception("unexpected error from the time-series writer; spooling")
                else:
                    return
            await self._append(encode_batch(batch), len(batch))

    async def _append(self, payload: bytes, readings: int) -> None:
        now = self._clock.now_ms()
        header = _HEADER.pack(len(payload), readings, zlib.crc32(payload), now)
        async with self._disk_lock:
            try:
                segment, offset = await asyncio.to_thread(self._append_sync, header + payload)
            except OSError as exc:
                raise StorageUnavailable(f"cannot spool to {self._dir}: {exc}") from exc
            self._records.append(
                _Record(segment, offset, len(header) + len(payload), readings, now)
            )
            self._bytes += len(header) + len(payload)
            self._readings += readings
            self._pending.set()
        self._check_limits()

    def _append_sync(self, data: bytes) -> tuple[int, int]:
        if self._active is None or self._active[1].tell() >= self._segment_max:
            self._close_active()
            segment = self._next_segment
            self._next_segment += 1
            self._active = (segment, open(self._path(segment), "ab"))  # noqa: SIM115
            _fsync_dir(self._dir)
        segment, fh = self._active
        offset = fh.tell()
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
        return segment, offset

    # -- replay --------------------------------------------------------------------------

    async def replay(self) -> None:
        """Forever: deliver spooled batches oldest first, backing off while the store is down."""
        delay = self._retry[0]
        while True:
            if not self._records:
                self._pending.clear()
                await self._pending.wait()
                continue
            record = self._records[0]
            payload = await asyncio.to_thread(self._read, record)
            if payload is None:
                self._corrupt += 1
                self._corrupt_segments.add(record.segment)
                log.error("spool record %s fails its checksum; segment kept as .corrupt", record)
                await self._consumed(record)
                continue
            batch = decode_batch(payload)
            try:
                async with asyncio.timeout(self._timeout_s):
                    refused = await write_isolating(self._inner, batch)
            except (StorageUnavailable, TimeoutError) as exc:
                log.info("replay waits %.1fs, store still unavailable: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry[1])
                continue
            if refused:
                self._rejected += len(refused)
                log.error("time-series store refused %d spooled readings", len(refused))
                for stored, why in refused:
                    self._refused(stored.reading, why)
            await self._consumed(record)
            delay = self._retry[0]

    def _read(self, record: _Record) -> bytes | None:
        with open(self._path(record.segment), "rb") as fh:
            fh.seek(record.offset)
            data = fh.read(record.size)
        length, _, crc, _ = _HEADER.unpack_from(data)
        payload = data[_HEADER.size :]
        if len(payload) != length or zlib.crc32(payload) != crc:
            return None
        return payload

    async def _consumed(self, record: _Record) -> None:
        async with self._disk_lock:
            self._records.popleft()
            self._bytes -= record.size
            self._readings -= record.readings
            if self._records and self._records[0].segment == record.segment:
                return
            if self._active is not None and self._active[0] == record.segment:
                self._close_active()
            path = self._path(record.segment)
            if record.segment in self._corrupt_segments:
                path.rename(path.with_suffix(".corrupt"))
            else:
                path.unlink(missing_ok=True)

    # -- state -----------------------------------------------------------------------------

    def stats(self) -> SpoolStats:
        oldest = self._records[0].spooled_at_ms if self._records else None
        age_s = (self._clock.now_ms() - oldest) / 1000 if oldest is not None else 0.0
        over = self._bytes > self._max_bytes or age_s * 1000 > self._max_age_ms
        return SpoolStats(
            self._readings,
            len(self._records),
            self._bytes,
            age_s,
            over,
            self._rejected,
            self._corrupt,
        )

    def _check_limits(self) -> None:
        stats = self.stats()
        if not stats.over_limit:
            return
        now = self._clock.now_ms()
        if self._last_limit_log_ms is None or now - self._last_limit_log_ms >= (
            _OVER_LIMIT_LOG_EVERY_MS
        ):
            self._last_limit_log_ms = now
            log.error(
                "time-series spool over its limit (%d readings, %d bytes of %d, oldest %.0fs of "
                "%.0fs); still accepting, nothing dropped — restore the store or add disk",
                stats.readings,
                stats.bytes,
                self._max_bytes,
                stats.oldest_age_s,
                self._max_age_ms / 1000,
            )

    async def close(self) -> None:
        """Close the segment file (every batch is already fsync'ed) and the inner writer."""
        async with self._disk_lock:
            self._close_active()
        await self._inner.close()

    def _close_active(self) -> None:
        if self._active is not None:
            self._active[1].close()
            self._active = None

    def _path(self, segment: int) -> Path:
        return self._dir / f"seg-{segment:012d}.spool"

    def _load(self) -> None:
        """Index the segments a previous run left, truncating a torn last record."""
        for path in sorted(self._dir.glob("seg-*.spool")):
            segment = int(path.stem.removeprefix("seg-"))
            self._next_segment = max(self._next_segment, segment + 1)
            with open(path, "r+b") as fh:
                offset = 0
                while header := fh.read(_HEADER.size):
                    if len(header) < _HEADER.size:
                        break
                    length, readings, _, spooled_at = _HEADER.unpack(header)
                    if len(fh.read(length)) < length:
                        break
                    size = _HEADER.size + length
                    self._records.append(_Record(segment, offset, size, readings, spooled_at))
                    self._bytes += size
                    self._readings += readings
                    offset += size
                if fh.seek(0, os.SEEK_END) != offset:
                    log.warning("spool segment %s ends in a torn record; truncated", path)
                    fh.truncate(offset)
            if offset == 0:
                path.unlink()
        if self._records:
            log.warning("spool holds %d readings from a previous run; replaying", self._readings)
            self._pending.set()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _log_refused(reading: Reading, why: str) -> None:
    log.error("refused reading of %s (%s %s) dropped: %s", reading.device_id, reading.kind,
              reading.ts_ms, why)
