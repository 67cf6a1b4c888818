"""a site remembers the community file it was last built from

Revision ID: 0012_community_digest
Revises: 0010_i14
Create Date: 2026-12-02

The gateway re-applies its community file only when the file changed since it was last applied,
so what staff edit on the admin screens survives a restart (gateway/registry/loader.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_community_digest"
down_revision: str | Sequence[str] | None = "0010_i14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("community_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("community_digest")
