"""Registry CRUD as data: one ``Resource`` record per table instead of five copies of each route."""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations, which
# name each resource's schemas through closure variables.
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel
from sqlalchemy import BigInteger, Select, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api import audit
from api.deps import (
    CurrentPerson,
    GridScope,
    Principal,
    RegistryWriter,
    Scope,
    ServicesDep,
    SessionDep,
    not_found,
)
from api.errors import FieldError
from api.schemas import DB_INT32_MAX, DB_INT_MAX
from api.services import ApiServices
from core.db import Base


@dataclass(frozen=True)
class Resource:
    """One registry table exposed as ``/{name}``.

    ``make_key`` derives the primary key from a create body; ``refs`` maps a body field to the
    table it must point into (checked first, so a bad reference names its field);
    ``scoped`` limits a select to what a scope may read.
    """

    name: str
    label: str
    model: type[Base]
    create: type[BaseModel]
    update: type[BaseModel]
    public: type[BaseModel]
    make_key: Callable[[Any], Any]
    scoped: Callable[[Select[Any], Scope], Select[Any]]
    site_attr: str = "site"
    key_type: type = str
    refs: dict[str, type[Base]] = field(default_factory=dict)
    readers: frozenset[str] | None = None  # None: everyone, limited by ``scoped``
    order_by: str = "id"
    list_route: bool = True  # False: the resource's module lists it itself
    create_route: bool = True  # False: another module creates it (sites: api/routes/sites.py)
    # Checks a create body's values / an update's changes against configuration (FieldError).
    check: Callable[[ApiServices, dict[str, Any]], None] | None = None


async def check_refs(
    session: AsyncSession, refs: dict[str, type[Base]], values: dict[str, Any], site: str
) -> None:
    """Every referenced row must exist in the same site; the error names the field."""
    for name, model in refs.items():
        ref = values.get(name)
        if ref is None:
            continue
        row = await session.get(model, ref)
        if row is None or getattr(row, "site", getattr(row, "code", None)) != site:
            raise FieldError(name, f"no {model.__tablename__[:-1]} '{ref}' in site '{site}'")


def check_nulls(model: type[Base], changes: dict[str, Any]) -> None:
    """A change may set a column to null only where the column may be empty (else the
    database refuses it: a 500). Names that are not columns are the caller's business."""
    columns = inspect(model).columns
    for name, value in changes.items():
        if value is None and name in columns and not columns[name].nullable:
            raise FieldError(name, "may not be null (leave it out to keep the value)")


def check_site(principal: Principal, site: str) -> None:
    if not principal.sees_site(site):
        raise FieldError("site", f"you may not change site '{site}'", status.HTTP_403_FORBIDDEN)


def _readable(res: Resource, principal: Principal) -> None:
    if res.readers is not None and principal.role not in res.readers:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"role '{principal.role}' may not read {res.name}"
        )


async def commit_or_conflict(session: AsyncSession, what: str) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{what} conflicts with existing data (duplicate or still in use)",
        ) from exc


async def commit_registry(session: AsyncSession, services: ApiServices, what: str) -> None:
    """Commit a registry change, then refresh the pipeline's cached registry."""
    await commit_or_conflict(session, what)
    if services.registry is not None:
        await services.registry.refresh()


def build_router(res: Resource) -> APIRouter:
    router = APIRouter(prefix=f"/{res.name}", tags=["registry"])
    Create, Update, Public = res.create, res.update, res.public
    key_col = getattr(res.model, res.order_by)
    site_col = getattr(res.model, res.site_attr)
    # An integer key past its column (32 bits on PostgreSQL unless BigInteger) fails in the
    # database driver instead of finding nothing.
    key_max = DB_INT_MAX if isinstance(key_col.type, BigInteger) else DB_INT32_MAX
    Key = Annotated[int, Path(ge=1, le=key_max)] if res.key_type is int else res.key_type

    async def _get(session: AsyncSession, scope: Scope, key: Any) -> Any:
        q = res.scoped(select(res.model), scope).where(key_col == key)
        row = (await session.scalars(q)).first()
        if row is None:
            raise not_found(res.label, key)
        return row

    async def list_rows(
        session: SessionDep,
        scope: GridScope,
        principal: CurrentPerson,
        site: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
        offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
    ) -> list[Any]:
        _readable(res, principal)
        q = res.scoped(select(res.model), scope).order_by(key_col)
        if site is not None:
            q = q.where(site_col == site)
        return list((await session.scalars(q.limit(limit).offset(offset))).all())

    if res.list_route:
        router.get("", response_model=list[Public], summary=f"List {res.name}")(list_rows)  # type: ignore[valid-type]

    @router.get("/{key}", response_model=Public, summary=f"Get one {res.label}")
    async def get_row(
        key: Key,  # type: ignore[valid-type]
        session: SessionDep,
        scope: GridScope,
        principal: CurrentPerson,
    ) -> Any:
        _readable(res, principal)
        return await _get(session, scope, key)

    async def create_row(
        body: Create,  # type: ignore[valid-type]
        principal: RegistryWriter,
        services: ServicesDep,
        session: SessionDep,
    ) -> Any:
        data: BaseModel = body
        values = data.model_dump()
        site = str(values[res.site_attr])
        check_site(principal, site)
        await check_refs(session, res.refs, values, site)
        if res.check is not None:
            res.check(services, values)
        key = res.make_key(data)
        if key is not None and await session.get(res.model, key) is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"{res.label} '{key}' already exists")
        row = res.model(**(values | ({res.order_by: key} if key is not None else {})))
        session.add(row)
        await session.flush()
        audit.record_by(
            session,
            principal,
            services.clock.now_ms(),
            f"{res.label}.create",
            target=str(getattr(row, res.order_by)),
            site=site,
            detail=data.model_dump(mode="json"),
        )
        await commit_registry(session, services, res.label)
        return row

    if res.create_route:
        router.post("", response_model=Public, status_code=201, summary=f"Create a {res.label}")(
            create_row
        )

    @router.patch("/{key}", response_model=Public, summary=f"Change a {res.label}")
    async def update_row(
        key: Key,  # type: ignore[valid-type]
        body: Update,  # type: ignore[valid-type]
        principal: RegistryWriter,
        scope: GridScope,
        services: ServicesDep,
        session: SessionDep,
    ) -> Any:
        row = await _get(session, scope, key)
        site = getattr(row, res.site_attr)
        check_site(principal, site)
        data: BaseModel = body
        changes = data.model_dump(exclude_unset=True)
        check_nulls(res.model, changes)
        await check_refs(session, res.refs, changes, site)
        if res.check is not None:
            res.check(services, changes)
        before = Public.model_validate(row).model_dump(mode="json")
        for name, value in changes.items():
            setattr(row, name, value)
        audit.record_by(
            session,
            principal,
            services.clock.now_ms(),
            f"{res.label}.update",
            target=str(key),
            site=site,
            detail=audit.change(before, data.model_dump(mode="json", exclude_unset=True)),
        )
        await commit_registry(session, services, res.label)
        await session.refresh(row)
        return row

    @router.delete("/{key}", status_code=204, summary=f"Delete a {res.label}")
    async def delete_row(
        key: Key,  # type: ignore[valid-type]
        principal: RegistryWriter,
        scope: GridScope,
        services: ServicesDep,
        session: SessionDep,
    ) -> None:
        row = await _get(session, scope, key)
        site = getattr(row, res.site_attr)
        check_site(principal, site)
        before = Public.model_validate(row).model_dump(mode="json")
        await session.delete(row)
        audit.record_by(
            session,
            principal,
            services.clock.now_ms(),
            f"{res.label}.delete",
            target=str(key),
            site=site,
            detail={"before": before},
        )
        await commit_registry(session, services, res.label)

    return router
