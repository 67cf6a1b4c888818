"""A manual report entering the ledger (立案): hotline call, patrol finding, resident report,
inspection; validated here, opened as an incident by :class:`alerting.loop.desk.LoopDesk`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from alerting.loop.config import CaseCategory, Source
from alerting.loop.hazard import Responsible
from alerting.models import Severity

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9-]{3,20}$")]

CATEGORY_ZH = {
    "gas": "燃气",
    "fire": "消防",
    "electric": "用电",
    "corridor": "楼道堆物",
    "other": "其他",
}
SOURCE_ZH = {
    "device": "设备报警",
    "patrol": "网格员巡查",
    "hotline": "24小时热线",
    "resident": "居民上报",
    "inspection": "安全排查",
}


class NewCase(BaseModel):
    """``POST /api/v1/incidents``: one report. ``device`` is the rules' own source."""

    model_config = ConfigDict(extra="forbid")

    source: Source
    category: CaseCategory
    site: Annotated[str, Field(max_length=32)] | None = None
    grid_id: Short
    building_id: Short | None = None
    unit_room: Short = ""
    location: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ]
    severity: Severity = Severity.MAJOR
    caller_name: Short = ""
    caller_phone: Phone | None = None
    hazard: bool = False
    deadline_ms: Annotated[int, Field(ge=0, le=253_402_300_799_000)] | None = None
    responsible_kind: Responsible | None = None
    responsible_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""

    @model_validator(mode="after")
    def _fits(self) -> NewCase:
        if self.source is Source.DEVICE:
            raise ValueError(
                "source 'device' is the rules' own; a report is patrol, hotline, "
                "resident or inspection"
            )
        if self.source is Source.HOTLINE and not (self.caller_name and self.caller_phone):
            raise ValueError("a hotline call needs the caller's name and phone")
        if self.hazard and (self.deadline_ms is None or self.responsible_kind is None):
            raise ValueError("a hazard needs a rectification deadline and a responsible party")
        return self

    def title(self, place: str) -> str:
        kind = "隐患" if self.hazard else "事件"
        return f"{CATEGORY_ZH[self.category.value]}{kind} {place}".strip()[:200]
