"""Device upkeep from the screens: a ledger import preview, replacing and decommissioning."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, UploadFile, status
from pydantic import Field
from sqlalchemy import select

from api import audit
from api.crud import check_site, commit_registry
from api.deps import GridScope, RegistryWriter, ServicesDep, SessionDep
from api.errors import FieldError
from api.routes.devices import MAX_LEDGER_BYTES, _device, _ledger_site
from api.schemas import DeviceIdStr, DevicePublic, Input, Note, Text
from gateway.registry import LedgerError, import_device_ledger_csv
from gateway.registry.loader import Names
from gateway.registry.tables import Device, Site

router = APIRouter(prefix="/devices", tags=["devices"])


class DeviceReplace(Input):
    """The new device takes the old one's place (grid, building, household, location)."""

    new_device_id: DeviceIdStr
    model: Text | None = None
    vendor_identity: str | None = Field(None, min_length=1, max_length=200)
    installed_at: date | None = None
    note: Note = ""


class DeviceDecommission(Input):
    note: Note = ""


def _today(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


@router.post("/ledger.csv/preview")
async def preview_ledger(
    file: UploadFile,
    principal: RegistryWriter,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, Any]:
    """What an import of this ledger would do, row by row, without writing anything: each row
    is ``create``, ``update`` or ``refused`` with every problem named by its column."""
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
    names = await Names.of_store(session, code)
    _devices, resolve_errors = names.resolve(ledger)
    ids = [r.device.id for r in ledger.rows]
    existing = set(
        await session.scalars(
            select(Device.device_id).where(Device.site == code, Device.device_id.in_(ids))
        )
    )
    rows: dict[int, dict[str, Any]] = {
        r.row: {
            "row": r.row,
            "device_id": r.device.id,
            "action": "update" if r.device.id in existing else "create",
            "problems": [],
        }
        for r in ledger.rows
    }
    for e in ledger.errors + resolve_errors:
        entry = rows.setdefault(
            e.row, {"row": e.row, "device_id": None, "action": "refused", "problems": []}
        )
        entry["action"] = "refused"
        entry["problems"].append({"column": e.column, "message": e.message})
    ordered = [rows[k] for k in sorted(rows)]
    refused = sum(1 for r in ordered if r["action"] == "refused")
    return {
        "site": code,
        "ok": refused == 0,
        "rows": ordered,
        "create": sum(1 for r in ordered if r["action"] == "create"),
        "update": sum(1 for r in ordered if r["action"] == "update"),
        "refused": refused,
    }


@router.post("/{site}/{device_id}/replace", response_model=DevicePublic, status_code=201)
async def replace_device(
    site: str,
    device_id: str,
    body: DeviceReplace,
    principal: RegistryWriter,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> Device:
    """Swap a device for a new one in the same place; the old one is kept, disabled, with its
    history, and points at its successor (whose history includes it)."""
    old = await _device(session, scope, site, device_id)
    check_site(principal, old.site)
    if not old.enabled:
        raise FieldError("device_id", f"'{device_id}' is already out of service")
    if await session.get(Device, (site, body.new_device_id)) is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"device '{body.new_device_id}' already exists"
        )
    now = services.clock.now_ms()
    vendor = body.vendor_identity
    if vendor is not None and vendor == old.vendor_identity:
        old.vendor_identity = None  # the identity moves to the successor
        await session.flush()
    new = Device(
        site=old.site,
        device_id=body.new_device_id,
        device_type=old.device_type,
        profile=old.profile,
        vendor_identity=vendor,
        grid_id=old.grid_id,
        building_id=old.building_id,
        household_id=old.household_id,
        location=old.location,
        name=old.name,
        model=body.model if body.model is not None else old.model,
        ports=old.ports,
        installed_at=body.installed_at or _today(now),
        enabled=True,
    )
    session.add(new)
    old.enabled, old.replaced_by, old.decommissioned_on = False, new.device_id, _today(now)
    place = {"location": old.location, "grid_id": old.grid_id, "building_id": old.building_id}
    for target, action in ((device_id, "device.replaced"), (new.device_id, "device.replacement")):
        audit.record_by(
            session,
            principal,
            now,
            action,
            target=target,
            site=old.site,
            detail={
                "before": {"device": device_id, "enabled": True},
                "after": {"device": new.device_id, **place},
                "note": body.note,
            },
        )
    await commit_registry(session, services, "device")
    return new


@router.post("/{site}/{device_id}/decommission", response_model=DevicePublic)
async def decommission_device(
    site: str,
    device_id: str,
    body: DeviceDecommission,
    principal: RegistryWriter,
    scope: GridScope,
    services: ServicesDep,
    session: SessionDep,
) -> Device:
    """Take a device out of service: it stops raising alerts and stays on record."""
    row = await _device(session, scope, site, device_id)
    check_site(principal, row.site)
    if row.decommissioned_on is not None:
        raise FieldError(
            "device_id", f"'{device_id}' was decommissioned on {row.decommissioned_on}"
        )
    now = services.clock.now_ms()
    row.enabled, row.decommissioned_on = False, _today(now)
    audit.record_by(
        session,
        principal,
        now,
        "device.decommission",
        target=device_id,
        site=row.site,
        detail={"before": {"enabled": True}, "after": {"enabled": False}, "note": body.note},
    )
    await commit_registry(session, services, "device")
    return row


async def predecessors(session: SessionDep, site: str, device_id: str) -> list[str]:
    """The devices this one replaced, nearest first."""
    found: list[str] = []
    current = device_id
    while len(found) < 50:
        prev = await session.scalar(
            select(Device.device_id).where(Device.site == site, Device.replaced_by == current)
        )
        if prev is None or prev in found:
            return found
        found.append(prev)
        current = prev
    return found
