"""Routing: device → grid → the people responsible and on duty, and the ladder by severity."""

from alerting.routing.directory import (
    Channel,
    ChannelKind,
    Directory,
    GridStaff,
    InMemoryDirectory,
    Recipient,
    Role,
    Shift,
)
from alerting.routing.ladder import Ladder, Step, default_ladders
from alerting.routing.router import Paged, RoutePlace, RoutingPolicy, resolve_roles, route_test
from alerting.routing.tree import Route, RouteDecision, default_tree, route_labels, select

__all__ = [
    "Channel",
    "ChannelKind",
    "Directory",
    "GridStaff",
    "InMemoryDirectory",
    "Ladder",
    "Paged",
    "Recipient",
    "Role",
    "Route",
    "RouteDecision",
    "RoutePlace",
    "RoutingPolicy",
    "Shift",
    "Step",
    "default_ladders",
    "default_tree",
    "resolve_roles",
    "route_labels",
    "route_test",
    "select",
]
