"""Blob store, structured logs and the database helpers."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from printcloud.core.blobs import FileBlobStore
from printcloud.core.db import Database, UTCDateTime, migrate, normalise_url
from printcloud.core.errors import InvalidRequest, NotFound
from printcloud.core.logs import JsonFormatter, redact


def test_blob_round_trip_and_atomic_names(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    store.put("jobs/1/a.pdf", b"%PDF-1.7")
    assert store.get("jobs/1/a.pdf") == b"%PDF-1.7"
    assert store.put_stream("jobs/1/b.bin", io.BytesIO(b"x" * 200_000)) == 200_000
    assert list(store.keys("jobs")) == ["jobs/1/a.pdf", "jobs/1/b.bin"]
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "blobs").rglob("*"))
    store.delete_prefix("jobs/1")
    assert not store.exists("jobs/1/a.pdf")
    with pytest.raises(NotFound):
        store.get("jobs/1/a.pdf")


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/abs", "a/../../b", "a//b", "", "a/.hidden/..", "a b"]
)
def test_blob_keys_cannot_escape(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidRequest):
        FileBlobStore(tmp_path).put(key, b"x")


def test_blob_stream_limit_leaves_nothing(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    with pytest.raises(InvalidRequest):
        store.put_stream("big", io.BytesIO(b"x" * 100), max_bytes=10)
    assert list(tmp_path.iterdir()) == []


def test_logs_are_json_and_redact_secrets() -> None:
    record = logging.LogRecord("printcloud.x", logging.INFO, __file__, 1, "issued", None, None)
    record.fields = {
        "client_id": "abc",
        "client_secret": "s3cret",
        "access_token": "t0k",
        "password": "pw",
    }
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "issued" and line["client_id"] == "abc"
    assert line["client_secret"] == line["access_token"] == line["password"] == "***"
    assert redact({"token_type": "Bearer"}) == {"token_type": "Bearer"}


def test_urls_and_utc_datetimes(tmp_path: Path) -> None:
    assert normalise_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    column = UTCDateTime()
    tokyo = datetime(2026, 1, 1, 9, tzinfo=timezone(timedelta(hours=9)))
    assert column.process_bind_param(tokyo, None) == datetime(2026, 1, 1, 0, tzinfo=UTC)
    assert column.process_result_value(datetime(2026, 1, 1), None) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 1, 1), None)


def test_migrations_apply_once_and_are_idempotent(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    migrate(db, "printcloud:migrations")
    migrate(db, "printcloud:migrations")
    with db.engine.connect() as conn:
        tables = {
            r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        }
        assert {"auth_tenants", "auth_access_tokens", "alembic_version"} <= tables
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    db.dispose()


def test_migrations_match_the_models(tmp_path: Path) -> None:
    """A model change without its migration fails here (alembic autogenerate finds a diff)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import printcloud.auth.models
    import printcloud.core.executors
    import printcloud.crm.models
    import printcloud.docgen.models
    import printcloud.printing.models  # noqa: F401
    from printcloud.core.db import Base

    db = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    migrate(db, "printcloud:migrations")
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    db.dispose()
    assert diff == []
