"""Web Push notifier (RFC 8030 / 8291 / 8292): a page reaches a phone whose app is closed.

The channel's address is the person; each of their subscriptions (one per phone or browser
the worker allowed notifications on) gets the page, encrypted (``aes128gcm``) to that
subscription's keys and signed with the gateway's VAPID key. A subscription the push service
says is gone (404/410) is deleted: the phone uninstalled the app or revoked the permission.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from pywebpush import WebPusher
from sqlalchemy import BigInteger, String, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from alerting.incidents.card import short_text
from alerting.notify.base import Delivery, DeliveryError, title
from core.clock import Clock
from core.db import Base, IdType

log = logging.getLogger(__name__)
#: A push message holds at most 4096 bytes after encryption (RFC 8291 §4: 3993 of plaintext).
MAX_PAYLOAD = 3000
GONE = (404, 410)


class WebPushSubscriptionRow(Base):
    """One browser's push subscription; a person has one per phone or browser."""

    __tablename__ = "webpush_subscription"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    device_label: Mapped[str] = mapped_column(String(200))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    last_sent_ms: Mapped[int | None] = mapped_column(BigInteger)


def load_vapid(path: Path) -> Vapid02:
    """The gateway's VAPID key from ``path``, made (and kept, owner-only) on first use."""
    if path.exists():
        return Vapid02.from_file(str(path))
    key = Vapid02()
    key.generate_keys()
    path.parent.mkdir(parents=True, exist_ok=True)
    key.save_key(str(path))
    path.chmod(0o600)
    return key


def public_key(key: Vapid02) -> str:
    """The VAPID public key as a browser's ``applicationServerKey`` takes it (base64url)."""
    raw = key.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def push_payload(d: Delivery, now_ms: int) -> bytes:
    """What the service worker shows: a title, the short text, and where tapping leads."""
    i = d.incident
    body = {
        "title": title(d),
        "body": short_text(i, now_ms),
        "tag": f"incident-{d.incident_id}",
        "url": f"/board/worker.html#incident-{d.incident_id}",
        "severity": i.get("severity"),
        "incident": {**i, "card": i.get("card")},
        "key": d.idempotency_key,
    }
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    if len(data) > MAX_PAYLOAD:  # the card makes it too long: the app fetches it on open
        body["incident"] = {k: v for k, v in i.items() if k not in ("card", "reasons")}
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return data


@dataclass(frozen=True, slots=True)
class _Sent:
    sub: WebPushSubscriptionRow
    status: int | None
    error: str = ""


class WebPushNotifier:
    """Sends a delivery to every push subscription of its person (the address)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        vapid: Vapid02,
        subject: str,
        clock: Clock,
        *,
        ttl_s: int = 3600,
        timeout_s: float = 10.0,
    ) -> None:
        self._sessions = sessions
        self._vapid = vapid
        self._subject = subject
        self._clock = clock
        self._ttl_s = ttl_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # One session for every push: its connections to a push service stay open (TLS set up
        # once, not per page).
        self._http: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send(self, delivery: Delivery) -> None:
        subs = await subscriptions(self._sessions, delivery.address)
        if not subs:
            raise DeliveryError(
                f"{delivery.address} has no Web Push subscription (notifications never "
                "allowed in the worker app)",
                permanent=True,
            )
        data = push_payload(delivery, self._clock.now_ms())
        urgent = delivery.incident.get("severity") == "critical"
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        sent = await asyncio.gather(*(self._push(self._http, s, data, urgent) for s in subs))
        await self._record(sent)
        if any(s.status is not None and s.status < 300 for s in sent):
            return
        errors = "; ".join(f"{_host(s.sub.endpoint)}: {s.error}" for s in sent)
        permanent = all(s.status is not None and 400 <= s.status < 500 for s in sent)
        permanent = permanent and not any(s.status in (408, 429) for s in sent)
        raise DeliveryError(f"Web Push failed: {errors}", permanent=permanent)

    async def _push(
        self, http: aiohttp.ClientSession, sub: WebPushSubscriptionRow, data: bytes, urgent: bool
    ) -> _Sent:
        info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
        # The JWT's expiry is checked by the push service against real time, so it is read
        # from the wall clock, not the injected one (which tests may run fast).
        claims: dict[str, Any] = {
            "sub": self._subject,
            "aud": _origin(sub.endpoint),
            "exp": int(time.time()) + 12 * 3600,
        }
        headers = {**self._vapid.sign(claims), "Urgency": "high" if urgent else "normal"}
        try:
            resp = await WebPusher(info, aiohttp_session=http).send_async(
                data, headers, ttl=self._ttl_s, content_encoding="aes128gcm"
            )
        except Exception as exc:  # transport errors and bad keys of this one subscription
            return _Sent(sub, None, f"{type(exc).__name__}: {exc}")
        status = getattr(resp, "status", None)
        if status is None or status >= 300:
            return _Sent(sub, status, f"HTTP {status}")
        return _Sent(sub, status)

    async def _record(self, sent: Sequence[_Sent]) -> None:
        gone = [s.sub.id for s in sent if s.status in GONE]
        ok = [s.sub.id for s in sent if s.status is not None and s.status < 300]
        if not gone and not ok:
            return
        async with self._sessions.begin() as s:
            if gone:
                log.info("removing %d expired Web Push subscriptions", len(gone))
                await s.execute(
                    delete(WebPushSubscriptionRow).where(WebPushSubscriptionRow.id.in_(gone))
                )
            if ok:
                await s.execute(
                    update(WebPushSubscriptionRow)
                    .where(WebPushSubscriptionRow.id.in_(ok))
                    .values(last_sent_ms=self._clock.now_ms())
                )


async def subscriptions(
    sessions: async_sessionmaker[AsyncSession], person_id: str
) -> list[WebPushSubscriptionRow]:
    async with sessions() as s:
        rows = await s.scalars(
            select(WebPushSubscriptionRow)
            .where(WebPushSubscriptionRow.person_id == person_id)
            .order_by(WebPushSubscriptionRow.id)
        )
        return list(rows)


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def _host(endpoint: str) -> str:
    return urlsplit(endpoint).netloc
