"""Load rule YAML into a validated, indexed RuleSet; every problem names file, rule and field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from alerting.rules.schema import (
    AbsenceRule,
    CorrelationRule,
    DeviceRule,
    EventRule,
    RuleSpec,
    parse_rule,
)
from core.readings import ReadingKind

BUILTIN_DIR = Path(__file__).with_name("builtin")
_FILE_KEYS = frozenset({"rules"})


class RuleLoadError(ValueError):
    """All problems found while loading rules, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid rules:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Origin:
    source: str
    index: int


@dataclass
class RuleSet:
    """Validated rules, indexed so that one reading touches only the rules that can use it."""

    rules: tuple[RuleSpec, ...]
    by_id: dict[str, RuleSpec] = field(init=False)
    _by_reading: dict[tuple[str, str, str | None], tuple[DeviceRule, ...]] = field(init=False)
    _correlations: dict[str, tuple[CorrelationRule, ...]] = field(init=False)
    _absence: dict[str, tuple[AbsenceRule, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {rule.id: rule for rule in self.rules}
        self._by_reading = {}
        self._absence = {}
        corr: dict[str, list[CorrelationRule]] = {}
        for rule in self.rules:
            if isinstance(rule, CorrelationRule) and rule.enabled:
                for rule_id in {r for group in rule.groups for r in group}:
                    corr.setdefault(rule_id, []).append(rule)
        self._correlations = {k: tuple(v) for k, v in corr.items()}

    def for_reading(
        self, device_type: str, kind: ReadingKind, event: str | None
    ) -> tuple[DeviceRule, ...]:
        """Enabled per-device rules that can react to a reading of this type/kind/event."""
        key = (device_type, kind, event if kind == "event" else None)
        found = self._by_reading.get(key)
        if found is None:
            found = tuple(r for r in self._device_rules(device_type) if _reacts(r, kind, event))
            if len(self._by_reading) < 10_000:  # unknown event names must not grow it forever
                self._by_reading[key] = found
        return found

    def absence_rules(self, device_type: str) -> tuple[AbsenceRule, ...]:
        # Asked once per device at start (100,000 of them): per type, not per device.
        found = self._absence.get(device_type)
        if found is None:
            found = tuple(r for r in self._device_rules(device_type) if isinstance(r, AbsenceRule))
            if len(self._absence) < 1_000:
                self._absence[device_type] = found
        return found

    def correlations_for(self, rule_id: str) -> tuple[CorrelationRule, ...]:
        return self._correlations.get(rule_id, ())

    def _device_rules(self, device_type: str) -> Iterable[DeviceRule]:
        for rule in self.rules:
            enabled = rule.enabled and rule.device_type == device_type
            if enabled and not isinstance(rule, CorrelationRule):
                yield rule


def _reacts(rule: DeviceRule, kind: str, event: str | None) -> bool:
    if isinstance(rule, AbsenceRule):
        return kind == "status" or rule.expect != "events" or event in rule.events
    if isinstance(rule, EventRule):
        return kind == "event" and (event in rule.events or event in rule.clear_on)
    if rule.kind == "count_in_window":
        return kind == "event" and event in rule.events
    return kind == "telemetry"


def load_rules(
    directory: Path | None = None,
    *,
    known_events: Mapping[str, Iterable[str]] | None = None,
) -> RuleSet:
    """Load every ``*.yaml`` under ``directory`` (default: the builtin rules).

    ``known_events`` (device type → event names, e.g. from the device profiles) turns a
    misspelt event name into a load error instead of a rule that never fires.
    """
    directory = BUILTIN_DIR if directory is None else directory
    problems: list[str] = []
    loaded: list[tuple[RuleSpec, Origin]] = []
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    if not files:
        problems.append(f"{directory}: no rule files (*.yaml)")
    for path in files:
        loaded.extend(_load_file(path, problems))
    return build_rule_set(loaded, problems, known_events=known_events)


def build_rule_set(
    loaded: list[tuple[RuleSpec, Origin]],
    problems: list[str] | None = None,
    *,
    known_events: Mapping[str, Iterable[str]] | None = None,
) -> RuleSet:
    """Cross-rule checks (duplicates, references, event names); raise all problems at once."""
    problems = [] if problems is None else problems
    seen: dict[str, Origin] = {}
    for rule, origin in loaded:
        where = f"{origin.source}: rule #{origin.index} '{rule.id}'"
        if rule.id in seen:
            first = seen[rule.id]
            problems.append(
                f"{where}: id: duplicate, first defined in {first.source} rule #{first.index}"
            )
            continue
        seen[rule.id] = origin
    by_id = {rule.id: rule for rule, _ in loaded}
    for rule, origin in loaded:
        where = f"{origin.source}: rule #{origin.index} '{rule.id}'"
        problems.extend(f"{where}: {p}" for p in _check_refs(rule, by_id, known_events))
    if problems:
        raise RuleLoadError(problems)
    return RuleSet(tuple(rule for rule, _ in loaded))


def _check_refs(
    rule: RuleSpec, by_id: Mapping[str, RuleSpec], known: Mapping[str, Iterable[str]] | None
) -> list[str]:
    out: list[str] = []
    if isinstance(rule, CorrelationRule):
        for g, group in enumerate(rule.groups):
            for j, ref in enumerate(group):
                target = by_id.get(ref)
                if target is None:
                    out.append(f"groups.{g}.{j}: unknown rule '{ref}'")
                elif isinstance(target, CorrelationRule):
                    out.append(f"groups.{g}.{j}: '{ref}' is a correlation (no nesting)")
    if known is not None:
        names = set(known.get(rule.device_type, ()))
        for key in ("events", "clear_on"):
            for j, event in enumerate(getattr(rule, key, ())):
                if event not in names:
                    out.append(f"{key}.{j}: '{event}' is not an event of {rule.device_type}")
    return out


def _load_file(path: Path, problems: list[str]) -> list[tuple[RuleSpec, Origin]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return []
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        problems.append(f"{path}: expected a mapping with a 'rules' list")
        return []
    extra = set(data) - _FILE_KEYS
    if extra:
        problems.append(f"{path}: unknown top-level keys {sorted(extra)}")
    return parse_rules(data["rules"], str(path), problems)


def parse_rules(
    items: list[Any], source: str, problems: list[str]
) -> list[tuple[RuleSpec, Origin]]:
    """Validate a list of raw rules, appending ``source: rule #i 'id': field.path: reason``."""
    out: list[tuple[RuleSpec, Origin]] = []
    for index, item in enumerate(items):
        rule_id = item.get("id", "?") if isinstance(item, dict) else "?"
        try:
            out.append((parse_rule(item), Origin(source, index)))
        except ValidationError as exc:
            for err in exc.errors():
                path = _field_path(err["loc"])
                problems.append(f"{source}: rule #{index} '{rule_id}': {path}: {err['msg']}")
    return out


def _field_path(loc: tuple[int | str, ...]) -> str:
    # Drop the discriminator tag pydantic inserts ("threshold", "event" …) after the index.
    parts = [str(p) for p in loc]
    if parts and parts[0] in _KINDS:
        parts = parts[1:]
    return ".".join(parts) or "(rule)"


_KINDS = frozenset(
    {"threshold", "duration", "rate_of_rise", "event", "count_in_window", "absence", "correlation"}
)
__all__ = ["BUILTIN_DIR", "Origin", "RuleLoadError", "RuleSet", "load_rules"]
