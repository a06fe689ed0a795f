"""infra output devices

IPP INFRA (PWG 5100.18, issue 15): a printer's registration as an output device (its
output-device-uuid and reported attributes, on the printer), the integer job-ids its
jobs are fetched by, and its printer subscriptions (ippget, RFC 3995/3996).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 07:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import printcloud.core.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("printing_printers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("infra", sa.JSON(), nullable=True))

    op.create_table(
        "printing_infra_jobs",
        sa.Column("job_number", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("printer_id", sa.String(length=128), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_number", name=op.f("pk_printing_infra_jobs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_printing_infra_jobs_job_id")),
    )
    with op.batch_alter_table("printing_infra_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_printing_infra_jobs_printer", ["tenant_id", "printer_id"], unique=False
        )

    op.create_table(
        "printing_infra_subscriptions",
        sa.Column("subscription_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("printer_id", sa.String(length=128), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("lease_seconds", sa.Integer(), nullable=False),
        sa.Column("expires_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("seen", sa.JSON(), nullable=False),
        sa.Column("recent", sa.JSON(), nullable=False),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_printing_infra_subscriptions")),
    )
    with op.batch_alter_table("printing_infra_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_printing_infra_subscriptions_printer", ["tenant_id", "printer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("printing_infra_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_printing_infra_subscriptions_printer")
    op.drop_table("printing_infra_subscriptions")
    with op.batch_alter_table("printing_infra_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_printing_infra_jobs_printer")
    op.drop_table("printing_infra_jobs")
    with op.batch_alter_table("printing_printers", schema=None) as batch_op:
        batch_op.drop_column("infra")
