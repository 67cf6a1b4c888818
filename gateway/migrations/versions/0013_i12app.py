"""The last mile (issue 12): Web Push subscriptions per person and device, refresh tokens (a
login that lasts a shift, revocable everywhere), what a page carries (incident.card: the
household, guidance and readings at opening; incident.reasons: every rule of one hazard folded
into it), the resident's name of a household and a building's coordinates (map link).

Revision ID: 0008_i12app
Revises: 0012_community_digest
Create Date: 2026-12-02 10:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_i12app"
down_revision: str | Sequence[str] | None = "0012_community_digest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webpush_subscription",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.String(64), nullable=False, index=True),
        sa.Column("endpoint", sa.String(1000), nullable=False, unique=True),
        sa.Column("p256dh", sa.String(200), nullable=False),
        sa.Column("auth", sa.String(100), nullable=False),
        sa.Column("device_label", sa.String(200), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_sent_ms", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "refresh_token",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(64), nullable=False, index=True),
        sa.Column("person_id", sa.String(64), nullable=False, index=True),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("replaced_by", sa.String(64), nullable=True),
    )
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("card", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reasons", sa.JSON(), nullable=True))
    with op.batch_alter_table("households") as batch:
        batch.add_column(sa.Column("resident", sa.String(100), nullable=False, server_default=""))
    with op.batch_alter_table("buildings") as batch:
        batch.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        batch.add_column(sa.Column("longitude", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("buildings") as batch:
        batch.drop_column("longitude")
        batch.drop_column("latitude")
    with op.batch_alter_table("households") as batch:
        batch.drop_column("resident")
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("reasons")
        batch.drop_column("card")
    op.drop_table("refresh_token")
    op.drop_table("webpush_subscription")
