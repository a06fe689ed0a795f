"""Alembic environment: runs on the connection `core.db.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

import printcloud.auth.models
import printcloud.core.executors
import printcloud.crm.models
import printcloud.docgen.models
import printcloud.printing.accounting.models
import printcloud.printing.models
import printcloud.webhooks.models  # noqa: F401
from printcloud.core.db import Base

target_metadata = Base.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # `alembic` command line, e.g. autogenerate
        engine = create_engine(
            config.get_main_option("sqlalchemy.url") or "sqlite:///var/printcloud.sqlite3"
        )
        with engine.connect() as conn:
            _configure(conn)
        return
    _configure(connection)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
