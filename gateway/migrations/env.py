"""Alembic environment: async engines (sqlite+aiosqlite, postgresql+asyncpg), batch mode on SQLite.

The database URL comes from the caller, first match wins:
``config.attributes["connection"]`` (a sync connection handed over by
:func:`gateway.migrations.runner.upgrade`), ``config.attributes["url"]``, ``-x url=…`` on the
command line, the ``SAFETY_DB_URL`` environment variable, ``sqlalchemy.url`` in alembic.ini.
"""

from __future__ import annotations

import asyncio
import importlib
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.db import Base

# Every module that declares tables on core.db.Base; later revisions add theirs here so that
# autogenerate sees the whole schema.
TABLE_MODULES = (
    "gateway.registry.tables",
    "gateway.quarantine",
    "alerting.state",
    "alerting.incidents.tables",
    "alerting.notify.tables",
    "alerting.escalation.timers",
    "api.audit",
    "alerting.rules.overrides",
    "alerting.loop.tables",
    "alerting.notify.webpush",
    "api.refresh",
    "alerting.commands.tables",
    "gateway.cluster.tables",
)

for _module in TABLE_MODULES:
    importlib.import_module(_module)

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    url = url or os.environ.get("SAFETY_DB_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass -x url=… or set SAFETY_DB_URL")
    return str(url)


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def do_run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations(_url()))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
