"""report indexes

The usage report of a month (issue 18, bench/reports.py): the pages printed of the
nightly runs' print jobs are read by tenant and job ID lists, which SQLite answered
from the tenant's jobs in creation order (every job of the tenant per 500 IDs) until an
index on both columns was there.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 21:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("printing_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_printing_jobs_tenant_job", ["tenant_id", "job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("printing_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_printing_jobs_tenant_job")
