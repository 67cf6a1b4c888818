"""Web Push subscriptions: the worker app subscribes each phone it runs on."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, select

from alerting.notify.webpush import WebPushSubscriptionRow
from api.deps import CurrentPerson, ServicesDep, SessionDep
from api.errors import FieldError
from api.services import ApiServices

router = APIRouter(prefix="/push", tags=["push"])


class VapidKey(BaseModel):
    public_key: str


class SubscriptionKeys(BaseModel):
    model_config = ConfigDict(extra="ignore")
    p256dh: str = Field(min_length=80, max_length=120)  # 65-byte P-256 point, base64url
    auth: str = Field(min_length=16, max_length=40)  # 16-byte secret, base64url

    @field_validator("p256dh", "auth")
    @classmethod
    def _base64url(cls, value: str) -> str:
        try:
            base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("not base64url") from exc
        return value


class SubscriptionCreate(BaseModel):
    """``PushSubscription.toJSON()`` from the browser, and a name for the phone."""

    model_config = ConfigDict(extra="ignore")  # expirationTime and what browsers add
    endpoint: str = Field(min_length=10, max_length=1000)
    keys: SubscriptionKeys
    device_label: str = Field("", max_length=200)


class SubscriptionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    device_label: str
    created_at_ms: int
    last_sent_ms: int | None


def _enabled(services: ApiServices) -> str:
    if services.push_public_key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Web Push is not enabled on this gateway")
    return services.push_public_key


@router.get("/vapid-public-key", response_model=VapidKey)
async def vapid_public_key(services: ServicesDep) -> VapidKey:
    """The key a browser subscribes with (``applicationServerKey``)."""
    return VapidKey(public_key=_enabled(services))


@router.post(
    "/subscriptions", response_model=SubscriptionPublic, status_code=status.HTTP_201_CREATED
)
async def subscribe(
    body: SubscriptionCreate, principal: CurrentPerson, services: ServicesDep, session: SessionDep
) -> WebPushSubscriptionRow:
    """Page this phone by Web Push (the caller's own; subscribing again updates it)."""
    _enabled(services)
    if principal.is_service:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "service tokens have no phone")
    url = urlsplit(body.endpoint)
    schemes = ("https", "http") if services.push_allow_http else ("https",)
    if url.scheme not in schemes or not url.netloc:
        raise FieldError("endpoint", f"must be an {' or '.join(schemes)} URL of a push service")
    row = await session.scalar(
        select(WebPushSubscriptionRow).where(WebPushSubscriptionRow.endpoint == body.endpoint)
    )
    if row is None:
        row = WebPushSubscriptionRow(endpoint=body.endpoint)
        session.add(row)
    row.person_id = principal.id  # a shared phone pages whoever subscribed it last
    row.p256dh, row.auth = body.keys.p256dh, body.keys.auth
    row.device_label = body.device_label or "phone"
    row.created_at_ms = services.clock.now_ms()
    await session.commit()
    await session.refresh(row)
    return row


@router.get("/subscriptions", response_model=list[SubscriptionPublic])
async def my_subscriptions(
    principal: CurrentPerson, session: SessionDep
) -> list[WebPushSubscriptionRow]:
    rows = await session.scalars(
        select(WebPushSubscriptionRow).where(WebPushSubscriptionRow.person_id == principal.id)
    )
    return list(rows)


@router.delete("/subscriptions", status_code=status.HTTP_204_NO_CONTENT)
async def unsubscribe(
    principal: CurrentPerson,
    session: SessionDep,
    endpoint: Annotated[str, Query(max_length=1000)],
) -> None:
    """Stop paging this phone (the caller's own subscription)."""
    await session.execute(
        delete(WebPushSubscriptionRow).where(
            WebPushSubscriptionRow.endpoint == endpoint,
            WebPushSubscriptionRow.person_id == principal.id,
        )
    )
    await session.commit()
