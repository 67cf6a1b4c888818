"""Reading many incidents without holding the event loop.

The gateway's API shares one event loop with the alarm path, and with SQLite the database
work runs inline on it. A month of a busy site is thousands of incidents: read in one query
and turned into rows in one go, that held the loop for ~90 ms (benchmarks/api_stall_bench.py,
3,000 incidents), and an alarm arriving meanwhile waited. Pages of ``PAGE`` rows, with a
turn of the loop between them, keep each stretch to a few milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.tables import IncidentRow

PAGE = 250
T = TypeVar("T")


async def incidents_opened(
    session: AsyncSession, start_ms: int, end_ms: int, *where: ColumnElement[bool]
) -> list[IncidentRow]:
    """Incidents opened in ``[start_ms, end_ms)`` that match ``where``, oldest first."""
    rows: list[IncidentRow] = []
    after: tuple[int, int] | None = None
    while True:
        q = select(IncidentRow).where(
            IncidentRow.opened_at_ms >= start_ms, IncidentRow.opened_at_ms < end_ms, *where
        )
        if after is not None:  # keyset paging: stable while incidents are being added
            q = q.where(
                or_(
                    IncidentRow.opened_at_ms > after[0],
                    and_(IncidentRow.opened_at_ms == after[0], IncidentRow.id > after[1]),
                )
            )
        page = list(
            await session.scalars(
                q.order_by(IncidentRow.opened_at_ms, IncidentRow.id).limit(PAGE)
            )
        )
        rows.extend(page)
        if len(page) < PAGE:
            return rows
        after = (page[-1].opened_at_ms, page[-1].id)
        await asyncio.sleep(0)


async def in_turns(items: Sequence[T], size: int = PAGE) -> AsyncIterator[Sequence[T]]:
    """``items`` in slices of ``size``, with a turn of the loop after each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
        await asyncio.sleep(0)
