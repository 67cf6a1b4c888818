"""Security headers on every answer of the API and the board.

A pure ASGI middleware, not ``@app.middleware``: it only adds headers to the response start,
so streams (``/api/v1/live``) pass through untouched.

The board runs under a strict policy: scripts and styles from the gateway only, no inline
script, no inline event handler, no style attribute (board files keep to that). The Swagger UI
page (fastapi-offline) boots from an inline script: its pages get a policy naming that
script's hash — computed from the page as served — and inline styles, which Swagger UI sets.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_COMMON = (
    "default-src 'self'",
    "img-src 'self' data:",  # Swagger UI's icons are data: SVGs; the board draws its own
    "connect-src 'self'",  # fetch and EventSource to the API, nowhere else
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",  # no clickjacking of the acknowledge buttons
)
BOARD_POLICY = "; ".join((*_COMMON, "script-src 'self'", "style-src 'self'"))
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL)


def _fixed_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        # The live stream's URL carries the token (?access_token=): never in a Referer.
        (b"referrer-policy", b"no-referrer"),
    ]


def docs_policy(page: bytes) -> str:
    """The policy of a Swagger UI page: its own inline scripts, by hash, and nothing else."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.findall(page)
    )
    return "; ".join(
        (*_COMMON, f"script-src 'self' {hashes}".rstrip(), "style-src 'self' 'unsafe-inline'")
    )


class SecurityHeaders:
    """Adds the headers; ``docs_paths`` are the Swagger UI pages (inline boot script)."""

    def __init__(self, app: ASGIApp, docs_paths: Iterable[str]) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)
        self._board = [*_fixed_headers(), (b"content-security-policy", BOARD_POLICY.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.docs_paths:
            await self._docs(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *self._board]}
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The page is small: held whole so that its scripts can be hashed into the header.
        start: Message | None = None
        body: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            page = b"".join(body)
            policy = (b"content-security-policy", docs_policy(page).encode())
            headers = [*start.get("headers", ()), *_fixed_headers(), policy]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, hold)
