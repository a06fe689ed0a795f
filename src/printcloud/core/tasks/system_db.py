"""Where DBOS keeps its state, and one launch at a time on a shared PostgreSQL.

DBOS keeps its state in a *system database*, separate from the tables Alembic
manages:

- SQLite (the embedded default, including an explicit `sqlite://` database
  URL): its own file, `<data_dir>/dbos.sqlite3` (`dbos-<service>.sqlite3` for
  one service). DBOS's SQLite tables carry no
  schema or prefix, and it takes IMMEDIATE (write) transactions on every
  checkpoint, so sharing the app's file would mix its tables into ours and
  contend for the one write lock.
- PostgreSQL (`PRINTCLOUD_DATABASE_URL=postgresql://…`): the app's own
  database, with DBOS's tables in the `dbos` schema (embedded), or in
  `dbos_<service>` when the process runs one service (`PRINTCLOUD_SERVICE`):
  a service's executors share its schema and see only its workflows, queues
  and schedules, so a CRM executor never dequeues, recovers or schedules a
  print job it has no runtime for. DBOS 3 dropped its
  separate "application database" and keeps everything in one schema it
  creates and migrates itself (under its own advisory lock), so sharing is
  clean: one database to provision, back up and grant, and no CREATEDB right
  needed. The role needs CREATE on the database the first time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from printcloud.core.db import normalise_url
from printcloud.core.settings import Settings

APP_NAME = "printcloud"
#: The PostgreSQL schema holding DBOS's tables (in the app's database).
SYSTEM_SCHEMA = "dbos"
SQLITE_FILE = "dbos.sqlite3"


def system_database(settings: Settings) -> tuple[str, str | None]:
    """DBOS's system database URL and PostgreSQL schema (None on SQLite) for `settings`."""
    url = normalise_url(settings.effective_database_url)
    backend = make_url(url).get_backend_name()
    service = settings.service
    if backend == "postgresql":
        return url, f"{SYSTEM_SCHEMA}_{service}" if service else SYSTEM_SCHEMA
    if backend == "sqlite":
        name = f"dbos-{service}.sqlite3" if service else SQLITE_FILE
        return f"sqlite:///{(settings.data_dir / name).resolve()}", None
    raise ValueError(f"durable tasks need SQLite or PostgreSQL, not {backend!r}")


#: Serialises DBOS launches (its schema migrations) across processes sharing a database.
_LAUNCH_LOCK = 724012


@contextmanager
def one_launch_at_a_time(url: str, schema: str | None) -> Iterator[None]:
    """Let one process at a time launch DBOS on a PostgreSQL database.

    DBOS migrates its schema at launch, with `CREATE INDEX CONCURRENTLY`, which waits
    for every older transaction in the database. Services started together (each with
    its own schema) were seen holding such transactions for each other's migration
    and waiting for ever. The lock is taken by polling on an autocommit connection,
    so a waiting process holds no transaction that a migration would wait for.
    """
    if schema is None:
        yield
        return
    import psycopg

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        deadline = time.monotonic() + 300
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (_LAUNCH_LOCK,)).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise RuntimeError("another process has been launching DBOS for 5 minutes")
            time.sleep(0.2)
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LAUNCH_LOCK,))
