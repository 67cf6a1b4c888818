"""The closed loop's data file (departments, default tiers), validated at load."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_FILE = Path(__file__).with_name("loop.yaml")


class Source(StrEnum):
    DEVICE = "device"  # a rule opened it
    PATROL = "patrol"  # 网格员巡查
    HOTLINE = "hotline"  # 24小时热线
    RESIDENT = "resident"  # 居民上报
    INSPECTION = "inspection"  # 安全排查


class CaseCategory(StrEnum):
    GAS = "gas"
    FIRE = "fire"
    ELECTRIC = "electric"  # incl. e-bikes charged indoors
    CORRIDOR = "corridor"  # 楼道堆物
    OTHER = "other"


class Tier(StrEnum):
    GRID = "grid"  # 小事不出网格
    COMMUNITY = "community"  # 大事不出社区


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(_Strict):
    kind: Literal["sms", "webhook", "email"]
    address: str = Field(min_length=1, max_length=300)


class DepartmentSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    name: str = Field(min_length=1, max_length=100)
    reply_within_h: float = Field(gt=0, le=24 * 30)
    channels: list[Channel] = Field(min_length=1)


class TierDefaults(_Strict):
    rules: dict[str, Tier] = {}
    categories: dict[CaseCategory, Tier] = {}


class LoopConfig(_Strict):
    departments: list[DepartmentSpec]
    tiers: TierDefaults = TierDefaults()
    hazard_remind_before_h: float = Field(24, ge=0)
    feedback_url: str = "/board/rate.html"

    @model_validator(mode="after")
    def _unique(self) -> LoopConfig:
        ids = [d.id for d in self.departments]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"departments listed twice: {', '.join(dup)}")
        return self

    def department(self, dept_id: str) -> DepartmentSpec | None:
        return next((d for d in self.departments if d.id == dept_id), None)

    def default_tier(self, source: str, category: str | None, rule_id: str) -> Tier | None:
        """The tier a new incident starts with; ``None``: it waits for triage (研判)."""
        if source == Source.DEVICE:
            return self.tiers.rules.get(rule_id)
        if category is None:
            return None
        return self.tiers.categories.get(CaseCategory(category))


def load_loop_config(path: Path | None = None) -> LoopConfig:
    """Load and validate; an error names the file and the key path."""
    path = path or DEFAULT_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return LoopConfig.model_validate(raw)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: {where}") from exc
