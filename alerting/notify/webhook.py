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


async def post_json(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], key: str
) -> httpx.Response:
    """POST ``body``; a 2xx is success, 408/429/5xx and transport errors are worth retrying."""
    try:
        resp = await client.post(url, json=body, headers={"Idempotency-Key": key})
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    if resp.is_success:
        return resp
    retry = resp.status_code in (408, 429) or resp.status_code >= 500
    raise DeliveryError(f"HTTP {resp.status_code} from {url}", permanent=not retry)


# WeCom and DingTalk answer HTTP 200 to a message they refuse, saying why in ``errcode``.
# Their rate limits (45009 WeCom "api freq out of limit", 130101 DingTalk "send too fast")
# pass in a minute: worth a retry. Anything else (bad key, keyword missing, bad signature, the
# robot removed) will not get better: failed at once, so the ladder moves on.
ROBOT_RETRYABLE = frozenset({-1, 45009, 130101})


def robot_reply(resp: httpx.Response, url: str) -> str | None:
    """Check a robot's answer: ``errcode`` 0 is success (returns its ``msgid`` if any);
    anything else raises a :class:`DeliveryError`."""
    try:
        body = resp.json()
    except ValueError:
        raise DeliveryError(f"robot at {_host(url)} answered without JSON") from None
    code = body.get("errcode") if isinstance(body, dict) else None
    if code == 0:
        msgid = body.get("msgid")
        return str(msgid) if msgid else None
    errmsg = body.get("errmsg", "") if isinstance(body, dict) else ""
    raise DeliveryError(
        f"robot at {_host(url)} refused the message: errcode {code} {errmsg}".strip(),
        permanent=code not in ROBOT_RETRYABLE,
    )


def _host(url: str) -> str:
    """The robot's host only: its URL carries the robot's key, which must not reach logs."""
    return httpx.URL(url).host or "?"


class WebhookNotifier:
    """POSTs each delivery to the channel's URL (the address) with ``template``; a ``robot``
    (WeCom / DingTalk) must also say ``errcode`` 0 in its answer."""

    def __init__(
        self, client: httpx.AsyncClient, template: Template = generic_json, *, robot: bool = False
    ) -> None:
        self._client = client
        self._template = template
        self._robot = robot

    async def send(self, delivery: Delivery) -> str | None:
        resp = await post_json(
            self._client, delivery.address, self._template(delivery), delivery.idempotency_key
        )
        return robot_reply(resp, delivery.address) if self._robot else None


def wecom(client: httpx.AsyncClient) -> WebhookNotifier:
    return WebhookNotifier(client, wecom_markdown, robot=True)


def dingtalk(client: httpx.AsyncClient) -> WebhookNotifier:
    return WebhookNotifier(client, dingtalk_markdown, robot=True)
