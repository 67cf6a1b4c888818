"""Sites (communities) of one deployment: the caller's sites with their live figures, and a
whole community file loaded or replaced through the API.

A loaded file goes through the same schema and checks as the gateway's own community file
(gateway/registry/loader.py); every problem names the field and the line. After the commit the
registry reloads, so the running gateway knows the new devices at once (no restart).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.incidents.lifecycle import ACTIVE_STATUSES
from alerting.incidents.tables import IncidentRow
from api import audit
from api.crud import check_site, commit_registry
from api.deps import (
    ABOVE_SITE,
    REGISTRY_WRITERS,
    CurrentPerson,
    GridScope,
    Principal,
    Scope,
    ServicesDep,
    SessionDep,
    not_found,
)
from api.errors import FieldError
from api.figures import local_month, month_bounds, unacknowledged
from api.loop_ledger import figures, ledger_items, ledger_row
from api.routes.devices import device_status
from api.schemas import DB_INT_MAX, SiteCreate
from api.services import ApiServices
from gateway.registry import CommunityError, apply, load_community_text
from gateway.registry.loader import community_digest
from gateway.registry.spec import CommunitySpec
from gateway.registry.tables import Device, Person, Site, Street

router = APIRouter(prefix="/sites", tags=["sites"])

YAML_TYPES = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
)
#: A community of a few thousand devices is well under this; more is a mistake or an attack.
MAX_COMMUNITY_BYTES = 8 * 1024 * 1024
#: Who may replace a whole community file of a site they see (a new site: admin only).
FILE_WRITERS = frozenset({"admin", "street_office", "secretary"})

CODE = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,32}$", description="the site's code")]
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {
                "schema": {"type": "string", "description": "a community file (YAML)"}
            },
        },
    }
}


class SiteFigures(BaseModel):
    """A site's figures as its secretary sees them on the board and in the monthly ledger."""

    devices: int
    online: int
    offline: int
    open_incidents: int  # 未结: open or acknowledged
    unacknowledged: int  # 待确认
    overdue: int  # unacknowledged past the severity's acknowledgement deadline
    month: str  # the site's current month (local time)
    hazards: int
    hazards_rectified: int
    rectification_rate: float | None  # 整改完成率 of the month (None: no hazards yet)


class SiteOverview(BaseModel):
    code: str
    name: str
    timezone: str
    address: str
    street: str | None
    street_name: str | None
    figures: SiteFigures


class CommunityLoaded(BaseModel):
    site: str
    created: bool
    street: str | None
    grids: int
    buildings: int
    households: int
    devices: int
    people: int


@router.get("", response_model=list[SiteOverview], summary="Your sites with their figures")
async def list_sites(
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    street: Annotated[str | None, Query(max_length=32, description="one street office")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> list[SiteOverview]:
    """Every site the caller sees (a street office: all of its street's communities), with
    devices online/offline, open and overdue incidents and the month's 整改完成率. Grid-bound
    people get the figures of their own grids."""
    q = select(Site).where(scope.site_where(Site.code))
    if street is not None:
        q = q.where(Site.street == street)
    sites = list(await session.scalars(q.order_by(Site.code).limit(limit).offset(offset)))
    names = {s.code: s.name for s in await session.scalars(select(Street))}
    return [
        SiteOverview(
            code=s.code,
            name=s.name,
            timezone=s.timezone,
            address=s.address,
            street=s.street,
            street_name=names.get(s.street) if s.street else None,
            figures=await site_figures(services, session, scope.narrowed(s.code), s),
        )
        for s in sites
    ]


async def site_figures(
    services: ApiServices, session: AsyncSession, scope: Scope, site: Site
) -> SiteFigures:
    """The figures of one site within ``scope`` (counted as /stats/overview and the monthly
    loop ledger count them, so a street office's card and the secretary's screens agree)."""
    now = services.clock.now_ms()
    devices = list(
        await session.scalars(select(Device).where(scope.where(Device.site, Device.grid_id)))
    )
    online = offline = 0
    for d in devices:
        state = (await device_status(services, d, with_fields=False)).online
        online += state is True
        offline += state is False
    active = list(
        await session.scalars(
            select(IncidentRow).where(
                scope.where(IncidentRow.site, IncidentRow.grid_id),
                IncidentRow.status.in_([s.value for s in ACTIVE_STATUSES]),
            )
        )
    )
    deadlines = services.config.ack_deadline_s

    def overdue(row: IncidentRow) -> bool:
        deadline = deadlines.get(row.severity, 0)
        return unacknowledged(row) and deadline > 0 and now - row.opened_at_ms > deadline * 1000

    month = local_month(now, site.timezone)
    hazards = rectified = 0
    rate: float | None = None
    if services.loop is not None:
        start, end = month_bounds(month, site.timezone)
        rows = [
            ledger_row(r, c, services.loop.desk, deadlines, site.timezone)
            for r, c in await ledger_items(session, site.code, start, end)
            if scope.sees(r.site, r.grid_id)
        ]
        loop = figures(rows)
        hazards, rectified, rate = loop.hazards, loop.hazards_rectified, loop.rectification_rate
    return SiteFigures(
        devices=len(devices),
        online=online,
        offline=offline,
        open_incidents=len(active),
        unacknowledged=sum(unacknowledged(i) for i in active),
        overdue=sum(overdue(i) for i in active),
        month=month,
        hazards=hazards,
        hazards_rectified=rectified,
        rectification_rate=rate,
    )


# --- loading a community file -------------------------------------------------------------------


async def _body(request: Request) -> tuple[str, bytes]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_COMMUNITY_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "community file too large")
    body = await request.body()
    if len(body) > MAX_COMMUNITY_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "community file too large")
    return kind, body


def _parse(body: bytes, source: str, tiers: Collection[str]) -> CommunitySpec:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError("body", "the community file must be UTF-8 text") from None
    try:
        return load_community_text(text, source=source, tiers=tiers)
    except CommunityError as exc:
        raise HTTPException(
            422,
            {"message": "the community file has problems", "problems": exc.problems},
        ) from None


async def _guard(
    session: AsyncSession, principal: Principal, spec: CommunitySpec, stored: Site | None
) -> None:
    """What a community file may change, by who sends it: people's reach never grows by an
    upload, and a site stays with its street unless an admin moves it."""
    code = spec.site.code
    admin = principal.role == "admin"
    if not admin:
        wanted = spec.site.street.code if spec.site.street else None
        held = stored.street if stored is not None else None
        if wanted != held:
            raise FieldError(
                "site.street",
                f"only an admin moves a community to another street office ('{held}' stays)",
                status.HTTP_403_FORBIDDEN,
            )
        if held is not None and spec.site.street is not None:
            street = await session.get(Street, held)
            if street is not None:  # the street's name is the street office's, not a site's
                spec.site.street = spec.site.street.model_copy(update={"name": street.name})
    ids = [p.id for p in spec.people]
    existing = {
        p.id: p for p in await session.scalars(select(Person).where(Person.id.in_(ids)))
    }
    for i, p in enumerate(spec.people):
        old = existing.get(p.id)
        if old is not None and old.site != code:
            raise FieldError(
                f"people[{i}].id",
                f"'{p.id}' is a login of another site; pick another id",
                status.HTTP_409_CONFLICT,
            )
        roles = {p.role, old.role if old else None}
        # Nobody's reach grows past the sender's: a street office may name its colleagues,
        # a secretary no one above the site, and only an admin names an admin.
        allowed = {"admin", "street_office"} if admin else (
            {"street_office"} if principal.role == "street_office" else set()
        )
        if (ABOVE_SITE & roles) - allowed:
            raise FieldError(
                f"people[{i}].role",
                "only an admin adds or changes an admin; only an admin or the street office"
                " a street_office person",
                status.HTTP_403_FORBIDDEN,
            )


def _constraint(exc: IntegrityError) -> str:
    """Which rule the database refused, without the row's values."""
    text = str(exc.orig).lower()
    if "vendor_identity" in text:
        return "a devices[].vendor_identity is already another device's"
    return "a name or id in it is already used elsewhere"


async def _load(
    services: ApiServices,
    session: AsyncSession,
    principal: Principal,
    spec: CommunitySpec,
    stored: Site | None,
) -> CommunityLoaded:
    await _guard(session, principal, spec, stored)
    try:
        await apply(session, spec)
    except IntegrityError as exc:  # e.g. a vendor identity another site's device already has
        await session.rollback()
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the community file conflicts with existing data: {_constraint(exc)}",
        ) from None
    site = await session.get(Site, spec.site.code)
    assert site is not None  # apply() upserted it
    site.community_digest = community_digest(spec)
    loaded = CommunityLoaded(
        site=spec.site.code,
        created=stored is None,
        street=spec.site.street.code if spec.site.street else None,
        grids=len(spec.all_grids()),
        buildings=len(spec.buildings),
        households=len(spec.households),
        devices=len(spec.devices),
        people=len(spec.people),
    )
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "site.community_load",
        target=spec.site.code,
        site=spec.site.code,
        detail=loaded.model_dump() | {"digest": site.community_digest},
    )
    await commit_registry(session, services, "community file")
    return loaded


@router.post(
    "",
    status_code=201,
    summary="Add a site: a community file (YAML), or a bare site (JSON)",
    openapi_extra=_BODY_DOC
    | {
        "requestBody": {
            "required": True,
            "content": {
                **_BODY_DOC["requestBody"]["content"],
                "application/json": {"schema": SiteCreate.model_json_schema()},
            },
        }
    },
    response_model=None,
)
async def create_site(
    request: Request, principal: CurrentPerson, services: ServicesDep, session: SessionDep
) -> dict[str, Any]:
    """A community file (``Content-Type: application/yaml``, the schema of the gateway's
    community file) creates the site with its grids, buildings, households, devices, people
    and roster — admins only. A JSON body ``{code, name, timezone, address}`` creates a bare
    site as before."""
    kind, body = await _body(request)
    if kind == "application/json":
        return await _bare_site(body, principal, services, session)
    if kind not in YAML_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send a community file as application/yaml (or a bare site as application/json)",
        )
    if principal.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin adds a site")
    # Parsed off the event loop: the alarm path keeps running meanwhile.
    spec = await asyncio.to_thread(_parse, body, "community file", list(services.risk_tiers))
    stored = await session.get(Site, spec.site.code)
    if stored is not None:
        raise FieldError(
            "site.code",
            f"site '{spec.site.code}' exists: PUT /api/v1/sites/{spec.site.code} replaces it",
            status.HTTP_409_CONFLICT,
        )
    return (await _load(services, session, principal, spec, None)).model_dump()


async def _bare_site(
    body: bytes, principal: Principal, services: ApiServices, session: AsyncSession
) -> dict[str, Any]:
    if principal.role not in REGISTRY_WRITERS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role '{principal.role}' may not do this")
    try:
        data = SiteCreate.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise FieldError(field, first["msg"]) from None
    check_site(principal, data.code)
    if await session.get(Site, data.code) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"site '{data.code}' already exists")
    row = Site(**data.model_dump())
    session.add(row)
    await session.flush()
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "site.create",
        target=row.code,
        site=row.code,
        detail=data.model_dump(mode="json"),
    )
    await commit_registry(session, services, "site")
    return {
        "code": row.code,
        "name": row.name,
        "timezone": row.timezone,
        "address": row.address,
        "street": row.street,
    }


@router.put(
    "/{code}",
    response_model=CommunityLoaded,
    summary="Replace a site's community file (YAML)",
    openapi_extra=_BODY_DOC,
)
async def replace_site(
    code: CODE,
    request: Request,
    principal: CurrentPerson,
    services: ServicesDep,
    session: SessionDep,
) -> CommunityLoaded:
    """Apply a community file to an existing site: what it names is upserted (devices added,
    people's grids and the roster replaced), what it leaves out is kept. An admin, the
    site's street office or its secretary."""
    stored = await session.get(Site, code)
    if stored is None or not principal.sees_site(code):
        raise not_found("site", code)
    if principal.role not in FILE_WRITERS:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role '{principal.role}' may not do this (needs one of: {', '.join(sorted(FILE_WRITERS))})",
        )
    kind, body = await _body(request)
    if kind not in YAML_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the community file as application/yaml"
        )
    spec = await asyncio.to_thread(_parse, body, "community file", list(services.risk_tiers))
    if spec.site.code != code:
        raise FieldError("site.code", f"the file is for site '{spec.site.code}', not '{code}'")
    return await _load(services, session, principal, spec, stored)
