"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from core.db import Base
from gateway.migrations import runner as migrate


async def test_migrations_match_the_declared_tables(db_url: str) -> None:
    for module in (
        "gateway.registry.tables",
        "gateway.quarantine",
        "alerting.state",
        "alerting.incidents.tables",
        "api.audit",
        "alerting.notify.webpush",
        "api.refresh",
        "alerting.commands.tables",
        "gateway.cluster.tables",
    ):
        importlib.import_module(module)
    await migrate.upgrade(db_url)
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
    finally:
        await engine.dispose()
    assert diff == [], f"the models and the migrations differ: {diff}"
