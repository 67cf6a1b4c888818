"""Partition leases: each partition is owned by one live instance at a time.

Why a lease table and not PostgreSQL advisory locks:
- an advisory lock belongs to a database *connection*: with a connection pool (and pgbouncer)
  the connection that holds it can be recycled, broken or handed to other code, and the lock
  vanishes (or lingers) silently while the instance still believes it owns the partition;
- a lock cannot express "hand this partition over now" to a joining instance, nor let an
  instance see which partitions another holds and since when;
- it has no age and no counter for /health and /metrics;
- it gives no fencing token: a paused process that lost its lock cannot be told apart, in its
  own writes, from the owner. A lease row's ``epoch`` grows on every change of owner, and the
  owner's safety-relevant writes check it in their transaction (gateway/cluster/fence.py).

The protocol (every ``renew_s``, in short transactions, times from the database server):
1. heartbeat the instance row (membership: live = heartbeat within ``lease_s``);
2. renew own leases (``owner = me AND epoch = e``); a lease not renewed is lost: its work stops
   at once, without saving state over the new owner's;
3. compute the fair share among the live instances; release the surplus cleanly (stop work,
   flush, save the rule state, then free the row) so a joining instance takes it;
4. take free or expired partitions (``FOR UPDATE SKIP LOCKED``) up to the share; the epoch
   grows, and the new owner loads the partition's state from the database.
A clean shutdown releases everything and deletes the instance row, so the others take over
at their next renewal instead of after ``lease_s``. If the database cannot be reached for most
of a lease, the instance stops its partitions' work itself: by then another may own them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerting.scope import NotOwner
from gateway.cluster.partitions import fair_share

log = logging.getLogger(__name__)

class ShuttingDown(Exception):
    """Raised by a partition's start when this instance is stopping: the lease goes back
    at once, and that is no error."""


#: Start a partition's work (subscribe, load its state); raising gives the lease back.
StartWork = Callable[[str, int], Awaitable[None]]
#: Stop a partition's work; ``lost`` = another instance owns it already (save nothing).
StopWork = Callable[[str, bool], Awaitable[None]]


@dataclass
class Held:
    partition: str
    epoch: int
    acquired: float  # time.time() when taken (for the lease age shown on /health)
    renewed: float = field(default=0.0)


@dataclass
class LeaseStats:
    acquired: int = 0  # partitions taken, free or expired
    takeovers: int = 0  # of those, taken from an instance whose lease had expired
    released: int = 0  # given back cleanly (rebalance or shutdown)
    lost: int = 0  # found owned by another at renewal
    renew_failures: int = 0  # cycles the database could not be reached


_HEARTBEAT = text(
    """
    INSERT INTO gateway_instance (id, started_at, heartbeat_at) VALUES (:me, now(), now())
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
    """
)
_FORGET_DEAD = text(
    "DELETE FROM gateway_instance WHERE heartbeat_at < now() - make_interval(secs => :keep)"
)
_LIVE = text(
    "SELECT id FROM gateway_instance WHERE heartbeat_at >= now() - make_interval(secs => :lease)"
)
_ENSURE = text(
    "INSERT INTO partition_lease (partition, owner, epoch) VALUES (:p, NULL, 0) "
    "ON CONFLICT (partition) DO NOTHING"
)
_RENEW = text(
    """
    UPDATE partition_lease
       SET renewed_at = now(), expires_at = now() + make_interval(secs => :lease)
     WHERE owner = :me
    RETURNING partition, epoch
    """
)
_TAKE = text(
    """
    WITH candidate AS (
        SELECT partition, owner AS previous
          FROM partition_lease
         WHERE partition IN :wanted
           AND (owner IS NULL OR expires_at IS NULL OR expires_at < now())
         ORDER BY partition
         LIMIT :n
           FOR UPDATE SKIP LOCKED
    )
    UPDATE partition_lease AS p
       SET owner = :me, epoch = p.epoch + 1, acquired_at = now(), renewed_at = now(),
           expires_at = now() + make_interval(secs => :lease)
      FROM candidate
     WHERE p.partition = candidate.partition
    RETURNING p.partition, p.epoch, candidate.previous
    """
).bindparams(bindparam("wanted", expanding=True))
_RELEASE = text(
    """
    UPDATE partition_lease SET owner = NULL, expires_at = now()
     WHERE partition = :p AND owner = :me AND epoch = :epoch
    """
)
_ANNOUNCE = text("SELECT pg_notify('partition_lease', :me)")
_LEAVE = text("DELETE FROM gateway_instance WHERE id = :me")
_CHECK = text(
    "SELECT 1 FROM partition_lease WHERE partition = :p AND owner = :me AND epoch = :epoch "
    "AND expires_at > now() FOR SHARE"
)


async def _noop_start(partition: str, epoch: int) -> None:
    return None


async def _noop_stop(partition: str, lost: bool) -> None:
    return None


class LeaseManager:
    """Holds this instance's partition leases and runs the protocol above."""

    def __init__(
        self,
        db: AsyncEngine,
        instance_id: str,
        partitions: Callable[[], Awaitable[list[str]]],
        *,
        lease_s: float,
        renew_s: float,
        start_work: StartWork = _noop_start,
        stop_work: StopWork = _noop_stop,
    ) -> None:
        self._db = db
        self.instance_id = instance_id
        self._partitions = partitions
        self.lease_s = lease_s
        self.renew_s = renew_s
        self._start_work = start_work
        self._stop_work = stop_work
        self.held: dict[str, Held] = {}
        self.stats = LeaseStats()
        self.live: list[str] = []
        self.share = 0
        self._last_renewed = time.monotonic()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one cycle (or release) at a time
        self._known: frozenset[str] = frozenset()  # partitions whose rows surely exist

    # -- queries -------------------------------------------------------------------------------
    def owns(self, partition: str) -> bool:
        return partition in self.held

    def epoch(self, partition: str) -> int | None:
        held = self.held.get(partition)
        return held.epoch if held is not None else None

    async def check(self, conn: AsyncConnection, partition: str) -> None:
        """The fence: inside the caller's transaction, make sure this instance still holds
        ``partition`` at the epoch it works under, and keep the row share-locked until that
        transaction ends, so a takeover cannot commit in between. Raises :class:`NotOwner`."""
        held = self.held.get(partition)
        if held is None:
            raise NotOwner(f"partition {partition!r} is not owned by {self.instance_id}")
        found = await conn.scalar(
            _CHECK, {"p": partition, "me": self.instance_id, "epoch": held.epoch}
        )
        if found is None:
            raise NotOwner(
                f"partition {partition!r}: lease of {self.instance_id} at epoch {held.epoch} "
                "is gone (taken over or expired)"
            )

    def wake(self) -> None:
        """Run a cycle now (another instance released partitions)."""
        self._wake.set()

    # -- running -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Cycle every ``renew_s`` until ``stop`` (the owner then calls :meth:`release_all`
        once the rest of its shutdown allows)."""
        while not stop.is_set():
            try:
                await self.cycle()
            except Exception:
                self.stats.renew_failures += 1
                log.exception("lease cycle failed; retrying in %.1f s", self.renew_s)
                await self._self_fence()
            waits = {
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(stop.wait()),
            }
            _, pending = await asyncio.wait(
                waits, timeout=self.renew_s, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            self._wake.clear()

    async def cycle(self) -> None:
        async with self._lock:
            await self._cycle()

    async def _cycle(self) -> None:
        wanted = await self._partitions()
        async with self._db.begin() as conn:
            await conn.execute(_HEARTBEAT, {"me": self.instance_id})
            await conn.execute(_FORGET_DEAD, {"keep": self.lease_s * 10})
            if new := [p for p in wanted if p not in self._known]:
                await conn.execute(_ENSURE, [{"p": p} for p in new])
        self._known = frozenset(wanted)
        async with self._db.begin() as conn:
            result = await conn.execute(_RENEW, {"me": self.instance_id, "lease": self.lease_s})
            renewed: dict[str, int] = {row[0]: int(row[1]) for row in result}
            self.live = list((await conn.execute(_LIVE, {"lease": self.lease_s})).scalars())
        now = time.time()
        self._last_renewed = time.monotonic()
        for partition, held in list(self.held.items()):
            if renewed.get(partition) != held.epoch:
                self.stats.lost += 1
                log.error(
                    "partition %s: lease lost (another instance owns it); its work stops",
                    partition,
                )
                await self._stop(partition, lost=True)
            else:
                held.renewed = now
        # Rows owned here but unknown (a restart with the same id): give them back.
        for partition, epoch in renewed.items():
            if partition not in self.held:
                await self._free(partition, epoch)
        self.share = fair_share(len(wanted), self.live, self.instance_id)
        for partition in sorted(p for p in self.held if p not in wanted):
            await self.release(partition)
        surplus = len(self.held) - self.share
        for partition in sorted(self.held, reverse=True)[: max(surplus, 0)]:
            await self.release(partition)
        missing = self.share - len(self.held)
        if missing > 0:
            await self._take([p for p in wanted if p not in self.held], missing)

    async def _take(self, candidates: list[str], n: int) -> None:
        if not candidates:
            return
        async with self._db.begin() as conn:
            taken = (
                await conn.execute(
                    _TAKE,
                    {"wanted": candidates, "n": n, "me": self.instance_id, "lease": self.lease_s},
                )
            ).all()
        now = time.time()
        for partition, epoch, previous in taken:
            self.held[partition] = Held(partition, int(epoch), acquired=now, renewed=now)
            self.stats.acquired += 1
            if previous is not None and previous != self.instance_id:
                self.stats.takeovers += 1
            log.info(
                "partition %s taken (epoch %s%s)",
                partition,
                epoch,
                f", from {previous} whose lease expired" if previous else "",
            )
            try:
                await self._start_work(partition, int(epoch))
            except ShuttingDown:
                log.info("partition %s taken as this instance stops; lease given back", partition)
                await self._stop(partition, lost=False)
                await self._free(partition, int(epoch))
            except Exception:
                log.exception("partition %s: could not start its work; lease given back", partition)
                await self._stop(partition, lost=False)
                await self._free(partition, int(epoch))

    async def release(self, partition: str) -> None:
        """Hand a partition over cleanly: stop its work (flushed and saved), free the row."""
        held = self.held.get(partition)
        if held is None:
            return
        await self._stop(partition, lost=False)
        await self._free(partition, held.epoch)
        self.stats.released += 1
        log.info("partition %s released (epoch %s)", partition, held.epoch)

    async def release_all(self) -> None:
        """Clean shutdown: every partition handed over at once and the instance row gone, so
        the others need not wait for the leases to expire."""
        async with self._lock:
            for partition in sorted(self.held):
                try:
                    await self.release(partition)
                except Exception:
                    log.exception("partition %s: release failed; it expires instead", partition)
                    self.held.pop(partition, None)
            try:
                async with self._db.begin() as conn:
                    await conn.execute(_LEAVE, {"me": self.instance_id})
            except Exception:
                log.exception("could not remove the instance row; it ages out instead")

    async def _stop(self, partition: str, *, lost: bool) -> None:
        held = self.held.pop(partition, None)
        if held is None:
            return
        try:
            await self._stop_work(partition, lost)
        except Exception:
            log.exception("partition %s: stopping its work failed", partition)

    async def _free(self, partition: str, epoch: int) -> None:
        async with self._db.begin() as conn:
            await conn.execute(_RELEASE, {"p": partition, "me": self.instance_id, "epoch": epoch})
            # The others (gateway/cluster/feed.py) run their cycle now, not at the next tick.
            await conn.execute(_ANNOUNCE, {"me": self.instance_id[:63]})

    async def _self_fence(self) -> None:
        """The database was not reachable: past most of a lease, another instance may own our
        partitions, so their work stops here (nothing is acknowledged that is not stored; the
        broker keeps the rest for the next owner)."""
        if not self.held or time.monotonic() - self._last_renewed < self.lease_s * 0.8:
            return
        log.error("leases not renewed for %.0f s: stopping every partition's work", self.lease_s * 0.8)
        for partition in list(self.held):
            self.stats.lost += 1
            await self._stop(partition, lost=True)

    # -- reporting -----------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        now = time.time()
        return {
            "instance_id": self.instance_id,
            "live_instances": len(self.live),
            "fair_share": self.share,
            "partitions": {
                p: {
                    "epoch": h.epoch,
                    "owned_for_s": round(now - h.acquired, 1),
                    "renewed_s_ago": round(now - h.renewed, 1),
                }
                for p, h in sorted(self.held.items())
            },
            "last_renewed_s_ago": round(time.monotonic() - self._last_renewed, 1),
            **vars(self.stats),
        }
