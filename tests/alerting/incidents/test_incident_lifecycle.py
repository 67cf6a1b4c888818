"""The lifecycle state machine as a table."""

from __future__ import annotations

import pytest

from alerting.incidents.lifecycle import (
    Action,
    IncidentStatus,
    TransitionError,
    allowed_actions,
    auto_resolution,
    next_status,
)
from alerting.models import Category, Severity

S, A = IncidentStatus, Action

TABLE = [
    (S.OPEN, A.ACKNOWLEDGE, S.ACKNOWLEDGED),
    (S.OPEN, A.RESOLVE, S.RESOLVED),
    (S.ACKNOWLEDGED, A.RESOLVE, S.RESOLVED),
    (S.RESOLVED, A.CLOSE, S.CLOSED),
    (S.RESOLVED, A.REOPEN, S.OPEN),
    (S.CLOSED, A.REOPEN, S.OPEN),
    (S.OPEN, A.COMMENT, S.OPEN),
    (S.CLOSED, A.COMMENT, S.CLOSED),
    (S.ACKNOWLEDGED, A.ESCALATE, S.ACKNOWLEDGED),
    (S.RESOLVED, A.REFER, S.RESOLVED),
    (S.OPEN, A.CLOSE, None),
    (S.ACKNOWLEDGED, A.ACKNOWLEDGE, None),
    (S.CLOSED, A.RESOLVE, None),
    (S.OPEN, A.REOPEN, None),
    (S.RESOLVED, A.ESCALATE, None),
    (S.CLOSED, A.ASSIGN, None),
]


@pytest.mark.parametrize(("status", "action", "expected"), TABLE)
def test_transition_table(status: S, action: A, expected: S | None) -> None:
    if expected is None:
        with pytest.raises(TransitionError):
            next_status(status, action)
    else:
        assert next_status(status, action) is expected


def test_allowed_actions_of_closed_incident() -> None:
    assert allowed_actions(S.CLOSED) == [A.REOPEN, A.COMMENT]


@pytest.mark.parametrize(
    ("category", "severity", "expected"),
    [
        (Category.MAINTENANCE, Severity.INFO, "device_test"),
        (Category.MAINTENANCE, Severity.MINOR, "device_fault"),
        (Category.SAFETY, Severity.MAJOR, None),
    ],
)
def test_auto_resolution_category(
    category: Category, severity: Severity, expected: str | None
) -> None:
    res = auto_resolution(category, severity)
    assert (res.value if res else None) == expected
