"""Devices: the ledger (CRUD, CSV), each device's status and downsampled telemetry."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, UploadFile, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api import audit
from api.crud import check_nulls, check_refs, check_site, commit_registry
from api.deps import (
    GridScope,
    Principal,
    RegistryWriter,
    Scope,
    ServicesDep,
    SessionDep,
    SiteWideReader,
    not_found,
)
from api.errors import FieldError, LedgerRowsError
from api.schemas import (
    DB_INT_MAX,
    EPOCH_MS_MAX,
    DeviceCreate,
    DevicePublic,
    DeviceStatusPublic,
    DeviceUpdate,
    ImportResult,
    ReadingBucket,
    TelemetryPublic,
)
from api.services import ApiServices
from core.readings import FieldValue
from gateway.registry import (
    Ledger,
    LedgerError,
    RowError,
    apply_ledger,
    export_device_ledger_csv,
    import_device_ledger_csv,
)
from gateway.registry.tables import Building, Device, Grid, Household, Site
from gateway.storage import TimeSeriesQuery

router = APIRouter(prefix="/devices", tags=["devices"])
log = logging.getLogger(__name__)
REFS = {"site": Site, "grid_id": Grid, "building_id": Building, "household_id": Household}
MAX_BUCKETS = 2000
MAX_LEDGER_BYTES = 5 * 1024 * 1024


async def _device(session: AsyncSession, scope: Scope, site: str, device_id: str) -> Device:
    row = await session.get(Device, (site, device_id))
    if row is None or not scope.sees(row.site, row.grid_id):
        raise not_found("device", f"{site}/{device_id}")
    return row


def _scoped(scope: Scope) -> Any:
    return select(Device).where(scope.where(Device.site, Device.grid_id))


@router.get("", response_model=list[DevicePublic])
async def list_devices(
    scope: GridScope,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
    grid: Annotated[str | None, Query(max_length=100)] = None,
    building: Annotated[str | None, Query(max_length=100)] = None,
    device_type: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 2000,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> list[Device]:
    q = _scoped(scope)
    for column, value in (
        (Device.site, site),
        (Device.grid_id, grid),
        (Device.building_id, building),
        (Device.device_type, device_type),
    ):
        if value is not None:
            q = q.where(column == value)
    q = q.order_by(Device.site, Device.device_id).limit(limit).offset(offset)
    return list(await session.scalars(q))


@router.get("/ledger.csv", response_class=Response)
async def export_ledger(
    principal: SiteWideReader,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """A site's device ledger (台账) as CSV, in the format the importer reads."""
    code = _ledger_site(principal, site)
    if await session.get(Site, code) is None:
        # Only a stored site's code (a-z, 0-9, -) reaches the Content-Disposition header.
        raise not_found("site", code)
    text = await export_device_ledger_csv(session, code)
    return Response(
        "\ufeff" + text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="devices-{code}.csv"'},
    )


def _ledger_site(principal: Principal, site: str | None) -> str:
    code = principal.site_or(site)
    if code is None:
        raise FieldError("site", "required: you see several sites (name one with ?site=)")
    check_site(principal, code)
    return code


@router.post("/ledger.csv", response_model=ImportResult)
async def import_ledger(
    file: UploadFile,
    principal: RegistryWriter,
    services: ServicesDep,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
) -> ImportResult:
    """Create or update devices from a CSV ledger; nothing is written unless every row is good.

    Problems come back as a 422 listing each as ``rows.<row>.<column>``.
    """
    code = _ledger_site(principal, site)
    if await session.get(Site, code) is None:
        raise FieldError("site", f"no site '{code}'")
    data = await file.read(MAX_LEDGER_BYTES + 1)
    if len(data) > MAX_LEDGER_BYTES:
        raise FieldError("file", f"larger than {MAX_LEDGER_BYTES} bytes", 413)
    try:
        ledger = import_device_ledger_csv(data.decode("utf-8-sig"), name=file.filename or "upload")
    except UnicodeDecodeError as exc:
        raise FieldError("file", "not UTF-8 text") from exc
    except LedgerError as exc:
        raise FieldError("file", str(exc)) from exc
    ids = [r.device.id for r in ledger.rows]
    existing = set(
        await session.scalars(
            select(Device.device_id).where(Device.site == code, Device.device_id.in_(ids))
        )
    )
    errors = ledger.errors or _unknown_types(ledger, services.device_types)
    errors = errors or await apply_ledger(session, code, ledger)
    if errors:
        await session.rollback()
        raise LedgerRowsError(errors)
    created, updated = len(set(ids) - existing), len(existing)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "device.import",
        target=file.filename or "",
        site=code,
        detail={"created": created, "updated": updated},
    )
    await commit_registry(session, services, "device ledger")
    return ImportResult(created=created, updated=updated)


def _unknown_types(ledger: Ledger, known: frozenset[str]) -> list[RowError]:
    """Rows naming a device type no profile defines (a code the ledger passed through)."""
    return [
        RowError(ledger.source, r.row, r.headers.get("type", "type"), f"no profile for {r.device.type!r}")
        for r in ledger.rows
        if r.device.type not in known
    ]


@router.post("", response_model=DevicePublic, status_code=201)
async def create_device(
    body: DeviceCreate, principal: RegistryWriter, services: ServicesDep, session: SessionDep
) -> Device:
    check_site(principal, body.site)
    if body.device_type not in services.device_types:
        known = "/".join(sorted(services.device_types))
        raise FieldError("device_type", f"no device profile for '{body.device_type}' ({known})")
    await check_refs(session, REFS, body.model_dump(), body.site)
    if await session.get(Device, (body.site, body.device_id)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"device '{body.device_id}' already exists")
    row = Device(**body.model_dump())
    session.add(row)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "device.create",
        target=body.device_id,
        site=body.site,
        detail=body.model_dump(mode="json"),
    )
    await commit_registry(session, services, "device")
    return row


@router.get("/{site}/{device_id}", response_model=DevicePublic)
async def get_device(site: str, device_id: str, scope: GridScope, session: SessionDep) -> Device:
    return await _device(session, scope, site, device_id)


@router.patch("/{site}/{device_id}", response_model=DevicePublic)
async def update_device(
    site: str,
    device_id: str,
    body: DeviceUpdate,
    principal: RegistryWriter,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> Device:
    row = await _device(session, scope, site, device_id)
    check_site(principal, row.site)
    changes = body.model_dump(exclude_unset=True)
    check_nulls(Device, changes)
    await check_refs(session, REFS, changes, row.site)
    before = DevicePublic.model_validate(row).model_dump(mode="json")
    for name, value in changes.items():
        setattr(row, name, value)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "device.update",
        target=device_id,
        site=row.site,
        detail=audit.change(before, body.model_dump(mode="json", exclude_unset=True)),
    )
    await commit_registry(session, services, "device")
    return row


@router.delete("/{site}/{device_id}", status_code=204)
async def delete_device(
    site: str,
    device_id: str,
    principal: RegistryWriter,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> None:
    row = await _device(session, scope, site, device_id)
    check_site(principal, row.site)
    before = DevicePublic.model_validate(row).model_dump(mode="json")
    await session.delete(row)
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "device.delete",
        target=device_id,
        site=row.site,
        detail={"before": before},
    )
    await commit_registry(session, services, "device")


async def device_status(
    services: ApiServices, row: Device, *, with_fields: bool = True
) -> DeviceStatusPublic:
    """Availability from the pipeline (heartbeat deadlines included) and, for the device page,
    its latest values from the time-series store."""
    live = (
        services.device_status(row.site, row.device_id, services.clock.now_ms())
        if services.device_status is not None
        else None
    )
    latest: dict[str, tuple[int, FieldValue]] = {}
    if with_fields or live is None:
        latest = await _latest(services.timeseries, row)
    if live is not None:
        return DeviceStatusPublic(
            site=row.site,
            device_id=row.device_id,
            device_type=row.device_type,
            grid_id=row.grid_id,
            online=live["online"],
            last_seen_ms=live["last_seen_ms"],
            battery_pct=live["battery_pct"],
            fields={name: value for name, (_t, value) in latest.items()},
        )
    return _from_latest(row, latest)


async def _latest(ts: TimeSeriesQuery, row: Device) -> dict[str, tuple[int, FieldValue]]:
    try:
            return await ts.last(row.site, row.device_id)
    except Exception:  # storage down: status unknown rather than an error page
        log.warning("status of %s/%s unavailable", row.site, row.device_id)
        return {}


def _from_latest(row: Device, latest: dict[str, tuple[int, FieldValue]]) -> DeviceStatusPublic:
    online = latest.get("online")
    battery = latest.get("battery_pct")
    return DeviceStatusPublic(
        site=row.site,
        device_id=row.device_id,
        device_type=row.device_type,
        grid_id=row.grid_id,
        online=bool(online[1]) if online is not None else None,
        last_seen_ms=max((t for t, _ in latest.values()), default=None),
        battery_pct=float(battery[1])
        if battery is not None and not isinstance(battery[1], str)
        else None,
        fields={name: value for name, (_t, value) in latest.items()},
    )


@router.get("/{site}/{device_id}/status", response_model=DeviceStatusPublic)
async def get_status(
    site: str, device_id: str, scope: GridScope, services: ServicesDep, session: SessionDep
) -> DeviceStatusPublic:
    """Online, last seen and battery, from the device's latest readings."""
    return await device_status(services, await _device(session, scope, site, device_id))


@router.get("/{site}/{device_id}/telemetry", response_model=TelemetryPublic)
async def get_telemetry(
    site: str,
    device_id: str,
    field: Annotated[str, Query(pattern=r"^[a-z0-9_]{1,64}$")],
    start_ms: Annotated[int, Query(ge=0, le=EPOCH_MS_MAX)],
    end_ms: Annotated[int, Query(ge=0, le=EPOCH_MS_MAX)],
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
    every_ms: Annotated[int, Query(ge=1000, le=EPOCH_MS_MAX)] = 60_000,
) -> TelemetryPublic:
    """One field downsampled into ``every_ms`` buckets over ``[start_ms, end_ms)``."""
    if end_ms <= start_ms:
        raise FieldError("end_ms", "must be after start_ms")
    if (end_ms - start_ms) // every_ms > MAX_BUCKETS:
        raise FieldError("every_ms", f"too fine: at most {MAX_BUCKETS} buckets per request")
    row = await _device(session, scope, site, device_id)
    buckets = await services.timeseries.range(
        row.site, row.device_id, field, start_ms, end_ms, every_ms
    )
    return TelemetryPublic(
        device_id=device_id,
        field=field,
        start_ms=start_ms,
        end_ms=end_ms,
        every_ms=every_ms,
        buckets=[ReadingBucket(field=field, **b._asdict()) for b in buckets],
    )
