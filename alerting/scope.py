"""Which sites this process runs the timed work of (escalations, device commands, loop
deadlines): all of them, or in a cluster the sites of the partitions it owns (gateway/cluster).
Read at every tick, so a partition taken over is worked at the next one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

#: The sites owned now; None = every site (a single gateway).
OwnedSites = Callable[[], frozenset[str] | None]


def every_site() -> frozenset[str] | None:
    return None


class NotOwner(Exception):
    """This instance no longer holds the lease (at the epoch it works under) of the partition
    the work belongs to: another instance does that work now."""


#: Inside the caller's transaction, make sure this instance still owns ``site``'s partition
#: (and keep the lease row locked until the transaction ends); raises :class:`NotOwner`.
SiteFence = Callable[[AsyncSession, str], Awaitable[None]]


async def no_fence(session: AsyncSession, site: str) -> None:
    """A single gateway owns every site."""
