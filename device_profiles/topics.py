"""Topic patterns like ``safety/{site}/smoke/{device_id}/{kind}``, matched by str.split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from device_profiles.schema import Identity

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_ALNUM = _LOWER + _LOWER.upper() + _DIGITS


def _charset(chars: str, max_len: int) -> Callable[[str], bool]:
    # `not s.strip(chars)` is true exactly when every character of s is in chars (and fast)
    def check(value: str) -> bool:
        return 0 < len(value) <= max_len and not value.strip(chars)

    return check


def _one_of(*options: str) -> Callable[[str], bool]:
    allowed = frozenset(options)
    return allowed.__contains__


#: The closed vocabulary of topic variables and what each accepts (DESIGN "Native wire contract";
#: Alink deviceName/productKey and IoTDA device_id rules).
VARIABLES: dict[str, Callable[[str], bool]] = {
    "site": _charset(_LOWER + _DIGITS + "-", 32),
    "device_id": _charset(_ALNUM + "_.-", 64),
    "kind": _one_of("telemetry", "event", "status", "cmd_ack"),
    "product_key": _charset(_ALNUM, 32),
    "device_name": _charset(_ALNUM + "_.:@-", 64),
    "identifier": _charset(_ALNUM + "_", 64),
    "vendor_device_id": _charset(_ALNUM + "_.:@-", 128),
}


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A compiled pattern: literal segments and named variables at fixed positions."""

    text: str
    segments: tuple[str | None, ...]  # None where a variable sits
    variables: tuple[tuple[int, str], ...]
    literals: tuple[tuple[int, str], ...]
    identity: Identity | None = None

    @classmethod
    def parse(cls, text: str, identity: Identity | None = None) -> TopicPattern:
        """Compile ``text``; raises ValueError for unknown variables or MQTT wildcards."""
        if "+" in text or "#" in text or "\x00" in text:
            raise ValueError(f"topic pattern {text!r} must not contain + # or NUL")
        segments: list[str | None] = []
        variables: list[tuple[int, str]] = []
        literals: list[tuple[int, str]] = []
        for index, part in enumerate(text.split("/")):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                if name not in VARIABLES:
                    raise ValueError(f"unknown topic variable {{{name}}} in {text!r}")
                segments.append(None)
                variables.append((index, name))
            elif "{" in part or "}" in part:
                raise ValueError(f"a variable must fill a whole segment: {part!r} in {text!r}")
            else:
                segments.append(part)
                literals.append((index, part))
        if identity is not None and identity.var not in dict((n, i) for i, n in variables):
            raise ValueError(f"identity variable {identity.var!r} is not in {text!r}")
        return cls(text, tuple(segments), tuple(variables), tuple(literals), identity)

    def structure_matches(self, parts: list[str]) -> bool:
        """True when the literal segments agree (variables are checked by ``bind``)."""
        if len(parts) != len(self.segments):
            return False
        return all(parts[i] == lit for i, lit in self.literals)

    def bind(self, parts: list[str]) -> dict[str, str] | str:
        """Variables of a structurally matching topic, or a message saying which one is bad."""
        bound: dict[str, str] = {}
        for index, name in self.variables:
            value = parts[index]
            if not VARIABLES[name](value):
                return f"bad {name} {value[:70]!r}"
            bound[name] = value
        ident = self.identity
        if ident is not None:
            value = bound[ident.var]
            if ident.equals is not None and value != ident.equals:
                return f"no profile for {ident.var} {value!r}"
            if ident.prefix is not None and not value.startswith(ident.prefix):
                return f"no profile for {ident.var} {value!r}"
        return bound

    def mqtt_filter(self) -> str:
        """The subscription filter: every variable becomes ``+``."""
        return "/".join("+" if seg is None else seg for seg in self.segments)

    def overlaps(self, other: TopicPattern) -> bool:
        """Could one topic match both patterns (taking vendor identities into account)?"""
        if len(self.segments) != len(other.segments):
            return False
        for mine, theirs in zip(self.segments, other.segments, strict=True):
            if mine is not None and theirs is not None and mine != theirs:
                return False
        return _identities_overlap(self.identity, other.identity)


def _identities_overlap(a: Identity | None, b: Identity | None) -> bool:
    if a is None or b is None or a.var != b.var:
        return True
    a_val = a.equals if a.equals is not None else a.prefix or ""
    b_val = b.equals if b.equals is not None else b.prefix or ""
    if a.equals is not None and b.equals is not None:
        return a_val == b_val
    if a.prefix is not None and b.prefix is not None:
        return a_val.startswith(b_val) or b_val.startswith(a_val)
    exact, prefix = (a_val, b_val) if a.equals is not None else (b_val, a_val)
    return exact.startswith(prefix)


def filter_covers(general: str, specific: str) -> bool:
    """Does MQTT filter ``general`` receive every topic that ``specific`` receives?"""
    g_parts, s_parts = general.split("/"), specific.split("/")
    for index, g in enumerate(g_parts):
        if g == "#":
            return True
        if index >= len(s_parts):
            return False
        s = s_parts[index]
        if g != "+" and (g != s or s in ("+", "#")):
            return False
        if g == "+" and s == "#":
            return False
    return len(g_parts) == len(s_parts)
