"""Log in (password → token), who am I, change a password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api import audit, security
from api.deps import CurrentPerson, ServicesDep, SessionDep, not_found
from api.schemas import PasswordChange, PersonPublic, Token
from gateway.registry.tables import BuildingLeader, Person, PersonGrid

router = APIRouter(prefix="/auth", tags=["auth"])


async def person_public(session: AsyncSession, person: Person) -> PersonPublic:
    grids = await session.scalars(
        select(PersonGrid.grid_id).where(PersonGrid.person_id == person.id)
    )
    buildings = await session.scalars(
        select(BuildingLeader.building_id).where(BuildingLeader.person_id == person.id)
    )
    public = PersonPublic.model_validate(person)
    return public.model_copy(update={"grids": sorted(grids), "buildings": sorted(buildings)})


@router.post("/login", response_model=Token)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    services: ServicesDep,
    session: SessionDep,
) -> Token:
    """Exchange a login name and password for a bearer token (OAuth2 password form)."""
    person = await session.get(Person, form.username)
    ok = security.verify_password(form.password, person.password_hash if person else None)
    now = services.clock.now_ms()
    if person is None or not ok or not person.active:
        audit.record(
            session,
            at_ms=now,
            actor=form.username[:80],
            role="-",
            action="auth.login",
            outcome="denied",
            site=person.site if person else None,
        )
        await session.commit()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong login name or password")
    ttl = services.config.token_ttl_s
    token = security.issue_token(
        person.id, now_ms=now, ttl_s=ttl, secret=services.config.secret_key
    )
    audit.record(
        session, at_ms=now, actor=person.id, role=person.role, action="auth.login", site=person.site
    )
    await session.commit()
    return Token(access_token=token, expires_in=ttl, person=await person_public(session, person))


@router.get("/me", response_model=PersonPublic)
async def me(principal: CurrentPerson, session: SessionDep) -> PersonPublic:
    if principal.is_service:
        return PersonPublic(
            id=principal.id,
            site="*",
            name=principal.name,
            role="service",
            phone="",
            email="",
            active=True,
        )
    person = await session.get(Person, principal.id)
    if person is None:
        raise not_found("person", principal.id)
    return await person_public(session, person)


@router.put("/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: PasswordChange, principal: CurrentPerson, services: ServicesDep, session: SessionDep
) -> None:
    """Change one's own password; the current one is required."""
    person = await session.get(Person, principal.id)
    if person is None or principal.is_service:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "service tokens have no password")
    if not security.verify_password(body.current_password or "", person.password_hash):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "current_password: does not match")
    person.password_hash = security.hash_password(body.new_password)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "auth.password",
        target=person.id,
        site=person.site,
    )
    await session.commit()
