"""Escalation: durable, restart-safe timers that climb the ladder until someone acknowledges."""

from alerting.escalation.scheduler import EscalationScheduler, step_token

__all__ = ["EscalationScheduler", "step_token"]
