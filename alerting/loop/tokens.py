"""Signed links for people without a login: a department's reply link, a resident's rating
link. ``<purpose>.<id>.<signature>``; the signature is an HMAC with the API's secret key."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, purpose: str, item_id: int) -> str:
    body = f"{purpose}.{item_id}"
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def read(secret: str, purpose: str, token: str) -> int | None:
    """The id a valid token of ``purpose`` names; ``None`` for anything else."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != purpose or not parts[1].isdigit() or len(parts[1]) > 15:
        return None
    return (
        int(parts[1]) if hmac.compare_digest(sign(secret, purpose, int(parts[1])), token) else None
    )
