"""Rule changes made by people (enable/disable) kept in the database and applied over the
shipped rule files at every start."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import BigInteger, Boolean, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from alerting.rules.loader import RuleSet
from core.db import Base


class RuleOverrideRow(Base):
    __tablename__ = "rule_override"

    rule_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(64))
    updated_ms: Mapped[int] = mapped_column(BigInteger)


async def load_overrides(sessions: async_sessionmaker[AsyncSession]) -> dict[str, bool]:
    async with sessions() as s:
        return {r.rule_id: r.enabled for r in await s.scalars(select(RuleOverrideRow))}


def apply_overrides(rules: RuleSet, overrides: Mapping[str, bool]) -> RuleSet:
    """The rule set with people's enable/disable choices; unknown rule ids are ignored (a rule
    removed from the files stays removed)."""
    if not overrides:
        return rules
    return RuleSet(
        tuple(
            r.model_copy(update={"enabled": overrides[r.id]})
            if r.id in overrides and r.enabled != overrides[r.id]
            else r
            for r in rules.rules
        )
    )
