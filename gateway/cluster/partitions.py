"""Which partition a site belongs to, and how many partitions an instance should own.

Pure functions of the site codes and ``cluster.partitions``: every instance computes the same
answer without talking to the others.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Literal

#: The partition of the vendor formats (Alink, IoTDA …): their topics carry no site, so one
#: owner subscribes to them all and evaluates those devices' rules. Site codes are
#: ``[a-z0-9-]``, so this name can never be a site's.
VENDOR = "_vendor"

Mode = Literal["site"] | int


def partition_of(site: str, mode: Mode) -> str:
    """``site`` itself, or its hash bucket ``b{n}`` (crc32: stable across processes and
    Python versions, unlike ``hash()``)."""
    if mode == "site":
        return site
    return f"b{zlib.crc32(site.encode()) % int(mode)}"


def partitions_for(sites: Iterable[str], mode: Mode) -> list[str]:
    """Every partition of a deployment, sorted, the vendor one included."""
    found = set(sites) if mode == "site" else {f"b{i}" for i in range(int(mode))}
    return [*sorted(found), VENDOR]


def sites_of(partition: str, sites: Iterable[str], mode: Mode) -> frozenset[str]:
    """The sites a partition covers (none for the vendor partition)."""
    return frozenset(s for s in sites if partition != VENDOR and partition_of(s, mode) == partition)


def fair_share(partitions: int, live: list[str], me: str) -> int:
    """How many partitions ``me`` should own among the ``live`` instances: the partitions
    split as evenly as they go (10 over 3 is 4, 3, 3), the larger shares to the first
    instances by id, so every instance computes the same split and the shares add up to
    exactly ``partitions`` (every partition gets an owner, nobody waits for one)."""
    ranked = sorted(set(live) | {me})
    base, extra = divmod(partitions, len(ranked))
    return base + (1 if ranked.index(me) < extra else 0)
