"""What runs in the password worker processes (api/login_guard.py): argon2 and nothing else.

Kept light (pwdlib only) because every worker process imports it. The hasher is the one of
gateway/registry/passwords.py (pwdlib's recommended argon2id); tests check that each verifies
the other's hashes.
"""

from __future__ import annotations

import os

from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError

_hasher = PasswordHash.recommended()
_dummy: list[str] = []


def start(nice: int) -> None:
    """Worker set-up: a low priority, and every CPU but one when there are several.

    argon2 runs its four lanes as threads and its 64 MiB stream through the caches; confined
    to one CPU of two, it leaves the other to the gateway (measured with
    benchmarks/login_flood_bench.py: alarm p50 under a flood ×1.4 unconfined, ×1.0 confined).
    """
    os.nice(nice)  # the lane threads inherit it
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[-max(1, len(cpus) - 1) :])


def ready() -> None:
    """Nothing: submitted once per worker so that the pool starts its processes at once."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password: str, password_hash: str | None) -> bool:
    """Constant effort: a missing hash (unknown login name) costs as much as a wrong password,
    so that the time taken does not tell which login names exist."""
    if not password_hash:
        if not _dummy:
            _dummy.append(_hasher.hash("not-a-real-password"))
        password_hash = _dummy[0]
        _check(password, password_hash)
        return False
    return _check(password, password_hash)


def _check(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password, password_hash)
    except (PwdlibError, ValueError):
        return False
