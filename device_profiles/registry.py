"""All loaded profiles: topic lookup, decode, subscriptions, examples; checks at load.

At load, each vendor model's fields are resolved onto the native profile of its device type:
the vendor file maps keys, scales and value maps; type, unit and range are the native ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import orjson
from pydantic import ValidationError

from core.readings import DeviceType, Reading, Rejection, RejectReason
from device_profiles.codecs import DecodeFn, get_codec
from device_profiles.compiled import CompiledProfile, compile_profile
from device_profiles.loader import ProfileLoadError, load_profile_file
from device_profiles.schema import (
    DeviceProfile,
    EventsSpec,
    Example,
    FieldMapping,
    FieldSpec,
    VendorProfile,
)
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

    def device_types(self) -> list[str]:
        """Every device type with a native profile, sorted (adding a type is adding one)."""
        return sorted({p.device_type for p in self._profiles.values() if p.codec == "native"})

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
    return problems


def _natives(
    parsed: list[tuple[Path, DeviceProfile | VendorProfile]],
) -> tuple[dict[DeviceType, tuple[Path, DeviceProfile]], list[str]]:
    """The native profile of each device type: the one definition its vendor models map onto."""
    natives: dict[DeviceType, tuple[Path, DeviceProfile]] = {}
    problems: list[str] = []
    for path, spec in parsed:
        if not isinstance(spec, DeviceProfile):
            continue
        first = natives.setdefault(spec.device_type, (path, spec))
        if first[1] is not spec:
            problems.append(
                f"{path}: device_type: {first[1].id} in {first[0]} already defines "
                f"{spec.device_type!r}; a device type has one native profile"
            )
    return natives, problems


def _resolve(
    path: Path, spec: VendorProfile, native: DeviceProfile
) -> tuple[DeviceProfile, list[str]]:
    """The vendor model with each field merged onto the native field of the same name.

    A vendor model may only produce what the native contract of its device type allows, with
    the native type, unit, values and range (a narrower range allowed). Fields with a problem
    are left out of the result, so the rest of the file is still checked; the load fails anyway.
    """
    problems: list[str] = []
    resolved: dict[str, dict[str, FieldSpec]] = {}
    sections = (
        ("telemetry", spec.telemetry, native.telemetry),
        ("events.fields", spec.events.fields, native.events.fields),
    )
    for section, mine, theirs in sections:
        resolved[section] = {}
        for name, mapping in mine.items():
            where = f"{path}: {section}.{name}"
            definition = theirs.get(name)
            if definition is None:
                problems.append(f"{where}: not a field of {native.id}")
                continue
            found = _restated(where, mapping, definition, native.id)
            found += _narrowing(where, mapping, definition, native.id)
            if not found:
                merged = _merge(where, mapping, definition)
                if isinstance(merged, FieldSpec):
                    resolved[section][name] = merged
                else:
                    found = merged
            problems += found
    for name in sorted(set(spec.events.names) - set(native.events.names)):
        problems.append(f"{path}: events.names: {name!r} is not an event of {native.id}")
    events = EventsSpec(
        names=spec.events.names,
        fields=resolved["events.fields"],
        codes=spec.events.codes,
        from_properties=spec.events.from_properties,
    )
    return spec.complete(resolved["telemetry"], events), problems


def _restated(
    where: str, mapping: FieldMapping, definition: FieldSpec, native_id: str
) -> list[str]:
    # Refused even when they agree: a second copy is what drifts (one place defines a field).
    problems = []
    for key in ("type", "unit", "values"):
        given = getattr(mapping, key)
        if given is None:
            continue
        theirs = getattr(definition, key)
        verdict = "repeats" if given == theirs else "conflicts with"
        problems.append(
            f"{where}.{key}: {verdict} {native_id} ({_show(key, theirs)}); type, unit and "
            "values come from the native profile, leave it out"
        )
    return problems


def _narrowing(
    where: str, mapping: FieldMapping, definition: FieldSpec, native_id: str
) -> list[str]:
    lo, hi = mapping.min, mapping.max
    if lo is None and hi is None:
        return []
    if definition.type not in ("int", "float"):
        key = "min" if lo is not None else "max"
        return [
            f"{where}.{key}: {definition.type} in {native_id}; only int and float fields have "
            "a range"
        ]
    # Equal is refused too: a copied bound would stay behind if the native one moved.
    wider = []
    if lo is not None and definition.min is not None and lo <= definition.min:
        wider.append(("min", lo, definition.min))
    if hi is not None and definition.max is not None and hi >= definition.max:
        wider.append(("max", hi, definition.max))
    return [
        f"{where}.{key}: {given:g} does not narrow {native_id}'s {key} {theirs:g}; "
        "a vendor range may only be narrower than the native one"
        for key, given, theirs in wider
    ]


def _merge(where: str, mapping: FieldMapping, definition: FieldSpec) -> FieldSpec | list[str]:
    """The native definition with the vendor's mapping (and narrower range), validated."""
    try:
        return FieldSpec(
            type=definition.type,
            unit=definition.unit,
            min=definition.min if mapping.min is None else mapping.min,
            max=definition.max if mapping.max is None else mapping.max,
            values=definition.values,
            value_map=mapping.value_map,
            source=mapping.source,
            scale=mapping.scale,
            description=definition.description,
        )
    except ValidationError as exc:  # e.g. a scale on an enum, a value_map target not in values
        return [f"{where}: {err['msg']}" for err in exc.errors()]


def _show(key: str, value: object) -> str:
    if value is None:
        return f"no {key}"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def load_profiles(directory: Path | None = None) -> ProfileRegistry:
    """Load every ``*.yaml`` under ``directory`` (default: the shipped profiles).

    Vendor models come out resolved (see DeviceProfile): their fields carry the native type,
    unit and range. A vendor model needs the native profile of its device type beside it.

    Raises:
        ProfileLoadError: listing every problem found, each naming file, key path and reason.
    """
    root = directory if directory is not None else DEFAULT_PROFILES_DIR
    files = sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")])
    if not files:
        raise ProfileLoadError([f"{root}: (directory): no profile files found"])
    problems: list[str] = []
    parsed: list[tuple[Path, DeviceProfile | VendorProfile]] = []
    for path in files:
        try:
            parsed.append((path, load_profile_file(path)))
        except ProfileLoadError as exc:
            problems += exc.problems
    natives, more = _natives(parsed)
    problems += more
    loaded: list[tuple[Path, CompiledProfile]] = []
    for path, parsed_spec in parsed:
        if isinstance(parsed_spec, DeviceProfile):
            spec = parsed_spec
        elif parsed_spec.device_type in natives:
            spec, more = _resolve(path, parsed_spec, natives[parsed_spec.device_type][1])
            problems += more
        else:
            problems.append(
                f"{path}: device_type: no native profile of {parsed_spec.device_type!r} "
                "to take the fields' type, unit and range from"
            )
            continue
        compiled, more = _compile(path, spec)
        problems += more
        if compiled is not None:
            loaded.append((path, compiled))
    problems += _cross_checks(loaded)
    if problems:
        raise ProfileLoadError(problems)
    return ProfileRegistry([p for _, p in loaded], {p.id: path for path, p in loaded})
