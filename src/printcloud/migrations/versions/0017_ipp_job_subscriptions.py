"""ipp job subscriptions

A user's job subscriptions on a queue (RFC 3995 Create-Job-Subscriptions, ippget RFC
3996; issue 15, required by PWG 5100.18's pwg5100.18.test).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import printcloud.core.db

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "printing_ipp_job_subscriptions",
        sa.Column("subscription_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("job_number", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("lease_seconds", sa.Integer(), nullable=False),
        sa.Column("expires_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("last_state", sa.String(length=300), nullable=True),
        sa.Column("recent", sa.JSON(), nullable=False),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_printing_ipp_job_subscriptions")),
    )
    with op.batch_alter_table("printing_ipp_job_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_printing_ipp_job_subscriptions_job",
            ["tenant_id", "queue", "job_number"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("printing_ipp_job_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_printing_ipp_job_subscriptions_job")
    op.drop_table("printing_ipp_job_subscriptions")
