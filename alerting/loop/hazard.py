"""The hazard rectification lifecycle (隐患整改), a pure state machine.

reported → notice (整改通知 issued) → rectifying → reinspected (复查, with a photo) → rectified;
any state before ``rectified`` becomes ``overdue`` when the deadline passes, and an overdue
hazard can still be rectified (it stays counted as overdue in the ledger).
"""

from __future__ import annotations

from enum import StrEnum


class HazardState(StrEnum):
    REPORTED = "reported"
    NOTICE = "notice"
    RECTIFYING = "rectifying"
    REINSPECTED = "reinspected"
    RECTIFIED = "rectified"
    OVERDUE = "overdue"


class Responsible(StrEnum):
    HOUSEHOLD = "household"
    PROPERTY = "property"  # 物业
    DEPARTMENT = "department"


_H = HazardState
# step name → (states it may follow, state it leads to)
STEPS: dict[str, tuple[frozenset[HazardState], HazardState]] = {
    "notice": (frozenset({_H.REPORTED, _H.OVERDUE}), _H.NOTICE),
    "rectifying": (frozenset({_H.REPORTED, _H.NOTICE, _H.OVERDUE}), _H.RECTIFYING),
    "reinspect": (frozenset({_H.NOTICE, _H.RECTIFYING, _H.OVERDUE}), _H.REINSPECTED),
    "rectified": (frozenset({_H.REINSPECTED}), _H.RECTIFIED),
}
NEEDS_PHOTO = frozenset({"reinspect"})


def next_hazard_state(state: HazardState, step: str) -> HazardState:
    """The state after ``step``; ValueError names what is allowed instead."""
    if step not in STEPS:
        raise ValueError(f"unknown hazard step {step!r}; one of {', '.join(STEPS)}")
    before, after = STEPS[step]
    if state not in before:
        raise ValueError(f"a hazard that is {state.value} cannot go to {step}")
    return after


def open_hazard(state: str | None) -> bool:
    """Still to be rectified (reminders and overdue escalation apply)."""
    return state is not None and state != _H.RECTIFIED
