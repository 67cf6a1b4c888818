"""Device types come from the device profiles (the closed CHECK on devices.device_type goes);
device_command: every command sent to a device, pending until acknowledged and confirmed

Revision ID: 0011_i15
Revises: 0008_i12app
Create Date: 2026-12-02 10:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_i15"
down_revision: str | Sequence[str] | None = "0008_i12app"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new device type is a new native profile, not a schema change.
    with op.batch_alter_table("devices") as batch:
        batch.drop_constraint(op.f("ck_devices_device_type"), type_="check")
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "device_command",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("site", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("device_type", sa.String(length=16), nullable=False),
        sa.Column("command", sa.String(length=64), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("confirm", sa.JSON(), nullable=False),
        sa.Column("incident_id", id_type, nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("acked", sa.Boolean(), nullable=False),
        sa.Column("state_seen", sa.Boolean(), nullable=False),
        sa.Column("ack_state", sa.String(length=32), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("due_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_device_command_incident_id_incident")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_command")),
    )
    op.create_index("ix_device_command_device", "device_command", ["site", "device_id", "status"])
    op.create_index(op.f("ix_device_command_due_at_ms"), "device_command", ["due_at_ms"])
    op.create_index(op.f("ix_device_command_incident_id"), "device_command", ["incident_id"])


def downgrade() -> None:
    op.drop_table("device_command")
    with op.batch_alter_table("devices") as batch:
        batch.create_check_constraint(
            "device_type", "device_type IN ('smoke', 'sos', 'gate', 'charger')"
        )
