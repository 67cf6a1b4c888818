"""A RuleControl over an in-memory RuleSet: validate with the loader, toggle and hand on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerting.rules import RuleLoadError, RuleSet
from alerting.rules.loader import build_rule_set, parse_rules
from alerting.rules.overrides import RuleOverrideRow
from alerting.rules.tuning import tune
from core.clock import Clock


class RuleSetControl:
    """Holds the live RuleSet; ``on_change`` receives each new set (e.g. the rule engine's)."""

    def __init__(self, rules: RuleSet, on_change: Callable[[RuleSet], None] | None = None) -> None:
        self._rules = rules
        self._on_change = on_change

    @property
    def rules(self) -> RuleSet:
        return self._rules

    def validate(self, items: Sequence[Any]) -> list[str]:
        """Every problem of these raw rules, each naming rule and field; [] when valid."""
        problems: list[str] = []
        loaded = parse_rules(list(items), "request", problems)
        if problems:
            return problems
        try:
            build_rule_set(loaded)
        except RuleLoadError as exc:
            return list(exc.problems)
        return []

    async def set_enabled(self, rule_id: str, enabled: bool, actor: str) -> RuleSet:
        rule = self._rules.by_id.get(rule_id)
        if rule is None:
            raise LookupError(rule_id)
        changed = rule.model_copy(update={"enabled": enabled})
        return self._swap(changed)

    async def tune(self, rule_id: str, params: dict[str, Any], actor: str) -> RuleSet:
        """Change parameters within the rule file's bounds (TuningError otherwise)."""
        rule = self._rules.by_id.get(rule_id)
        if rule is None:
            raise LookupError(rule_id)
        return self._swap(tune(rule, params))

    def _swap(self, changed: Any) -> RuleSet:
        self._rules = RuleSet(
            tuple(changed if r.id == changed.id else r for r in self._rules.rules)
        )
        if self._on_change is not None:
            self._on_change(self._rules)
        return self._rules


class PersistentRuleControl(RuleSetControl):
    """``RuleSetControl`` whose enable/disable survives a restart."""

    def __init__(
        self,
        rules: RuleSet,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        on_change: Callable[[RuleSet], None] | None = None,
    ) -> None:
        super().__init__(rules, on_change)
        self._sessions = sessions
        self._clock = clock

    async def set_enabled(self, rule_id: str, enabled: bool, actor: str) -> RuleSet:
        if rule_id not in self.rules.by_id:
            raise LookupError(rule_id)
        async with self._sessions.begin() as s:
            row = await s.get(RuleOverrideRow, rule_id)
            if row is None:
                row = RuleOverrideRow(rule_id=rule_id)
                s.add(row)
            row.enabled, row.actor, row.updated_ms = enabled, actor, self._clock.now_ms()
        return await super().set_enabled(rule_id, enabled, actor)

    async def tune(self, rule_id: str, params: dict[str, Any], actor: str) -> RuleSet:
        rules = await super().tune(rule_id, params, actor)  # validates before anything is kept
        async with self._sessions.begin() as s:
            row = await s.get(RuleOverrideRow, rule_id)
            if row is None:
                row = RuleOverrideRow(rule_id=rule_id, enabled=rules.by_id[rule_id].enabled)
                s.add(row)
            row.params = {**(row.params or {}), **params}
            row.actor, row.updated_ms = actor, self._clock.now_ms()
        return rules
