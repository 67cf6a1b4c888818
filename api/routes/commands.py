"""Device commands from people, on an incident: restore a port's power once the hazard is
cleared, open a valve after inspection, run a detector's self-test. Each is audited in the
transaction that records it, then sent and tracked like a rule's command (cmd_ack, confirming
telemetry, retries, escalation when unconfirmed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from alerting.commands import CommandDesk, CommandRefused, DeviceCommandRow
from api import audit
from api.deps import DISPATCHERS, Principal, ServicesDep, SessionDep, require_role
from api.deps import GridScope as Scope
from api.errors import FieldError
from api.incident_view import scoped_incident
from api.schemas import DB_INT_MAX, Input
from core.readings import DeviceContext
from gateway.registry.tables import Device

router = APIRouter(prefix="/incidents", tags=["device commands"])

#: Who may command a device: the dispatchers and the grid worker of the device's grid (the
#: scope check keeps a worker to their own grids). Building leaders may not.
COMMANDERS = DISPATCHERS | {"grid_worker"}
Commander = Annotated[Principal, Depends(require_role(COMMANDERS))]
#: Commands that end a safety action; refused while nobody has taken charge of the incident.
REOPENING = frozenset({"restore_power", "open_valve"})


class CommandCreate(Input):
    command: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    port: int | None = Field(None, ge=1, le=64)


class CommandChoice(BaseModel):
    command: str
    label: str
    label_en: str
    port: int | None


class CommandPublic(BaseModel):
    cmd_id: str
    device_id: str
    command: str
    port: int | None
    status: str
    attempts: int
    requested_by: str
    created_at_ms: int
    finished_at_ms: int | None
    state: str | None
    error: str

    @classmethod
    def of(cls, row: DeviceCommandRow) -> CommandPublic:
        return cls(
            cmd_id=row.id,
            device_id=row.device_id,
            command=row.command,
            port=row.port,
            status=row.status,
            attempts=row.attempts,
            requested_by=row.requested_by,
            created_at_ms=row.created_at_ms,
            finished_at_ms=row.finished_at_ms,
            state=row.ack_state,
            error=row.error,
        )


class IncidentCommands(BaseModel):
    """What can be sent to the incident's device, and what was sent."""

    available: list[CommandChoice]
    sent: list[CommandPublic]


IncidentId = Annotated[int, Field(ge=1, le=DB_INT_MAX)]


def _desk(services: ServicesDep) -> CommandDesk:
    if services.commands is None:
        # An API without the gateway's command loop (tests, tools): nothing could track it.
        raise HTTPException(status.HTTP_409_CONFLICT, "device commands are not running here")
    return services.commands


async def _sent(session: SessionDep, incident_id: int) -> list[DeviceCommandRow]:
    q = select(DeviceCommandRow).where(DeviceCommandRow.incident_id == incident_id)
    return list((await session.scalars(q.order_by(DeviceCommandRow.created_at_ms))).all())


@router.get("/{incident_id}/commands", response_model=IncidentCommands)
async def incident_commands(
    incident_id: IncidentId, scope: Scope, services: ServicesDep, session: SessionDep
) -> IncidentCommands:
    """The commands the incident's device takes (with the port its earlier commands named)."""
    row = await scoped_incident(session, scope, incident_id)
    sent = await _sent(session, incident_id)
    available: list[CommandChoice] = []
    device = await session.get(Device, (row.site, row.device_id)) if row.device_id else None
    if device is not None and services.commands is not None:
        port = next((c.port for c in reversed(sent) if c.port is not None), None)
        for name, spec in services.commands.commands_of(device.device_type).items():
            p = port if spec.port else None
            available.append(CommandChoice(command=name, label=spec.label, label_en=spec.label_en, port=p))
    return IncidentCommands(available=available, sent=[CommandPublic.of(c) for c in sent])


@router.post("/{incident_id}/commands", response_model=CommandPublic, status_code=202)
async def send_command(
    incident_id: IncidentId,
    body: CommandCreate,
    principal: Commander,
    scope: Scope,
    services: ServicesDep,
    session: SessionDep,
) -> CommandPublic:
    """Send a command to the incident's device; it is on the incident's timeline and audited."""
    desk = _desk(services)
    row = await scoped_incident(session, scope, incident_id)
    device = await session.get(Device, (row.site, row.device_id)) if row.device_id else None
    if device is None:
        raise FieldError("incident_id", "this incident is not about one device")
    if body.command in REOPENING and row.status == "open":
        raise FieldError("command", "acknowledge the incident first: someone must be in charge")
    ctx = DeviceContext(
        site=device.site,
        device_id=device.device_id,
        device_type=device.device_type,
        grid_id=device.grid_id,
        building_id=device.building_id,
        household_id=device.household_id,
        location=device.location,
    )
    try:
        cmd = await desk.create(
            session, ctx, body.command, port=body.port, incident_id=row.id, actor=principal.actor
        )
    except CommandRefused as exc:
        raise FieldError("command", str(exc)) from exc
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "device.command",
        target=device.device_id,
        site=device.site,
        detail={"cmd_id": cmd.id, "command": cmd.command, "port": cmd.port, "incident": row.id},
    )
    await session.commit()
    await desk.send(cmd)
    return CommandPublic.of(cmd)
