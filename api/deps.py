"""Request dependencies: services, DB session, the caller and their scope (least privilege here)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import ColumnElement, and_, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from api import refresh, security
from api.login_guard import LoginGuard
from api.services import ApiServices
from gateway.registry.tables import Building, BuildingLeader, Grid, Person, PersonGrid, Site

# A street office (街道) sees every community of its street, whole; it dispatches and
# acknowledges there (a street duty officer covers a community's empty desk at night) but does
# not edit a community's registry piece by piece: that stays with the community's secretary
# (the street office may replace a whole community file through /api/v1/sites).
SITE_WIDE = frozenset({"admin", "secretary", "duty_staff", "service", "street_office"})
GRID_BOUND = frozenset({"grid_worker", "building_leader"})
REGISTRY_WRITERS = frozenset({"admin", "secretary"})
# Roles whose reach goes beyond one community: only an admin makes or changes such people.
ABOVE_SITE = frozenset({"admin", "street_office"})
RULE_WRITERS = frozenset({"admin"})
DISPATCHERS = frozenset({"admin", "secretary", "duty_staff", "service", "street_office"})
REPORT_READERS = frozenset({"admin", "secretary", "duty_staff", "service", "street_office"})

bearer = HTTPBearer(auto_error=False, description="A login token or a service token")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (by login name) or an integration's service token."""

    id: str
    name: str
    role: str
    sites: frozenset[str] | None  # None: every site (admin, service tokens)
    is_service: bool = False
    home: str | None = None  # the site the person belongs to (None: admin, service tokens)

    @property
    def actor(self) -> str:
        return f"service:{self.id}" if self.is_service else self.id

    def sees_site(self, site: str | None) -> bool:
        return self.sites is None or (site is not None and site in self.sites)

    @property
    def only_site(self) -> str | None:
        """The caller's one site, the default where a route takes ``?site=`` (None: several)."""
        return next(iter(self.sites)) if self.sites is not None and len(self.sites) == 1 else None

    def site_or(self, site: str | None) -> str | None:
        """The site asked for, else the caller's only one (None when it stays ambiguous)."""
        return site or self.only_site


@dataclass(frozen=True)
class Scope:
    """What the caller may see and act on: sites (None = all) and grids (None = all)."""

    sites: frozenset[str] | None
    grids: frozenset[str] | None

    def sees_site(self, site: str | None) -> bool:
        return self.sites is None or (site is not None and site in self.sites)

    def narrowed(self, site: str | None) -> Scope:
        """This scope limited to ``site`` (a site filter); empty when ``site`` is not seen."""
        if site is None:
            return self
        return Scope(frozenset({site}) if self.sees_site(site) else frozenset(), self.grids)

    def sees(self, site: str, grid_id: str | None) -> bool:
        if not self.sees_site(site):
            return False
        if self.grids is None:
            return True
        return grid_id is not None and grid_id in self.grids

    def site_where(self, site_col: Any) -> ColumnElement[bool]:
        """A SQL condition limiting rows to this scope's sites (whatever the grids)."""
        return site_col.in_(sorted(self.sites)) if self.sites is not None else true()

    def where(self, site_col: Any, grid_col: Any | None) -> ColumnElement[bool]:
        """A SQL condition limiting rows to this scope."""
        clauses: list[ColumnElement[bool]] = []
        if self.sites is not None:
            clauses.append(site_col.in_(sorted(self.sites)))
        if self.grids is not None:
            clauses.append(grid_col.in_(sorted(self.grids)) if grid_col is not None else false())
        return and_(true(), *clauses)


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


ServicesDep = Annotated[ApiServices, Depends(get_services)]


def get_login_guard(request: Request) -> LoginGuard:
    guard: LoginGuard = request.app.state.login_guard
    return guard


LoginGuardDep = Annotated[LoginGuard, Depends(get_login_guard)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]

_UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    "not authenticated: log in at /api/v1/auth/login and send 'Authorization: Bearer <token>'",
    headers={"WWW-Authenticate": "Bearer"},
)


async def principal_of(token: str, services: ServicesDep, session: AsyncSession) -> Principal:
    name = security.match_service_token(token, dict(services.config.service_tokens))
    if name is not None:
        return Principal(name, name, "service", None, is_service=True)
    claims = security.read_token(
        token, now_ms=services.token_now_ms(), secret=services.config.secret_key
    )
    if claims is None:
        raise _UNAUTHORIZED
    person = await session.get(Person, claims.subject)
    if person is None or not person.active:
        raise _UNAUTHORIZED
    if not security.issued_under(claims, person.password_hash, services.config.secret_key):
        raise _UNAUTHORIZED  # the password changed since: tokens issued before are void
    if claims.session is not None and not await refresh.alive(
        session, claims.session, services.token_now_ms()  # logins live in real time
    ):
        raise _UNAUTHORIZED  # its login was ended ("log out everywhere", or expired)
    return Principal(
        person.id, person.name, person.role, await sites_of(session, person), home=person.site
    )


async def sites_of(session: AsyncSession, person: Person) -> frozenset[str] | None:
    """The sites a person works in: admin every one; a street office every site of the street
    its own site belongs to; everyone else their own site."""
    if person.role == "admin":
        return None
    if person.role == "street_office":
        street = await session.scalar(select(Site.street).where(Site.code == person.site))
        if street is not None:
            codes = await session.scalars(select(Site.code).where(Site.street == street))
            return frozenset(codes) | {person.site}
    return frozenset({person.site})


async def current_principal(
    services: ServicesDep,
    session: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if creds is None:
        raise _UNAUTHORIZED
    return await principal_of(creds.credentials, services, session)


async def stream_principal(
    services: ServicesDep,
    session: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    access_token: Annotated[
        str | None, Query(description="for EventSource, which sends no headers")
    ] = None,
) -> Principal:
    """Like :func:`current_principal`, also accepting ``?access_token=`` (EventSource)."""
    token = creds.credentials if creds is not None else access_token
    if not token:
        raise _UNAUTHORIZED
    return await principal_of(token, services, session)


CurrentPerson = Annotated[Principal, Depends(current_principal)]


async def grid_scope(principal: CurrentPerson, session: SessionDep) -> Scope:
    """The grids a grid worker or building leader answers for, with the grids nested in them."""
    return await scope_of(principal, session)


async def scope_of(principal: Principal, session: AsyncSession) -> Scope:
    """Least privilege in one place: site-wide roles see their sites, others their grids."""
    if principal.role not in GRID_BOUND:
        return Scope(principal.sites, None)
    own = set(
        await session.scalars(
            select(PersonGrid.grid_id).where(PersonGrid.person_id == principal.id)
        )
    )
    if principal.role == "building_leader":
        own |= set(
            await session.scalars(
                select(Building.grid_id)
                .join(BuildingLeader, BuildingLeader.building_id == Building.id)
                .where(BuildingLeader.person_id == principal.id)
            )
        )
    return Scope(principal.sites, frozenset(await _with_descendants(session, own)))


async def _with_descendants(session: AsyncSession, roots: set[str]) -> set[str]:
    found, frontier = set(roots), set(roots)
    while frontier:
        children = set(await session.scalars(select(Grid.id).where(Grid.parent_id.in_(frontier))))
        frontier = children - found
        found |= frontier
    return found


GridScope = Annotated[Scope, Depends(grid_scope)]


def require_role(
    allowed: frozenset[str],
) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency admitting only callers whose role is in ``allowed``."""

    async def check(principal: CurrentPerson) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role '{principal.role}' may not do this"
                f" (needs one of: {', '.join(sorted(allowed))})",
            )
        return principal

    return check


RegistryWriter = Annotated[Principal, Depends(require_role(REGISTRY_WRITERS))]
RuleWriter = Annotated[Principal, Depends(require_role(RULE_WRITERS))]
Dispatcher = Annotated[Principal, Depends(require_role(DISPATCHERS))]
ReportReader = Annotated[Principal, Depends(require_role(REPORT_READERS))]
SiteWideReader = Annotated[Principal, Depends(require_role(SITE_WIDE))]


def not_found(what: str, ident: object) -> HTTPException:
    """404 for both "does not exist" and "outside your grids": scope never leaks existence."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} '{ident}' not found")
