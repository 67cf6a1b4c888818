"""Log in (password → token), who am I, change a password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api import audit, refresh, security
from api.deps import CurrentPerson, LoginGuardDep, ServicesDep, SessionDep, not_found
from api.login_guard import LIMITED_DETAIL, LoginBusy, PasswordWorkers
from api.schemas import LoggedOut, PasswordChange, PersonPublic, RefreshRequest, Token
from gateway.registry.tables import BuildingLeader, Person, PersonGrid

router = APIRouter(prefix="/auth", tags=["auth"])


async def person_public(session: AsyncSession, person: Person) -> PersonPublic:
    duties = list(
        await session.scalars(select(PersonGrid).where(PersonGrid.person_id == person.id))
    )
    buildings = await session.scalars(
        select(BuildingLeader.building_id).where(BuildingLeader.person_id == person.id)
    )
    public = PersonPublic.model_validate(person)
    return public.model_copy(
        update={
            "grids": sorted(d.grid_id for d in duties if d.responsibility == "primary"),
            "backup_grids": sorted(d.grid_id for d in duties if d.responsibility == "backup"),
            "buildings": sorted(buildings),
        }
    )


_LIMITED = {"description": "too many attempts from this address (see Retry-After)"}
_BUSY = {"description": "too many password checks waiting (see Retry-After)"}


@router.post("/login", response_model=Token, responses={429: _LIMITED, 503: _BUSY})
async def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    services: ServicesDep,
    session: SessionDep,
    guard: LoginGuardDep,
) -> Token:
    """Exchange a login name and password for a bearer token (OAuth2 password form).

    Attempts are limited per client address and, for failures, per account and address
    (api/login_guard.py says why not per account alone): over a limit, 429 with Retry-After.
    """
    account = form.username[:80]
    address = request.client.host if request.client else "-"
    now = services.token_now_ms()
    # Refused before any argon2 work and without touching the database. (An address over
    # its own budget never gets here: api.login_guard.LoginFloodGate answers it.)
    wait_s = guard.limiter.retry_after_s(account, address, now)
    guard.limiter.attempted(address, now)
    if wait_s:
        await guard.hold(wait_s)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            LIMITED_DETAIL,
            headers={"Retry-After": str(wait_s)},
        )
    person = await session.get(Person, form.username)
    ok = await _verify(guard.workers, form.password, person.password_hash if person else None)
    now = services.token_now_ms()
    if person is None or not ok or not person.active:
        guard.limiter.failed(account, address, now)
        audit.record(
            session,
            at_ms=now,
            actor=account,
            role="-",
            action="auth.login",
            outcome="denied",
            site=person.site if person else None,
        )
        await session.commit()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong login name or password")
    guard.limiter.succeeded(account, address)
    issued = refresh.start(session, person.id, now, services.config.refresh_ttl_s)
    audit.record(
        session, at_ms=now, actor=person.id, role=person.role, action="auth.login", site=person.site
    )
    await session.commit()
    return await _tokens(services, session, person, issued, now)


async def _tokens(
    services: ServicesDep,
    session: AsyncSession,
    person: Person,
    issued: refresh.Issued,
    now: int,
) -> Token:
    ttl = services.config.token_ttl_s
    token = security.issue_token(
        person.id,
        now_ms=services.token_now_ms(),
        ttl_s=ttl,
        secret=services.config.secret_key,
        password_hash=person.password_hash,
        session=issued.family,
    )
    return Token(
        access_token=token,
        expires_in=ttl,
        person=await person_public(session, person),
        refresh_token=issued.token,
        refresh_expires_at_ms=issued.expires_at_ms,
    )


@router.post("/refresh", response_model=Token)
async def refresh_login(body: RefreshRequest, services: ServicesDep, session: SessionDep) -> Token:
    """A new access token and the login's next refresh token (the one sent is used up).

    The login lasts ``refresh_ttl_s`` from the password login (a shift); a refresh token used
    twice ends the login on every device (someone copied it)."""
    now = services.token_now_ms()
    rotated = await refresh.rotate(session, body.refresh_token, now)
    person = await session.get(Person, rotated[0]) if rotated else None
    if rotated is None or person is None or not person.active:
        await session.commit()  # a reused token's family stays ended
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login ended: log in again")
    await session.commit()
    return await _tokens(services, session, person, rotated[1], now)


@router.post("/logout-everywhere", response_model=LoggedOut)
async def logout_everywhere(
    principal: CurrentPerson, services: ServicesDep, session: SessionDep
) -> LoggedOut:
    """End every login of the caller — a lost phone — refresh and access tokens alike."""
    if principal.is_service:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "service tokens have no logins")
    now = services.token_now_ms()
    ended = await refresh.end_all(session, principal.id, now)
    audit.record_by(session, principal, now, "auth.logout_everywhere", target=principal.id)
    await session.commit()
    return LoggedOut(ended_logins=ended)


async def _verify(workers: PasswordWorkers, password: str, password_hash: str | None) -> bool:
    try:
        return await workers.verify(password, password_hash)
    except LoginBusy as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "busy checking other logins: try again shortly",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from exc


async def new_hash(workers: PasswordWorkers, password: str) -> str:
    """An argon2 hash made off the event loop (503 while the password workers are full)."""
    try:
        return await workers.hash(password)
    except LoginBusy as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "busy checking logins: try again shortly",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from exc


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
    body: PasswordChange,
    principal: CurrentPerson,
    services: ServicesDep,
    session: SessionDep,
    guard: LoginGuardDep,
) -> None:
    """Change one's own password; the current one is required. Every token issued before,
    the one used here included, stops working: log in again with the new password."""
    person = await session.get(Person, principal.id)
    if person is None or principal.is_service:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "service tokens have no password")
    if not await _verify(guard.workers, body.current_password or "", person.password_hash):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "current_password: does not match")
    person.password_hash = await new_hash(guard.workers, body.new_password)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "auth.password",
        target=person.id,
        site=person.site,
    )
    await session.commit()
