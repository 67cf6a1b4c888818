"""Device commands that are confirmed: cmd_id out, cmd_ack and telemetry back, retries, escalation."""

from alerting.commands.desk import UNCONFIRMED, CommandDesk, CommandPolicy, CommandRefused
from alerting.commands.rate import CommandRate
from alerting.commands.tables import CommandStatus, DeviceCommandRow

__all__ = [
    "UNCONFIRMED",
    "CommandDesk",
    "CommandPolicy",
    "CommandRate",
    "CommandRefused",
    "CommandStatus",
    "DeviceCommandRow",
]
