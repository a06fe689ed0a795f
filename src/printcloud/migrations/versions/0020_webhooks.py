"""webhooks

Signed webhooks per tenant (issue 18): subscriptions (the signing secret sealed with the
instance secret), the outbox of messages and their deliveries, each attempt's answer
(the delivery log) and the audit trail of the subscriptions.

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-07 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import printcloud.core.db

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_audit",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_webhook_audit")),
    )
    with op.batch_alter_table("webhook_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_audit_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "webhook_messages",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("ordering_key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_webhook_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_webhook_messages_message_id")),
    )
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_messages_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "webhook_subscriptions",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("previous_secret_sealed", sa.Text(), nullable=True),
        sa.Column("previous_until", printcloud.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("failing_since", printcloud.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_webhook_subscriptions")),
        sa.UniqueConstraint(
            "subscription_id", name=op.f("uq_webhook_subscriptions_subscription_id")
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_subscriptions_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "webhook_deliveries",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("subscription_pk", sa.Integer(), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("lane", sa.String(length=260), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["webhook_messages.pk"],
            name=op.f("fk_webhook_deliveries_message_pk_webhook_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_pk"],
            ["webhook_subscriptions.pk"],
            name=op.f("fk_webhook_deliveries_subscription_pk_webhook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_webhook_deliveries")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_lane_state", ["lane", "state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_message_pk"), ["message_pk"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_state"), ["state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_subscription_pk"), ["subscription_pk"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "webhook_attempts",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("delivery_pk", sa.Integer(), nullable=False),
        sa.Column("subscription_pk", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("body_excerpt", sa.String(length=1000), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_pk"],
            ["webhook_deliveries.pk"],
            name=op.f("fk_webhook_attempts_delivery_pk_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_pk"],
            ["webhook_subscriptions.pk"],
            name=op.f("fk_webhook_attempts_subscription_pk_webhook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_attempts_delivery_pk"), ["delivery_pk"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_attempts_subscription_pk"), ["subscription_pk"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_attempts_subscription_pk"))
        batch_op.drop_index(batch_op.f("ix_webhook_attempts_delivery_pk"))

    op.drop_table("webhook_attempts")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_subscription_pk"))
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_state"))
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_message_pk"))
        batch_op.drop_index("ix_webhook_deliveries_lane_state")

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_subscriptions_tenant_id"))

    op.drop_table("webhook_subscriptions")
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_messages_tenant_id"))

    op.drop_table("webhook_messages")
    with op.batch_alter_table("webhook_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_audit_tenant_id"))

    op.drop_table("webhook_audit")
