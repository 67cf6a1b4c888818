"""Incident lifecycle, a pure state machine: statuses, allowed moves, resolution categories."""

from __future__ import annotations

from enum import StrEnum

from alerting.models import Category, Severity


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"


ACTIVE_STATUSES = frozenset({IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED})


class Resolution(StrEnum):
    """Why an incident ended; required on every human resolution (the ledger counts them)."""

    REAL_EMERGENCY = "real_emergency"
    FALSE_ALARM = "false_alarm"
    DEVICE_TEST = "device_test"
    DEVICE_FAULT = "device_fault"
    HANDLED = "handled"  # a reported matter dealt with (处置完毕): hotline, patrol, hazard


class Department(StrEnum):
    """Where a community refers an incident (部门联动)."""

    FIRE_119 = "fire_119"
    POLICE_110 = "police_110"
    AMBULANCE_120 = "ambulance_120"
    PROPERTY = "property_management"


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    COMMENT = "comment"
    ASSIGN = "assign"
    ESCALATE = "escalate"
    REFER = "refer"
    TRIAGE = "triage"  # 研判: set the tier
    ARRIVE = "arrive"  # 到场
    HAZARD = "hazard"  # a step of a hazard's rectification
    VERIFY = "verify"  # 核查: closes it, or reopens it
    SILENCE = "silence"  # a maintenance window for the incident's device


class TransitionError(ValueError):
    """An action that the incident's current status does not allow."""


_S = IncidentStatus
# Status-changing actions: (from, action) -> to.
_MOVES: dict[tuple[IncidentStatus, Action], IncidentStatus] = {
    (_S.OPEN, Action.ACKNOWLEDGE): _S.ACKNOWLEDGED,
    (_S.OPEN, Action.RESOLVE): _S.RESOLVED,
    (_S.ACKNOWLEDGED, Action.RESOLVE): _S.RESOLVED,
    (_S.RESOLVED, Action.CLOSE): _S.CLOSED,
    (_S.RESOLVED, Action.VERIFY): _S.CLOSED,
    (_S.RESOLVED, Action.REOPEN): _S.OPEN,
    (_S.CLOSED, Action.REOPEN): _S.OPEN,
}
# Actions that leave the status as it is, and where they are allowed.
_IN_PLACE: dict[Action, frozenset[IncidentStatus]] = {
    Action.COMMENT: frozenset(_S),
    Action.ASSIGN: ACTIVE_STATUSES,
    Action.ESCALATE: ACTIVE_STATUSES,
    Action.REFER: frozenset({_S.OPEN, _S.ACKNOWLEDGED, _S.RESOLVED}),
    Action.TRIAGE: ACTIVE_STATUSES,
    Action.ARRIVE: ACTIVE_STATUSES,
    Action.HAZARD: ACTIVE_STATUSES,
    Action.SILENCE: ACTIVE_STATUSES,
}


def next_status(status: IncidentStatus, action: Action) -> IncidentStatus:
    """The status after ``action``; raises :class:`TransitionError` if it is not allowed."""
    if (status, action) in _MOVES:
        return _MOVES[(status, action)]
    if status in _IN_PLACE.get(action, frozenset()):
        return status
    raise TransitionError(f"cannot {action.value} an incident that is {status.value}")


def allowed_actions(status: IncidentStatus) -> list[Action]:
    """Every action allowed from ``status`` (for the API and the duty board)."""
    out: list[Action] = []
    for action in Action:
        try:
            next_status(status, action)
        except TransitionError:
            continue
        out.append(action)
    return out


def auto_resolution(category: Category, severity: Severity) -> Resolution | None:
    """The category an automatic resolution gets; ``None`` leaves it to the person closing it.

    A self-test is a device test and a cleared maintenance alert (back online, battery
    replaced) a device fault; a cleared safety alert is not classified by a machine.
    """
    if severity is Severity.INFO:
        return Resolution.DEVICE_TEST
    if category is Category.MAINTENANCE:
        return Resolution.DEVICE_FAULT
    return None
