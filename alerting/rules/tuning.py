"""Tuning a rule from the screens: only parameters its file declares ``bounds`` for, and only
within them. Pure: the rule in, the tuned rule (validated as any rule file) or an error out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from alerting.rules.schema import RuleSpec, bound_number, parse_duration, parse_rule


class TuningError(ValueError):
    """A refused tuning; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def tune(rule: RuleSpec, params: Mapping[str, float | str]) -> RuleSpec:
    """``rule`` with ``params`` changed, each inside the bounds the rule file declares."""
    if not params:
        raise TuningError("params", "name at least one parameter to change")
    for name, value in params.items():
        if name not in rule.bounds:
            raise TuningError(
                name, f"not tunable: the rule file of '{rule.id}' declares no safe bounds for it"
            )
        low, high = rule.bounds[name]
        try:
            number = parse_duration(value) if isinstance(value, str) else float(value)
        except ValueError as exc:
            raise TuningError(name, str(exc)) from None
        if isinstance(value, bool) or not bound_number(low) <= number <= bound_number(high):
            raise TuningError(
                name, f"{value} is outside the safe bounds [{low}, {high}] of the rule file"
            )
    data: dict[str, Any] = rule.model_dump(mode="json", by_alias=True)
    data.update(params)
    try:
        return parse_rule(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "params"
        raise TuningError(where, first["msg"]) from None


__all__ = ["TuningError", "tune"]
