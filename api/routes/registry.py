"""Registry CRUD: sites, grids, buildings, households, people and roster shifts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import Select, delete, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from api import audit
from api.crud import (
    Resource,
    build_router,
    check_nulls,
    check_refs,
    check_site,
    commit_registry,
)
from api.deps import (
    ABOVE_SITE,
    SITE_WIDE,
    LoginGuardDep,
    Principal,
    RegistryWriter,
    Scope,
    ServicesDep,
    SessionDep,
    SiteWideReader,
    not_found,
)
from api.errors import FieldError
from api.routes.auth import new_hash, person_public
from api.schemas import (
    DB_INT_MAX,
    BuildingCreate,
    BuildingPublic,
    BuildingUpdate,
    GridCreate,
    GridPublic,
    GridUpdate,
    HouseholdCreate,
    HouseholdPublic,
    HouseholdUpdate,
    PersonCreate,
    PersonPublic,
    PersonUpdate,
    RosterEntryPublic,
    RosterShiftCreate,
    RosterShiftPublic,
    RosterShiftUpdate,
    SiteCreate,
    SitePublic,
    SiteUpdate,
)
from api.services import ApiServices
from gateway.registry.spec import WEEKDAYS
from gateway.registry.tables import (
    Building,
    BuildingLeader,
    Grid,
    Household,
    Person,
    PersonGrid,
    RosterShift,
    RosterWeekly,
    Site,
)


def _sites(q: Select[Any], scope: Scope) -> Select[Any]:
    return q.where(scope.site_where(Site.code))


def _households(q: Select[Any], scope: Scope) -> Select[Any]:
    return q.join(Building, Building.id == Household.building_id).where(
        scope.where(Household.site, Building.grid_id)
    )


def _site_only(q: Select[Any], scope: Scope) -> Select[Any]:
    q = q.where(scope.site_where(RosterShift.site))
    return q.where(false()) if scope.grids is not None else q


def _household_check(services: ApiServices, values: dict[str, Any]) -> None:
    tier = values.get("risk_tier")
    if tier is not None and tier not in services.risk_tiers:
        known = ", ".join(services.risk_tiers)
        raise FieldError("risk_tier", f"unknown tier '{tier}' (configured: {known})")


def _household_key(body: HouseholdCreate) -> str:
    return (
        f"{body.building_id}.{body.unit}-{body.room}"
        if body.unit
        else f"{body.building_id}.{body.room}"
    )


RESOURCES = (
    Resource(
        "sites",
        "site",
        Site,
        SiteCreate,
        SiteUpdate,
        SitePublic,
        make_key=lambda b: b.code,
        scoped=_sites,
        site_attr="code",
        order_by="code",
        list_route=False,  # api/routes/sites.py lists sites with their figures
        create_route=False,  # and creates them (a community file, or a bare site)
    ),
    Resource(
        "grids",
        "grid",
        Grid,
        GridCreate,
        GridUpdate,
        GridPublic,
        make_key=lambda b: f"{b.site}.{b.code}",
        scoped=lambda q, s: q.where(s.where(Grid.site, Grid.id)),
        refs={"site": Site, "parent_id": Grid},
    ),
    Resource(
        "buildings",
        "building",
        Building,
        BuildingCreate,
        BuildingUpdate,
        BuildingPublic,
        make_key=lambda b: f"{b.site}.{b.code}",
        scoped=lambda q, s: q.where(s.where(Building.site, Building.grid_id)),
        refs={"site": Site, "grid_id": Grid},
    ),
    Resource(
        "households",
        "household",
        Household,
        HouseholdCreate,
        HouseholdUpdate,
        HouseholdPublic,
        make_key=_household_key,
        scoped=_households,
        refs={"site": Site, "building_id": Building},
        check=_household_check,
    ),
    Resource(
        "rosters",
        "roster shift",
        RosterShift,
        RosterShiftCreate,
        RosterShiftUpdate,
        RosterShiftPublic,
        make_key=lambda b: None,
        scoped=_site_only,
        key_type=int,
        refs={"site": Site, "person_id": Person},
        readers=SITE_WIDE,
        list_route=False,  # listed below with the weekly slots
    ),
)

router = APIRouter()


@router.get("/rosters", response_model=list[RosterEntryPublic], tags=["registry"],
            summary="List rosters")
async def list_rosters(
    principal: SiteWideReader,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> list[RosterEntryPublic]:
    """The whole roster: the weekly slots (as the community file gives them), then the shifts
    (``limit``/``offset`` page through both)."""
    weekly_q = select(RosterWeekly).order_by(RosterWeekly.person_id, RosterWeekly.start_time)
    shifts_q = select(RosterShift).order_by(RosterShift.starts_at, RosterShift.id)
    if principal.sites is not None:
        weekly_q = weekly_q.where(RosterWeekly.site.in_(sorted(principal.sites)))
        shifts_q = shifts_q.where(RosterShift.site.in_(sorted(principal.sites)))
    if site is not None:
        weekly_q = weekly_q.where(RosterWeekly.site == site)
        shifts_q = shifts_q.where(RosterShift.site == site)
    slots: dict[tuple[str, str, str, Any, Any], list[int]] = {}
    for w in await session.scalars(weekly_q):
        slots.setdefault((w.site, w.person_id, w.role, w.start_time, w.end_time), []).append(
            w.weekday
        )
    out = [
        RosterEntryPublic(
            kind="weekly", site=site_, person_id=person, role=role,
            days=[WEEKDAYS[d] for d in sorted(set(days))],
            start=start.strftime("%H:%M"), end=end.strftime("%H:%M"),
        )
        for (site_, person, role, start, end), days in slots.items()
    ]
    out += [
        RosterEntryPublic(
            kind="shift", id=r.id, site=r.site, person_id=r.person_id, role=r.role,
            starts_at=r.starts_at, ends_at=r.ends_at,
        )
        for r in await session.scalars(shifts_q)
    ]
    return out[offset : offset + limit]


for _resource in RESOURCES:
    router.include_router(build_router(_resource))

people = APIRouter(prefix="/people", tags=["registry"])


class PasswordReset(BaseModel):
    new_password: str = Field(min_length=8, max_length=200)
    model_config = {"extra": "forbid"}


async def _set_duties(
    session: AsyncSession,
    person: Person,
    grids: list[str] | None,
    buildings: list[str] | None,
    backup_grids: list[str] | None = None,
) -> None:
    if grids is not None or backup_grids is not None:
        old = list(
            await session.scalars(select(PersonGrid).where(PersonGrid.person_id == person.id))
        )
        if grids is None:
            grids = [d.grid_id for d in old if d.responsibility == "primary"]
        if backup_grids is None:
            backup_grids = [d.grid_id for d in old if d.responsibility == "backup"]
        for field_name, ids in (("grids", grids), ("backup_grids", backup_grids)):
            for i, grid in enumerate(ids):
                key = f"{field_name}.{i}"
                await check_refs(session, {key: Grid}, {key: grid}, person.site)
        await session.execute(delete(PersonGrid).where(PersonGrid.person_id == person.id))
        await session.flush()
        primary = dict.fromkeys(grids)
        session.add_all(PersonGrid(person_id=person.id, grid_id=g) for g in primary)
        session.add_all(
            PersonGrid(person_id=person.id, grid_id=g, responsibility="backup")
            for g in dict.fromkeys(backup_grids)
            if g not in primary
        )
    if buildings is not None:
        for i, b in enumerate(buildings):
            await check_refs(
                session, {f"buildings.{i}": Building}, {f"buildings.{i}": b}, person.site
            )
        await session.execute(delete(BuildingLeader).where(BuildingLeader.person_id == person.id))
        session.add_all(
            BuildingLeader(person_id=person.id, building_id=b) for b in dict.fromkeys(buildings)
        )


async def _person(session: AsyncSession, principal: Principal, person_id: str) -> Person:
    person = await session.get(Person, person_id)
    if person is None or not principal.sees_site(person.site):
        raise not_found("person", person_id)
    return person


@people.get("", response_model=list[PersonPublic])
async def list_people(
    principal: SiteWideReader,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
    role: Annotated[str | None, Query(max_length=32)] = None,
) -> list[PersonPublic]:
    q = select(Person).order_by(Person.id)
    if principal.sites is not None:
        q = q.where(Person.site.in_(sorted(principal.sites)))
    if site is not None:
        q = q.where(Person.site == site)
    if role is not None:
        q = q.where(Person.role == role)
    return [await person_public(session, p) for p in await session.scalars(q)]


@people.get("/{person_id}", response_model=PersonPublic)
async def get_person(
    person_id: str, principal: SiteWideReader, session: SessionDep
) -> PersonPublic:
    return await person_public(session, await _person(session, principal, person_id))


@people.post("", response_model=PersonPublic, status_code=201)
async def create_person(
    body: PersonCreate,
    principal: RegistryWriter,
    services: ServicesDep,
    session: SessionDep,
    guard: LoginGuardDep,
) -> PersonPublic:
    check_site(principal, body.site)
    if body.role in ABOVE_SITE and principal.role != "admin":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"role: only an admin may create a {body.role}"
        )
    await check_refs(session, {"site": Site}, {"site": body.site}, body.site)
    if await session.get(Person, body.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"person '{body.id}' already exists")
    fields = body.model_dump(exclude={"password", "grids", "buildings", "backup_grids"})
    password_hash = await new_hash(guard.workers, body.password) if body.password else None
    person = Person(**fields, password_hash=password_hash)
    session.add(person)
    await session.flush()
    await _set_duties(session, person, body.grids, body.buildings, body.backup_grids)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "person.create",
        target=person.id,
        site=person.site,
        detail=body.model_dump(mode="json", exclude={"password"}),
    )
    await commit_registry(session, services, "person")
    return await person_public(session, person)


@people.patch("/{person_id}", response_model=PersonPublic)
async def update_person(
    person_id: str,
    body: PersonUpdate,
    principal: RegistryWriter,
    services: ServicesDep,
    session: SessionDep,
) -> PersonPublic:
    person = await _person(session, principal, person_id)
    before = (await person_public(session, person)).model_dump(mode="json")
    changes = body.model_dump(exclude_unset=True, exclude={"grids", "buildings", "backup_grids"})
    check_nulls(Person, changes)
    if ABOVE_SITE & {changes.get("role"), person.role} and principal.role != "admin":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "role: only an admin may change an admin or a street_office person",
        )
    for name, value in changes.items():
        setattr(person, name, value)
    await _set_duties(session, person, body.grids, body.buildings, body.backup_grids)
    await session.flush()
    changed = body.model_dump(mode="json", exclude_unset=True)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "person.update",
        target=person.id,
        site=person.site,
        detail=audit.change(before, changed),
    )
    await commit_registry(session, services, "person")
    return await person_public(session, person)


@people.put("/{person_id}/password", status_code=204)
async def reset_password(
    person_id: str,
    body: PasswordReset,
    principal: RegistryWriter,
    services: ServicesDep,
    session: SessionDep,
    guard: LoginGuardDep,
) -> None:
    person = await _person(session, principal, person_id)
    if person.role in ABOVE_SITE and principal.role != "admin":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"only an admin may reset a {person.role}'s password"
        )
    person.password_hash = await new_hash(guard.workers, body.new_password)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "person.password_reset",
        target=person.id,
        site=person.site,
    )
    await session.commit()


@people.delete("/{person_id}", status_code=204)
async def delete_person(
    person_id: str, principal: RegistryWriter, services: ServicesDep, session: SessionDep
) -> None:
    person = await _person(session, principal, person_id)
    if person.role in ABOVE_SITE and principal.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"only an admin may delete a {person.role}")
    await session.execute(delete(PersonGrid).where(PersonGrid.person_id == person.id))
    await session.execute(delete(BuildingLeader).where(BuildingLeader.person_id == person.id))
    await session.delete(person)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "person.delete",
        target=person_id,
        site=person.site,
    )
    await commit_registry(session, services, "person")


router.include_router(people)
