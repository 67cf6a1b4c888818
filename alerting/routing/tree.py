"""The route tree: pure selection of an escalation ladder from an incident's labels.

Like Alertmanager's routing tree: a node matches labels; the first matching child wins and
inherits what it does not set. Written as data (YAML/dict) and table-tested.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alerting.models import Category, Severity
from alerting.routing.directory import Role

# Labels holding a comma-separated set; a matcher hits if any of its values is in the set.
SET_LABELS = frozenset({"household_flags"})


class Route(BaseModel):
    """One node: ``match`` labels (a value or any of a list), what it sets, its children."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: dict[str, str | list[str]] = Field(default_factory=dict)
    ladder: str | None = None
    add_targets: list[Role] = Field(default_factory=list)  # added to the first step
    routes: list[Route] = Field(default_factory=list)

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, want in self.match.items():
            wanted = {want} if isinstance(want, str) else set(want)
            raw = labels.get(key, "")
            have = set(raw.split(",")) if key in SET_LABELS else {raw}
            if not wanted & have:
                return False
        return True


@dataclass(frozen=True, slots=True)
class RouteDecision:
    ladder: str
    add_targets: tuple[Role, ...]
    path: tuple[int, ...]  # child indexes taken, for the route tester's explanation


def select(tree: Route, labels: Mapping[str, str]) -> RouteDecision:
    """Walk ``tree`` for ``labels``; the root always matches and must name a ladder."""
    if tree.ladder is None:
        raise ValueError("the root route must name a ladder")
    ladder, extra, path = tree.ladder, list(tree.add_targets), []
    node = tree
    while True:
        for index, child in enumerate(node.routes):
            if child.matches(labels):
                ladder = child.ladder or ladder
                extra += [r for r in child.add_targets if r not in extra]
                path.append(index)
                node = child
                break
        else:
            return RouteDecision(ladder, tuple(extra), tuple(path))


def route_labels(
    *,
    severity: Severity,
    category: Category,
    rule_id: str,
    device_type: str,
    site: str = "",
    grid_id: str = "",
    building_id: str | None = None,
    household_flags: frozenset[str] | str = frozenset(),
    page_household: bool = False,
) -> dict[str, str]:
    """The labels the tree matches on, built the same way for live incidents and the tester."""
    flags = (
        household_flags if isinstance(household_flags, str) else ",".join(sorted(household_flags))
    )
    return {
        "severity": severity.value,
        "category": category.value,
        "rule": rule_id,
        "device_type": device_type,
        "site": site,
        "grid": grid_id,
        "building": building_id or "",
        "household_flags": flags,
        "page_household": "yes" if page_household else "",
    }


DEFAULT_TREE: dict[str, Any] = {
    "ladder": "minor",
    "routes": [
        {"match": {"severity": "info"}, "ladder": "none"},
        {
            "match": {"severity": "critical"},
            "ladder": "critical",
            # Call-device and fall incidents: the household's family is told at once; so is a
            # no-activity alert raised to critical by a high-risk household's tier, and rules that say
            # so (page_household), e.g. a gas leak at home.
            "routes": [
                {"match": {"device_type": "sos"}, "add_targets": ["family"]},
                {"match": {"rule": "household.elderly_no_activity"}, "add_targets": ["family"]},
                {"match": {"page_household": "yes"}, "add_targets": ["family"]},
            ],
        },
        {
            "match": {"severity": "major"},
            "ladder": "major",
            "routes": [
                {"match": {"rule": "household.elderly_no_activity"}, "add_targets": ["family"]},
                {"match": {"page_household": "yes"}, "add_targets": ["family"]},
            ],
        },
    ],
}


def default_tree() -> Route:
    return Route.model_validate(DEFAULT_TREE)
