"""Signed access tokens (JWT, HS256) and service tokens; passwords: api/login_guard.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    expires_ms: int
    password_mark: str
    session: str | None = None  # the login (refresh-token family) it belongs to


def password_mark(password_hash: str | None, secret: str) -> str:
    """What a token carries of the password it was issued under.

    A token is valid only while its owner's password hash is the one it was issued under, so
    every way a password changes (own change, an admin's reset, the community file) revokes
    the tokens issued before, with no revocation list and no schema change. Every hash has
    its own salt, so even setting the same password again revokes. Keyed with the API secret
    and cut short: a token's holder learns nothing of the hash from it.
    """
    digest = hmac.new(secret.encode(), (password_hash or "").encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def issue_token(
    subject: str,
    *,
    now_ms: int,
    ttl_s: int,
    secret: str,
    password_hash: str | None,
    session: str | None = None,
) -> str:
    payload = {
        "sub": subject,
        "iat": now_ms // 1000,
        "exp": now_ms // 1000 + ttl_s,
        "pwd": password_mark(password_hash, secret),
    }
    if session is not None:
        payload["sid"] = session  # "log out everywhere" ends the login, and this token with it
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def read_token(token: str, *, now_ms: int, secret: str) -> TokenClaims | None:
    """The token's claims, or None if it is forged, malformed or expired at ``now_ms``."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # A token without "pwd" predates password binding: refused (log in again).
            options={"verify_exp": False, "require": ["sub", "exp", "pwd"]},
        )
    except jwt.PyJWTError:
        return None
    exp, sub, mark = payload.get("exp"), payload.get("sub"), payload.get("pwd")
    if not isinstance(exp, int) or not isinstance(sub, str) or not isinstance(mark, str):
        return None
    if exp * 1000 <= now_ms:
        return None
    sid = payload.get("sid")
    return TokenClaims(sub, exp * 1000, mark, sid if isinstance(sid, str) else None)


def issued_under(claims: TokenClaims, password_hash: str | None, secret: str) -> bool:
    """Whether the token was issued under this password (see :func:`password_mark`)."""
    return hmac.compare_digest(claims.password_mark, password_mark(password_hash, secret))


def match_service_token(token: str, tokens: dict[str, str]) -> str | None:
    """The integration name whose token this is (compared in constant time)."""
    found = None
    for name, known in tokens.items():
        if hmac.compare_digest(token.encode(), known.encode()):
            found = name
    return found
