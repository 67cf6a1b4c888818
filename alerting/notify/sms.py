"""SMS through a configurable HTTP SMS gateway: POST JSON {phone, text} to its URL."""

from __future__ import annotations

import httpx

from alerting.notify.base import Delivery, render_text
from alerting.notify.webhook import post_json


class SmsNotifier:
    """The channel's address is the phone number; the gateway URL is configuration."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url

    async def send(self, delivery: Delivery) -> None:
        body = {"phone": delivery.address, "text": render_text(delivery)}
        await post_json(self._client, self._url, body, delivery.idempotency_key)
