"""Device types come from the device profiles (the closed CHECK on devices.device_type goes);
device_command: every command sent to a device, pending until acknowledged and confirmed

Revision ID: 0011_i15
Revises: 0005_delivery_claim
Create Date: 2026-12-02 10:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_i15"
down_revision: str | Sequence[str] | None = "0005_delivery_claim"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new device type is a new native profile, not a schema change.
    with op.batch_alter_table("devices") as batch:
        batch.drop_constraint(op.f("ck_devices_device_type"), type_="check")


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.create_check_constraint(
            "device_type", "device_type IN ('smoke', 'sos', 'gate', 'charger')"
        )
