"""delivery receipts: the provider's message id, a per-delivery receipt token, delivered/read
times and the deadline by which a critical page must be confirmed delivered

Revision ID: 0007_i12notify
Revises: 0005_delivery_claim
Create Date: 2026-12-02 10:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_i12notify"
down_revision: str | Sequence[str] | None = "0005_delivery_claim"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("provider_ref", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("receipt_token", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("delivered_at_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("read_at_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("receipt_due_ms", sa.BigInteger(), nullable=True))
        batch.create_index("ix_delivery_provider_ref", ["provider_ref"])
        batch.create_index("ix_delivery_receipt_due_ms", ["receipt_due_ms"])


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_index("ix_delivery_receipt_due_ms")
        batch.drop_index("ix_delivery_provider_ref")
        for column in ("receipt_due_ms", "read_at_ms", "delivered_at_ms", "receipt_token"):
            batch.drop_column(column)
        batch.drop_column("provider_ref")
