"""Executor leases (`core.executors`): renewal, the takeover of expired leases by
exactly one survivor, and the fencing of an executor whose lease was taken."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from printcloud.core.db import Database, migrate, utcnow
from printcloud.core.executors import ExecutorLease, ExecutorRow


@pytest.fixture
def db(tmp_path: Path, database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database, "printcloud:migrations")
    yield database
    database.dispose()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, executor_ids: Sequence[str]) -> list[str]:
        with self.lock:
            self.calls.append(list(executor_ids))
        return [f"wf-of-{executor_ids[0]}"]


def lease(
    db: Database, scope: str, name: str, recover: Recorder, lost: threading.Event | None = None
) -> ExecutorLease:
    return ExecutorLease(
        db,
        scope=scope,
        executor_id=name,
        lease_seconds=30,
        recover=recover,
        on_lost=(lost.set if lost is not None else lambda: None),
    )


def age(db: Database, scope: str, name: str, seconds: float) -> None:
    with db.session() as s:
        s.execute(
            update(ExecutorRow)
            .where(ExecutorRow.scope == scope, ExecutorRow.executor_id == name)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_only_expired_leases_of_the_same_scope_are_taken_over(db: Database) -> None:
    scope = f"s{uuid.uuid4().hex[:8]}"
    recorder = Recorder()
    a = lease(db, scope, "a", recorder)
    b = lease(db, scope, "b", recorder)
    other = lease(db, f"{scope}-other", "c", recorder)
    for each in (a, b, other):
        each.register()
    assert a.take_over_expired() == []  # b renewed a moment ago
    age(db, scope, "b", 60)
    age(db, f"{scope}-other", "c", 60)  # another service's executor: not a's to take
    assert a.take_over_expired() == ["wf-of-b"]
    assert recorder.calls == [["b"]]
    assert a.take_over_expired() == []  # claimed once
    states = {x.executor_id: x for x in ExecutorLease.leases(db, scope=scope)}
    assert states["b"].state == "taken_over"
    assert states["b"].taken_over_by == "a"
    assert states["b"].recovered == 1
    assert states["a"].state == "alive"


def test_two_survivors_claim_a_dead_lease_once(db: Database) -> None:
    scope = f"s{uuid.uuid4().hex[:8]}"
    recorder = Recorder()
    survivors = [lease(db, scope, f"live-{i}", recorder) for i in range(4)]
    dead = lease(db, scope, "dead", recorder)
    for each in (*survivors, dead):
        each.register()
    age(db, scope, "dead", 60)
    barrier = threading.Barrier(len(survivors))

    def race(survivor: ExecutorLease) -> None:
        barrier.wait()
        survivor.take_over_expired()

    threads = [threading.Thread(target=race, args=(s,)) for s in survivors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert recorder.calls == [["dead"]]


def test_an_executor_whose_lease_was_taken_stops(db: Database) -> None:
    """Fencing: a paused executor that comes back finds its lease taken and stops
    instead of running workflows that now run elsewhere."""
    scope = f"s{uuid.uuid4().hex[:8]}"
    recorder = Recorder()
    lost = threading.Event()
    survivor = lease(db, scope, "survivor", recorder)
    paused = ExecutorLease(
        db,
        scope=scope,
        executor_id="paused",
        lease_seconds=0.6,
        recover=recorder,
        on_lost=lost.set,
    )
    survivor.register()
    paused.register()
    assert paused.renew()
    age(db, scope, "paused", 60)
    assert survivor.take_over_expired() == ["wf-of-paused"]
    assert not paused.renew()
    paused.run_in_background()  # its renewal loop notices and calls on_lost
    try:
        assert lost.wait(30)
    finally:
        paused.stop()
    paused.register()  # started afresh (a new process): its lease is its own again
    assert paused.renew()


def test_a_stopped_executor_that_never_returns_is_taken_over(db: Database) -> None:
    """A clean stop leaves its waiting workflows its own, for its next start; if it
    never comes back, they are taken over once its lease has expired."""
    scope = f"s{uuid.uuid4().hex[:8]}"
    recorder = Recorder()
    gone = lease(db, scope, "gone", recorder)
    live = lease(db, scope, "live", recorder)
    gone.register()
    live.register()
    gone.stop()
    assert live.take_over_expired() == []  # stopped a moment ago: it may come back
    age(db, scope, "gone", 60)
    assert live.take_over_expired() == ["wf-of-gone"]
