"""identify requests

Identify-Printer requests waiting for their printer's device (issue 14, PWG 5100.13
§4.1.2): tenant, printer, the identify-actions and the client's message, who asked
through which queue; each lives a few minutes and is deleted once delivered.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 06:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import printcloud.core.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "printing_identify_requests",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("printer_id", sa.String(length=128), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("message", sa.String(length=200), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_printing_identify_requests")),
    )
    with op.batch_alter_table("printing_identify_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_printing_identify_requests_printer",
            ["tenant_id", "printer_id", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("printing_identify_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_printing_identify_requests_printer")
    op.drop_table("printing_identify_requests")
