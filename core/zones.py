"""IANA time-zone names as a validated type, for community files, rules and the API.

``ZoneInfo("America")`` raises ``IsADirectoryError`` (it opens the tz database folder), and a
zone that only loads on the machine that wrote it breaks every later read of the record, so a
name is accepted only when it is one of the zones this machine knows.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from pydantic import AfterValidator, Field


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def known_zone(value: str) -> str:
    """``value`` unchanged when it names a time zone; ``ValueError`` saying what is expected."""
    if value not in _zone_names():
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)")
    return value


def zone(value: str) -> ZoneInfo:
    """The zone for a name already checked by :func:`known_zone`."""
    return ZoneInfo(known_zone(value))


TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(known_zone)]
