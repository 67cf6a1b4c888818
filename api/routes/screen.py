"""What every screen needs to show people words instead of codes: the site's name and time
zone, and the names of the grids, buildings and people the caller's scope covers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import GridScope, SessionDep, not_found
from gateway.registry.tables import Building, Grid, Person, Site

router = APIRouter(prefix="/screen", tags=["screen"])


class ScreenContext(BaseModel):
    site: str
    site_name: str
    timezone: str  # IANA name; every screen shows times in it, never in the browser's zone
    utc_offset_minutes: int  # the zone's offset now (for the "UTC+8" label)
    grids: dict[str, str]  # id → name
    buildings: dict[str, str]
    people: dict[str, str]


@router.get("", response_model=ScreenContext)
async def screen_context(
    scope: GridScope,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
) -> ScreenContext:
    """The caller's site (or ``site``, for admins and street offices) with the names its
    screens show."""
    code = site
    if code is None:  # without ?site=: the caller's only site, else the first it sees
        code = await session.scalar(
            select(Site.code).where(scope.site_where(Site.code)).order_by(Site.code).limit(1)
        )
    row = await session.get(Site, code) if code is not None else None
    if row is None or not scope.sees_site(row.code):
        raise not_found("site", site or "")
    grids = await session.execute(
        select(Grid.id, Grid.name).where(Grid.site == row.code, scope.where(Grid.site, Grid.id))
    )
    buildings = await session.execute(
        select(Building.id, Building.name).where(
            Building.site == row.code, scope.where(Building.site, Building.grid_id)
        )
    )
    people = await session.execute(select(Person.id, Person.name).where(Person.site == row.code))
    offset = datetime.now(ZoneInfo(row.timezone)).utcoffset() or timedelta()
    return ScreenContext(
        site=row.code,
        site_name=row.name,
        timezone=row.timezone,
        utc_offset_minutes=int(offset.total_seconds() // 60),
        grids={k: v for k, v in grids},
        buildings={k: v for k, v in buildings},
        people={k: v for k, v in people},
    )
