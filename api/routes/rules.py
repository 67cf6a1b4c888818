"""Rules: list, validate a draft, enable/disable, and test where an incident would be routed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from alerting.models import Category, Severity
from alerting.rules.tuning import TuningError
from api import audit
from api.deps import (
    CurrentPerson,
    Dispatcher,
    RegistryWriter,
    RuleWriter,
    ServicesDep,
    SessionDep,
)
from api.errors import FieldError
from api.schemas import RouteTest, RulesValidate, RuleToggle, RuleTune, ValidationReport
from core.readings import DeviceContext
from gateway.registry.tables import Device

router = APIRouter(prefix="/rules", tags=["rules"])


def _public(rule: Any) -> dict[str, Any]:
    data: dict[str, Any] = rule.model_dump(mode="json", by_alias=True)  # as in the rule file
    return data


@router.get("")
async def list_rules(services: ServicesDep, _: CurrentPerson) -> list[dict[str, Any]]:
    """Every rule as data (each with ``kind``, ``id``, ``enabled`` …)."""
    return [_public(r) for r in services.rules.rules.rules]


@router.get("/{rule_id}")
async def get_rule(rule_id: str, services: ServicesDep, _: CurrentPerson) -> dict[str, Any]:
    rule = services.rules.rules.by_id.get(rule_id)
    if rule is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"rule '{rule_id}' not found")
    return _public(rule)


@router.post("/validate", response_model=ValidationReport)
async def validate_rules(
    body: RulesValidate, services: ServicesDep, _: Dispatcher
) -> ValidationReport:
    """Check draft rules without applying them; each problem names the rule and field."""
    problems = services.rules.validate(body.rules)
    return ValidationReport(valid=not problems, problems=problems)


@router.put("/{rule_id}/enabled")
async def set_enabled(
    rule_id: str,
    body: RuleToggle,
    principal: RuleWriter,
    services: ServicesDep,
    session: SessionDep,
) -> dict[str, Any]:
    try:
        rules = await services.rules.set_enabled(rule_id, body.enabled, principal.actor)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"rule '{rule_id}' not found") from exc
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "rule.enable" if body.enabled else "rule.disable",
        target=rule_id,
    )
    await session.commit()
    return _public(rules.by_id[rule_id])


@router.put("/{rule_id}/params")
async def tune_rule(
    rule_id: str,
    body: RuleTune,
    principal: RegistryWriter,
    services: ServicesDep,
    session: SessionDep,
) -> dict[str, Any]:
    """Change a rule's thresholds, only those its file declares ``bounds`` for and only within
    them (422 naming the parameter otherwise). Kept across restarts."""
    rule = services.rules.rules.by_id.get(rule_id)
    if rule is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"rule '{rule_id}' not found")
    before = _public(rule)
    try:
        rules = await services.rules.tune(rule_id, body.params, principal.actor)
    except TuningError as exc:
        raise FieldError(f"params.{exc.field}", exc.message) from None
    after = _public(rules.by_id[rule_id])
    audit.record_by(
        session,
        principal,
        services.clock.now_ms(),
        "rule.tune",
        target=rule_id,
        detail={
            "before": {k: before.get(k) for k in body.params},
            "after": {k: after.get(k) for k in body.params},
        },
    )
    await session.commit()
    return after


@router.post("/route-test")
async def route_test(
    body: RouteTest, services: ServicesDep, principal: Dispatcher, session: SessionDep
) -> dict[str, Any]:
    """Who would be paged, and when, if this device opened an incident now and nobody acked."""
    if services.route_tester is None:
        raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED, "no route tester is configured")
    if not principal.sees_site(body.site):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"site: not yours ('{body.site}')")
    device = await session.get(Device, (body.site, body.device_id))
    if device is None:
        raise FieldError("device_id", f"no device '{body.device_id}' in site '{body.site}'")
    ctx = DeviceContext(
        site=device.site,
        device_id=device.device_id,
        device_type=device.device_type,
        grid_id=device.grid_id,
        building_id=device.building_id,
        household_id=device.household_id,
        location=device.location,
        name=device.name,
    )
    if services.registry is not None:
        ctx = services.registry.context(body.site, body.device_id) or ctx
    at_ms = body.at_ms if body.at_ms is not None else services.clock.now_ms()
    plan = await services.route_tester(
        ctx,
        severity=Severity(body.severity),
        now_ms=at_ms,
        rule_id=body.rule_id,
        category=Category(body.category),
    )
    steps = [
        {
            "at_ms": step_ms,
            "recipients": [
                {
                    "role": p.role.value,
                    "person_id": p.recipient.person_id,
                    "name": p.recipient.name,
                    "channels": [c.kind.value for c in p.recipient.channels],
                }
                for p in paged
            ],
        }
        for step_ms, paged in plan
    ]
    return {"device_id": body.device_id, "at_ms": at_ms, "steps": steps}
