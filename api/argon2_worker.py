"""A password worker process (api/login_guard.py): argon2 and nothing else.

    python -m api.argon2_worker [NICE]

Reads one JSON request a line on stdin (``{"id", "op": "verify", "password", "hash"}`` or
``{"id", "op": "hash", "password"}``), answers one line each on stdout (``{"id", "result"}``),
and ends at the end of its input. Kept light (pwdlib only). The hasher is the one of
gateway/registry/passwords.py (pwdlib's recommended argon2id); tests check that each
verifies the other's hashes.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError

_hasher = PasswordHash.recommended()
_dummy: list[str] = []


def start(nice: int) -> None:
    """Worker set-up: a low priority, and every CPU but one when there are several.

    argon2 runs its four lanes as threads and its 64 MiB stream through the caches; confined
    to one CPU of two, it leaves the other to the gateway (measured with
    benchmarks/login_flood_bench.py --addresses rotate, argon2 busy throughout: alarm p50
    ×1.4 the idle figure unconfined, ×1.0–1.14 confined).
    """
    # Ctrl-C in a terminal reaches the whole process group: the parent ends this worker by
    # closing its input, so SIGINT would only print a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(nice)  # the lane threads inherit it
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[-max(1, len(cpus) - 1) :])


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


def answer(request: dict[str, object]) -> object:
    password = request.get("password")
    if not isinstance(password, str):
        return None
    if request.get("op") == "hash":
        return hash_password(password)
    stored = request.get("hash")
    return verify(password, stored if isinstance(stored, str) else None)


def main() -> None:
    start(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
    out = sys.stdout
    out.write(json.dumps({"id": -1, "result": "ready"}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = answer(request)
        except Exception:  # one bad request must not end the worker
            result = None
        out.write(json.dumps({"id": request.get("id"), "result": result}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
