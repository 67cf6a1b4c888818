"""Request and response bodies of the closed loop (intake, triage, hazards, referral,
verification, feedback, photos)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from alerting.loop.config import Tier
from api.schemas import DB_INT_MAX, Input, Note

PhotoIds = Annotated[list[Annotated[int, Field(ge=1, le=DB_INT_MAX)]], Field(max_length=10)]


class IncidentTriage(Input):
    tier: Tier
    note: Note = ""


class IncidentArrive(Input):
    note: Note = ""


class HazardStep(Input):
    step: Literal["notice", "rectifying", "reinspect", "rectified"]
    note: Note = ""
    photo_ids: PhotoIds = Field(default_factory=list)


class LoopRefer(Input):
    department: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")]
    note: Note = ""
    due_h: Annotated[float, Field(gt=0, le=24 * 30)] | None = None


class IncidentVerify(Input):
    passed: bool = True
    note: Note = ""
    photo_ids: PhotoIds = Field(default_factory=list)


class IncidentSilence(Input):
    hours: Annotated[float, Field(gt=0, le=24 * 14)] = 4
    reason: Note = ""


class DepartmentReply(Input):
    status: Literal["accepted", "replied", "declined"]
    note: Note = ""


class Rating(Input):
    rating: Literal["satisfied", "basically_satisfied", "dissatisfied"]


class PhotoPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    incident_id: int
    content_type: str
    size: int
    uploaded_by: str
    at_ms: int


class ReferralPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    department: str
    department_name: str = ""
    actor: str
    at_ms: int
    note: str
    status: str
    due_at_ms: int
    accepted_at_ms: int | None
    replied_at_ms: int | None
    reply: str
    overdue_at_ms: int | None
    sent_ok: int
    send_errors: str
    title: str = ""  # what the department's reply page shows of the incident
    location: str = ""


class CasePublic(BaseModel):
    """The loop's record of an incident, with its photos and referrals."""

    model_config = ConfigDict(from_attributes=True)
    incident_id: int
    source: str
    case_category: str | None
    tier: str | None  # effective: recorded by triage, or the rule's/category's default
    triaged_at_ms: int | None
    triaged_by: str | None
    unit_room: str
    description: str
    caller_name: str
    caller_phone: str
    arrived_at_ms: int | None
    hazard: bool
    hazard_state: str | None
    deadline_ms: int | None
    responsible_kind: str | None
    responsible_name: str
    overdue_at_ms: int | None
    rectified_at_ms: int | None
    verified_at_ms: int | None
    verified_by: str | None
    feedback_sent_at_ms: int | None
    rating: str | None
    photos: list[PhotoPublic] = []
    referrals: list[ReferralPublic] = []


class DepartmentPublic(BaseModel):
    id: str
    name: str
    reply_within_h: float
    channels: list[str]


class FeedbackPublic(BaseModel):
    """What the public rating page shows: no names, no notes."""

    incident_id: int
    title: str
    status: str
    rating: str | None
