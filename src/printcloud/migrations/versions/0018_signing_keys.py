"""signing keys

JWT access tokens (RFC 9068, issue 17): the issuers' signing keys (private keys sealed
with the instance secret) and each client's access-token format and algorithm
(`opaque` and `EdDSA` for existing clients).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 12:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import printcloud.core.db

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_signing_keys",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=8), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("private_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("not_before", printcloud.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", printcloud.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("publish_until", printcloud.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_auth_signing_keys")),
        sa.UniqueConstraint("issuer", "kid", name=op.f("uq_auth_signing_keys_issuer_kid")),
    )
    with op.batch_alter_table("auth_signing_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_signing_keys_issuer"), ["issuer"], unique=False)
    with op.batch_alter_table("auth_clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "access_token_format", sa.String(length=8), server_default="opaque", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column(
                "access_token_alg", sa.String(length=8), server_default="EdDSA", nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_clients", schema=None) as batch_op:
        batch_op.drop_column("access_token_alg")
        batch_op.drop_column("access_token_format")
    with op.batch_alter_table("auth_signing_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_signing_keys_issuer"))
    op.drop_table("auth_signing_keys")
