"""Seed 003's session store, the same rules on the database and on Redis
(FIG. 6 S1105/S1111, FIG. 7 S1206/S1213, FIG. 8 S1305/S1318, FIG. 10, FIG. 11)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest

from printcloud.core.db import Database, migrate
from printcloud.core.errors import Conflict, InvalidRequest, NotFound, Unauthorized, Unavailable
from printcloud.printing.sessions import RedisBackend, SessionStore, SqlBackend, session_key
from tests.conftest import free_port, require_peer

REDIS_URL = "redis://127.0.0.1:6379/14"


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, database_url: str) -> Iterator[SessionStore]:
    if request.param == "database":
        db = Database(database_url)
        migrate(db, "printcloud:migrations")
        yield SessionStore(SqlBackend(db), token_timeout=timedelta(hours=1))
        db.dispose()
        return
    require_peer(_redis_up(), f"Redis at {REDIS_URL} does not answer")
    prefix = f"pc:test:{secrets.token_hex(4)}"
    backend = RedisBackend(REDIS_URL, prefix=prefix)
    yield SessionStore(backend, token_timeout=timedelta(hours=1))
    for key in backend._redis.scan_iter(match=f"{prefix}:*"):
        backend._redis.delete(key)


def ids() -> tuple[str, str]:
    return f"job-{secrets.token_hex(4)}", f"prn-{secrets.token_hex(2)}"


def test_a_job_goes_through_token_download_convert_and_close(store: SessionStore) -> None:
    job, printer = ids()
    key, token = store.open_session(tenant_id="t1", job_id=job, printer_id=printer, worker="w1")
    assert key == session_key(job, printer) == f"cnv:{job}:{printer}"
    after_download = store.record_download(
        tenant_id="t1", job_id=job, printer_id=printer, path="downloads/x.pdf", worker="w2"
    )
    assert after_download.download_path == "downloads/x.pdf"
    converted = store.record_conversion(
        tenant_id="t1", job_id=job, printer_id=printer, converted_id="cv-1", worker="w1"
    )
    assert converted.converted_id == "cv-1" and converted.download_path is None
    assert [(e["step"], e["worker"]) for e in converted.history] == [
        ("token", "w1"),
        ("download", "w2"),
        ("convert", "w1"),
    ]
    store.check_token(store.require(tenant_id="t1", job_id=job, printer_id=printer), token)
    assert store.close(tenant_id="t1", job_id=job, printer_id=printer) is True
    with pytest.raises(NotFound):
        store.require(tenant_id="t1", job_id=job, printer_id=printer)
    assert store.close(tenant_id="t1", job_id=job, printer_id=printer) is False


def test_a_second_token_request_is_refused(store: SessionStore) -> None:
    job, printer = ids()
    store.open_session(tenant_id="t1", job_id=job, printer_id=printer, worker="w1")
    with pytest.raises(Conflict, match="already requested"):
        store.open_session(tenant_id="t1", job_id=job, printer_id=printer, worker="w2")
    # The same job on another printer is another session.
    store.open_session(tenant_id="t1", job_id=job, printer_id=printer + "b", worker="w2")


def test_download_or_conversion_without_a_token_request_is_refused(store: SessionStore) -> None:
    job, printer = ids()
    with pytest.raises(NotFound, match="no token was requested"):
        store.record_download(tenant_id="t1", job_id=job, printer_id=printer, path="p", worker="w")
    with pytest.raises(NotFound):
        store.record_conversion(
            tenant_id="t1", job_id=job, printer_id=printer, converted_id="c", worker="w"
        )


def test_another_tenant_sees_nothing(store: SessionStore) -> None:
    job, printer = ids()
    store.open_session(tenant_id="t1", job_id=job, printer_id=printer, worker="w1")
    with pytest.raises(NotFound):
        store.require(tenant_id="t2", job_id=job, printer_id=printer)
    assert store.close(tenant_id="t2", job_id=job, printer_id=printer) is False
    assert store.require(tenant_id="t1", job_id=job, printer_id=printer).tenant_id == "t1"


def test_token_must_match_and_must_not_be_stale(store: SessionStore) -> None:
    job, printer = ids()
    _, token = store.open_session(tenant_id="t1", job_id=job, printer_id=printer, worker="w1")
    session = store.require(tenant_id="t1", job_id=job, printer_id=printer)
    with pytest.raises(Unauthorized, match="does not match"):
        store.check_token(session, token + "x")
    with pytest.raises(Unauthorized):
        store.check_token(session, "")
    expired = SessionStore(store.backend, token_timeout=timedelta(seconds=-1))
    with pytest.raises(Unauthorized, match="timed out"):
        expired.check_token(session, token)


def test_the_sweeper_finds_old_sessions(store: SessionStore) -> None:
    job, printer = ids()
    store.open_session(tenant_id="t1", job_id=job, printer_id=printer, worker="w1")
    stale = {s.key for s in store.stale(older_than=timedelta(seconds=-5))}
    assert session_key(job, printer) in stale
    assert session_key(job, printer) not in {
        s.key for s in store.stale(older_than=timedelta(hours=1))
    }
    target = next(s for s in store.stale(older_than=timedelta(seconds=-5)) if s.job_id == job)
    assert store.forget(target) is True


@pytest.mark.parametrize("bad", ["", "a:b", "x" * 200, "tab\there"])
def test_ids_are_checked(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        session_key(bad, "printer")


def test_an_unreachable_redis_is_unavailable_not_a_crash() -> None:
    store = SessionStore(
        RedisBackend(f"redis://127.0.0.1:{free_port()}/0"), token_timeout=timedelta(hours=1)
    )
    with pytest.raises(Unavailable, match="Redis"):
        store.open_session(tenant_id="t1", job_id="j", printer_id="p", worker="w")
