"""accounting

Accounting, quotas and refunds (issue 18): a tenant's settings and price list, accounts
(user, group, shared, and the ledger's own), and the append-only ledger of balanced
transactions whose key is unique per tenant (a job's charge is keyed by its ID).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 18:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import printcloud.core.db

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounting_accounts",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("overdraft", sa.BigInteger(), nullable=False),
        sa.Column("allowance", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_accounting_accounts")),
        sa.UniqueConstraint("tenant_id", "kind", "name", name="uq_accounting_account"),
    )
    op.create_table(
        "accounting_prices",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("printer_id", sa.String(length=128), nullable=False),
        sa.Column("media", sa.String(length=16), nullable=False),
        sa.Column("mono", sa.BigInteger(), nullable=False),
        sa.Column("color", sa.BigInteger(), nullable=False),
        sa.Column("duplex_mono", sa.BigInteger(), nullable=False),
        sa.Column("duplex_color", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_accounting_prices")),
        sa.UniqueConstraint("tenant_id", "printer_id", "media", name="uq_accounting_price"),
    )
    op.create_table(
        "accounting_settings",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("on_insufficient", sa.String(length=8), nullable=False),
        sa.Column("low_balance", sa.BigInteger(), nullable=False),
        sa.Column("allowance", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("overdraft", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_accounting_settings")),
    )
    op.create_table(
        "accounting_transactions",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_accounting_transactions")),
        sa.UniqueConstraint("tenant_id", "key", name="uq_accounting_transaction_key"),
    )
    with op.batch_alter_table("accounting_transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_accounting_transactions_created", ["tenant_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_accounting_transactions_job", ["tenant_id", "job_id"], unique=False
        )

    op.create_table(
        "accounting_entries",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("transaction_pk", sa.Integer(), nullable=False),
        sa.Column("account_pk", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_pk"],
            ["accounting_accounts.pk"],
            name=op.f("fk_accounting_entries_account_pk_accounting_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_pk"],
            ["accounting_transactions.pk"],
            name=op.f("fk_accounting_entries_transaction_pk_accounting_transactions"),
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_accounting_entries")),
    )
    with op.batch_alter_table("accounting_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_accounting_entries_account", ["tenant_id", "account_pk"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_accounting_entries_transaction_pk"), ["transaction_pk"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("accounting_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounting_entries_transaction_pk"))
        batch_op.drop_index("ix_accounting_entries_account")

    op.drop_table("accounting_entries")
    with op.batch_alter_table("accounting_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_accounting_transactions_job")
        batch_op.drop_index("ix_accounting_transactions_created")

    op.drop_table("accounting_transactions")
    op.drop_table("accounting_settings")
    op.drop_table("accounting_prices")
    op.drop_table("accounting_accounts")
