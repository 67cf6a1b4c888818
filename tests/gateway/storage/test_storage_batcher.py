"""ReadingBatcher: size and interval flushes, retry without loss."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.storage import StorageUnavailable, StoredReading
from gateway.storage.batcher import ReadingBatcher
from tests.gateway.storage.storage_helpers import smoke


class Recorder:
    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[int | None]] = []
        self.failures = failures

    async def write(self, batch: Sequence[StoredReading]) -> None:
        if self.failures:
            self.failures -= 1
            raise StorageUnavailable("disk full")
        self.batches.append([item.reading.seq for item in batch])

    async def close(self) -> None:
        pass


async def test_flushes_by_size_and_by_interval():
    rec = Recorder()
    batcher = ReadingBatcher(rec, batch_size=3, flush_interval_ms=50)
    task = asyncio.create_task(batcher.run())
    for i in range(4):
        item = smoke(seq=i)
        batcher.add(item.reading, item.grid)
    await asyncio.sleep(0.01)
    assert rec.batches == [[0, 1, 2]]  # full batch went out before the interval
    await asyncio.sleep(0.1)
    assert rec.batches == [[0, 1, 2], [3]]
    task.cancel()


async def test_unavailable_writer_keeps_the_batch(caplog):
    rec = Recorder(failures=1)
    batcher = ReadingBatcher(rec, batch_size=10, flush_interval_ms=10)
    item = smoke(seq=7)
    batcher.add(item.reading, item.grid)
    assert not await batcher.flush()
    assert batcher.pending == 1
    await batcher.close()
    assert rec.batches == [[7]]
