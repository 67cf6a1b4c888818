"""Many sites in one deployment: street offices (街道) own communities; the street_office role

Revision ID: 0015_sites
Revises: 0011_i15
Create Date: 2026-12-02 13:20:00

A street office sees every site whose ``street`` is its own (api/deps.py ``sites_of``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_sites"
down_revision: str | Sequence[str] | None = "0011_i15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_ROLES = "'grid_worker', 'building_leader', 'duty_staff', 'secretary', 'admin'"
_NEW_ROLES = _OLD_ROLES + ", 'street_office'"


def upgrade() -> None:
    op.create_table(
        "streets",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_streets")),
    )
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("street", sa.String(length=32), nullable=True))
        batch.create_index(batch.f("ix_sites_street"), ["street"], unique=False)
        batch.create_foreign_key(
            batch.f("fk_sites_street_streets"), "streets", ["street"], ["code"], ondelete="SET NULL"
        )
    with op.batch_alter_table("people") as batch:
        batch.drop_constraint(op.f("ck_people_role"), type_="check")
        batch.create_check_constraint(op.f("ck_people_role"), f"role IN ({_NEW_ROLES})")


def downgrade() -> None:
    with op.batch_alter_table("people") as batch:
        batch.drop_constraint(op.f("ck_people_role"), type_="check")
        batch.create_check_constraint(op.f("ck_people_role"), f"role IN ({_OLD_ROLES})")
    with op.batch_alter_table("sites") as batch:
        batch.drop_constraint(batch.f("fk_sites_street_streets"), type_="foreignkey")
        batch.drop_index(batch.f("ix_sites_street"))
        batch.drop_column("street")
    op.drop_table("streets")
