"""The start-up check of provider templates (kept free of heavy imports: settings use it)."""

from __future__ import annotations

from collections.abc import Mapping

#: The severities a ladder pages (``info`` never pages): each needs a template.
PAGED_SEVERITIES = ("critical", "major", "minor")


def missing_templates(templates: Mapping[str, str]) -> list[str]:
    """The paged severities ``templates`` has no template for."""
    return [s for s in PAGED_SEVERITIES if not templates.get(s)]
