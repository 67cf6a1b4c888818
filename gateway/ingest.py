"""Ingest: message → decode → Reading | Rejection; dedupe; fan out to rules (now) and storage (batched).

Every message ends stored or quarantined, and its QoS 1 acknowledgement goes out only after
that: the flusher writes a batch (time series + quarantine) and then acknowledges, in order,
every message the batch accounted for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from core import topics
from core.clock import Clock
from core.readings import DeviceContext, Reading, Rejection, RejectReason
from device_profiles import ProfileRegistry
from gateway.quarantine import Quarantine
from gateway.storage import StoredReading, TimeSeriesWriter, write_isolating

log = logging.getLogger(__name__)

DeviceLookup = Callable[[Reading], DeviceContext | None]
ReadingSink = Callable[[Reading, DeviceContext, int], None]  # reading, device, receive time
Acker = Callable[[list[int]], None]  # QoS 1 packet ids, in order of receipt

# Per device, the seqs seen recently. A QoS 1 redelivery arrives within the broker's inflight
# window, so a short memory per device is enough; the stores dedupe as well (InfluxDB by
# series + timestamp, the embedded store by a unique key), which covers a gateway restart.
DEDUPE_WINDOW = 64
MAX_TRACKED_DEVICES = 200_000
_stored = tuple.__new__  # StoredReading(reading, grid) without the NamedTuple's Python __new__


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    quarantined: int = 0
    duplicates: int = 0
    empty: int = 0  # vendor reports that carried nothing to store (liveness only)
    downlink: int = 0  # the gateway's own worker/command/status messages seen on safety/#
    batches: int = 0
    store_failures: int = 0
    last_batch_ms: int = 0


def _no_device_time(payload: bytes) -> int:
    """What stands in for the device's time when it sent none (the reading then carries the
    receive time, which differs on redelivery): the message itself, as a negative number that
    no device time can equal. Byte-identical with the same seq is the same message, or one
    that says nothing new. Alarm events never take this path: without a device time a repeat
    is stored and evaluated again, and the incident it belongs to absorbs it."""
    return -1 - (hash(payload) & 0x7FFF_FFFF_FFFF_FFFF)


class _SeqWindow(dict[int, int]):
    """The recent ``seq → ts`` of one device. A QoS 1 redelivery repeats both; a device that
    rebooted and restarted its counter repeats a seq with a new ts, and is not a duplicate
    (dropping its alarm as one would be the worst possible mistake)."""

    __slots__ = ()

    def remember(self, seq: int, ts_ms: int) -> None:
        """Note a new (seq, ts); the caller has checked ``get(seq) != ts_ms``."""
        self[seq] = ts_ms
        if len(self) > DEDUPE_WINDOW:
            del self[next(iter(self))]  # the oldest (dicts keep insertion order)


class Ingest:
    """The hot path. ``handle`` runs synchronously on the event loop for each message."""

    def __init__(
        self,
        profiles: ProfileRegistry,
        lookup: DeviceLookup,
        quarantine: Quarantine,
        writer: TimeSeriesWriter,
        clock: Clock,
        *,
        on_reading: ReadingSink | None = None,
        settled: Callable[[], Awaitable[object]] | None = None,
        batch_size: int = 5000,
        flush_interval_ms: int = 200,
        future_tolerance_ms: int = 300_000,
    ) -> None:
        self._profiles = profiles
        self._lookup = lookup
        self._quarantine = quarantine
        self._writer = writer
        self._clock = clock
        self._on_reading = on_reading
        # Awaited before acknowledging: the alert path has acted on what the batch set off.
        self._settled = settled
        # One acknowledgement list per MQTT connection the messages came in on.
        self._ackers: list[Acker] = []
        self._acks: list[list[int]] = []
        self._batch_size = batch_size
        self._flush_interval = flush_interval_ms / 1000
        self._future_tolerance_ms = future_tolerance_ms
        self._batch: list[StoredReading] = []
        self._seqs: dict[tuple[str, str], _SeqWindow] = {}
        self._full = asyncio.Event()
        self.stats = IngestStats()

    def connection(
        self, ack: Acker, *, owned_elsewhere: Callable[[str], bool] | None = None
    ) -> Callable[[str, bytes, int, int, bool], None]:
        """A message handler for one MQTT connection; its QoS 1 messages are acknowledged
        through ``ack`` once stored or quarantined. Topics ``owned_elsewhere`` are handled by
        another connection that receives them too (its own persistent session keeps its copy),
        so here they are only acknowledged."""
        channel = len(self._ackers)
        self._ackers.append(ack)
        self._acks.append([])

        def on_message(topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
            if owned_elsewhere is not None and owned_elsewhere(topic):
                if qos:
                    self._acks[channel].append(mid)
                return
            self.handle(topic, payload, qos, mid, retain, channel)

        return on_message

    # -- hot path -----------------------------------------------------------------------------
    def handle(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        mid: int = 0,
        retain: bool = False,
        channel: int = -1,
    ) -> None:
        now = self._clock.now_ms()
        self.stats.received += 1
        result = self._profiles.decode(
            topic, payload, now, future_tolerance_ms=self._future_tolerance_ms
        )
        if isinstance(result, Rejection):
            if result.reason is RejectReason.UNKNOWN_TOPIC and topics.is_downlink(topic):
                # The gateway's own downlink (worker apps, device commands, its status), seen
                # by a connection that subscribes to all of safety/#: counted, not quarantined.
                self.stats.downlink += 1
            else:
                self._reject(now, topic, payload, result)
        elif not result:
            self.stats.empty += 1
        else:
            for reading in result:
                self._accept(now, topic, payload, reading)
        if qos and channel >= 0:
            self._acks[channel].append(mid)
        if len(self._batch) >= self._batch_size:
            self._full.set()

    def _accept(self, now: int, topic: str, payload: bytes, reading: Reading) -> None:
        ctx = self._lookup(reading)
        if ctx is None:
            self._reject(
                now,
                topic,
                payload,
                Rejection(
                    RejectReason.UNKNOWN_DEVICE,
                    f"device {reading.device_id!r} of site {reading.site!r} is not in the registry",
                    topic,
                    reading.device_id,
                ),
            )
            return
        if ctx.device_type != reading.device_type:
            self._reject(
                now,
                topic,
                payload,
                Rejection(
                    RejectReason.TYPE_MISMATCH,
                    f"device {reading.device_id!r} is registered as {ctx.device_type}, "
                    f"not {reading.device_type}",
                    topic,
                    reading.device_id,
                ),
            )
            return
        if not reading.site or reading.device_id != ctx.device_id:
            # Vendor formats carry no site (and may carry a vendor identity): take the registry's.
            reading = replace(reading, site=ctx.site, device_id=ctx.device_id)
        seq = reading.seq
        if seq is not None:
            window = self._seqs.get((ctx.site, ctx.device_id))
            if window is None:
                window = self._window(ctx.site, ctx.device_id)
            mark = reading.ts_ms
            if mark == now and reading.kind != "event":
                mark = _no_device_time(payload)
            if window.get(seq) == mark:  # seen: a redelivery (see _SeqWindow)
                self.stats.duplicates += 1
                return
            window.remember(seq, mark)
        self._batch.append(_stored(StoredReading, (reading, ctx.grid_id)))
        if self._on_reading is not None:
            # Alarms are evaluated now, not after the time-series batch.
            self._on_reading(reading, ctx, now)

    def _window(self, site: str, device_id: str) -> _SeqWindow:
        window = self._seqs[(site, device_id)] = _SeqWindow()
        if len(self._seqs) > MAX_TRACKED_DEVICES:
            del self._seqs[next(iter(self._seqs))]  # the device first seen longest ago
        return window

    def _reject(self, now: int, topic: str, payload: bytes, rejection: Rejection) -> None:
        self.stats.quarantined += 1
        self._quarantine.add(now, topic, payload, rejection)

    # -- batching -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Flush batches until cancelled; the owner flushes once more at shutdown."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._flush_interval)
            await self.flush()

    async def flush(self) -> None:
        """Store the batch and quarantine, then acknowledge what they accounted for.

        If storing fails, the batch is kept and retried: nothing is acknowledged, so the broker
        keeps the messages too.
        """
        self._full.clear()
        if not self._batch and not any(self._acks) and not self._quarantine.pending:
            return
        batch, acks = self._batch, self._acks
        self._batch, self._acks = [], [[] for _ in self._ackers]
        delay = 0.2
        stored = 0
        while True:
            try:
                if batch:
                    refused = await write_isolating(self._writer, batch)
                    for reading, why in refused:
                        self._quarantine.refuse(self._clock.now_ms(), reading.reading, why)
                    stored, batch = len(batch) - len(refused), []
                await self._quarantine.flush()
                break
            except asyncio.CancelledError:
                self._batch = batch + self._batch
                # Connections added meanwhile (a partition taken over) have acks only in new.
                empty: list[int] = []
                self._acks = [
                    old + new
                    for old, new in itertools.zip_longest(acks, self._acks, fillvalue=empty)
                ]
                raise
            except Exception:
                # Only an unavailable store or database gets here (a refused reading was
                # quarantined above): keep everything and retry; the broker keeps it too.
                self.stats.store_failures += 1
                log.exception("storing a batch of %d readings failed; retrying", len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.stats.stored += stored
        self.stats.batches += 1
        self.stats.last_batch_ms = self._clock.now_ms()
        if self._settled is not None:
            # An alarm's message is forgotten by the broker only once its incident is open.
            await self._settled()
        # A connection added while this batch was stored has nothing in it.
        for ack, mids in zip(self._ackers[: len(acks)], acks, strict=True):
            if mids:
                ack(mids)
