"""A Web Push service for tests: a real HTTP server that checks requests as a push service does.

It hands out subscriptions (a P-256 key pair and an auth secret of its own, as a browser
makes them), and for every push: checks the VAPID ``Authorization: vapid t=<JWT>, k=<key>``
(RFC 8292: the key is the one the app subscribed with, the JWT is ES256-signed by it, ``aud`` is
this service's origin, ``exp`` is in the future and within 24 h, ``sub`` is a contact URI),
then decrypts the ``aes128gcm`` body (RFC 8291) with the subscription's private key and auth
secret. A push failing any check is answered 401/403/400 and recorded as refused; a
subscription marked gone is answered 410.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    payload: dict[str, Any] | None  # decrypted JSON; None if refused
    at: float
    status: int
    error: str = ""


@dataclass
class _Subscription:
    key: ec.EllipticCurvePrivateKey
    auth: bytes


@dataclass
class PushService:
    url: str = ""
    vapid_public_key: str | None = None  # the key the app subscribed with (applicationServerKey)
    pushes: list[Push] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _subs: dict[str, _Subscription] = field(default_factory=dict)

    def subscribe(self) -> dict[str, Any]:
        """A new subscription as ``PushSubscription.toJSON()`` gives it to the app."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        path = f"/push/{secrets.token_urlsafe(12)}"
        self._subs[path] = _Subscription(key, auth)
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.url + path,
            "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(auth)},
        }

    @property
    def accepted(self) -> list[Push]:
        with self.lock:
            return [p for p in self.pushes if p.status < 300]

    @property
    def refused(self) -> list[Push]:
        with self.lock:
            return [p for p in self.pushes if p.status >= 300]

    # -- checks ----------------------------------------------------------------------------

    def check(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, str]:
        if path in self.gone:
            return 410, None, "subscription gone"
        sub = self._subs.get(path)
        if sub is None:
            return 404, None, "no such subscription"
        problem = self._check_vapid(headers.get("authorization", ""))
        if problem:
            return 403, None, problem
        if headers.get("content-encoding") != "aes128gcm":
            return 400, None, f"content-encoding {headers.get('content-encoding')!r}"
        if not headers.get("ttl", "").isdigit():
            return 400, None, "TTL header missing"
        try:
            plain = http_ece.decrypt(
                body, private_key=sub.key, auth_secret=sub.auth, version="aes128gcm"
            )
        except Exception as exc:
            return 400, None, f"cannot decrypt: {type(exc).__name__}: {exc}"
        return 201, json.loads(plain), ""

    def _check_vapid(self, authorization: str) -> str:
        m = re.fullmatch(r"vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)", authorization.strip())
        if m is None:
            return f"not a VAPID authorization: {authorization[:40]!r}"
        token, k = m.groups()
        if self.vapid_public_key is not None and k != self.vapid_public_key:
            return "k is not the key the app subscribed with"
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(k))
            claims = jwt.decode(
                token,
                public,
                algorithms=["ES256"],
                audience=self.url,
                options={"require": ["aud", "exp", "sub"]},
            )
        except Exception as exc:
            return f"bad VAPID JWT: {type(exc).__name__}: {exc}"
        if not str(claims["sub"]).startswith(("mailto:", "https://")):
            return f"sub {claims['sub']!r} is not a contact URI"
        if claims["exp"] > time.time() + 24 * 3600:
            return "exp more than 24 h ahead"
        return ""


def start_push_service() -> tuple[PushService, ThreadingHTTPServer]:
    service = PushService()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.monotonic()  # the request reached the push service
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload, error = service.check(self.path, headers, body)
            with service.lock:
                service.pushes.append(Push(self.path, headers, payload, arrived, status, error))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return service, server
