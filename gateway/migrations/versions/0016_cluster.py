"""Cluster: partition_lease (one lease row per partition, epoch = fencing token) and
gateway_instance (membership by heartbeat)

Revision ID: 0016_cluster
Revises: 0011_i15
Create Date: 2026-12-02 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_cluster"
down_revision: str | Sequence[str] | None = "0011_i15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "partition_lease",
        sa.Column("partition", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("partition", name=op.f("pk_partition_lease")),
    )
    op.create_table(
        "gateway_instance",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_instance")),
    )
    op.create_index(
        op.f("ix_gateway_instance_heartbeat_at"), "gateway_instance", ["heartbeat_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gateway_instance_heartbeat_at"), table_name="gateway_instance")
    op.drop_table("gateway_instance")
    op.drop_table("partition_lease")
