"""Webhook notifier: a generic JSON POST, or the WeCom / DingTalk group-robot markdown format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from alerting.notify.base import Delivery, DeliveryError, render_text, title

Template = Callable[[Delivery], dict[str, Any]]


def generic_json(d: Delivery) -> dict[str, Any]:
    return d.message()


def _markdown(d: Delivery) -> str:
    head, *rest = render_text(d).split("\n")
    return "\n".join([f"### {head}", *(f"> {line}" for line in rest)])


def wecom_markdown(d: Delivery) -> dict[str, Any]:
    """WeCom (企业微信) group robot message."""
    return {"msgtype": "markdown", "markdown": {"content": _markdown(d)}}


def dingtalk_markdown(d: Delivery) -> dict[str, Any]:
    """DingTalk (钉钉) group robot message."""
    return {"msgtype": "markdown", "markdown": {"title": title(d), "text": _markdown(d)}}


async def post_json(client: httpx.AsyncClient, url: str, body: dict[str, Any], key: str) -> None:
    """POST ``body``; a 2xx is success, 408/429/5xx and transport errors are worth retrying."""
    try:
        resp = await client.post(url, json=body, headers={"Idempotency-Key": key})
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    if resp.is_success:
        return
    retry = resp.status_code in (408, 429) or resp.status_code >= 500
    raise DeliveryError(f"HTTP {resp.status_code} from {url}", permanent=not retry)


class WebhookNotifier:
    """POSTs each delivery to the channel's URL (the address) with ``template``."""

    def __init__(self, client: httpx.AsyncClient, template: Template = generic_json) -> None:
        self._client = client
        self._template = template

    async def send(self, delivery: Delivery) -> None:
        await post_json(
            self._client, delivery.address, self._template(delivery), delivery.idempotency_key
        )


def wecom(client: httpx.AsyncClient) -> WebhookNotifier:
    return WebhookNotifier(client, wecom_markdown)


def dingtalk(client: httpx.AsyncClient) -> WebhookNotifier:
    return WebhookNotifier(client, dingtalk_markdown)
