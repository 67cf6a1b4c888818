"""Read profile YAML into validated models; errors name file, key path, reason.

A native file becomes a DeviceProfile; a vendor file a VendorProfile, which the registry
resolves against the native profile of its device type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from device_profiles.schema import DeviceProfile, VendorProfile


class ProfileLoadError(Exception):
    """A profile file (or a set of them) is invalid. ``problems`` are "file: key.path: reason"."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid device profile(s):\n  " + "\n  ".join(problems))


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys: a silently overwritten field is a profile bug."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def _is_union_branch(item: int | str) -> bool:
    # pydantic inserts union member names (e.g. "ExpectReading", "list[ExpectReading]") into the
    # location; they are not keys of the file, so they are dropped from the key path.
    return isinstance(item, str) and (item[:1].isupper() or "[" in item)


def load_profile_file(path: Path) -> DeviceProfile | VendorProfile:
    """Load and validate one profile file (``codec: native`` or absent: DeviceProfile).

    Raises:
        ProfileLoadError: the YAML does not parse or does not match the schema.
    """
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProfileLoadError([f"{path}: (file): {exc}"]) from exc
    if not isinstance(data, dict):
        raise ProfileLoadError([f"{path}: (top level): expected a mapping"])
    # A file without a codec is read as native, so the error says `codec: Field required`.
    model = VendorProfile if data.get("codec", "native") != "native" else DeviceProfile
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(item for item in err["loc"] if not _is_union_branch(item))
            problems.append(f"{path}: {_loc(loc)}: {err['msg']}")
        raise ProfileLoadError(sorted(set(problems))) from exc
