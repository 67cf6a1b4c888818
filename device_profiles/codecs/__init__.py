"""Codecs turn a matched topic and a parsed JSON object into readings; looked up by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.readings import Reading, Rejection
from device_profiles.codecs import alink, iotda, native
from device_profiles.compiled import CompiledProfile


class DecodeFn(Protocol):
    """A pure function: (topic variables, JSON object, profile, receive time) -> result.

    ``variables`` holds the pattern's variables plus ``topic``, the whole topic string.
    It never raises for bad input; it returns a Rejection (the registry fills in the topic).
    """

    def __call__(
        self,
        variables: Mapping[str, str],
        obj: dict[str, Any],
        profile: CompiledProfile,
        now_ms: int,
    ) -> list[Reading] | Rejection: ...


@dataclass(frozen=True, slots=True)
class Codec:
    """A named codec and the topic variables its profiles' patterns must provide."""

    name: str
    decode: DecodeFn
    required_vars: frozenset[str]


_CODECS: dict[str, Codec] = {}


def register_codec(codec: Codec) -> None:
    """Make a codec available to profiles by name; names are unique."""
    if codec.name in _CODECS:
        raise ValueError(f"codec {codec.name!r} is already registered")
    _CODECS[codec.name] = codec


def get_codec(name: str) -> Codec | None:
    """The codec called ``name``, or None."""
    return _CODECS.get(name)


def codec_names() -> list[str]:
    """Names of every registered codec."""
    return sorted(_CODECS)


register_codec(Codec("native", native.decode, native.REQUIRED_VARS))
register_codec(Codec("alink", alink.decode, alink.REQUIRED_VARS))
register_codec(Codec("iotda", iotda.decode, iotda.REQUIRED_VARS))
