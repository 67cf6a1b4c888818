"""quarantined messages carry their site (staff of one site read only their own)

Revision ID: 0004_quarantine_site
Revises: 0003_rule_override
Create Date: 2026-12-02

Rows kept from before get their site as new rows do (gateway/quarantine.py): from a native
topic ``safety/{site}/…``, else from the registered vendor device; the rest stay NULL, read
only by those who see every site.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_quarantine_site"
down_revision: str | Sequence[str] | None = "0003_rule_override"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("quarantined_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_quarantined_message_site"), ["site"], unique=False)
    _fill_sites()


def _fill_sites() -> None:
    # The table keeps at most ingest.quarantine_keep rows (10,000 by default): read in Python.
    bind = op.get_bind()
    table = sa.table(
        "quarantined_message",
        sa.column("id", sa.Integer),
        sa.column("topic", sa.Text),
        sa.column("site", sa.String),
    )
    native = re.compile(r"safety/([a-z0-9-]{1,32})/")
    found = [
        {"row_id": row_id, "row_site": m[1]}
        for row_id, topic in bind.execute(
            sa.select(table.c.id, table.c.topic).where(table.c.topic.like("safety/%"))
        )
        if (m := native.match(topic))
    ]
    if found:
        bind.execute(
            table.update()
            .where(table.c.id == sa.bindparam("row_id"))
            .values(site=sa.bindparam("row_site")),
            found,
        )
    bind.execute(
        sa.text(
            "UPDATE quarantined_message SET site = (SELECT devices.site FROM devices"
            " WHERE devices.vendor_identity = quarantined_message.device_id)"
            " WHERE site IS NULL AND device_id IS NOT NULL"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("quarantined_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantined_message_site"))
        batch_op.drop_column("site")
