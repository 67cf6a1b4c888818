"""Rule changes made by people (enable/disable) kept in the database and applied over the
shipped rule files at every start."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from alerting.rules.loader import RuleSet
from alerting.rules.tuning import TuningError, tune
from core.db import Base

log = logging.getLogger(__name__)


class RuleOverrideRow(Base):
    __tablename__ = "rule_override"

    rule_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(64))
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    # Parameters tuned from the screens (within the rule file's bounds), e.g. {"raise_at": 0.25}.
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)


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


async def load_tunings(sessions: async_sessionmaker[AsyncSession]) -> dict[str, dict[str, Any]]:
    async with sessions() as s:
        return {
            r.rule_id: dict(r.params) for r in await s.scalars(select(RuleOverrideRow)) if r.params
        }


def apply_tunings(rules: RuleSet, tunings: Mapping[str, Mapping[str, Any]]) -> RuleSet:
    """The rule set with people's tunings; one no longer inside the file's bounds (the file
    changed since) is left out with an error in the log, and the file's values hold."""
    if not tunings:
        return rules
    out = []
    for r in rules.rules:
        params = tunings.get(r.id)
        if params:
            try:
                r = tune(r, params)
            except TuningError:
                log.exception("tuning of rule %s no longer fits its file; file values used", r.id)
        out.append(r)
    return RuleSet(tuple(out))
