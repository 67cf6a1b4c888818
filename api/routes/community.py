"""Household risk files (五彩档案): tiers, visits (走访), overdue visits per grid, elderly
households with their last activity, and the change history of any record."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api import audit
from api.crud import check_site, commit_registry
from api.deps import (
    CurrentPerson,
    GridScope,
    ServicesDep,
    SessionDep,
    SiteWideReader,
    not_found,
)
from api.errors import FieldError
from api.routes.device_admin import predecessors
from api.schemas import Input, Note, TierKey
from api.services import ApiServices
from gateway.registry.tables import Building, Device, Household, HouseholdVisit, Person

router = APIRouter(tags=["households"])
ELDERLY_FLAG = "elderly_alone"
HISTORY_KINDS = {
    "person": ("person.",),
    "household": ("household.", "visit."),
    "device": ("device.",),
    "grid": ("grid.",),
    "building": ("building.",),
    "rule": ("rule.",),
    "silence": ("silence.",),
    "roster_swap": ("roster_swap.",),
    "roster_weekly": ("roster_weekly.",),
    "roster_shift": ("roster shift.",),
}


Day = Annotated[date, Field(ge=date(1970, 1, 1), le=date(9998, 12, 31))]


class VisitCreate(Input):
    visited_on: Day
    notes: Note = ""
    next_due: Day | None = None
    risk_tier: TierKey | None = Field(None, description="the tier this visit sets, if any")


def _local_today(services: ApiServices) -> date:
    return datetime.fromtimestamp(services.clock.now_ms() / 1000, UTC).date()


async def _household(session: AsyncSession, scope: Any, household_id: str) -> tuple[Household, str]:
    found = (
        await session.execute(
            select(Household, Building.grid_id)
            .join(Building, Building.id == Household.building_id)
            .where(Household.id == household_id)
        )
    ).first()
    if found is None or not scope.sees(found[0].site, found[1]):
        raise not_found("household", household_id)
    return found[0], found[1]


@router.get("/households/tiers")
async def risk_tiers(services: ServicesDep, _: GridScope) -> list[dict[str, Any]]:
    """The configured risk tiers, highest risk first: names, meaning and what each does."""
    return [
        {
            "key": t.key,
            "name": t.name,
            "name_en": t.name_en,
            "meaning": t.meaning,
            "raise_levels": t.raise_levels,
            "ack_factor": t.ack_factor,
            "visit_every_days": t.visit_every_days,
        }
        for t in services.risk_tiers.values()
    ]


def _visit_public(v: HouseholdVisit) -> dict[str, Any]:
    return {
        "id": v.id,
        "household_id": v.household_id,
        "visited_on": v.visited_on.isoformat(),
        "visitor": v.visitor,
        "notes": v.notes,
        "next_due": v.next_due.isoformat() if v.next_due else None,
        "risk_tier": v.risk_tier,
    }


@router.get("/households/{household_id}/visits")
async def list_visits(
    household_id: Annotated[str, Path(max_length=150)], scope: GridScope, session: SessionDep
) -> list[dict[str, Any]]:
    await _household(session, scope, household_id)
    rows = await session.scalars(
        select(HouseholdVisit)
        .where(HouseholdVisit.household_id == household_id)
        .order_by(HouseholdVisit.visited_on.desc(), HouseholdVisit.id.desc())
    )
    return [_visit_public(v) for v in rows]


@router.post("/households/{household_id}/visits", status_code=201)
async def record_visit(
    household_id: Annotated[str, Path(max_length=150)],
    body: VisitCreate,
    scope: GridScope,
    principal: CurrentPerson,
    services: ServicesDep,
    session: SessionDep,
) -> dict[str, Any]:
    """Record a visit (走访) from the worker app; it may set the household's risk tier. The
    next visit is due when given, else after the tier's interval."""
    if principal.role not in {"admin", "secretary", "grid_worker", "building_leader"}:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role '{principal.role}' records no visits")
    household, _grid = await _household(session, scope, household_id)
    if not principal.sees_site(household.site):
        raise not_found("household", household_id)
    if body.risk_tier is not None and body.risk_tier not in services.risk_tiers:
        raise FieldError("risk_tier", f"unknown tier '{body.risk_tier}'")
    if body.visited_on > _local_today(services) + timedelta(days=1):
        raise FieldError("visited_on", "a visit cannot be in the future")
    tier = body.risk_tier or household.risk_tier
    due = body.next_due
    found_tier = services.risk_tiers.get(tier) if tier else None
    every = found_tier.visit_every_days if found_tier is not None else None
    if due is None and every:
        due = body.visited_on + timedelta(days=every)
    if due is not None and due <= body.visited_on:
        raise FieldError("next_due", "must be after the visit")
    visit = HouseholdVisit(
        site=household.site,
        household_id=household.id,
        visited_on=body.visited_on,
        visitor=principal.actor,
        notes=body.notes,
        next_due=due,
        risk_tier=body.risk_tier,
    )
    session.add(visit)
    now = services.clock.now_ms()
    if body.risk_tier is not None and body.risk_tier != household.risk_tier:
        audit.record_by(
            session,
            principal,
            now,
            "household.update",
            target=household.id,
            site=household.site,
            detail={"before": {"risk_tier": household.risk_tier}, "after": {"risk_tier": tier}},
        )
        household.risk_tier = body.risk_tier
    await session.flush()
    audit.record_by(
        session,
        principal,
        now,
        "visit.create",
        target=household.id,
        site=household.site,
        detail={"after": _visit_public(visit)},
    )
    await commit_registry(session, services, "visit")
    return _visit_public(visit)


async def _latest_visits(session: AsyncSession, ids: list[str]) -> dict[str, HouseholdVisit]:
    latest: dict[str, HouseholdVisit] = {}
    rows = await session.scalars(
        select(HouseholdVisit)
        .where(HouseholdVisit.household_id.in_(ids))
        .order_by(HouseholdVisit.visited_on, HouseholdVisit.id)
    )
    for v in rows:
        latest[v.household_id] = v
    return latest


@router.get("/visits/overdue")
async def overdue_visits(
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, Any]:
    """Per grid: households whose next visit is past due (or never visited though their tier
    sets an interval)."""
    today = _local_today(services)
    q = select(Household, Building.grid_id).join(Building, Building.id == Household.building_id)
    q = q.where(scope.where(Household.site, Building.grid_id))
    if site is not None:
        q = q.where(Household.site == site)
    found = list((await session.execute(q)).all())
    latest = await _latest_visits(session, [h.id for h, _ in found])
    grids: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h, grid in found:
        v = latest.get(h.id)
        tier = services.risk_tiers.get(h.risk_tier or "")
        due = v.next_due if v is not None else None
        if v is None and tier is not None and tier.visit_every_days:
            due = today  # never visited: due now
        if due is not None and due <= today and (v is None or due < today):
            grids[grid].append(
                {
                    "household_id": h.id,
                    "risk_tier": h.risk_tier,
                    "due": due.isoformat(),
                    "last_visit": v.visited_on.isoformat() if v else None,
                }
            )
    return {
        "date": today.isoformat(),
        "grids": [
            {"grid_id": g, "overdue": len(items), "households": items}
            for g, items in sorted(grids.items())
        ],
    }


@router.get("/visits/figures")
async def visit_figures(
    principal: SiteWideReader,
    services: ServicesDep,
    session: SessionDep,
    month: Annotated[str, Query(pattern=r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$")],
    site: Annotated[str | None, Query(max_length=32)] = None,
    weekly_target: Annotated[int, Query(ge=0, le=100)] = 5,
) -> dict[str, Any]:
    """每周走访: each grid worker's visits in the month, week by week (ISO weeks), against a
    weekly target, with the households of their grids whose visit is overdue today."""
    code = principal.site_or(site)
    if code is None:
        raise FieldError("site", "required: you see several sites (name one with ?site=)")
    check_site(principal, code)
    year, mon = (int(x) for x in month.split("-"))
    first = date(year, mon, 1)
    after = date(year + (mon == 12), mon % 12 + 1, 1)
    visits = list(
        await session.scalars(
            select(HouseholdVisit).where(
                HouseholdVisit.site == code,
                HouseholdVisit.visited_on >= first,
                HouseholdVisit.visited_on < after,
            )
        )
    )
    workers = list(
        await session.scalars(
            select(Person)
            .where(Person.site == code, Person.role == "grid_worker")
            .order_by(Person.id)
        )
    )
    weeks = sorted({f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}" for d in _days(first, after)})
    out = []
    for w in workers:
        mine = [v for v in visits if v.visitor == w.id]
        counts = {k: 0 for k in weeks}
        for v in mine:
            iso = v.visited_on.isocalendar()
            counts[f"{iso[0]}-W{iso[1]:02d}"] += 1
        out.append(
            {
                "person_id": w.id,
                "name": w.name,
                "visits": len(mine),
                "weeks": [
                    {"week": k, "visits": n, "met": n >= weekly_target} for k, n in counts.items()
                ],
            }
        )
    return {"site": code, "month": month, "weekly_target": weekly_target, "workers": out}


def _days(first: date, after: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((after - first).days)]


@router.get("/households/elderly")
async def elderly_households(
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    grid: Annotated[str | None, Query(max_length=100)] = None,
) -> list[dict[str, Any]]:
    """Elderly people living alone in the caller's grids, with when any of their devices was
    last heard from (door, call button …) and their no-activity window."""
    q = select(Household, Building.grid_id, Building.name).join(
        Building, Building.id == Household.building_id
    )
    q = q.where(scope.where(Household.site, Building.grid_id))
    if grid is not None:
        q = q.where(Building.grid_id == grid)
    now = services.clock.now_ms()
    out = []
    for h, grid_id, building in (await session.execute(q.order_by(Household.id))).all():
        if ELDERLY_FLAG not in (h.flags or ()):
            continue
        devices = list(
            await session.scalars(
                select(Device).where(Device.household_id == h.id, Device.enabled.is_(True))
            )
        )
        seen = [
            s.get("last_seen_ms")
            for d in devices
            if services.device_status is not None
            and (s := services.device_status(d.site, d.device_id, now))
        ]
        last = max((t for t in seen if isinstance(t, int)), default=None)
        out.append(
            {
                "household_id": h.id,
                "grid_id": grid_id,
                "address": f"{building}{h.unit + '单元' if h.unit else ''}{h.room}室",
                "risk_tier": h.risk_tier,
                "facts": h.facts or {},
                "contacts": h.contacts or [],
                "no_activity_hours": h.no_activity_hours,
                "last_activity_ms": last,
                "devices": [d.device_id for d in devices],
            }
        )
    return out


@router.get("/history/{kind}/{target}")
async def history(
    kind: Annotated[str, Path(max_length=32)],
    target: Annotated[str, Path(max_length=300)],
    principal: SiteWideReader,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
) -> list[dict[str, Any]]:
    """Every change of one record, newest first, with who made it and the values before and
    after. A device's history includes the devices it replaced."""
    prefixes = HISTORY_KINDS.get(kind)
    if prefixes is None:
        raise FieldError("kind", f"one of: {', '.join(HISTORY_KINDS)}")
    targets = [target]
    if kind == "device":
        code = principal.site_or(site)
        if code is None:
            raise FieldError("site", "required for a device's history")
        check_site(principal, code)
        targets += await predecessors(session, code, target)
    q = select(audit.AuditRow).where(audit.AuditRow.target.in_(targets))
    if principal.sites is not None:
        # rules are shared by every site: their changes carry none
        own = audit.AuditRow.site.in_(sorted(principal.sites))
        q = q.where(or_(own, audit.AuditRow.site.is_(None)) if kind == "rule" else own)
    if site is not None:
        q = q.where(audit.AuditRow.site == site)
    rows = await session.scalars(q.order_by(audit.AuditRow.at_ms.desc(), audit.AuditRow.id.desc()))
    return [
        {
            "at_ms": r.at_ms,
            "actor": r.actor,
            "role": r.role,
            "action": r.action,
            "target": r.target,
            "detail": r.detail,
        }
        for r in rows
        if r.action.startswith(prefixes)
    ][:500]
