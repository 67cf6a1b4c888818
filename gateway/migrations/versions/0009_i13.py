"""The closed loop: incident_case (source, category, tier, hazard, verification, rating),
incident_photo, dept_referral

Revision ID: 0009_i13
Revises: 0007_i12notify
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_i13"
down_revision: str | Sequence[str] | None = "0007_i12notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MS = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "incident_case",
        sa.Column("incident_id", ID, sa.ForeignKey("incident.id"), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("case_category", sa.String(16)),
        sa.Column("tier", sa.String(16)),
        sa.Column("triaged_at_ms", MS()),
        sa.Column("triaged_by", sa.String(64)),
        sa.Column("unit_room", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("caller_name", sa.String(64), nullable=False),
        sa.Column("caller_phone", sa.String(32), nullable=False),
        sa.Column("arrived_at_ms", MS()),
        sa.Column("arrived_by", sa.String(64)),
        sa.Column("hazard", sa.Boolean(), nullable=False),
        sa.Column("hazard_state", sa.String(16)),
        sa.Column("deadline_ms", MS()),
        sa.Column("responsible_kind", sa.String(16)),
        sa.Column("responsible_name", sa.String(100), nullable=False),
        sa.Column("reminded_at_ms", MS()),
        sa.Column("overdue_at_ms", MS()),
        sa.Column("rectified_at_ms", MS()),
        sa.Column("verified_at_ms", MS()),
        sa.Column("verified_by", sa.String(64)),
        sa.Column("feedback_sent_at_ms", MS()),
        sa.Column("rating", sa.String(16)),
        sa.Column("rated_at_ms", MS()),
    )
    op.create_index("ix_incident_case_source", "incident_case", ["source"])
    op.create_index("ix_incident_case_deadline_ms", "incident_case", ["deadline_ms"])
    op.create_table(
        "incident_photo",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("incident_id", ID, sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("file_name", sa.String(100), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("at_ms", MS(), nullable=False),
    )
    op.create_index("ix_incident_photo_incident_id", "incident_photo", ["incident_id"])
    op.create_table(
        "dept_referral",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("incident_id", ID, sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at_ms", MS(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at_ms", MS(), nullable=False),
        sa.Column("accepted_at_ms", MS()),
        sa.Column("replied_at_ms", MS()),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("overdue_at_ms", MS()),
        sa.Column("sent_ok", sa.Integer(), nullable=False),
        sa.Column("send_errors", sa.Text(), nullable=False),
    )
    op.create_index("ix_dept_referral_incident_id", "dept_referral", ["incident_id"])
    op.create_index("ix_dept_referral_due_at_ms", "dept_referral", ["due_at_ms"])


def downgrade() -> None:
    op.drop_table("dept_referral")
    op.drop_table("incident_photo")
    op.drop_table("incident_case")
