"""From a ladder step's roles to people, and the route tester: who is notified when."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from alerting.models import Category, Severity
from alerting.routing.directory import Directory, Recipient, Role
from alerting.routing.ladder import HOUR_MS, Ladder, default_ladders
from alerting.routing.tree import Route, default_tree, route_labels, select
from core.readings import DeviceContext


@dataclass(frozen=True, slots=True)
class RoutePlace:
    """Where an incident is, as far as resolving roles goes."""

    site: str
    grid_id: str
    building_id: str | None = None
    household_id: str | None = None

    @classmethod
    def of(cls, ctx: DeviceContext) -> RoutePlace:
        return cls(ctx.site, ctx.grid_id, ctx.building_id, ctx.household_id)


@dataclass(frozen=True, slots=True)
class Paged:
    role: Role
    recipient: Recipient


@dataclass
class RoutingPolicy:
    """The route tree plus the named ladders it selects from (configuration, pure)."""

    tree: Route = field(default_factory=default_tree)
    ladders: Mapping[str, Ladder] = field(default_factory=default_ladders)

    def ladder_for(self, labels: Mapping[str, str]) -> Ladder:
        decision = select(self.tree, labels)
        try:
            ladder = self.ladders[decision.ladder]
        except KeyError:
            raise ValueError(f"route names unknown ladder {decision.ladder!r}") from None
        return ladder.with_step0_extra(decision.add_targets)


async def resolve_roles(
    directory: Directory, roles: tuple[Role, ...], place: RoutePlace, at_ms: int
) -> list[Paged]:
    """People behind ``roles`` at ``at_ms``; each person once, under the first role naming them."""
    out: list[Paged] = []
    seen: set[str] = set()
    for role in roles:
        for person in await _lookup(directory, role, place, at_ms):
            if person.person_id not in seen:
                seen.add(person.person_id)
                out.append(Paged(role, person))
    return out


async def _lookup(
    directory: Directory, role: Role, place: RoutePlace, at_ms: int
) -> tuple[Recipient, ...]:
    if role in (Role.GRID_WORKER, Role.BACKUP_WORKER):
        staff = await directory.grid_workers(place.site, place.grid_id)
        return staff.primary if role is Role.GRID_WORKER else staff.backup
    if role is Role.BUILDING_LEADER:
        if not place.building_id:
            return ()
        return await directory.building_leaders(place.site, place.building_id)
    if role is Role.DUTY_STAFF:
        return await directory.on_duty(place.site, at_ms)
    if role is Role.SECRETARY:
        return await directory.secretaries(place.site)
    if not place.household_id:
        return ()
    return await directory.household_contacts(place.household_id)


async def route_test(
    directory: Directory,
    ctx: DeviceContext,
    *,
    severity: Severity,
    now_ms: int,
    rule_id: str = "",
    category: Category = Category.SAFETY,
    policy: RoutingPolicy | None = None,
    horizon_ms: int = 72 * HOUR_MS,
) -> list[tuple[int, list[Paged]]]:
    """Who would be paged, and when, if an incident of this rule opened now and nobody acked.

    The roster is read at each step's own time, so a step after a shift change shows the
    next shift.
    """
    policy = policy or RoutingPolicy()
    labels = route_labels(
        severity=severity,
        category=category,
        rule_id=rule_id,
        device_type=ctx.device_type,
        site=ctx.site,
        grid_id=ctx.grid_id,
        building_id=ctx.building_id,
        household_flags=ctx.household_flags,
    )
    ladder = policy.ladder_for(labels)
    place = RoutePlace.of(ctx)
    plan: list[tuple[int, list[Paged]]] = []
    for at_ms, _index, step in ladder.schedule(now_ms, horizon_ms):
        plan.append((at_ms, await resolve_roles(directory, step.targets, place, at_ms)))
    return plan
