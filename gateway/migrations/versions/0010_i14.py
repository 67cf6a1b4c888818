"""Household risk files (五彩档案: tier, facts, members, no-activity window), visits (走访),
roster swaps (代班), device replacement/decommissioning, and the tier on incidents

Revision ID: 0010_i14
Revises: 0009_i13
Create Date: 2026-12-02 10:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_i14"
down_revision: str | Sequence[str] | None = "0009_i13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("households") as batch:
        batch.add_column(sa.Column("risk_tier", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("facts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("members", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("no_activity_hours", sa.Integer(), nullable=True))
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("replaced_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("decommissioned_on", sa.Date(), nullable=True))
    with op.batch_alter_table("rule_override") as batch:
        batch.add_column(sa.Column("params", sa.JSON(), nullable=True))
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("risk_tier", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("ack_due_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("household_card", sa.JSON(), nullable=True))
    op.create_table(
        "roster_swaps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site", sa.String(length=32), nullable=False),
        sa.Column("from_person", sa.String(length=64), nullable=False),
        sa.Column("to_person", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_roster_swaps_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["from_person"],
            ["people.id"],
            name=op.f("fk_roster_swaps_from_person_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_person"],
            ["people.id"],
            name=op.f("fk_roster_swaps_to_person_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site"], ["sites.code"], name=op.f("fk_roster_swaps_site_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roster_swaps")),
    )
    with op.batch_alter_table("roster_swaps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_roster_swaps_site"), ["site"], unique=False)
    op.create_table(
        "household_visits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site", sa.String(length=32), nullable=False),
        sa.Column("household_id", sa.String(length=150), nullable=False),
        sa.Column("visited_on", sa.Date(), nullable=False),
        sa.Column("visitor", sa.String(length=64), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("next_due", sa.Date(), nullable=True),
        sa.Column("risk_tier", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_household_visits_household_id_households"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site"],
            ["sites.code"],
            name=op.f("fk_household_visits_site_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_visits")),
    )
    with op.batch_alter_table("household_visits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_household_visits_site"), ["site"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_household_visits_household_id"), ["household_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("household_visits")
    op.drop_table("roster_swaps")
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("household_card")
        batch.drop_column("ack_due_ms")
        batch.drop_column("risk_tier")
    with op.batch_alter_table("rule_override") as batch:
        batch.drop_column("params")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("decommissioned_on")
        batch.drop_column("replaced_by")
    with op.batch_alter_table("households") as batch:
        batch.drop_column("no_activity_hours")
        batch.drop_column("members")
        batch.drop_column("facts")
        batch.drop_column("risk_tier")
