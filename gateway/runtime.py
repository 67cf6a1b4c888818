"""Process-wide settings for a gateway that ingests all day (the wiring applies them once)."""

from __future__ import annotations

import gc

GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a process that ingests all day.

    Every message allocates a few container objects (the decoded dict, the fields, the
    reading), and batches of readings live a few hundred ms, so with the default thresholds
    (700, 10, 10) the collector runs every few messages and regularly walks the whole heap
    (registry, rules, SQLAlchemy and FastAPI objects): measured as a third of the hot path's
    CPU. Objects alive once start-up is done are frozen out of collection (they live as long
    as the process), and generation 0 is collected every 50,000 net allocations instead of
    700. Reference counting still frees almost everything at once; this only concerns cycles.
    Idempotent; called once the gateway has started.
    """
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    if threshold[0] < GC_GEN0_THRESHOLD:
        gc.set_threshold(GC_GEN0_THRESHOLD, threshold[1], threshold[2])
