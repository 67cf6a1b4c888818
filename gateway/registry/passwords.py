"""Password hashes for people who log in: argon2 via pwdlib; only hashes are stored."""

from __future__ import annotations

from functools import cache

from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError


@cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (what ``people.password_hash`` holds)."""
    return _hasher().hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches; False for a person without a password."""
    if not password_hash:
        return False
    try:
        return _hasher().verify(password, password_hash)
    except (PwdlibError, ValueError):
        return False
