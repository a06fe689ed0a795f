"""printing session data key

The blob key of an uploaded job's print data, passed with the token request (seed 003
S1101) so that a conversion worker reads it from the shared blob store instead of
downloading it from the print service over HTTP.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("printing_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_key", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("printing_sessions", schema=None) as batch_op:
        batch_op.drop_column("data_key")
