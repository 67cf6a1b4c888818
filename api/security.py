"""Signed access tokens (JWT, HS256) and service tokens; passwords: api/login_guard.py."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    expires_ms: int


def issue_token(subject: str, *, now_ms: int, ttl_s: int, secret: str) -> str:
    payload = {"sub": subject, "iat": now_ms // 1000, "exp": now_ms // 1000 + ttl_s}
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def read_token(token: str, *, now_ms: int, secret: str) -> TokenClaims | None:
    """The token's claims, or None if it is forged, malformed or expired at ``now_ms``."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "require": ["sub", "exp"]},
        )
    except jwt.PyJWTError:
        return None
    exp = payload.get("exp")
    sub = payload.get("sub")
    if not isinstance(exp, int) or not isinstance(sub, str) or exp * 1000 <= now_ms:
        return None
    return TokenClaims(sub, exp * 1000)


def match_service_token(token: str, tokens: dict[str, str]) -> str | None:
    """The integration name whose token this is (compared in constant time)."""
    found = None
    for name, known in tokens.items():
        if hmac.compare_digest(token.encode(), known.encode()):
            found = name
    return found
