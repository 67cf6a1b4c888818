"""delivery.claimed_by (which gateway instance claimed it) and delivery.message (the page's
incident as planned, so notify never reads incidents)

Revision ID: 0005_delivery_claim
Revises: 0004_quarantine_site
Create Date: 2026-12-02 07:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_delivery_claim"
down_revision: str | Sequence[str] | None = "0004_quarantine_site"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("message", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("message")
        batch.drop_column("claimed_by")
