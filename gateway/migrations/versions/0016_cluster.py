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
down_revision: str | Sequence[str] | None = "0015_sites"
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
    if op.get_bind().dialect.name == "postgresql":
        # Every committed change of an incident (or a new timeline event) is announced to the
        # instances listening (gateway/cluster/feed.py), with the changing connection's
        # application_name (the instance id), so each board follows every partition.
        op.execute(INCIDENT_NOTIFY)
        for table, column in (("incident", "id"), ("incident_event", "incident_id")):
            op.execute(
                f"CREATE TRIGGER {table}_notify AFTER INSERT OR UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION incident_notify('{column}')"
            )


INCIDENT_NOTIFY = """
CREATE OR REPLACE FUNCTION incident_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify(
        'incident_changed',
        (to_jsonb(NEW) ->> TG_ARGV[0]) || ' ' || coalesce(current_setting('application_name', true), '')
    );
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS incident_event_notify ON incident_event")
        op.execute("DROP TRIGGER IF EXISTS incident_notify ON incident")
        op.execute("DROP FUNCTION IF EXISTS incident_notify()")
    op.drop_index(op.f("ix_gateway_instance_heartbeat_at"), table_name="gateway_instance")
    op.drop_table("gateway_instance")
    op.drop_table("partition_lease")
