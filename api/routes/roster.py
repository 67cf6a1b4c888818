"""The duty roster as people plan it: a week calendar (weekly slots, dated shifts, swaps),
weekly slots to add or remove, and one-off shift swaps (代班)."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api import audit
from api.crud import check_site, commit_registry
from api.deps import RegistryWriter, ServicesDep, SessionDep, SiteWideReader, not_found
from api.errors import FieldError
from api.schemas import DB_INT32_MAX, Input, Note, PersonId, SiteCode
from gateway.registry.tables import Person, RosterShift, RosterSwap, RosterWeekly, Site

router = APIRouter(prefix="/roster", tags=["roster"])
# Days a calendar can show and shift across midnight without leaving the datetime range.
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 1), dt.date(9998, 12, 31)
Day = Annotated[dt.date, Field(ge=FIRST_DAY, le=LAST_DAY)]
RosterId = Annotated[int, Path(ge=1, le=DB_INT32_MAX)]
HHMM = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class WeeklyCreate(Input):
    site: SiteCode
    person_id: PersonId
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    start: HHMM
    end: HHMM


class SwapCreate(Input):
    """A swap of one weekly slot on one date (``weekly_id`` + ``date``), or of any time span
    (``from_person`` + ``starts_at``/``ends_at``)."""

    site: SiteCode
    to_person: PersonId
    weekly_id: int | None = Field(None, ge=1, le=DB_INT32_MAX)
    date: Day | None = None
    from_person: PersonId | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    note: Note = ""

    @model_validator(mode="after")
    def _one_form(self) -> SwapCreate:
        slot = self.weekly_id is not None and self.date is not None
        span = None not in (self.from_person, self.starts_at, self.ends_at)
        if slot == span:
            raise ValueError(
                "give either weekly_id and date, or from_person, starts_at and ends_at"
            )
        return self


async def _zone(session: AsyncSession, site: str) -> ZoneInfo:
    row = await session.get(Site, site)
    if row is None:
        raise FieldError("site", f"no site '{site}'")
    return ZoneInfo(row.timezone)


async def _person_in(session: AsyncSession, field: str, person_id: str, site: str) -> Person:
    person = await session.get(Person, person_id)
    if person is None or person.site != site:
        raise FieldError(field, f"no person '{person_id}' in site '{site}'")
    if not person.active:
        raise FieldError(field, f"'{person_id}' is deactivated")
    return person


def _slot_span(w: RosterWeekly, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, w.start_time, tz)
    end_day = day if w.start_time < w.end_time else day + timedelta(days=1)
    return start, datetime.combine(end_day, w.end_time, tz)


@router.get("/week")
async def week(
    principal: SiteWideReader,
    session: SessionDep,
    services: ServicesDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
    start: Annotated[
        date | None,
        Query(description="a day of the week; default today", ge=FIRST_DAY, le=LAST_DAY),
    ] = None,
) -> dict[str, Any]:
    """Seven days from the Monday of ``start``: each day's duty slots with who covers them."""
    code = principal.site_or(site)
    if code is None:
        raise FieldError("site", "required: you see several sites (name one with ?site=)")
    check_site(principal, code)
    tz = await _zone(session, code)
    today = datetime.fromtimestamp(services.clock.now_ms() / 1000, UTC).astimezone(tz).date()
    monday = (start or today) - timedelta(days=(start or today).weekday())
    names = {p.id: p.name for p in await session.scalars(select(Person).where(Person.site == code))}
    weekly = list(await session.scalars(select(RosterWeekly).where(RosterWeekly.site == code)))
    begin = datetime.combine(monday, time(), tz)
    finish = begin + timedelta(days=8)
    swaps = list(
        await session.scalars(
            select(RosterSwap).where(
                RosterSwap.site == code, RosterSwap.ends_at > begin, RosterSwap.starts_at < finish
            )
        )
    )
    shifts = list(
        await session.scalars(
            select(RosterShift).where(
                RosterShift.site == code,
                RosterShift.ends_at > begin,
                RosterShift.starts_at < finish,
            )
        )
    )
    days = []
    for offset in range(7):
        day = monday + timedelta(days=offset)
        slots: list[dict[str, Any]] = []
        for w in sorted(weekly, key=lambda w: w.start_time):
            if w.weekday != day.weekday():
                continue
            s, e = _slot_span(w, day, tz)
            swap = next(
                (x for x in swaps if x.from_person == w.person_id and x.starts_at <= s < x.ends_at),
                None,
            )
            slots.append(
                {
                    "kind": "weekly",
                    "weekly_id": w.id,
                    "start": w.start_time.strftime("%H:%M"),
                    "end": w.end_time.strftime("%H:%M"),
                    "starts_at": s.isoformat(),
                    "ends_at": e.isoformat(),
                    "person_id": w.person_id,
                    "name": names.get(w.person_id, w.person_id),
                    "covered_by": None
                    if swap is None
                    else {
                        "swap_id": swap.id,
                        "person_id": swap.to_person,
                        "name": names.get(swap.to_person, swap.to_person),
                        "note": swap.note,
                    },
                }
            )
        for sh in shifts:
            local = sh.starts_at.astimezone(tz)
            if local.date() == day:
                slots.append(
                    {
                        "kind": "shift",
                        "shift_id": sh.id,
                        "start": local.strftime("%H:%M"),
                        "end": sh.ends_at.astimezone(tz).strftime("%H:%M"),
                        "starts_at": local.isoformat(),
                        "ends_at": sh.ends_at.astimezone(tz).isoformat(),
                        "person_id": sh.person_id,
                        "name": names.get(sh.person_id, sh.person_id),
                        "covered_by": None,
                    }
                )
        days.append({"date": day.isoformat(), "weekday": day.weekday(), "slots": slots})
    return {"site": code, "timezone": str(tz), "start": monday.isoformat(), "days": days}


@router.post("/weekly", status_code=201)
async def add_weekly(
    body: WeeklyCreate, principal: RegistryWriter, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    """Add a weekly duty slot (e.g. Mondays 08:00–16:00)."""
    check_site(principal, body.site)
    await _person_in(session, "person_id", body.person_id, body.site)
    if body.start == body.end:
        raise FieldError("end", "a slot needs a length (end equal to start)")
    row = RosterWeekly(
        site=body.site,
        person_id=body.person_id,
        weekday=body.weekday,
        start_time=time.fromisoformat(body.start),
        end_time=time.fromisoformat(body.end),
        role="duty_staff",
    )
    session.add(row)
    await session.flush()
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "roster_weekly.create",
        target=str(row.id),
        site=body.site,
        detail={"after": body.model_dump(mode="json")},
    )
    await commit_registry(session, services, "weekly slot")
    return {"id": row.id, **body.model_dump(mode="json")}


@router.delete("/weekly/{weekly_id}", status_code=204)
async def remove_weekly(
    weekly_id: RosterId, principal: RegistryWriter, services: ServicesDep, session: SessionDep
) -> None:
    row = await session.get(RosterWeekly, weekly_id)
    if row is None or not principal.sees_site(row.site):
        raise not_found("weekly slot", weekly_id)
    before = {
        "person_id": row.person_id,
        "weekday": row.weekday,
        "start": row.start_time.strftime("%H:%M"),
        "end": row.end_time.strftime("%H:%M"),
    }
    await session.delete(row)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "roster_weekly.delete",
        target=str(weekly_id),
        site=row.site,
        detail={"before": before},
    )
    await commit_registry(session, services, "weekly slot")


def _swap_public(row: RosterSwap) -> dict[str, Any]:
    return {
        "id": row.id,
        "site": row.site,
        "from_person": row.from_person,
        "to_person": row.to_person,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
        "note": row.note,
    }


@router.get("/swaps")
async def list_swaps(
    principal: SiteWideReader,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
) -> list[dict[str, Any]]:
    q = select(RosterSwap).order_by(RosterSwap.starts_at)
    if principal.sites is not None:
        q = q.where(RosterSwap.site.in_(sorted(principal.sites)))
    if site is not None:
        q = q.where(RosterSwap.site == site)
    return [_swap_public(r) for r in await session.scalars(q)]


@router.post("/swaps", status_code=201)
async def create_swap(
    body: SwapCreate, principal: RegistryWriter, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    """代班: someone covers another's shift once; the route tester and paging follow it."""
    check_site(principal, body.site)
    if body.weekly_id is not None and body.date is not None:
        slot = await session.get(RosterWeekly, body.weekly_id)
        if slot is None or slot.site != body.site:
            raise FieldError("weekly_id", f"no weekly slot {body.weekly_id} in '{body.site}'")
        if slot.weekday != body.date.weekday():
            raise FieldError("date", f"{body.date} is not a weekday of this slot")
        starts, ends = _slot_span(slot, body.date, await _zone(session, body.site))
        from_person = slot.person_id
    else:
        if body.from_person is None or body.starts_at is None or body.ends_at is None:
            raise FieldError("from_person", "give from_person, starts_at and ends_at")
        from_person, starts, ends = body.from_person, body.starts_at, body.ends_at
        for name, when in (("starts_at", starts), ("ends_at", ends)):
            if not FIRST_DAY.year + 1 <= when.year <= LAST_DAY.year:
                raise FieldError(name, "must be between 1971 and 9998")
        if ends <= starts:
            raise FieldError("ends_at", "must be after starts_at")
        await _person_in(session, "from_person", from_person, body.site)
    await _person_in(session, "to_person", body.to_person, body.site)
    if body.to_person == from_person:
        raise FieldError("to_person", "a person cannot cover their own shift")
    row = RosterSwap(
        site=body.site,
        from_person=from_person,
        to_person=body.to_person,
        starts_at=starts,
        ends_at=ends,
        note=body.note,
    )
    session.add(row)
    await session.flush()
    public = _swap_public(row)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "roster_swap.create",
        target=str(row.id),
        site=body.site,
        detail={"before": {"on_duty": from_person}, "after": {"on_duty": body.to_person, **public}},
    )
    await commit_registry(session, services, "swap")
    return public


@router.delete("/swaps/{swap_id}", status_code=204)
async def delete_swap(
    swap_id: RosterId, principal: RegistryWriter, services: ServicesDep, session: SessionDep
) -> None:
    row = await session.get(RosterSwap, swap_id)
    if row is None or not principal.sees_site(row.site):
        raise not_found("swap", swap_id)
    public = _swap_public(row)
    await session.delete(row)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "roster_swap.delete",
        target=str(swap_id),
        site=row.site,
        detail={"before": public},
    )
    await commit_registry(session, services, "swap")
