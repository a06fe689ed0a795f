"""infra capabilities

IPP INFRA (PWG 5100.18, issue 15): the capabilities a printer's output device
registered (`printing/capabilities.py`), kept on the printer.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 09:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("printing_printers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capabilities", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("printing_printers", schema=None) as batch_op:
        batch_op.drop_column("capabilities")
