"""Which configuration an operator tool (`route-test`, `acl`) works on, and its database check.

A tool run as the README shows it must read the gateway that runs: the file given with
``--config``, else the demo's data directory (``--data-dir``, default ``var/demo``, the one
`safety-gateway demo` uses), else the settings' defaults. It never creates a database: an
absent one, or one without the gateway's schema, is refused with a message saying what to do.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from gateway.migrations import runner as migrate
from gateway.settings import Settings, load_settings

#: Where `safety-gateway demo` keeps its stores unless told otherwise (its ``--data-dir``).
DEMO_DATA_DIR = Path("var/demo")


class NoDatabase(Exception):
    """The configured database is missing or has no schema: the tool must stop, not create it."""


def demo_database_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir.resolve() / 'gateway.db'}"


def tool_settings(config: Path | None, data_dir: Path | None) -> Settings:
    """Settings for an operator tool: ``--config``, else a demo data directory, else defaults.

    Without either option the demo's default directory is used when it holds a database (the
    README's demo), otherwise the defaults (``SAFETY_*`` variables apply in every case).
    """
    if config is not None:
        return load_settings(config)
    if data_dir is None and (DEMO_DATA_DIR / "gateway.db").is_file():
        data_dir = DEMO_DATA_DIR
    if data_dir is not None:
        settings = load_settings(
            mode="demo", data_dir=data_dir, database={"url": demo_database_url(data_dir)}
        )
        print(f"using the demo's database in {data_dir}/", file=sys.stderr)
        return settings
    return load_settings(mode="development")


async def require_schema(url: str) -> None:
    """Raise :class:`NoDatabase` unless the database at ``url`` exists and has been migrated."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or not await asyncio.to_thread(Path(path).is_file):
            raise NoDatabase(
                f"no gateway database at {path or url}: start the gateway (`safety-gateway run "
                "--config FILE` or `safety-gateway demo`) first, or point at its configuration "
                "with --config FILE or --data-dir DIR"
            )
    try:
        revision = await migrate.current_revision(url)
    except Exception as exc:  # driver errors differ per database; all mean "cannot read it"
        raise NoDatabase(f"cannot read the gateway database {parsed!r}: {exc}") from exc
    if revision is None:
        raise NoDatabase(
            f"the database {parsed!r} has no gateway schema (never started a gateway on it?): "
            "start the gateway on it once, or point at the right one with --config/--data-dir"
        )
