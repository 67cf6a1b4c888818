"""Reading factories shared by the storage tests."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

from core.readings import FieldValue, Reading
from gateway.storage import StoredReading, TimeSeriesWriter

T0 = 1_764_000_000_000


def smoke(
    device: str = "SD-1",
    ts: int = T0,
    seq: int | None = 1,
    site: str = "demo",
    grid: str = "g1",
    **fields: FieldValue,
) -> StoredReading:
    values: dict[str, FieldValue] = {"temp_c": 21.5, "battery_pct": 90}
    values.update(fields)
    return StoredReading(Reading(site, "smoke", device, "telemetry", ts, seq, values), grid)


def alarm(device: str = "SD-1", ts: int = T0, seq: int = 1) -> StoredReading:
    return StoredReading(Reading("demo", "smoke", device, "event", ts, seq, {}, "alarm"), "g1")


async def bytes_kept_by_writes(writer: TimeSeriesWriter, batch: list[StoredReading], times: int) -> int:
    """Memory still allocated after ``times`` writes of ``batch`` with the cyclic garbage
    collector off, as under a backlog (the gateway makes it rare on purpose): what reference
    counting alone did not free. One write first, so connections and caches already exist.
    Closes the writer."""
    await writer.write(batch)
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(times):
            await writer.write(batch)
        # A worker thread (gzip runs in one) wakes the loop with its result a moment before it
        # drops its own reference to the call's arguments: let it finish, so what is counted
        # is what stays held, not a body still on its way out of the thread.
        await asyncio.sleep(0.05)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()
        await writer.close()
