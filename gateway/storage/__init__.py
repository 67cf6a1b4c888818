"""Time-series storage: the writer and query protocols every backend implements, and the factory.

Shape of a write: a batch of :class:`StoredReading` — the decoded :class:`Reading` plus the grid
the registry puts its device in (``Reading`` has no grid; the grid is a tag in the store so
reports can be cut per grid). A ``NamedTuple`` keeps the per-reading cost at one tuple.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from core.readings import FieldValue, Reading

if TYPE_CHECKING:
    from gateway.storage.config import TimeSeriesSettings

log = logging.getLogger(__name__)


class StoredReading(NamedTuple):
    """One reading on its way to the store, with the grid of its device."""

    reading: Reading
    grid: str


class RangeBucket(NamedTuple):
    """One downsampled bucket of one field, ``ts_ms`` = bucket start.

    Numbers: mean/min/max over the bucket. Booleans: ``mean`` is the fraction of ``True``,
    ``min``/``max`` are 0.0/1.0. Strings: only ``last`` and ``samples``.
    """

    ts_ms: int
    samples: int
    mean: float | None
    min: float | None
    max: float | None
    last: FieldValue | None


class StorageUnavailable(Exception):
    """The batch is NOT durable: the store could not take it (down, slow, disk full)."""


class StorageRejected(Exception):
    """The store refused the batch as invalid (e.g. a field type conflict); retrying won't help."""


class TimeSeriesWriter(Protocol):
    async def write(self, batch: Sequence[StoredReading]) -> None:
        """Store the batch; when this returns, it is durable. Raises StorageUnavailable."""
        ...

    async def close(self) -> None: ...


class TimeSeriesQuery(Protocol):
    async def last(self, site: str, device_id: str) -> dict[str, tuple[int, FieldValue]]:
        """Latest value of every field of a device: ``{field: (ts_ms, value)}``."""
        ...

    async def range(
        self, site: str, device_id: str, field: str, start_ms: int, end_ms: int, every_ms: int
    ) -> list[RangeBucket]:
        """Buckets of ``every_ms`` over ``[start_ms, end_ms)``; empty buckets are left out."""
        ...


class TimeSeriesStore(TimeSeriesWriter, TimeSeriesQuery, Protocol):
    """A backend that both writes and answers queries."""


async def write_isolating(
    writer: TimeSeriesWriter, batch: Sequence[StoredReading]
) -> list[tuple[StoredReading, str]]:
    """Write ``batch``; if the store refuses it for what it holds, write all but the readings
    at fault and return those with the store's reason.

    The refused readings are found by halving (a poison reading costs about 2·log2(n) extra
    writes; both stores keep a rewritten reading once). ``StorageUnavailable`` propagates: the
    whole batch is then the caller's to retry. Any other error is taken as a refusal too: a
    writer bug that one reading's data sets off must not stop every later reading.
    """
    try:
        await writer.write(batch)
    except StorageUnavailable:
        raise
    except StorageRejected as exc:
        reason = str(exc)
    except Exception as exc:
        log.exception("time-series writer failed on a batch of %d readings", len(batch))
        reason = f"writer error: {exc!r}"
    else:
        return []
    if len(batch) == 1:
        return [(batch[0], reason[:500])]
    half = len(batch) // 2
    return [
        *await write_isolating(writer, batch[:half]),
        *await write_isolating(writer, batch[half:]),
    ]


def build_store(settings: TimeSeriesSettings) -> TimeSeriesStore:
    """The backend chosen by ``settings.backend`` (not yet wrapped in a spool or batcher)."""
    if settings.backend == "embedded":
        from gateway.storage.embedded import EmbeddedStore

        return EmbeddedStore(settings.embedded_path)
    from gateway.storage.influx import Influx1Writer, Influx2Writer

    if settings.backend == "influxdb1":
        return Influx1Writer.from_settings(settings)
    return Influx2Writer.from_settings(settings)


__all__ = [
    "RangeBucket",
    "StorageRejected",
    "StorageUnavailable",
    "StoredReading",
    "TimeSeriesQuery",
    "TimeSeriesStore",
    "TimeSeriesWriter",
    "build_store",
    "write_isolating",
]
