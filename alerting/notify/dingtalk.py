"""DingTalk (钉钉) group robot with 加签 signing and an @mention of the person paged.

A robot created with "加签" security refuses unsigned messages: each request carries
``timestamp`` (ms) and ``sign`` = base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")) in
its query. The @mention names the paged person's phone in ``at.atMobiles`` and in the text
(DingTalk only rings a mention whose ``@phone`` also appears in the text).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from alerting.notify.base import Delivery, render_text, title
from alerting.notify.webhook import post_json, robot_reply

PhoneOf = Callable[[str], str | None]


def sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    u = httpx.URL(url)
    return str(u.copy_merge_params({"timestamp": str(timestamp_ms), "sign": sign(secret, timestamp_ms)}))


def message(d: Delivery, phone: str | None) -> dict[str, Any]:
    head, *rest = render_text(d).split("\n")
    text = "\n".join([f"### {head}", *(f"> {line}" for line in rest)])
    if phone:
        text += f"\n\n@{phone}"
    return {
        "msgtype": "markdown",
        "markdown": {"title": title(d), "text": text},
        "at": {"atMobiles": [phone] if phone else [], "isAtAll": False},
    }


class DingTalkNotifier:
    """Posts to the robot URL (the channel's address). ``secrets`` maps a robot's
    ``access_token`` to its 加签 secret; ``phone_of`` finds the paged person's phone."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        secrets: Mapping[str, str],
        phone_of: PhoneOf,
        now_ms: Callable[[], int],
    ) -> None:
        self._client = client
        self._secrets = dict(secrets)
        self._phone_of = phone_of
        self._now_ms = now_ms

    def url(self, address: str) -> str:
        token = httpx.URL(address).params.get("access_token", "")
        secret = self._secrets.get(token)
        # Wall-clock time on purpose: DingTalk checks it against its own clock (±1 h).
        return signed_url(address, secret, self._now_ms()) if secret else address

    async def send(self, delivery: Delivery) -> str | None:
        body = message(delivery, self._phone_of(delivery.person_id))
        resp = await post_json(
            self._client, self.url(delivery.address), body, delivery.idempotency_key
        )
        return robot_reply(resp, delivery.address)
