"""docgen's batch printing information per tenant (seed 000, FIG. 10, FIG. 14) and its
batch-print requests, at the service layer on a real SQLite database.

The tables (docgen's, and the webhooks' outbox) are created from the models
(`Base.metadata.create_all`), so these tests do not need the migration. They run on
SQLite and, when `PRINTCLOUD_TEST_DATABASE_URL` is set, on PostgreSQL (the conditional
writes differ by dialect). The key and the tokens must never be in the database in
clear: on SQLite the whole database file (and its WAL) is searched for them.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from printcloud.core.crypto import SecretBox
from printcloud.core.db import Base, Database, utcnow
from printcloud.core.errors import Conflict, InvalidRequest, NotFound
from printcloud.docgen import service
from printcloud.docgen.models import BatchRequest, BatchSettings
from printcloud.webhooks.models import DeliveryRow, MessageRow, SubscriptionRow

A, B = "1000AA", "1000BB"


#: docgen's own tables, and the webhooks' outbox its request events are queued in.
TABLES = [
    BatchSettings.__table__,
    BatchRequest.__table__,
    SubscriptionRow.__table__,
    MessageRow.__table__,
    DeliveryRow.__table__,
]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'docgen.sqlite3'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    database = Database(url)
    Base.metadata.create_all(database.engine, tables=TABLES)
    with database.session() as s:  # the PostgreSQL database lives for the test session
        for table in TABLES:
            s.execute(table.delete())
    yield database
    database.dispose()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([secrets.token_urlsafe(32).encode()])


def issue(db: Database, box: SecretBox, tenant: str = A, **kw: object) -> str:
    with db.session() as s:
        return service.issue_secret_key(s, tenant_id=tenant, box=box, actor="user:boss", **kw)  # type: ignore[arg-type]


def keys(db: Database, box: SecretBox, tenant: str = A, **kw: object) -> list[str]:
    with db.session() as s:
        return service.key_for(s, tenant_id=tenant, box=box, **kw)  # type: ignore[arg-type]


def raw_database(tmp: Path) -> bytes:
    """Every byte SQLite holds: the file and its write-ahead log."""
    return b"".join(p.read_bytes() for p in tmp.glob("docgen.sqlite3*"))


# -- the secret key (S1401–S1406) -------------------------------------------------------------


def test_a_key_is_a_uuid4_issued_once(db: Database, box: SecretBox) -> None:
    key = issue(db, box)
    assert uuid.UUID(key).version == 4 and str(uuid.UUID(key)) == key
    assert keys(db, box) == [key]
    # S1404: once stored, the key is not generated again.
    with pytest.raises(Conflict, match="already issued"):
        issue(db, box)
    assert keys(db, box) == [key]
    with db.session() as s:
        state = service.key_state(s, tenant_id=A)
    assert state.issued and state.issued_by == "user:boss" and state.issued_at is not None
    assert state.previous_valid_until is None


def test_concurrent_issuance_gives_one_key(db: Database, box: SecretBox) -> None:
    results: list[str] = []
    refused: list[Exception] = []
    barrier = threading.Barrier(6)

    def attempt() -> None:
        barrier.wait()
        try:
            results.append(issue(db, box))
        except Conflict as exc:
            refused.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1 and len(refused) == 5
    assert keys(db, box) == results


def test_rotation_keeps_the_previous_key_for_the_overlap(db: Database, box: SecretBox) -> None:
    old = issue(db, box)
    now = utcnow()
    with db.session() as s:
        new = service.rotate_secret_key(
            s, tenant_id=A, box=box, actor="user:boss", overlap=timedelta(days=2), now=now
        )
    assert new != old
    assert keys(db, box, now=now + timedelta(days=1)) == [new, old]
    assert keys(db, box, now=now + timedelta(days=2, seconds=1)) == [new]
    with db.session() as s:
        state = service.key_state(s, tenant_id=A, now=now + timedelta(hours=1))
        assert state.previous_valid_until == now + timedelta(days=2)
        assert (
            service.key_state(s, tenant_id=A, now=now + timedelta(days=3)).previous_valid_until
            is None
        )

    # A second rotation drops the first key at once, whatever its overlap left.
    with db.session() as s:
        newest = service.rotate_secret_key(s, tenant_id=A, box=box, actor="user:boss", now=now)
    assert keys(db, box, now=now) == [newest, new]

    # Ending the overlap: only the current key.
    with db.session() as s:
        service.end_key_overlap(s, tenant_id=A)
    assert keys(db, box) == [newest]


def test_rotation_without_overlap_and_issue_with_rotate(db: Database, box: SecretBox) -> None:
    old = issue(db, box)
    new = issue(db, box, rotate=True, overlap=timedelta(0))
    assert new != old and keys(db, box) == [new]


def test_rotation_needs_a_key_and_a_sane_overlap(db: Database, box: SecretBox) -> None:
    with db.session() as s, pytest.raises(Conflict, match="issue one first"):
        service.rotate_secret_key(s, tenant_id=A, box=box, actor="x")
    issue(db, box)
    for overlap in (timedelta(hours=-1), timedelta(days=91)):
        with db.session() as s, pytest.raises(InvalidRequest) as caught:
            service.rotate_secret_key(s, tenant_id=A, box=box, actor="x", overlap=overlap)
        assert caught.value.field == "overlap_hours"


def test_keys_are_per_tenant(db: Database, box: SecretBox) -> None:
    key_a, key_b = issue(db, box, A), issue(db, box, B)
    assert key_a != key_b
    assert keys(db, box, A) == [key_a] and keys(db, box, B) == [key_b]
    assert keys(db, box, "1000CC") == []
    with db.session() as s:
        assert not service.key_state(s, tenant_id="1000CC").issued
        assert service.has_settings(s, tenant_id=A) and not service.has_settings(
            s, tenant_id="1000CC"
        )


def test_a_key_sealed_under_another_instance_secret_is_not_used(
    db: Database, box: SecretBox
) -> None:
    issue(db, box)
    other = SecretBox([b"another instance secret"])
    assert keys(db, other) == []


# -- the token sets (FIG. 10, S1108, S1313) ------------------------------------------------------


def store_both(db: Database, box: SecretBox, tenant: str, tag: str) -> None:
    expires = utcnow() + timedelta(hours=1)
    with db.session() as s:
        service.store_crm_tokens(
            s,
            tenant_id=tenant,
            box=box,
            actor="user:boss",
            issuer="idp-b",
            crm_tenant_id=f"crm-{tenant}",
            user="crm-admin",
            access_token=f"crm-access-{tag}",
            refresh_token=f"crm-refresh-{tag}",
            scope="crm.read",
            expires_at=expires,
        )
        service.store_print_tokens(
            s,
            tenant_id=tenant,
            box=box,
            actor="user:boss",
            issuer="idp-a",
            user="boss",
            access_token=f"print-access-{tag}",
            refresh_token=f"print-refresh-{tag}",
            scope="print",
            expires_at=expires,
        )


def test_tokens_are_found_by_tenant(db: Database, box: SecretBox) -> None:
    store_both(db, box, A, secrets.token_hex(8))
    tag_b = secrets.token_hex(8)
    store_both(db, box, B, tag_b)
    with db.session() as s:
        found = service.tokens_for(s, tenant_id=B, box=box)
        none = service.tokens_for(s, tenant_id="1000CC", box=box)
    assert found.crm is not None and found.print is not None
    assert (found.crm.access_token, found.crm.refresh_token) == (
        f"crm-access-{tag_b}",
        f"crm-refresh-{tag_b}",
    )
    assert (found.crm.issuer, found.crm.tenant_id, found.crm.user) == (
        "idp-b",
        "crm-1000BB",
        "crm-admin",
    )
    assert (found.print.access_token, found.print.tenant_id, found.print.user) == (
        f"print-access-{tag_b}",
        B,
        "boss",
    )
    assert none.crm is None and none.print is None
    # The tokens never show in a repr (logs, tracebacks).
    assert tag_b not in repr(found)


def test_token_states_hold_no_secrets(db: Database, box: SecretBox) -> None:
    tag = secrets.token_hex(8)
    store_both(db, box, A, tag)
    with db.session() as s:
        states = service.token_states(s, tenant_id=A)
        empty = service.token_states(s, tenant_id=B)
    assert states["print"].present and states["print"].refreshable
    assert states["crm"].tenant_id == "crm-1000AA" and states["crm"].set_by == "user:boss"
    assert tag not in repr(states)
    assert not empty["crm"].present and not empty["print"].present


def test_nothing_secret_is_stored_in_clear(db: Database, box: SecretBox, tmp_path: Path) -> None:
    key = issue(db, box)
    rotated = issue(db, box, rotate=True)
    tag = secrets.token_hex(12)
    store_both(db, box, A, tag)
    with db.session() as s:
        rows = s.execute(text("SELECT * FROM docgen_batch_settings")).all()
    values = " ".join(str(v) for row in rows for v in row)
    data = raw_database(tmp_path) if db.is_sqlite else b""
    for secret in (key, rotated, f"crm-access-{tag}", f"crm-refresh-{tag}", f"print-access-{tag}"):
        assert secret not in values
        assert secret.encode() not in data
    assert "crm-1000AA" in values  # what is not secret is readable


def test_forgetting_a_token_set(db: Database, box: SecretBox) -> None:
    store_both(db, box, A, "x")
    with db.session() as s:
        service.forget_tokens(s, tenant_id=A, kind="crm")
        found = service.tokens_for(s, tenant_id=A, box=box)
    assert found.crm is None and found.print is not None


def test_one_refresh_at_a_time(db: Database, box: SecretBox) -> None:
    store_both(db, box, A, "one")
    with db.session() as s:
        first = service.token_set(s, tenant_id=A, kind="print", box=box)
    assert first is not None and first.stamp
    with db.session() as s:
        assert service.claim_refresh(s, tenant_id=A, kind="print", stamp=first.stamp)
    with db.session() as s:  # held
        assert not service.claim_refresh(s, tenant_id=A, kind="print", stamp=first.stamp)
        # The other set is independent.
        crm = service.token_set(s, tenant_id=A, kind="crm", box=box)
        assert crm is not None
        assert service.claim_refresh(s, tenant_id=A, kind="crm", stamp=crm.stamp)
    with db.session() as s:  # the refresh stores the new set: the lease ends, the stamp changes
        service.store_print_tokens(
            s,
            tenant_id=A,
            box=box,
            actor="refresh",
            issuer="idp-a",
            access_token="print-access-two",
            refresh_token="print-refresh-two",
            scope="print",
            expires_at=None,
            refreshed=True,
        )
        second = service.token_set(s, tenant_id=A, kind="print", box=box)
    assert second is not None and second.refreshed_at is not None
    assert second.set_by == "user:boss"  # who obtained it stays recorded
    with db.session() as s:
        # A caller holding the old set may not refresh with its used refresh token.
        assert not service.claim_refresh(s, tenant_id=A, kind="print", stamp=first.stamp)
        assert service.claim_refresh(s, tenant_id=A, kind="print", stamp=second.stamp)
    with db.session() as s:  # a lease left by a dead process expires
        later = utcnow() + service.REFRESH_LEASE + timedelta(seconds=1)
        assert service.claim_refresh(s, tenant_id=A, kind="print", stamp=second.stamp, now=later)
    with db.session() as s:
        service.note_token_problem(s, tenant_id=A, kind="print", problem="refresh refused")
        assert service.token_states(s, tenant_id=A)["print"].problem == "refresh refused"
        assert service.claim_refresh(s, tenant_id=A, kind="print", stamp=second.stamp)


# -- batch-print requests -----------------------------------------------------------------------


def test_requests_are_recorded_and_scoped_to_their_tenant(db: Database) -> None:
    with db.session() as s:
        row, created = service.record_request(
            s, tenant_id=A, source="crm", job="nightly invoices", parameters={"form": "invoice"}
        )
        request_id = row.request_id
    assert created
    with db.session() as s:
        got = service.get_request(s, tenant_id=A, request_id=request_id)
        assert (got.state, got.source, got.job, got.parameters) == (
            "received",
            "crm",
            "nightly invoices",
            {"form": "invoice"},
        )
        assert [step["step"] for step in got.steps] == ["S1503"]
        with pytest.raises(NotFound):
            service.get_request(s, tenant_id=B, request_id=request_id)
        assert service.list_requests(s, tenant_id=B) == []
        assert [r.request_id for r in service.list_requests(s, tenant_id=A)] == [request_id]


def test_a_run_id_is_recorded_once(db: Database) -> None:
    with db.session() as s:
        first, created = service.record_request(s, tenant_id=A, source="crm", run_id="run-1")
    with db.session() as s:
        again, created_again = service.record_request(s, tenant_id=A, source="crm", run_id="run-1")
        other, created_other = service.record_request(s, tenant_id=B, source="crm", run_id="run-1")
    assert created and not created_again and created_other
    assert again.request_id == first.request_id != other.request_id


def test_a_suspended_request_carries_its_reason(db: Database) -> None:
    with db.session() as s:
        row, _ = service.record_request(
            s,
            tenant_id=A,
            source="crm",
            state="suspended",
            step="S1512",
            reason="Digest authentication refused: wrong secret key",
        )
    assert row.state == "suspended" and row.finished_at is not None
    assert row.steps[0]["step"] == "S1512" and "wrong secret key" in row.steps[0]["detail"]


def test_a_request_moves_through_its_states_and_stays_ended(db: Database) -> None:
    with db.session() as s:
        row, _ = service.record_request(s, tenant_id=A, source="crm")
        request_id = row.request_id
    with db.session() as s:
        service.advance_request(
            s, tenant_id=A, request_id=request_id, state="verifying", step="S1520"
        )
        service.advance_request(
            s, tenant_id=A, request_id=request_id, state="sending", step="S1522", print_job_id="j1"
        )
        done = service.advance_request(
            s, tenant_id=A, request_id=request_id, state="completed", step="S1525"
        )
        assert done.print_job_ids == ["j1"] and done.finished_at is not None
        assert [st["state"] for st in done.steps] == [
            "received",
            "verifying",
            "sending",
            "completed",
        ]
        with pytest.raises(Conflict):
            service.advance_request(s, tenant_id=A, request_id=request_id, state="failed", step="x")
        with pytest.raises(NotFound):
            service.advance_request(s, tenant_id=B, request_id=request_id, state="failed", step="x")
        with pytest.raises(InvalidRequest):
            service.record_request(s, tenant_id=A, source="printer")
