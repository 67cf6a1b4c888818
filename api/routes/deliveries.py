"""Deliveries: who was paged on which channel and how far each page got (for the board), the
app's "shown" / "opened" receipts, and the providers' status-report callbacks.

Receipts need no login: the app proves a page is its own with the page's receipt token, and a
provider with the secret in the callback URL it was given (``notify.receipt_secret``). Either
wrong answers 404, as an unknown delivery would.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, status
from pydantic import Field
from sqlalchemy import select

from alerting.notify import receipts
from alerting.notify.tables import DeliveryRow
from api.deps import GridScope, ServicesDep, SessionDep, not_found
from api.incident_view import scoped_incident
from api.schemas import DB_INT_MAX, Input, Output

router = APIRouter(tags=["deliveries"])
Id = Annotated[int, Path(ge=1, le=DB_INT_MAX)]


class DeliveryPublic(Output):
    """One page to one person on one channel: ``sent`` (the provider took it), ``delivered``
    (a receipt says it arrived), ``read`` (the person opened it) or ``failed`` (refused, or no
    receipt in time for a critical page; ``last_error`` says why)."""

    id: int
    step: str
    kind: str
    person_id: str
    person_name: str = ""
    role: str
    channel: str
    status: str
    attempts: int
    last_error: str | None
    created_at_ms: int
    sent_at_ms: int | None
    delivered_at_ms: int | None
    read_at_ms: int | None


class DeliveriesPublic(Output):
    data: list[DeliveryPublic]
    count: int


class DeliveryReceipt(Input):
    token: str = Field(min_length=8, max_length=64)
    state: Literal["delivered", "read"] = "delivered"


class DeliveryReceiptPublic(Output):
    id: int
    status: str
    delivered_at_ms: int | None
    read_at_ms: int | None


@router.get("/incidents/{incident_id}/deliveries", response_model=DeliveriesPublic)
async def incident_deliveries(
    incident_id: Id, scope: GridScope, services: ServicesDep, session: SessionDep
) -> DeliveriesPublic:
    """Every page of the incident, oldest first, with its state."""
    await scoped_incident(session, scope, incident_id)
    rows = (
        await session.scalars(
            select(DeliveryRow)
            .where(DeliveryRow.incident_id == incident_id)
            .order_by(DeliveryRow.created_at_ms, DeliveryRow.id)
        )
    ).all()
    out = []
    for r in rows:
        d = DeliveryPublic.model_validate(r)
        person = services.registry.person(r.person_id) if services.registry else None
        out.append(d.model_copy(update={"person_name": person.name if person else ""}))
    return DeliveriesPublic(data=out, count=len(out))


@router.post("/deliveries/{delivery_id}/receipt", response_model=DeliveryReceiptPublic)
async def delivery_receipt(
    delivery_id: Id, body: DeliveryReceipt, services: ServicesDep
) -> DeliveryReceiptPublic:
    """The app showed the page (``delivered``) or the person opened it (``read``)."""
    row = await receipts.app_receipt(
        services.sessions, delivery_id, body.token, body.state == "read", services.clock.now_ms()
    )
    if row is None:
        raise not_found("delivery", delivery_id)
    return DeliveryReceiptPublic.model_validate(row)


@router.post("/receipts/{provider}/{secret}", status_code=status.HTTP_200_OK)
async def provider_receipts(
    provider: Annotated[str, Path(max_length=32)],
    secret: Annotated[str, Path(max_length=200)],
    services: ServicesDep,
    body: Annotated[list[dict[str, Any]] | dict[str, Any], Body()],
) -> dict[str, Any]:
    """A provider's status reports (``aliyun-sms``, ``aliyun-voice``, ``tencent-sms``)."""
    expected = services.receipt_secret
    known = receipts.PROVIDERS.get(provider)
    if known is None or not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise not_found("receipt endpoint", provider)
    await receipts.apply_reports(services.sessions, known.parse(body), services.clock.now_ms())
    if services.poke_escalation is not None:
        services.poke_escalation()  # a "not delivered" report is acted on now
    return known.answer
