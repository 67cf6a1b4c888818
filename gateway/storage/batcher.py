"""The event-loop side of the write path: collect readings, hand batches to the writer.

``add()`` is a list append (well under a µs), so ingest never waits on storage; ``run()``
flushes every ``flush_interval_ms`` or as soon as ``batch_size`` readings are waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.envelope import Reading
from gateway.storage import StorageUnavailable, StoredReading, TimeSeriesWriter

log = logging.getLogger(__name__)


class ReadingBatcher:
    """Batches readings for a writer (normally a ``SpoolingWriter``); never drops a batch.

    If the writer cannot make a batch durable (spool disk full), the batch goes back to the
    front of the queue and is retried a second later, with an error logged.
    """

    def __init__(
        self, writer: TimeSeriesWriter, *, batch_size: int, flush_interval_ms: int
    ) -> None:
        self._writer = writer
        self._batch_size = batch_size
        self._interval_s = flush_interval_ms / 1000
        self._buffer: list[StoredReading] = []
        self._full = asyncio.Event()
        self.written = 0

    def add(self, reading: Reading, grid: str) -> None:
        self._buffer.append(StoredReading(reading, grid))
        if len(self._buffer) >= self._batch_size:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def run(self) -> None:
        """Forever: flush on size or interval. Run it in the application's TaskGroup."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._full.wait()
            if not await self.flush():
                await asyncio.sleep(1.0)

    async def flush(self) -> bool:
        """Write what is waiting, in batches of at most ``batch_size``; False if it failed."""
        while self._buffer:
            self._full.clear()
            batch = self._buffer[: self._batch_size]
            del self._buffer[: self._batch_size]
            error: StorageUnavailable | None = None
            try:
                await self._writer.write(batch)
            except StorageUnavailable as exc:
                error = exc
            if error is not None:
                self._buffer[:0] = batch
                log.error("%d readings not yet durable, retrying: %s", len(self._buffer), error)
                return False
            self.written += len(batch)
            if len(self._buffer) < self._batch_size:
                break
        return True

    async def close(self) -> None:
        """Flush what is left (the caller then closes the writer)."""
        await self.flush()
