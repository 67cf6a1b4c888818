"""Statistics per grid and period, and the board's overview (open incidents, offline devices)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from alerting.incidents.lifecycle import ACTIVE_STATUSES
from alerting.incidents.tables import IncidentRow
from api.deps import GridScope, ServicesDep, SessionDep, not_found
from api.errors import FieldError
from api.figures import grid_stats, unacknowledged
from api.paged import incidents_opened
from api.routes.devices import device_status
from api.schemas import EPOCH_MS_MAX, StatsPublic
from gateway.registry.tables import Building, Device, Grid

router = APIRouter(prefix="/stats", tags=["stats"])


@router.get("", response_model=StatsPublic)
async def stats(
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    start_ms: Annotated[int, Query(ge=0, le=EPOCH_MS_MAX)],
    end_ms: Annotated[int, Query(ge=0, le=EPOCH_MS_MAX)],
    site: Annotated[str | None, Query(max_length=32)] = None,
    grid: Annotated[str | None, Query(max_length=100)] = None,
) -> StatsPublic:
    """Per grid over incidents opened in ``[start_ms, end_ms)``: counts by type and severity,
    mean time to acknowledge and to resolve, share handled within the deadline, and the
    resolution rate (办结率: resolved or closed over all)."""
    if end_ms <= start_ms:
        raise FieldError("end_ms", "must be after start_ms")
    if site is not None and not scope.sees_site(site):
        raise not_found("site", site)
    where = [scope.where(IncidentRow.site, IncidentRow.grid_id)]
    if site is not None:
        where.append(IncidentRow.site == site)
    if grid is not None:
        where.append(IncidentRow.grid_id == grid)
    rows = await incidents_opened(session, start_ms, end_ms, *where)
    per_grid: dict[str, list[IncidentRow]] = defaultdict(list)
    for row in rows:
        per_grid[row.grid_id].append(row)
    deadlines = services.config.ack_deadline_s
    grids = []
    for g in sorted(per_grid):
        grids.append(grid_stats(g, per_grid[g], deadlines))
        await asyncio.sleep(0)  # a turn for the alarm path between grids (api/paged.py)
    return StatsPublic(
        site=site or (next(iter(scope.sites)) if scope.sites and len(scope.sites) == 1 else None),
        start_ms=start_ms,
        end_ms=end_ms,
        total=grid_stats("*", rows, deadlines),
        grids=grids,
    )


@router.get("/overview")
async def overview(
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32, description="one of your sites")] = None,
) -> dict[str, Any]:
    """Grids → buildings with device counts and status, open incidents, offline devices."""
    scope = scope.narrowed(site)
    grids = list(
        await session.scalars(select(Grid).where(scope.where(Grid.site, Grid.id)).order_by(Grid.id))
    )
    buildings = list(
        await session.scalars(
            select(Building)
            .where(scope.where(Building.site, Building.grid_id))
            .order_by(Building.id)
        )
    )
    devices = list(
        await session.scalars(select(Device).where(scope.where(Device.site, Device.grid_id)))
    )
    active = list(
        await session.scalars(
            select(IncidentRow).where(
                scope.where(IncidentRow.site, IncidentRow.grid_id),
                IncidentRow.status.in_([s.value for s in ACTIVE_STATUSES]),
            )
        )
    )
    statuses = {
        (d.site, d.device_id): await device_status(services, d, with_fields=False) for d in devices
    }
    offline = {k for k, s in statuses.items() if s.online is False}

    def tally(items: list[Device]) -> dict[str, int]:
        return {
            "devices": len(items),
            "offline": sum((d.site, d.device_id) in offline for d in items),
        }

    out_grids = []
    for g in grids:
        in_grid = [d for d in devices if d.grid_id == g.id]
        out_grids.append(
            {
                "id": g.id,
                "name": g.name,
                "site": g.site,
                **tally(in_grid),
                "open_incidents": sum(1 for i in active if i.grid_id == g.id),
                "unacknowledged": sum(1 for i in active if i.grid_id == g.id and unacknowledged(i)),
                "buildings": [
                    {
                        "id": b.id,
                        "name": b.name,
                        **tally([d for d in in_grid if d.building_id == b.id]),
                        "open_incidents": sum(1 for i in active if i.building_id == b.id),
                        "unacknowledged": sum(
                            1 for i in active if i.building_id == b.id and unacknowledged(i)
                        ),
                    }
                    for b in buildings
                    if b.grid_id == g.id
                ],
                "offline_devices": sorted(
                    d.device_id for d in in_grid if (d.site, d.device_id) in offline
                ),
            }
        )
    return {
        "open_incidents": len(active),
        "open_critical": sum(1 for i in active if i.severity == "critical"),
        "unacknowledged": sum(1 for i in active if unacknowledged(i)),
        "devices": len(devices),
        "offline_devices": len(offline),
        "grids": out_grids,
    }
