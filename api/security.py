"""Password hashing (argon2 via pwdlib) and signed access tokens (JWT, HS256)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import cache

import jwt

from gateway.registry import passwords

ALGORITHM = "HS256"


# Checked when the login name is unknown, so that both paths take as long (no user probing).
@cache
def _dummy_hash() -> str:
    return passwords.hash_password("not-a-real-password")


def hash_password(password: str) -> str:
    return passwords.hash_password(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant-effort check (the registry's argon2 hasher); ``None`` always fails."""
    if not password_hash:
        passwords.verify_password(password, _dummy_hash())
        return False
    return passwords.verify_password(password, password_hash)


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
