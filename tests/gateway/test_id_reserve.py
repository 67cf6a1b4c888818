"""Ids drawn ahead from PostgreSQL's sequences for the alarm path (core.db.IdReserve)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from core.db import IdReserve, make_engine, make_sessionmaker
from gateway.migrations import runner as migrate


async def test_drawn_ids_are_the_database_s_own_topped_up_behind_use_and_never_handed_out_twice(
    postgres_url: str,
) -> None:
    await migrate.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    try:
        reserve = IdReserve(sessions, ["incident", "delivery"], block=4)
        assert reserve.take("incident") is None, "nothing drawn yet: the caller writes first"
        await reserve.fill()
        assert reserve.left("incident") == reserve.left("delivery") == 4
        assert reserve.take("delivery", 5) is None, "short: none taken"
        assert reserve.left("delivery") == 4
        first = reserve.take("incident", 3)
        assert first is not None and len(set(first)) == 3
        # Below half a block: topped up in the background, without the caller waiting.
        for _ in range(100):
            if reserve.left("incident") == 4:
                break
            await asyncio.sleep(0.02)
        assert reserve.left("incident") == 4
        rest = reserve.take("incident", 4)
        assert rest is not None and not set(first) & set(rest)
        # A row written the usual way meanwhile (its id the column's default) gets none of them.
        async with sessions() as s:
            usual = await s.scalar(text("SELECT nextval(pg_get_serial_sequence('incident', 'id'))"))
        assert usual is not None and usual not in set(first) | set(rest)
    finally:
        await engine.dispose()
