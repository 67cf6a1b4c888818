"""Shared helpers for the rule tests: a small community, readings and a scripted timeline."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from alerting.models import AlertTransition
from alerting.rules import RuleEngine, RuleSet, parse_rule
from core.readings import DeviceContext, Reading

# 2025-11-25 12:00 in Asia/Shanghai (04:00 UTC): a weekday noon, so schedules are "day".
T0 = 1_764_043_200_000
HOUR = 3_600
SITE = "demo"


def ctx(
    device_id: str,
    device_type: str,
    *,
    building: str | None = "B-01",
    household: str | None = None,
    flags: Iterable[str] = (),
) -> DeviceContext:
    return DeviceContext(
        site=SITE,
        device_id=device_id,
        device_type=device_type,  # type: ignore[arg-type]
        grid_id="G-1",
        building_id=building,
        household_id=household,
        household_flags=frozenset(flags),
        location=f"{building or '-'}/{household or '-'}",
    )


FLEET = {
    c.device_id: c
    for c in (
        ctx("SD-1", "smoke"),
        ctx("SD-2", "smoke"),
        ctx("SD-3", "smoke", building="B-02"),
        ctx("SOS-1", "sos", household="H-1", flags={"elderly_alone"}),
        ctx("GT-1", "gate", household="H-1", flags={"elderly_alone"}),
        ctx("GT-2", "gate"),
        ctx("CH-1", "charger"),
        ctx("CH-2", "charger", building="B-02"),
        ctx("GS-1", "gas", household="H-2"),
    )
}

_seq = iter(range(1, 10**9))


def reading(
    device_id: str, kind: str, at_ms: int, event: str | None = None, **fields: Any
) -> Reading:
    c = FLEET[device_id]
    return Reading(
        site=SITE,
        device_type=c.device_type,
        device_id=device_id,
        kind=kind,
        ts_ms=at_ms,
        seq=next(_seq),
        fields=fields,  # type: ignore[arg-type]
        event=event,
    )


def make_engine(
    rules: RuleSet | Sequence[dict[str, Any]],
    *,
    grace_ms: int = 0,
    devices: Iterable[str] = FLEET,
    at_ms: int = T0,
) -> RuleEngine:
    rule_set = rules if isinstance(rules, RuleSet) else RuleSet(tuple(parse_rule(r) for r in rules))
    engine = RuleEngine(rule_set, grace_ms=grace_ms)
    for device_id in devices:
        engine.register_device(FLEET[device_id], at_ms)
    engine.start(at_ms)
    return engine


def play(
    engine: RuleEngine, steps: Sequence[tuple[Any, ...]], *, t0: int = T0
) -> list[AlertTransition]:
    """Run a timeline. Steps (times in seconds from ``t0``)::

        ("T", s, device, {field: value})   telemetry
        ("E", s, device, event[, {fields}]) event
        ("S", s, device, online)           status
        ("tick", s)                        timers only
    Every step ticks first, as the gateway's timer loop would have.
    """
    out: list[AlertTransition] = []
    for step in steps:
        now = t0 + int(step[1] * 1000)
        out += engine.tick(now)
        if step[0] == "tick":
            continue
        if step[0] == "T":
            r = reading(step[2], "telemetry", now, **step[3])
        elif step[0] == "E":
            r = reading(step[2], "event", now, step[3], **(step[4] if len(step) > 4 else {}))
        else:
            r = reading(step[2], "status", now, online=step[3])
        out += engine.on_reading(r, FLEET[step[2]], now)
    return out


def summary(
    found: Iterable[AlertTransition], *, rule: str | None = None, t0: int = T0
) -> list[tuple[float, str, str]]:
    """(seconds, subject, state) of the transitions, optionally of one rule only."""
    return [
        ((tr.at_ms - t0) / 1000, tr.subject, tr.state.value)
        for tr in found
        if rule is None or tr.rule_id == rule
    ]
