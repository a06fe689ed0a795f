"""held release setting; the admin scope only for platform service clients

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 00:30:00.000000

Issue 11: a tenant's `held_release` (items 4: who may release held jobs at a
printer), and `admin` removed from the allowed scopes of every client that is
not a platform `service` client (item 8: the scope alone no longer makes an
administrator, and only the platform's own clients may ask for it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_clients = sa.table(
    "auth_clients",
    sa.column("pk", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("scope", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("auth_tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "held_release",
                sa.String(length=32),
                server_default="card_or_owner",
                nullable=False,
            )
        )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_clients.c.pk, _clients.c.scope).where(_clients.c.kind != "service")
    ).all()
    for pk, scope in rows:
        parts = (scope or "").split()
        if "admin" in parts:
            conn.execute(
                sa.update(_clients)
                .where(_clients.c.pk == pk)
                .values(scope=" ".join(p for p in parts if p != "admin"))
            )


def downgrade() -> None:
    # The removed `admin` scopes are not given back: they were the open door.
    with op.batch_alter_table("auth_tenants", schema=None) as batch_op:
        batch_op.drop_column("held_release")
