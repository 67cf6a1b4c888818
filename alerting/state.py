"""Durable alert state: one row per (rule, subject) so a restart resumes every timer and alert.

The rule engine never touches the database. It marks changed keys dirty; the caller takes
``engine.dirty_snapshot()`` and awaits ``store.save(...)`` — once a second for quiet readings,
and right *after* acting on transitions (see ``alerting/rules/engine.py`` for why after).
Last-seen times only reach the store at the engine's coarse checkpoints.

The upsert is one statement object built once per dialect and executed with a list of rows
(an executemany): SQLAlchemy compiles it once and takes it from the engine's compiled cache
afterwards, instead of compiling a multi-row VALUES statement of a new shape on every save.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import JSON, BigInteger, String, Table, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base

StateKey = tuple[str, str]  # (rule_id, subject)


@dataclass(frozen=True, slots=True)
class StateChange:
    """A rule state to upsert, or ``state=None`` to delete the row (back to a blank ok)."""

    rule_id: str
    subject: str
    state: Mapping[str, Any] | None
    updated_ms: int


class AlertStateStore(Protocol):
    """Where the rule engine's state survives restarts."""

    async def save(self, changes: Sequence[StateChange]) -> None:
        """Apply the changes; each is one row on its own, so they may go in several
        transactions (what a crash leaves unsaved is still marked dirty by the engine)."""
        ...

    async def load_all(self) -> dict[StateKey, dict[str, Any]]:
        """Every stored state, keyed by (rule_id, subject)."""
        ...


class AlertStateRow(Base):
    __tablename__ = "alert_state"

    rule_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class SqlAlertStateStore:
    """``AlertStateStore`` on the gateway's relational database (SQLite or PostgreSQL)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, batch: int = 500) -> None:
        self._sessions = sessions
        self._batch = batch
        self._upserts: dict[str, Any] = {}
        table: Table = AlertStateRow.__table__  # type: ignore[assignment]
        self._delete = delete(table).where(
            table.c.rule_id == bindparam("r"), table.c.subject == bindparam("s")
        )
        # What reached the database: ``saves`` counts transactions, ``rows`` the rows in them.
        self.saves = 0
        self.rows = 0

    async def save(self, changes: Sequence[StateChange]) -> None:
        if not changes:
            return
        upserts = [
            {
                "rule_id": c.rule_id,
                "subject": c.subject,
                "state": dict(c.state),
                "updated_ms": c.updated_ms,
            }
            for c in changes
            if c.state is not None
        ]
        deletes = [(c.rule_id, c.subject) for c in changes if c.state is None]
        # Small transactions: the loop (and an alarm) waits for one batch at most.
        for start in range(0, len(upserts), self._batch):
            if start:
                # A checkpoint of a big fleet is many batches; the embedded SQLite runs on the
                # event loop, so let ingest and alarms have a turn between two of them.
                await asyncio.sleep(0)
            async with self._sessions.begin() as session:
                await self._upsert(session, upserts[start : start + self._batch])
            self.saves += 1
            self.rows += len(upserts[start : start + self._batch])
        for start in range(0, len(deletes), self._batch):
            chunk = [{"r": r, "s": s} for r, s in deletes[start : start + self._batch]]
            async with self._sessions.begin() as session:
                await (await session.connection()).execute(self._delete, chunk)
            self.saves += 1
            self.rows += len(chunk)

    async def load_all(self) -> dict[StateKey, dict[str, Any]]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(AlertStateRow.rule_id, AlertStateRow.subject, AlertStateRow.state)
            )
            return {(rule_id, subject): dict(state) for rule_id, subject, state in rows}

    async def _upsert(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        dialect = session.get_bind().dialect.name
        if dialect in ("sqlite", "postgresql"):
            stmt = self._upserts.get(dialect)
            if stmt is None:
                insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
                base = insert(AlertStateRow.__table__)  # type: ignore[arg-type]
                stmt = self._upserts[dialect] = base.on_conflict_do_update(
                    index_elements=["rule_id", "subject"],
                    set_={"state": base.excluded.state, "updated_ms": base.excluded.updated_ms},
                )
            # Core level: an executemany of one cached statement, no ORM bookkeeping.
            await (await session.connection()).execute(stmt, rows)
            return
        for row in rows:  # other databases: portable, slower
            await session.merge(AlertStateRow(**row))
