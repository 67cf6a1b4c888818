"""The closed loop over HTTP: manual intake, the case record, photos, the triage queue,
departments, and the two public pages' endpoints (a department's reply, a resident's rating)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.store import add_event
from alerting.incidents.tables import IncidentRow
from alerting.loop import tokens
from alerting.loop.intake import NewCase
from alerting.loop.services import LoopServices
from alerting.loop.tables import CaseRow, DeptReferralRow, PhotoRow
from api import audit
from api.deps import CurrentPerson, Dispatcher, GridScope, ServicesDep, SessionDep, not_found
from api.errors import FieldError
from api.incident_view import incident_views, publish, scoped_incident
from api.loop_schemas import (
    CasePublic,
    DepartmentPublic,
    DepartmentReply,
    FeedbackPublic,
    PhotoPublic,
    Rating,
    ReferralPublic,
)
from api.schemas import DB_INT_MAX, IncidentPublic
from api.services import ApiServices
from gateway.registry.tables import Building, Grid, Household

router = APIRouter(tags=["closed loop"])
IncidentId = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
MAX_PHOTO_BYTES = 8 * 1024 * 1024
# Decided by the file's first bytes, never by its name or the browser's word.
MAGIC = ((b"\xff\xd8\xff", "image/jpeg", "jpg"), (b"\x89PNG\r\n\x1a\n", "image/png", "png"))


def _loop(services: ApiServices) -> LoopServices:
    if services.loop is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the closed loop is not set up")
    return services.loop


@router.post("/incidents", response_model=IncidentPublic, status_code=201)
async def intake(
    body: NewCase,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> IncidentPublic:
    """立案: a hotline call, a patrol finding, a resident's report or an inspection's hazard."""
    loop = _loop(services)
    site = body.site or principal.site
    if site is None:
        raise FieldError("site", "required for admins and service tokens")
    grid = await session.get(Grid, body.grid_id)
    if grid is None or grid.site != site or not scope.sees(site, grid.id):
        raise FieldError("grid_id", f"no grid '{body.grid_id}' you may report in")
    household_id, place = None, ""
    if body.building_id is not None:
        building = await session.get(Building, body.building_id)
        if building is None or building.grid_id != grid.id:
            raise FieldError("building_id", f"no building '{body.building_id}' in that grid")
        household_id = await _household(session, building.id, body.unit_room)
        place = f"{building.name} {_room(body.unit_room)}".strip()
    now = services.clock.now_ms()
    row = await loop.desk.intake(
        session,
        body,
        site=site,
        household_id=household_id,
        actor=principal.actor,
        now_ms=now,
        place=place or grid.name,
    )
    audit.record_by(
        session,
        principal,
        now,
        "incident.intake",
        target=str(row.id),
        site=site,
        detail={
            "source": body.source.value,
            "category": body.category.value,
            "hazard": body.hazard,
        },
    )
    await session.commit()
    row = await scoped_incident(session, scope, row.id)
    publish(services.live, row)
    return IncidentPublic.model_validate(row)


def _room(unit_room: str) -> str:
    """``"2-302"`` → ``"2单元302室"``; anything else as written."""
    unit, _, room = unit_room.partition("-")
    return f"{unit.strip()}单元{room.strip()}室" if unit.strip() and room.strip() else unit_room


async def _household(session: AsyncSession, building_id: str, unit_room: str) -> str | None:
    """``"2-302"`` → the household in unit 2, room 302 of the building, if registered."""
    unit, _, room = unit_room.partition("-")
    if not room:
        return None
    return await session.scalar(
        select(Household.id).where(
            Household.building_id == building_id,
            Household.unit == unit.strip(),
            Household.room == room.strip(),
        )
    )


@router.get("/incidents/{incident_id}/case", response_model=CasePublic)
async def get_case(
    incident_id: IncidentId, scope: GridScope, services: ServicesDep, session: SessionDep
) -> CasePublic:
    """Source, category, tier, hazard state, verification, rating, photos and referrals."""
    loop = _loop(services)
    row = await scoped_incident(session, scope, incident_id)
    case = await session.get(CaseRow, incident_id) or CaseRow(
        incident_id=incident_id,
        source="device",
        hazard=False,
        unit_room="",
        description="",
        caller_name="",
        caller_phone="",
        responsible_name="",
    )
    photos = await session.scalars(
        select(PhotoRow).where(PhotoRow.incident_id == incident_id).order_by(PhotoRow.id)
    )
    refs = await session.scalars(
        select(DeptReferralRow)
        .where(DeptReferralRow.incident_id == incident_id)
        .order_by(DeptReferralRow.id)
    )
    out = CasePublic.model_validate(case, from_attributes=True)
    referrals = []
    for r in refs:
        dept = loop.desk.config.department(r.department)
        public = ReferralPublic.model_validate(r)
        referrals.append(public.model_copy(update={"department_name": dept.name if dept else ""}))
    return out.model_copy(
        update={
            "tier": loop.desk.effective_tier(row, case),
            "photos": [PhotoPublic.model_validate(p) for p in photos],
            "referrals": referrals,
        }
    )


@router.post("/incidents/{incident_id}/photos", response_model=PhotoPublic, status_code=201)
async def upload_photo(
    incident_id: IncidentId,
    file: UploadFile,
    principal: CurrentPerson,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> PhotoRow:
    """A JPEG or PNG of at most 8 MiB, kept with the incident."""
    loop = _loop(services)
    row = await scoped_incident(session, scope, incident_id)
    data = await file.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        raise FieldError(
            "file",
            f"a photo may be at most {MAX_PHOTO_BYTES // 1024 // 1024} MiB",
            413,
        )
    kind = next(((ct, ext) for magic, ct, ext in MAGIC if data.startswith(magic)), None)
    if kind is None:
        raise FieldError(
            "file", "only JPEG or PNG photos are accepted", status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
        )
    name = f"{uuid.uuid4().hex}.{kind[1]}"
    folder = loop.photos_dir / str(incident_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    now = services.clock.now_ms()
    photo = PhotoRow(
        incident_id=incident_id,
        file_name=name,
        content_type=kind[0],
        size=len(data),
        uploaded_by=principal.actor,
        at_ms=now,
    )
    session.add(photo)
    await session.flush()
    add_event(
        session, incident_id, now, "photo_added", actor=principal.actor, data={"photo": photo.id}
    )
    audit.record_by(
        session,
        principal,
        now,
        "incident.photo",
        target=str(incident_id),
        site=row.site,
        detail={"photo": photo.id, "size": len(data)},
    )
    await session.commit()
    return photo


@router.get("/incidents/{incident_id}/photos/{photo_id}", response_class=FileResponse)
async def get_photo(
    incident_id: IncidentId,
    photo_id: Annotated[int, Path(ge=1, le=DB_INT_MAX)],
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> FileResponse:
    loop = _loop(services)
    await scoped_incident(session, scope, incident_id)
    photo = await session.get(PhotoRow, photo_id)
    if photo is None or photo.incident_id != incident_id:
        raise not_found("photo", photo_id)
    path = loop.photos_dir / str(incident_id) / photo.file_name
    if not path.is_file():
        raise not_found("photo", photo_id)
    return FileResponse(
        path, media_type=photo.content_type, headers={"Cache-Control": "private, max-age=3600"}
    )


@router.get("/loop/triage", response_model=list[IncidentPublic])
async def triage_queue(
    principal: Dispatcher,
    services: ServicesDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[IncidentPublic]:
    """研判: open reports without a tier, and device incidents nobody is assigned to yet."""
    loop = _loop(services)
    q = (
        select(IncidentRow, CaseRow)
        .outerjoin(CaseRow, CaseRow.incident_id == IncidentRow.id)
        .where(IncidentRow.status.in_(("open", "acknowledged")))
        .order_by(IncidentRow.opened_at_ms.desc())
        .limit(limit)
    )
    if principal.site is not None:
        q = q.where(IncidentRow.site == principal.site)
    waiting_rows = []
    for row, case in (await session.execute(q)).all():
        source = case.source if case is not None else "device"
        untriaged = case is None or case.triaged_at_ms is None
        waiting = loop.desk.effective_tier(row, case) is None or (
            source != "device" and case is not None and case.tier is None
        )
        if untriaged and (waiting or (source == "device" and row.assignee is None)):
            waiting_rows.append(row)
    # The same view as the board's lists: English titles, deadlines, who was paged.
    return await incident_views(services, session, waiting_rows)


@router.get("/loop/departments", response_model=list[DepartmentPublic])
async def departments(_p: CurrentPerson, services: ServicesDep) -> list[DepartmentPublic]:
    return [
        DepartmentPublic(
            id=d.id,
            name=d.name,
            reply_within_h=d.reply_within_h,
            channels=[c.kind for c in d.channels],
        )
        for d in _loop(services).desk.config.departments
    ]


# -- public: a department's reply link, a resident's rating link --------------------------------


async def _referral(services: ApiServices, session: AsyncSession, token: str) -> DeptReferralRow:
    ref_id = tokens.read(services.config.secret_key, "ref", token)
    ref = await session.get(DeptReferralRow, ref_id) if ref_id else None
    if ref is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this link is not valid")
    return ref


async def _for_department(
    services: ApiServices, session: AsyncSession, ref: DeptReferralRow
) -> ReferralPublic:
    """The referral as its department sees it: no staff names, no sending errors."""
    dept = _loop(services).desk.config.department(ref.department)
    row = await session.get(IncidentRow, ref.incident_id)
    return ReferralPublic.model_validate(ref).model_copy(
        update={
            "department_name": dept.name if dept else "",
            "send_errors": "",
            "actor": "",
            "title": row.title if row else "",
            "location": row.location if row else "",
        }
    )


@router.get("/loop/referrals/{token}", response_model=ReferralPublic)
async def referral(token: str, services: ServicesDep, session: SessionDep) -> ReferralPublic:
    """What the department's reply page shows (the incident's title comes with the message)."""
    ref = await _referral(services, session, token)
    return await _for_department(services, session, ref)


@router.post("/loop/referrals/{token}/reply", response_model=ReferralPublic)
async def referral_reply(
    token: str, body: DepartmentReply, services: ServicesDep, session: SessionDep
) -> ReferralPublic:
    """The department accepts (受理), replies with its result, or declines."""
    loop = _loop(services)
    ref = await _referral(services, session, token)
    if ref.status in ("replied", "declined"):
        raise HTTPException(status.HTTP_409_CONFLICT, f"already {ref.status}")
    await loop.desk.department_reply(session, ref, body.status, body.note, services.clock.now_ms())
    await session.commit()
    row = await session.get(IncidentRow, ref.incident_id)
    if row is not None:
        publish(services.live, row)
    return await _for_department(services, session, ref)


async def _rated(services: ApiServices, session: AsyncSession, token: str) -> IncidentRow:
    incident_id = tokens.read(services.config.secret_key, "rate", token)
    row = await session.get(IncidentRow, incident_id) if incident_id else None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this link is not valid")
    return row


@router.get("/loop/feedback/{token}", response_model=FeedbackPublic)
async def feedback(token: str, services: ServicesDep, session: SessionDep) -> FeedbackPublic:
    row = await _rated(services, session, token)
    case = await session.get(CaseRow, row.id)
    return FeedbackPublic(
        incident_id=row.id, title=row.title, status=row.status, rating=case.rating if case else None
    )


@router.post("/loop/feedback/{token}", response_model=FeedbackPublic)
async def rate(
    token: str, body: Rating, services: ServicesDep, session: SessionDep
) -> FeedbackPublic:
    """满意 / 基本满意 / 不满意: the last rating counts."""
    row = await _rated(services, session, token)
    await _loop(services).desk.rate(session, row.id, body.rating, services.clock.now_ms())
    await session.commit()
    return FeedbackPublic(
        incident_id=row.id, title=row.title, status=row.status, rating=body.rating
    )
