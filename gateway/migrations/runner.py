"""Bring a database to the newest schema: ``alembic upgrade head`` without alembic.ini.

The Alembic config is built in code and points at the installed ``gateway.migrations`` package,
so this works from a wheel as well as from a checkout.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool


def migrations_dir() -> Path:
    """Where the migration scripts live (the ``gateway.migrations`` package directory)."""
    return Path(str(resources.files("gateway.migrations")))


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url``; no ini file needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["url"] = url
    return cfg


def head_revision() -> str | None:
    """The newest revision id among the shipped migrations."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


#: The advisory lock several instances starting together on one PostgreSQL take, so that one
#: runs the migrations and the others then find the schema at head.
MIGRATION_LOCK = 0x5AFE_D0


async def upgrade(url: str, revision: str = "head") -> None:
    """Run every pending migration on the database at ``url`` (sqlite+aiosqlite or asyncpg)."""
    await _with_connection(url, lambda conn: _upgrade(conn, url, revision), lock=True)


async def downgrade(url: str, revision: str) -> None:
    """Step the schema back to ``revision`` (``"base"`` drops everything)."""
    await _with_connection(url, lambda conn: _downgrade(conn, url, revision))


async def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at, or None if it was never migrated."""
    result: list[str | None] = []
    await _with_connection(
        url, lambda conn: result.append(MigrationContext.configure(conn).get_current_revision())
    )
    return result[0]


def _upgrade(connection: Connection, url: str, revision: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _downgrade(connection: Connection, url: str, revision: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def _with_connection(
    url: str, fn: Callable[[Connection], object], *, lock: bool = False
) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            if lock and conn.dialect.name == "postgresql":
                # Held until this transaction (the migrations') commits.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            await conn.run_sync(fn)
            await conn.commit()
    finally:
        await engine.dispose()
