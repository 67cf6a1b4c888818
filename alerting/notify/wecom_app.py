"""WeCom application messages (企业微信应用消息): gettoken, then message/send to a person.

Unlike a group robot, an application message reaches one person's WeCom by their userid (the
channel's address). The access token lasts two hours; it is fetched once, shared by every
send, and fetched again when WeCom says it is invalid or expired (40014 / 42001) — that one
send is then retried at once with the new token. Any other ``errcode``, or a userid WeCom
reports as ``invaliduser``, is a failed delivery.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from alerting.notify.base import Delivery, DeliveryError, render_text

TOKEN_INVALID = frozenset({40014, 42001, 41001})
RETRYABLE = frozenset({-1, 45009, 45033})


@dataclass(frozen=True, slots=True)
class WecomApp:
    corp_id: str
    corp_secret: str
    agent_id: int
    base_url: str = "https://qyapi.weixin.qq.com"


class WecomAppNotifier:
    def __init__(self, client: httpx.AsyncClient, app: WecomApp) -> None:
        self._client = client
        self._app = app
        self._token: str | None = None
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            resp = await self._client.request(method, f"{self._app.base_url}{path}", **kw)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"WeCom: {type(exc).__name__}: {exc}") from exc
        if not resp.is_success:
            raise DeliveryError(f"WeCom: HTTP {resp.status_code}", permanent=resp.status_code < 500)
        try:
            body = resp.json()
        except ValueError:
            raise DeliveryError("WeCom answered without JSON") from None
        if not isinstance(body, dict):
            raise DeliveryError("WeCom answered with something other than an object")
        return body

    async def token(self, stale: str | None = None) -> str:
        """The cached token; fetched when there is none or ``stale`` is the one cached."""
        async with self._lock:
            if self._token is None or self._token == stale:
                body = await self._call(
                    "GET",
                    "/cgi-bin/gettoken",
                    params={"corpid": self._app.corp_id, "corpsecret": self._app.corp_secret},
                )
                if body.get("errcode") != 0 or not body.get("access_token"):
                    raise DeliveryError(
                        f"WeCom gettoken refused: errcode {body.get('errcode')} {body.get('errmsg', '')}",
                        permanent=body.get("errcode") not in RETRYABLE,
                    )
                self._token = str(body["access_token"])
                self.tokens_fetched += 1
            return self._token

    def body(self, d: Delivery) -> dict[str, Any]:
        # Plain text: it needs no link to a page the phone may not reach, and WeCom shows
        # it whole in the notification (2048 bytes at most).
        content = render_text(d).encode()[:2048].decode(errors="ignore")
        return {
            "touser": d.address,
            "msgtype": "text",
            "agentid": self._app.agent_id,
            "text": {"content": content},
        }

    async def send(self, delivery: Delivery) -> str | None:
        token = await self.token()
        body = await self._send(token, delivery)
        if body.get("errcode") in TOKEN_INVALID:
            body = await self._send(await self.token(stale=token), delivery)
        code = body.get("errcode")
        if code != 0:
            raise DeliveryError(
                f"WeCom refused the message: errcode {code} {body.get('errmsg', '')}".strip(),
                permanent=code not in RETRYABLE,
            )
        if body.get("invaliduser"):
            raise DeliveryError(f"WeCom does not know user {body['invaliduser']}", permanent=True)
        return str(body["msgid"]) if body.get("msgid") else None

    async def _send(self, token: str, d: Delivery) -> dict[str, Any]:
        return await self._call(
            "POST", "/cgi-bin/message/send", params={"access_token": token}, json=self.body(d)
        )
