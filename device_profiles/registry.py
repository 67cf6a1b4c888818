"""All loaded profiles: topic lookup, decode, subscriptions, examples; checks at load."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from core.readings import DeviceType, Reading, Rejection, RejectReason
from device_profiles.codecs import DecodeFn, get_codec
from device_profiles.compiled import CompiledProfile, compile_profile
from device_profiles.loader import ProfileLoadError, load_profile_file
from device_profiles.schema import DeviceProfile, Example
from device_profiles.topics import TopicPattern, filter_covers

DEFAULT_PROFILES_DIR = Path(__file__).parent / "profiles"
FUTURE_TOLERANCE_MS = 300_000
VENDOR_PAYLOAD_LIMIT = 65_536
_MAX_TOPIC_LEN = 512
_CACHE_LIMIT = 100_000

_Match = tuple[CompiledProfile, DecodeFn, dict[str, str]]


@dataclass(frozen=True, slots=True)
class ProfileExample:
    """One example of one profile, with the file it came from (for test ids and simulators)."""

    profile_id: str
    file: Path
    example: Example

    def payload_bytes(self) -> bytes:
        """The payload as sent on the wire (JSON object compact, or a raw string as UTF-8)."""
        payload = self.example.payload
        data = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
        pad = self.example.pad_to_bytes
        return data + b" " * (pad - len(data)) if pad and pad > len(data) else data


class ProfileRegistry:
    """Decodes (topic, payload) with the profile whose topic pattern matches."""

    def __init__(self, profiles: list[CompiledProfile], files: dict[str, Path]) -> None:
        self._profiles = {p.id: p for p in profiles}
        self._files = files
        self._shapes: dict[tuple[int, str | None], list[tuple[TopicPattern, CompiledProfile]]] = {}
        for profile in profiles:
            if not profile.spec.enabled:
                continue
            for pattern in profile.patterns:
                key = (len(pattern.segments), pattern.segments[0])
                self._shapes.setdefault(key, []).append((pattern, profile))
        self._cache: dict[str, _Match | str] = {}

    def decode(
        self,
        topic: str,
        payload: bytes,
        now_ms: int,
        *,
        future_tolerance_ms: int = FUTURE_TOLERANCE_MS,
    ) -> list[Reading] | Rejection:
        """Decode one MQTT message into canonical readings, or say why it is rejected.

        ``now_ms`` is the receive time: it stands in for a missing ``ts`` and bounds how far in
        the future a ``ts`` may be. Never raises for any topic or payload.
        """
        hit = self._cache.get(topic)
        if hit is None:
            hit = self._match(topic)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[topic] = hit
        if isinstance(hit, str):
            return Rejection(RejectReason.UNKNOWN_TOPIC, hit, topic)
        profile, decode, variables = hit
        if len(payload) > profile.max_payload:
            return Rejection(
                RejectReason.TOO_LARGE,
                f"{len(payload)} bytes > {profile.max_payload}",
                topic,
                _device_of(variables),
            )
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return Rejection(RejectReason.NOT_JSON, str(exc)[:200], topic, _device_of(variables))
        if not isinstance(obj, dict):
            return Rejection(
                RejectReason.NOT_JSON,
                f"payload is a JSON {type(obj).__name__}, not an object",
                topic,
                _device_of(variables),
            )
        result = decode(variables, obj, profile, now_ms)
        if isinstance(result, Rejection):
            return replace(result, topic=topic)
        limit = now_ms + future_tolerance_ms
        for reading in result:
            if reading.ts_ms > limit:
                return Rejection(
                    RejectReason.FUTURE_TIMESTAMP,
                    f"ts {reading.ts_ms} is {reading.ts_ms - now_ms} ms ahead of receive time",
                    topic,
                    reading.device_id,
                )
        return result

    def _match(self, topic: str) -> _Match | str:
        if not topic or len(topic) > _MAX_TOPIC_LEN:
            return f"topic length {len(topic)} outside 1..{_MAX_TOPIC_LEN}"
        if "+" in topic or "#" in topic or "\x00" in topic:
            return "topic contains a wildcard or NUL"
        parts = topic.split("/")
        candidates = self._shapes.get((len(parts), parts[0]), []) + self._shapes.get(
            (len(parts), None), []
        )
        detail = "no profile matches the topic"
        for pattern, profile in candidates:
            if not pattern.structure_matches(parts):
                continue
            bound = pattern.bind(parts)
            if isinstance(bound, str):
                detail = bound
                continue
            bound["topic"] = topic
            codec = get_codec(profile.codec)
            if codec is None:  # load refuses unknown codecs; kept for a clear message anyway
                return f"codec {profile.codec!r} of {profile.id} is not registered"
            return profile, codec.decode, bound
        return detail

    def subscriptions(self) -> list[str]:
        """MQTT filters covering every enabled profile (covered duplicates removed)."""
        filters: set[str] = set()
        for profile in self._profiles.values():
            if profile.spec.enabled:
                filters.update(_filters_of(profile.spec, profile.patterns))
        return sorted(
            f for f in filters if not any(g != f and filter_covers(g, f) for g in filters)
        )

    def profile_for(self, device_type: DeviceType) -> DeviceProfile:
        """The native profile of a device type (fields, events, heartbeat)."""
        for profile in self._profiles.values():
            if profile.codec == "native" and profile.device_type == device_type:
                return profile.spec
        raise KeyError(f"no native profile for device type {device_type!r}")

    def get(self, profile_id: str) -> DeviceProfile:
        """A profile by id (e.g. ``native.smoke``, ``huawei.smoke.hs_ws2``)."""
        return self._profiles[profile_id].spec

    def profiles(self) -> list[DeviceProfile]:
        """Every loaded profile, enabled or not, sorted by id."""
        return [self._profiles[k].spec for k in sorted(self._profiles)]

    def examples(self) -> list[ProfileExample]:
        """Every example of every enabled profile."""
        return [
            ProfileExample(p.id, self._files[p.id], ex)
            for p in sorted(self._profiles.values(), key=lambda p: p.id)
            if p.spec.enabled
            for ex in p.spec.examples
        ]


def _device_of(variables: dict[str, str]) -> str | None:
    for name in ("device_id", "vendor_device_id", "device_name"):
        if name in variables:
            return variables[name]
    return None


def _filters_of(spec: DeviceProfile, patterns: list[TopicPattern]) -> list[str]:
    return list(spec.subscribe) if spec.subscribe else [p.mqtt_filter() for p in patterns]


def _compile(path: Path, spec: DeviceProfile) -> tuple[CompiledProfile | None, list[str]]:
    problems: list[str] = []
    codec = get_codec(spec.codec)
    if codec is None:
        return None, [f"{path}: codec: unknown codec {spec.codec!r}"]
    patterns: list[TopicPattern] = []
    for index, text in enumerate(spec.topics):
        try:
            pattern = TopicPattern.parse(text, spec.identity)
        except ValueError as exc:
            problems.append(f"{path}: topics[{index}]: {exc}")
            continue
        missing = codec.required_vars - {name for _, name in pattern.variables}
        if missing:
            problems.append(f"{path}: topics[{index}]: codec {codec.name} needs {sorted(missing)}")
        patterns.append(pattern)
    limit = 4096 if spec.codec == "native" else VENDOR_PAYLOAD_LIMIT
    if spec.max_payload_bytes > limit:
        problems.append(f"{path}: max_payload_bytes: {spec.codec} allows at most {limit}")
    filters = _filters_of(spec, patterns)
    for pattern in patterns:
        if not any(filter_covers(f, pattern.mqtt_filter()) for f in filters):
            problems.append(f"{path}: subscribe: no filter receives {pattern.text!r}")
    return compile_profile(spec, patterns), problems


def _cross_checks(loaded: list[tuple[Path, CompiledProfile]]) -> list[str]:
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for path, profile in loaded:
        if profile.id in seen:
            problems.append(f"{path}: id: duplicate id {profile.id!r} (also in {seen[profile.id]})")
        seen.setdefault(profile.id, path)
    enabled = [(path, p) for path, p in loaded if p.spec.enabled]
    for i, (path_a, a) in enumerate(enabled):
        for path_b, b in enabled[i + 1 :]:
            for pa in a.patterns:
                for pb in b.patterns:
                    if pa.overlaps(pb):
                        problems.append(
                            f"{path_b}: topics: {pb.text!r} overlaps {pa.text!r} of {path_a}"
                        )
    natives = {p.device_type: p.spec for _, p in loaded if p.codec == "native"}
    for path, profile in loaded:
        native = natives.get(profile.device_type)
        if profile.codec != "native" and native is not None:
            problems += _against_native(path, profile.spec, native)
    return problems


def _against_native(path: Path, spec: DeviceProfile, native: DeviceProfile) -> list[str]:
    """A vendor model may only produce what the native contract of its device type allows."""
    problems: list[str] = []
    sections: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("telemetry", spec.telemetry, native.telemetry),
        ("events.fields", spec.events.fields, native.events.fields),
    ]
    for section, mine, theirs in sections:
        for name, field in mine.items():
            if name not in theirs:
                problems.append(f"{path}: {section}.{name}: not a field of {native.id}")
            elif field.type != theirs[name].type:
                expected = theirs[name].type
                problems.append(f"{path}: {section}.{name}.type: {native.id} says {expected}")
    for name in set(spec.events.names) - set(native.events.names):
        problems.append(f"{path}: events.names: {name!r} is not an event of {native.id}")
    return problems


def load_profiles(directory: Path | None = None) -> ProfileRegistry:
    """Load every ``*.yaml`` under ``directory`` (default: the shipped profiles).

    Raises:
        ProfileLoadError: listing every problem found, each naming file, key path and reason.
    """
    root = directory if directory is not None else DEFAULT_PROFILES_DIR
    files = sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")])
    if not files:
        raise ProfileLoadError([f"{root}: (directory): no profile files found"])
    problems: list[str] = []
    loaded: list[tuple[Path, CompiledProfile]] = []
    for path in files:
        try:
            spec = load_profile_file(path)
        except ProfileLoadError as exc:
            problems += exc.problems
            continue
        compiled, more = _compile(path, spec)
        problems += more
        if compiled is not None:
            loaded.append((path, compiled))
    problems += _cross_checks(loaded)
    if problems:
        raise ProfileLoadError(problems)
    return ProfileRegistry([p for _, p in loaded], {p.id: path for path, p in loaded})
