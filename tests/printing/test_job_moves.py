"""A job's state moves are compare-and-set (`service.move`), on SQLite and PostgreSQL.

Seen in CI: the owner cancelled a job while its workflow read it `accepted` and then
wrote `waiting_for_printer`; the later write won, and the cancelled job stayed waiting
with no workflow behind it. Here two sessions play that race step by step."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from printcloud.core.db import Database, migrate
from printcloud.core.errors import Conflict
from printcloud.printing import service
from printcloud.printing.models import JobEventRow, PrintJobRow


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database, "printcloud:migrations")
    try:
        yield database
    finally:
        database.engine.dispose()


def _job(db: Database, state: str = "accepted") -> tuple[str, str]:
    tenant, job_id = "t" + secrets.token_hex(5), "j" + secrets.token_hex(8)
    with db.session() as s:
        s.add(
            PrintJobRow(
                job_id=job_id,
                tenant_id=tenant,
                printer_id="p1",
                owner="alice",
                client_id="c1",
                title="race",
                source="upload",
                options={},
                state=state,
            )
        )
    return tenant, job_id


def _state(db: Database, job_id: str) -> str:
    with db.sessions() as s:
        job = s.get(PrintJobRow, job_id)
        assert job is not None
        return job.state


def _history(db: Database, job_id: str) -> list[str]:
    with db.sessions() as s:
        rows = s.query(JobEventRow).filter_by(job_id=job_id).order_by(JobEventRow.pk).all()
        return [r.state for r in rows]


def test_a_cancel_made_meanwhile_is_not_overwritten(db: Database) -> None:
    tenant, job_id = _job(db)
    with db.session() as workflow:
        job = workflow.get(PrintJobRow, job_id)
        assert job is not None and job.state == "accepted"  # the workflow's read
        with db.session() as owner:  # the owner's cancel commits in between
            service.cancel_job(owner, tenant_id=tenant, job_id=job_id, by="alice")
        moved = service.move(workflow, job, "waiting_for_printer", step="S109")
        assert moved is False
        assert job.state == "cancelled"
    assert _state(db, job_id) == "cancelled"
    assert _history(db, job_id) == ["cancelled"]


def test_a_move_made_meanwhile_is_built_on_not_undone(db: Database) -> None:
    _tenant, job_id = _job(db)
    with db.session() as owner:
        job = owner.get(PrintJobRow, job_id)
        assert job is not None and job.state == "accepted"  # the cancel's read
        with db.session() as workflow:  # the workflow's step commits in between
            other = workflow.get(PrintJobRow, job_id)
            assert other is not None
            assert service.move(workflow, other, "waiting_for_printer", step="S109")
        # the cancel still applies to the job as it is now
        assert service.move(owner, job, "cancelled", step="SVC001", reason="cancelled by alice")
    assert _state(db, job_id) == "cancelled"
    assert _history(db, job_id) == ["waiting_for_printer", "cancelled"]


def test_cancelling_a_job_that_ended_meanwhile_is_a_conflict(db: Database) -> None:
    tenant, job_id = _job(db, state="printing")
    with db.session() as owner:
        job = owner.get(PrintJobRow, job_id)
        assert job is not None
        with db.session() as device:
            other = device.get(PrintJobRow, job_id)
            assert other is not None
            assert service.move(device, other, "printed", step="S111")
        with pytest.raises(Conflict, match="already ended"):
            # get_job reads it again in this session: an identity-map hit, still `printing`
            service.cancel_job(owner, tenant_id=tenant, job_id=job_id, by="alice")
    assert _state(db, job_id) == "printed"


def test_a_release_counts_once(db: Database) -> None:
    tenant, job_id = _job(db, state="held")
    with db.session() as first:
        job = first.get(PrintJobRow, job_id)
        assert job is not None and job.state == "held"
        with db.session() as second:
            service.release_job(second, tenant_id=tenant, job_id=job_id, by="alice")
        with pytest.raises(Conflict, match="not held"):
            service.release_job(first, tenant_id=tenant, job_id=job_id, by="alice")
    assert _state(db, job_id) == "accepted"
    assert _history(db, job_id) == ["accepted"]
