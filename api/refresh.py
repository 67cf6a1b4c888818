"""Refresh tokens: a login that lasts a shift, rotated on every use, ended everywhere at once.

A login is a *family* of refresh tokens. Each use hands out a new token of the family and
retires the old one; the family ends ``refresh_ttl_s`` after the login whatever happens (a
shift, not forever). Presenting a retired token again means it was copied: the whole family is
ended. Access tokens name their family (``sid``), so ending it — "log out everywhere" —
voids them at once, not when they expire. Only a hash of each token is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import BigInteger, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class RefreshTokenRow(Base):
    __tablename__ = "refresh_token"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token
    family: Mapped[str] = mapped_column(String(64), index=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    issued_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    replaced_by: Mapped[str | None] = mapped_column(String(64))


@dataclass(frozen=True, slots=True)
class Issued:
    token: str  # what the client keeps
    family: str
    expires_at_ms: int


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: AsyncSession, person_id: str, now_ms: int, ttl_s: int) -> Issued:
    """A new login's first refresh token (added to the caller's transaction)."""
    family = secrets.token_hex(16)
    return _add(session, person_id, family, now_ms, now_ms + ttl_s * 1000)


def _add(
    session: AsyncSession, person_id: str, family: str, now_ms: int, expires_at_ms: int
) -> Issued:
    token = secrets.token_urlsafe(32)
    session.add(
        RefreshTokenRow(
            id=_digest(token),
            family=family,
            person_id=person_id,
            issued_at_ms=now_ms,
            expires_at_ms=expires_at_ms,
        )
    )
    return Issued(token, family, expires_at_ms)


async def rotate(session: AsyncSession, token: str, now_ms: int) -> tuple[str, Issued] | None:
    """(person id, the family's next token) for a live token; None otherwise. A retired token
    presented again ends its whole family (someone else holds a copy)."""
    row = await session.get(RefreshTokenRow, _digest(token), with_for_update=True)
    if row is None or row.expires_at_ms <= now_ms:
        return None
    if row.revoked_at_ms is not None:
        if row.replaced_by is not None:  # reuse of a rotated token
            await end_family(session, row.family, now_ms)
        return None
    issued = _add(session, row.person_id, row.family, now_ms, row.expires_at_ms)
    row.revoked_at_ms = now_ms
    row.replaced_by = _digest(issued.token)
    return row.person_id, issued


async def end_family(session: AsyncSession, family: str, now_ms: int) -> None:
    await session.execute(
        update(RefreshTokenRow)
        .where(RefreshTokenRow.family == family, RefreshTokenRow.revoked_at_ms.is_(None))
        .values(revoked_at_ms=now_ms)
    )


async def end_all(session: AsyncSession, person_id: str, now_ms: int) -> int:
    """End every login of ``person_id`` (every phone, every browser); how many were live."""
    result = await session.execute(
        update(RefreshTokenRow)
        .where(RefreshTokenRow.person_id == person_id, RefreshTokenRow.revoked_at_ms.is_(None))
        .values(revoked_at_ms=now_ms)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def alive(session: AsyncSession, family: str, now_ms: int) -> bool:
    """Whether the login ``family`` still stands (a live token of it exists)."""
    found = await session.scalar(
        select(RefreshTokenRow.id)
        .where(
            RefreshTokenRow.family == family,
            RefreshTokenRow.revoked_at_ms.is_(None),
            RefreshTokenRow.expires_at_ms > now_ms,
        )
        .limit(1)
    )
    return found is not None
