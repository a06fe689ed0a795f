"""Data migrations, on SQLite and PostgreSQL: rows written by the previous release,
then `migrate` to head, then what the new code reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509

from printcloud.core.db import Database, UTCDateTime, migrate
from tests.helpers.print_stack import drop_databases, new_pg_database
from tests.ldap_server import write_test_pki


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    created: list[str] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    else:
        url = new_pg_database(created)
    db = Database(url)
    yield db
    db.dispose()
    drop_databases(created)


def upgrade_to(db: Database, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "printcloud:migrations")
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
tenants = sa.table(
    "auth_tenants",
    sa.column("pk", sa.Integer()),
    sa.column("issuer", sa.String()),
    sa.column("tenant_id", sa.String()),
    sa.column("name", sa.String()),
    sa.column("created_at", UTCDateTime()),
    sa.column("local_auth_cooperation", sa.Boolean()),
    sa.column("users_may_grant_tenant_consent", sa.Boolean()),
)
directories = sa.table(
    "auth_directories",
    sa.column("pk", sa.Integer()),
    sa.column("tenant_pk", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("url", sa.String()),
    sa.column("base_dn", sa.String()),
    sa.column("user_attr", sa.String()),
    sa.column("object_class", sa.String()),
    sa.column("name_attr", sa.String()),
    sa.column("mail_attr", sa.String()),
    sa.column("start_tls", sa.Boolean()),
    sa.column("ca_file", sa.String()),
    sa.column("timeout", sa.Integer()),
    sa.column("updated_at", UTCDateTime()),
)
jobs = sa.table(
    "crm_batch_jobs",
    sa.column("pk", sa.Integer()),
    sa.column("job_id", sa.String()),
    sa.column("tenant_id", sa.String()),
    sa.column("name", sa.String()),
    sa.column("start_at", UTCDateTime()),
    sa.column("recurrence", sa.String()),
    sa.column("timezone", sa.String()),
    sa.column("paused", sa.Boolean()),
    sa.column("printer_id", sa.String()),
    sa.column("color", sa.Boolean()),
    sa.column("copies", sa.Integer()),
    sa.column("duplex", sa.Boolean()),
    sa.column("form", sa.String()),
    sa.column("record_set", sa.String()),
    sa.column("filters", sa.JSON()),
    sa.column("order", sa.JSON()),
    sa.column("created_at", UTCDateTime()),
    sa.column("created_by", sa.String()),
    sa.column("updated_at", UTCDateTime()),
    sa.column("updated_by", sa.String()),
)
runs = sa.table(
    "crm_batch_runs",
    sa.column("pk", sa.Integer()),
    sa.column("run_id", sa.String()),
    sa.column("tenant_id", sa.String()),
    sa.column("job_pk", sa.Integer()),
    sa.column("scheduled_at", UTCDateTime()),
    sa.column("started_at", UTCDateTime()),
    sa.column("outcome", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("steps", sa.JSON()),
)


def test_0011_directory_ca_files_become_pem_text(empty_db: Database, tmp_path: Path) -> None:
    """A CA file's certificates are copied (and nothing else it held); a path that is not
    one is dropped; the column of paths is gone."""
    ca_file, cert_file, key_file = write_test_pki(tmp_path)
    with_key = tmp_path / "ca-and-key.pem"
    with_key.write_text(ca_file.read_text() + key_file.read_text())
    paths = {
        1: str(ca_file),
        2: str(with_key),
        3: str(key_file),  # a private key, no certificate: dropped, never copied
        4: str(tmp_path / "gone.pem"),
        5: str(tmp_path),  # a folder
        6: None,
    }
    upgrade_to(empty_db, "0009")
    with empty_db.engine.begin() as conn:
        for pk, path in paths.items():
            conn.execute(
                sa.insert(tenants).values(
                    pk=pk,
                    issuer="idp-a",
                    tenant_id=f"t{pk}",
                    name=f"t{pk}",
                    created_at=NOW,
                    local_auth_cooperation=False,
                    users_may_grant_tenant_consent=False,
                )
            )
            conn.execute(
                sa.insert(directories).values(
                    pk=pk,
                    tenant_pk=pk,
                    kind="ldap",
                    url="ldaps://ldap.example.org",
                    base_dn="dc=example,dc=org",
                    user_attr="uid",
                    object_class="inetOrgPerson",
                    name_attr="cn",
                    mail_attr="mail",
                    start_tls=False,
                    ca_file=path,
                    timeout=5,
                    updated_at=NOW,
                )
            )

    migrate(empty_db, "printcloud:migrations")

    with empty_db.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("auth_directories")}
        stored = dict(conn.execute(sa.text("SELECT pk, ca_pem FROM auth_directories")).all())
    assert "ca_file" not in columns and "ca_pem" in columns
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    for pk in (1, 2):
        [copied] = x509.load_pem_x509_certificates(stored[pk].encode())
        assert copied == ca
        assert "PRIVATE KEY" not in stored[pk]
    assert {pk: stored[pk] for pk in (3, 4, 5, 6)} == {3: None, 4: None, 5: None, 6: None}
    assert cert_file.exists()  # untouched


def test_0011_run_once_ticks_run_at_start_become_whole_seconds(empty_db: Database) -> None:
    """Runs that the old start-up catch-up recorded at a run-once job's start time with
    its microseconds move to the whole second, unless the schedule's run is there."""
    start = datetime(2026, 12, 1, 9, 0, 21, 273254, tzinfo=UTC)
    second = start.replace(microsecond=0)
    manual = datetime(2026, 11, 30, 8, 0, 0, 500000, tzinfo=UTC)
    upgrade_to(empty_db, "0009")
    with empty_db.engine.begin() as conn:
        for pk, recurrence in ((1, "once"), (2, "once"), (3, "daily")):
            conn.execute(
                sa.insert(jobs).values(
                    pk=pk,
                    job_id=f"job{pk}",
                    tenant_id="b1",
                    name=f"job {pk}",
                    start_at=start,
                    recurrence=recurrence,
                    timezone="UTC",
                    paused=False,
                    printer_id="p1",
                    color=False,
                    copies=1,
                    duplex=False,
                    form="invoice",
                    record_set="invoices",
                    filters=[],
                    order=[],
                    created_at=NOW,
                    created_by="test",
                    updated_at=NOW,
                    updated_by="test",
                )
            )
        for pk, job_pk, at in (
            (1, 1, start),  # job 1 fired at start-up only: its run moves to the second
            (2, 1, manual),  # a "run now": kept as it is
            (3, 2, second),  # job 2 fired by its schedule…
            (4, 2, start),  # …and again at start-up (the bug): both kept
            (5, 3, start),  # not a run-once job: untouched
        ):
            conn.execute(
                sa.insert(runs).values(
                    pk=pk,
                    run_id=f"run{pk}",
                    tenant_id="b1",
                    job_pk=job_pk,
                    scheduled_at=at,
                    started_at=NOW,
                    outcome="completed",
                    reason="",
                    steps=[],
                )
            )

    migrate(empty_db, "printcloud:migrations")

    with empty_db.engine.connect() as conn:
        found = dict(conn.execute(sa.select(runs.c.pk, runs.c.scheduled_at)).all())
    assert found == {1: second, 2: manual, 3: second, 4: start, 5: start}
