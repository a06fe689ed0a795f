"""ipp queues

IPP Everywhere print queues per tenant (issue 14): a name unique per tenant, the
target printer (none for a follow-me queue), printer-info/-location, printer-uuid
and the job privacy setting; and the IPP jobs of the queues (integer job-id, the
print job once its document is in).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import printcloud.core.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "printing_queues",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("printer_id", sa.String(length=128), nullable=True),
        sa.Column("info", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("job_privacy", sa.String(length=16), nullable=False),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_printing_queues")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_printing_queue"),
    )
    with op.batch_alter_table("printing_queues", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_printing_queues_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "printing_ipp_jobs",
        sa.Column("job_number", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job_number", name=op.f("pk_printing_ipp_jobs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_printing_ipp_jobs_job_id")),
    )
    with op.batch_alter_table("printing_ipp_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_printing_ipp_jobs_queue", ["tenant_id", "queue", "job_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("printing_ipp_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_printing_ipp_jobs_queue")
    op.drop_table("printing_ipp_jobs")
    with op.batch_alter_table("printing_queues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_printing_queues_tenant_id"))
    op.drop_table("printing_queues")
