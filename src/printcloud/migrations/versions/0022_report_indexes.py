"""report indexes

The usage report of a month (issue 18, bench/reports.py):

- `ix_printing_jobs_tenant_job`: the pages printed of the nightly runs' print jobs are
  read by tenant and lists of job IDs, which SQLite answered from the tenant's jobs in
  creation order (every job of the tenant per 500 IDs);
- `ix_accounting_transactions_kind`: the period's charges and refunds without reading
  the reservations in between;
- on PostgreSQL the transactions' `details` become JSONB: the report reads seven fields
  of each charge, and JSON text was parsed again for every one.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 22:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("printing_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_printing_jobs_tenant_job", ["tenant_id", "job_id"], unique=False)
    with op.batch_alter_table("accounting_transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_accounting_transactions_kind", ["tenant_id", "kind", "created_at"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "accounting_transactions",
            "details",
            type_=postgresql.JSONB(),
            existing_type=sa.JSON(),
            existing_nullable=False,
            postgresql_using="details::jsonb",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "accounting_transactions",
            "details",
            type_=sa.JSON(),
            existing_type=postgresql.JSONB(),
            existing_nullable=False,
            postgresql_using="details::json",
        )
    with op.batch_alter_table("accounting_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_accounting_transactions_kind")
    with op.batch_alter_table("printing_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_printing_jobs_tenant_job")
