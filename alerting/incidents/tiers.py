"""Household risk tiers (五彩档案): how a household's colour changes an incident it opens.

A tier raises the severity by some levels (never above critical, never an info self-test) and
scales the escalation ladder's waits, so the acknowledgement deadline is shorter. Pure and
configured per tier (gateway settings); the incident service applies it when it opens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from alerting.models import Severity
from alerting.routing.ladder import Ladder, Step

_ORDER = (Severity.MINOR, Severity.MAJOR, Severity.CRITICAL)


@dataclass(frozen=True, slots=True)
class RiskTier:
    """One colour: its names and meaning (shown to people) and what it does to incidents."""

    key: str
    name: str
    name_en: str = ""
    meaning: str = ""
    raise_levels: int = 0
    ack_factor: float = 1.0
    visit_every_days: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.raise_levels <= 2:
            raise ValueError(f"risk tier {self.key}: raise_levels must be 0, 1 or 2")
        if not 0.1 <= self.ack_factor <= 1.0:
            raise ValueError(f"risk tier {self.key}: ack_factor must be within 0.1..1.0")


DEFAULT_TIERS: tuple[RiskTier, ...] = (
    RiskTier("red", "红色", "Red", "高风险：独居失能、重病或近期出过险情，每周走访", 1, 0.5, 7),
    RiskTier("orange", "橙色", "Orange", "较高风险：高龄独居或行动不便，两周走访", 1, 0.75, 14),
    RiskTier("yellow", "黄色", "Yellow", "需关注：慢性病或子女不在身边，每月走访", 0, 1.0, 30),
    RiskTier("blue", "蓝色", "Blue", "一般关注：有家人照看，每季度走访", 0, 1.0, 90),
    RiskTier("green", "绿色", "Green", "平稳：常规联系", 0, 1.0, 180),
)


@dataclass(frozen=True)
class TierPolicy:
    """The configured tiers by key; an unknown or missing tier changes nothing."""

    tiers: Mapping[str, RiskTier] = field(default_factory=lambda: {t.key: t for t in DEFAULT_TIERS})

    def severity(self, tier: str | None, severity: Severity) -> Severity:
        found = self.tiers.get(tier or "")
        if found is None or severity not in _ORDER:
            return severity
        return _ORDER[min(len(_ORDER) - 1, _ORDER.index(severity) + found.raise_levels)]

    def ladder(self, tier: str | None, ladder: Ladder) -> Ladder:
        found = self.tiers.get(tier or "")
        if found is None or found.ack_factor >= 1.0:
            return ladder

        factor = found.ack_factor

        def scaled(ms: int) -> int:
            # a wait never shrinks below a second; step 0 (at opening) stays at once
            return max(1000, int(ms * factor)) if ms else 0

        return Ladder(
            ladder.name,
            tuple(Step(scaled(s.wait_ms), s.targets) for s in ladder.steps),
            scaled(ladder.repeat_ms) if ladder.repeat_ms else None,
            scaled(ladder.remind_ms) if ladder.remind_ms else None,
        )


def ack_due_ms(ladder: Ladder, opened_ms: int) -> int | None:
    """When the incident must be acknowledged: the first step after the one at opening."""
    waits = [s.wait_ms for s in ladder.steps[1:]] + [ladder.repeat_ms or 0]
    first = next((w for w in waits if w > 0), None)
    return None if first is None else opened_ms + first


__all__ = ["DEFAULT_TIERS", "RiskTier", "TierPolicy", "ack_due_ms"]
