"""Provider templates: which approved template (and sign name) a page uses, and its parameters.

Chinese SMS and voice providers send only text approved in advance: a template with named
variables (Alibaba ``${title}``) or numbered ones (Tencent ``{1}``). The gateway picks the
template by the incident's severity (or the page's kind for reminders and outcomes) and fills
the same facts into every template; the operator writes templates that use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from alerting.notify.base import CST, SEVERITY_ZH, Delivery, DeliveryError
from alerting.notify.tables import DeliveryKind
from alerting.notify.template_check import PAGED_SEVERITIES, missing_templates

__all__ = ["PAGED_SEVERITIES", "Templates", "missing_templates", "ordered_params", "params"]

#: Template variables, in the order Tencent's numbered ``{1}``…``{5}`` take them.
PARAM_ORDER = ("severity", "title", "location", "time", "incident")
# Alibaba rejects a variable longer than 35 characters in a notification template.
MAX_PARAM_CHARS = 35


@dataclass(frozen=True, slots=True)
class Templates:
    """Template ids by severity, plus optional ones for reminders and outcomes (those fall
    back to the severity's template)."""

    by_severity: Mapping[str, str]
    by_kind: Mapping[str, str] = field(default_factory=dict)

    def for_delivery(self, d: Delivery) -> str:
        if (code := self.by_kind.get(d.kind)) and d.kind != DeliveryKind.PAGE:
            return code
        severity = str(d.incident.get("severity", ""))
        code = self.by_severity.get(severity)
        if not code:
            # The start-up check makes this unreachable for paged severities; an unknown
            # severity still fails loudly (and the ladder moves on) instead of sending nothing.
            raise DeliveryError(f"no template configured for severity {severity!r}", permanent=True)
        return code


def params(d: Delivery) -> dict[str, str]:
    """The facts every template may use, each cut to what a provider accepts."""
    i = d.incident
    opened = i.get("opened_at")
    when = (
        datetime.fromtimestamp(int(opened) / 1000, tz=UTC).astimezone(CST).strftime("%m-%d %H:%M")
        if isinstance(opened, int | float)
        else "-"
    )
    values = {
        "severity": SEVERITY_ZH.get(str(i.get("severity")), ""),
        "title": str(i.get("title") or i.get("type") or ""),
        "location": str(i.get("location") or i.get("building") or "-"),
        "time": when,
        "incident": str(d.incident_id),
    }
    return {k: v[:MAX_PARAM_CHARS] for k, v in values.items()}


def ordered_params(d: Delivery) -> list[str]:
    p = params(d)
    return [p[k] for k in PARAM_ORDER]
