"""The identify requests' store (issue 14, `printing/identify.py`) on SQLite and
PostgreSQL: keyed by tenant and printer, handed over once, oldest first, dropped when
older than `identify.TTL`, at most `MAX_PENDING` per printer."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from printcloud.core.db import Database, migrate, utcnow
from printcloud.core.errors import NotFound
from printcloud.printing import identify
from printcloud.printing.models import IdentifyRequestRow, PrinterRow


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database, "printcloud:migrations")
    try:
        yield database
    finally:
        database.engine.dispose()


def _tenant_with_printer(db: Database) -> str:
    tenant = "t" + secrets.token_hex(5)
    with db.session() as s:
        s.add(PrinterRow(tenant_id=tenant, printer_id="p1", name="p1", client_id="dev"))
    return tenant


def _record(db: Database, tenant: str, message: str, *actions: str) -> None:
    with db.session() as s:
        identify.record(
            s,
            tenant_id=tenant,
            printer_id="p1",
            actions=actions or ("display",),
            message=message,
            queue="q",
            requested_by="alice",
        )


def _take(db: Database, tenant: str) -> list[identify.Pending]:
    with db.session() as s:
        return identify.take(s, tenant_id=tenant, printer_id="p1")


def test_requests_are_per_tenant_and_handed_over_once(db: Database) -> None:
    mine, theirs = _tenant_with_printer(db), _tenant_with_printer(db)
    _record(db, mine, "first", "display", "sound")
    _record(db, mine, "second")
    _record(db, theirs, "not yours")
    taken = _take(db, mine)
    assert [(p.message, p.actions, p.requested_by) for p in taken] == [
        ("first", ("display", "sound"), "alice"),
        ("second", ("display",), "alice"),
    ]
    assert _take(db, mine) == []
    assert [p.message for p in _take(db, theirs)] == ["not yours"]
    with db.session() as s, pytest.raises(NotFound):
        identify.record(
            s,
            tenant_id=mine,
            printer_id="nope",
            actions=("display",),
            message="",
            queue="q",
            requested_by="alice",
        )


def test_old_requests_are_dropped_and_a_printer_keeps_few(db: Database) -> None:
    tenant = _tenant_with_printer(db)
    _record(db, tenant, "stale")
    with db.session() as s:
        s.execute(
            update(IdentifyRequestRow)
            .where(IdentifyRequestRow.tenant_id == tenant)
            .values(created_at=utcnow() - identify.TTL - timedelta(seconds=1))
        )
    assert _take(db, tenant) == []
    for n in range(identify.MAX_PENDING + 5):
        _record(db, tenant, f"m{n}")
    taken = [p.message for p in _take(db, tenant)]
    assert taken == [f"m{n}" for n in range(5, identify.MAX_PENDING + 5)]
