"""Which sites this process runs the timed work of (escalations, device commands, loop
deadlines): all of them, or in a cluster the sites of the partitions it owns (gateway/cluster).
Read at every tick, so a partition taken over is worked at the next one."""

from __future__ import annotations

from collections.abc import Callable

#: The sites owned now; None = every site (a single gateway).
OwnedSites = Callable[[], frozenset[str] | None]


def every_site() -> frozenset[str] | None:
    return None
