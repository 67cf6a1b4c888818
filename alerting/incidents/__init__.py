"""Incidents: opened from firing alerts, deduped, worked by people, every change an event."""

from alerting.incidents.actions import ActionOutcome, ActionRunner, CommandPublisher
from alerting.incidents.flood import FloodControl
from alerting.incidents.lifecycle import (
    Action,
    Department,
    IncidentStatus,
    Resolution,
    TransitionError,
    allowed_actions,
    next_status,
)
from alerting.incidents.service import ChangeKind, IncidentChange, IncidentService
from alerting.incidents.silences import Matcher, SilenceService
from alerting.incidents.views import EventView, IncidentDetail, IncidentView, SilenceView
from alerting.incidents.workflow import IncidentNotFoundError

__all__ = [
    "Action",
    "ActionOutcome",
    "ActionRunner",
    "ChangeKind",
    "CommandPublisher",
    "Department",
    "EventView",
    "FloodControl",
    "IncidentChange",
    "IncidentDetail",
    "IncidentNotFoundError",
    "IncidentService",
    "IncidentStatus",
    "IncidentView",
    "Matcher",
    "Resolution",
    "SilenceService",
    "SilenceView",
    "TransitionError",
    "allowed_actions",
    "next_status",
]
