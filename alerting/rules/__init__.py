"""Alert rules as data: schema, loader, pure evaluators and the restart-safe engine."""

from alerting.rules.alert_state import RuleState
from alerting.rules.engine import RuleEngine
from alerting.rules.loader import BUILTIN_DIR, RuleLoadError, RuleSet, load_rules
from alerting.rules.schema import RuleSpec, parse_rule

__all__ = [
    "BUILTIN_DIR",
    "RuleEngine",
    "RuleLoadError",
    "RuleSet",
    "RuleSpec",
    "RuleState",
    "load_rules",
    "parse_rule",
]
