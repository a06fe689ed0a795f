"""Durable tasks on a real system database: SQLite in tmp_path, and PostgreSQL when
`PRINTCLOUD_TEST_DATABASE_URL` names one (a throw-away database is created per test).

The crash tests run this file as a script in a subprocess (see `_child`), kill it
with SIGKILL mid-workflow, and count step executions in marker files.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from printcloud import __version__
from printcloud.core import tasks
from printcloud.core.db import Database, migrate
from printcloud.core.errors import Conflict, NotFound
from printcloud.core.executors import ExecutorLease
from printcloud.core.settings import Settings
from printcloud.core.tasks import waker

PG_ENV = "PRINTCLOUD_TEST_DATABASE_URL"

# -- workflows under test (declared at import, as services do) ----------------

calls: Counter[str] = Counter()
calls_lock = threading.Lock()


def _count(name: str) -> None:
    with calls_lock:
        calls[name] += 1


@tasks.step()
def add_one(token: str, value: int) -> int:
    _count(f"{token}:add_one")
    return value + 1


@tasks.step()
def double(token: str, value: int) -> int:
    _count(f"{token}:double")
    return value * 2


@tasks.workflow()
def add_then_double(token: str, value: int) -> int:
    return double(token, add_one(token, value))


KEYED = tasks.queue("test-keyed", per_key_concurrency=1, poll_interval=0.1)
PLAIN = tasks.queue("test-plain", concurrency=2, poll_interval=0.1)


@tasks.workflow()
def keyed_job(token: str, key: str) -> str:
    _count(f"{token}:{key}")
    return key.upper()


#: Waiting workflows: one per key runs (and waits for its message), the next waits its turn.
WAITERS = tasks.queue("test-waiters", per_key_concurrency=1, poll_interval=0.1)


@tasks.step()
def arrive(token: str, number: int) -> None:
    _count(f"{token}:arrived")


@tasks.workflow()
def wait_for_message(token: str, number: int) -> str:
    arrive(token, number)
    message = tasks.recv(topic="wake", timeout=3600)
    return f"{number}:{message}"


@tasks.workflow()
def await_child(token: str, number: int, key: str) -> str:
    child = tasks.TaskEngine._running
    assert child is not None
    return child.enqueue(WAITERS, wait_for_message, key=key, workflow_id=f"child-{token}-{number}")(
        token, number
    ).result()


# The same, as async workflows: they wait as coroutines and hold no thread.


@tasks.workflow()
async def wait_for_message_async(token: str, number: int) -> str:
    await tasks.call(arrive, token, number)
    message = await tasks.recv_async(topic="wake", timeout=3600)
    return f"{number}:{message}"


@tasks.workflow()
async def await_child_async(token: str, number: int, key: str) -> str:
    engine = tasks.TaskEngine._running
    assert engine is not None
    child = await engine.enqueue_async(
        WAITERS, wait_for_message_async, key=key, workflow_id=f"achild-{token}-{number}"
    )(token, number)
    return str(await child.result())


# Background work's priority (core/tasks/priority.py): each reports its thread's nice value.


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@tasks.step()
def step_nice(token: str) -> int:
    return _nice()


@tasks.workflow()
def nice_of_a_sync_workflow(token: str) -> list[int]:
    return [_nice(), step_nice(token)]


@tasks.workflow()
async def nice_of_an_async_workflow(token: str) -> list[int]:
    return [_nice(), await tasks.call(step_nice, token)]


@tasks.step(retries=2, retry_interval=0.01, backoff=1.0)
def flaky(token: str) -> str:
    _count(f"{token}:flaky")
    if calls[f"{token}:flaky"] < 3:
        raise RuntimeError("not yet")
    return "ok"


@tasks.workflow()
async def call_flaky(token: str) -> str:
    return await tasks.call(flaky, token)


@tasks.workflow()
def on_tick(when: datetime, marker: str) -> None:
    _append(Path(marker), when.isoformat())


# The crash workflow: explicit names, so that the child (module `__main__`) and
# this test module register it under the same durable address.


def _append(path: Path, line: str) -> None:
    with path.open("a") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@tasks.step(name="test_tasks.crash_step_one")
def crash_step_one(markers: str) -> int:
    _append(Path(markers) / "step1", "done")
    return 20


@tasks.step(name="test_tasks.crash_step_two")
def crash_step_two(markers: str, value: int) -> int:
    _append(Path(markers) / "step2.started", "started")
    while not (Path(markers) / "release").exists():
        time.sleep(0.02)
    _append(Path(markers) / "step2.done", "done")
    return value + 1


@tasks.workflow(name="test_tasks.crash_workflow")
def crash_workflow(markers: str) -> int:
    return crash_step_two(markers, crash_step_one(markers))


@tasks.workflow(name="test_tasks.crash_workflow_async")
async def crash_workflow_async(markers: str) -> int:
    one = await tasks.call(crash_step_one, markers)
    return await tasks.call(crash_step_two, markers, one)


# -- fixtures -----------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.peer("postgres"))])
def task_db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the embedded SQLite default; else a fresh PostgreSQL database per test
    (DBOS's tables and schedules must not leak from one test into the next)."""
    if request.param == "sqlite":
        yield None
        return
    import psycopg
    from sqlalchemy.engine import make_url

    from printcloud.core.db import normalise_url
    from tests.conftest import PG_URL, require_peer

    require_peer(PG_URL.startswith("postgres"), f"{PG_ENV} does not name a PostgreSQL database")
    base = make_url(normalise_url(PG_URL))
    name = f"pc_tasks_{uuid.uuid4().hex[:12]}"
    admin_url = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _settings(data_dir: Path, database_url: str | None, **extra: Any) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, **extra)


@pytest.fixture
def settings(tmp_path: Path, task_db_url: str | None) -> Settings:
    return _settings(tmp_path / "var", task_db_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[tasks.TaskEngine]:
    with tasks.TaskEngine(settings) as running:
        yield running


def _token() -> str:
    return uuid.uuid4().hex


# -- configuration --------------------------------------------------------------


def test_system_database_is_separate_file_on_sqlite(tmp_path: Path) -> None:
    url, schema = tasks.system_database(_settings(tmp_path, None))
    assert url == f"sqlite:///{(tmp_path / 'dbos.sqlite3').resolve()}"
    assert schema is None
    explicit = _settings(tmp_path, f"sqlite:///{tmp_path / 'app.sqlite3'}")
    assert tasks.system_database(explicit) == (url, None)


def test_system_database_is_dbos_schema_on_postgresql(tmp_path: Path) -> None:
    url, schema = tasks.system_database(_settings(tmp_path, "postgres://u@db:5432/printcloud"))
    assert url == "postgresql+psycopg://u@db:5432/printcloud"
    assert schema == "dbos"


def test_each_service_has_its_own_system_schema(tmp_path: Path) -> None:
    """A service's executors see only its workflows, queues and schedules: a CRM
    executor never dequeues or recovers a print job it has no runtime for."""
    pg = "postgres://u@db:5432/printcloud"
    assert tasks.system_database(_settings(tmp_path, pg, service="printing"))[1] == "dbos_printing"
    assert tasks.system_database(_settings(tmp_path, pg, service="crm"))[1] == "dbos_crm"
    url, schema = tasks.system_database(_settings(tmp_path, None, service="printing"))
    assert url.endswith("/dbos-printing.sqlite3")
    assert schema is None


def test_a_service_creates_only_its_own_queues_and_schedules(tmp_path: Path) -> None:
    crm = tasks.TaskEngine(_settings(tmp_path, None, service="crm"))
    assert crm.owns("crm.jobs")
    assert not crm.owns("printing.sweep")
    assert not crm.owns("auth.housekeeping")
    embedded = tasks.TaskEngine(_settings(tmp_path, None))
    assert embedded.owns("printing.sweep") and embedded.owns("test-keyed")


def test_queue_limits_are_tuned_before_launch(tmp_path: Path) -> None:
    engine = tasks.TaskEngine(_settings(tmp_path, None))
    engine.tune(KEYED, per_key_concurrency=3)
    assert engine._limits[KEYED.name].per_key_concurrency == 3
    with pytest.raises(ValueError, match="per-key"):
        engine.tune(KEYED, per_key_concurrency=None)


def test_other_databases_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SQLite or PostgreSQL"):
        tasks.TaskEngine(_settings(tmp_path, "mysql://u@db/printcloud"))


def test_worker_id_required_in_distributed_mode(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="PRINTCLOUD_WORKER_ID"):
        tasks.TaskEngine(_settings(tmp_path, None, distributed=True))
    engine = tasks.TaskEngine(_settings(tmp_path, None, distributed=True, worker_id="w-1"))
    assert engine.executor_id == "w-1"
    assert engine.app_version == __version__


def test_system_tables_live_where_documented(
    engine: tasks.TaskEngine, settings: Settings, task_db_url: str | None
) -> None:
    if task_db_url is None:
        assert (settings.data_dir / "dbos.sqlite3").is_file()
        assert not (settings.data_dir / "printcloud.sqlite3").exists()
        return
    from sqlalchemy import create_engine, text

    from printcloud.core.db import normalise_url

    probe = create_engine(normalise_url(task_db_url))
    try:
        with probe.connect() as conn:
            tables = conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'dbos'")
            ).scalars()
            assert "workflow_status" in set(tables)
    finally:
        probe.dispose()


# -- running workflows ----------------------------------------------------------


def test_workflow_with_two_steps_returns_its_result(engine: tasks.TaskEngine) -> None:
    token = _token()
    handle = engine.start(add_then_double)(token, 4)
    assert handle.result() == 10
    assert calls[f"{token}:add_one"] == 1
    assert calls[f"{token}:double"] == 1


def test_status_is_readable(engine: tasks.TaskEngine) -> None:
    token = _token()
    handle = engine.start(add_then_double, workflow_id=f"status-{token}")(token, 1)
    handle.result()
    status = engine.get_status(f"status-{token}")
    assert status is not None
    assert status.state == "SUCCESS"
    assert status.done
    assert status.name.endswith("add_then_double")
    assert status.executor_id == "embedded"
    assert status.app_version == __version__
    assert status.created_at is not None
    assert status.error is None
    assert handle.status() == status
    assert engine.get_status("no-such-workflow") is None
    with pytest.raises(NotFound):
        engine.handle("no-such-workflow")

    # several at once (the webhook sweeper's read), and a cancel that recovery respects
    waiting = f"status-{token}-waiting"
    engine.start(wait_for_message_async, workflow_id=waiting)(token, 1)
    _until(lambda: calls[f"{token}:arrived"] == 1, "the workflow waits")
    engine.cancel(waiting)
    engine.cancel(f"status-{token}")  # ended: stays as it ended
    engine.cancel("no-such-workflow")  # nothing to cancel: no error
    found = engine.get_statuses([f"status-{token}", waiting, "no-such-workflow"])
    assert {w: s.state for w, s in found.items()} == {
        f"status-{token}": "SUCCESS",
        waiting: "CANCELLED",
    }
    assert engine.get_statuses([]) == {}
    engine.send(waiting, "late", topic="wake")  # its coroutine wakes and stops


def test_same_workflow_id_runs_once(engine: tasks.TaskEngine) -> None:
    token = _token()
    workflow_id = f"once-{token}"
    first = engine.start(add_then_double, workflow_id=workflow_id)(token, 2)
    second = engine.start(add_then_double, workflow_id=workflow_id)(token, 2)
    assert first.result() == second.result() == 6
    assert calls[f"{token}:add_one"] == 1
    assert calls[f"{token}:double"] == 1
    with pytest.raises(Conflict):
        engine.enqueue(KEYED, keyed_job, key="a", workflow_id=workflow_id)(token, "a")


def test_same_workflow_id_is_enqueued_once(engine: tasks.TaskEngine) -> None:
    token = _token()
    workflow_id = f"queued-{token}"
    handles = [
        engine.enqueue(PLAIN, add_then_double, workflow_id=workflow_id)(token, 3) for _ in "ab"
    ]
    assert [h.result() for h in handles] == [8, 8]
    assert calls[f"{token}:add_one"] == 1
    with pytest.raises(ValueError, match="no per-key limit"):
        engine.enqueue(PLAIN, add_then_double, key="a")(token, 3)


def test_keyed_queue_runs_each_key(engine: tasks.TaskEngine) -> None:
    token = _token()
    handles = [engine.enqueue(KEYED, keyed_job, key=key)(token, key) for key in ("a", "a", "b")]
    assert [h.result() for h in handles] == ["A", "A", "B"]
    assert calls[f"{token}:a"] == 2
    assert calls[f"{token}:b"] == 1
    with pytest.raises(ValueError, match="key"):
        engine.enqueue(KEYED, keyed_job)(token, "a")


def test_background_work_runs_at_its_nice_value(tmp_path: Path, task_db_url: str | None) -> None:
    """The threads that run workflows (DBOS's executor, its event loop, the step pool,
    the queues' workers) run at PRINTCLOUD_BACKGROUND_NICE; the thread that starts them
    (an answer's) keeps its own."""
    mine = _nice()
    wanted = max(mine, 7)
    settings = _settings(tmp_path / "var", task_db_url, background_nice=7)
    with tasks.TaskEngine(settings) as engine:
        token = _token()
        assert engine.start(nice_of_a_sync_workflow)(token).result() == [wanted, wanted]
        assert engine.start(nice_of_an_async_workflow)(token).result() == [wanted, wanted]
        queued = engine.enqueue(PLAIN, nice_of_a_sync_workflow)(token)
        assert queued.result() == [wanted, wanted]
    assert _nice() == mine


def _statements_per_second(window: float) -> float:
    """Statements DBOS's engine sends to the system database per second, over `window`."""
    from dbos._dbos import _get_dbos_instance
    from sqlalchemy import event

    engine = _get_dbos_instance()._sys_db.engine
    seen = [0]

    def count(*_: Any) -> None:
        seen[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        time.sleep(window)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return seen[0] / window


def _until(check: Any, what: str, *, deadline: float = 60) -> None:
    stop = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < stop, f"stuck: {what}"
        time.sleep(0.05)


def test_waiting_workflows_cost_no_polling_and_wake_on_their_message(
    engine: tasks.TaskEngine,
) -> None:
    """Issue 13: 12 workflows wait for a message, 12 more wait their turn on a keyed queue
    behind them and 24 parents wait for their results. The database sees no more
    statements per second than with nothing waiting (old code: about 20 per waiting
    `recv` and 5 per awaited result, every second), and each message, whether sent
    through the engine or straight through DBOS, wakes its workflow."""
    from dbos import DBOS

    token, keys = _token(), 12
    idle = _statements_per_second(3.0)
    parents = [
        engine.start(await_child, workflow_id=f"parent-{token}-{n}")(token, n, f"k{n % keys}")
        for n in range(2 * keys)
    ]
    _until(lambda: calls[f"{token}:arrived"] == keys, "the first child of each key waits")
    time.sleep(1.0)  # deliberate: what starting the workflows cost is not counted
    waiting = _statements_per_second(3.0)
    # One sweep a second over every awaited result, plus what DBOS does with nothing to do.
    assert waiting <= idle + 3, (idle, waiting)

    def running(n: int) -> bool:
        status = engine.get_status(f"child-{token}-{n}")
        return status is not None and status.state == "PENDING"

    first = [n for n in range(2 * keys) if running(n)]
    assert len(first) == keys
    for n in first:
        if n % 2:
            engine.send(f"child-{token}-{n}", f"m{n}", topic="wake")
        else:
            DBOS.send(f"child-{token}-{n}", f"m{n}", "wake")  # not announced by this process
    # A finished child frees its key's slot: the queue is polled at once for the next one.
    _until(lambda: calls[f"{token}:arrived"] == 2 * keys, "the second child of each key runs")
    for n in set(range(2 * keys)) - set(first):
        engine.send(f"child-{token}-{n}", f"m{n}", topic="wake")
    assert sorted(p.result() for p in parents) == sorted(f"{n}:m{n}" for n in range(2 * keys))


@pytest.mark.parametrize("waiter", [wait_for_message, wait_for_message_async])
def test_a_recorded_end_frees_the_slot_and_wakes_the_awaiting_with_no_polling(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, waiter: Any
) -> None:
    """A run queued behind a full key starts when the run before it ends, and whoever
    awaits that run wakes, by DBOS's recorded end alone (`Waker.recorded`): every
    fallback that would find them by polling is an hour away here — the waker's checks
    after a run's end, the queue's poll without a nudge, the awaited runs' sweep."""
    monkeypatch.setattr(waker, "_ENDING_CHECKS", (3600.0,))
    monkeypatch.setattr(waker, "_QUEUE_FALLBACK_SECONDS", 3600.0)
    token, key = _token(), "slot"
    with tasks.TaskEngine(settings) as engine:
        first = engine.enqueue(WAITERS, waiter, key=key, workflow_id=f"slot-{token}-1")
        first_run = first(token, 1)
        _until(lambda: calls[f"{token}:arrived"] == 1, "the first run takes the key's one slot")
        second = engine.enqueue(WAITERS, waiter, key=key, workflow_id=f"slot-{token}-2")
        second_run = second(token, 2)

        def queued() -> bool:
            status = engine.get_status(second_run.workflow_id)
            return status is not None and status.state == "ENQUEUED"

        _until(queued, "the second run waits for the slot")
        # The queue polled on that enqueue and found the key full: only a nudge makes
        # it poll again within the hour.
        engine.send(first_run.workflow_id, "a", topic="wake")
        _until(lambda: calls[f"{token}:arrived"] == 2, "the second run takes the freed slot")
        assert first_run.result(poll_interval=3600.0) == "1:a"
        engine.send(second_run.workflow_id, "b", topic="wake")
        assert second_run.result(poll_interval=3600.0) == "2:b"


def test_a_recorded_end_polls_only_the_queue_whose_slot_it_frees(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: a queue's poll is a few queries (more on a keyed queue), so the end of a
    run this process enqueued polls only that run's queue, and the end of a run it
    started on no queue (a print job's own workflow) polls none. The fallbacks that
    would look by polling are an hour away, so only the recorded ends wake here."""
    monkeypatch.setattr(waker, "_ENDING_CHECKS", (3600.0,))
    monkeypatch.setattr(waker, "_QUEUE_FALLBACK_SECONDS", 3600.0)
    token = _token()
    with tasks.TaskEngine(settings) as engine:
        current = waker.Waker.current
        assert current is not None and {"test-waiters", "test-keyed"} <= set(current._nudges)
        polled: list[str] = []
        for name, nudge in current._nudges.items():

            def counted(name: str = name, original: Any = nudge.nudge) -> None:
                polled.append(name)
                original()

            monkeypatch.setattr(nudge, "nudge", counted)
        parent = engine.start(await_child, workflow_id=f"parent-{token}-0")(token, 0, "solo")
        _until(lambda: calls[f"{token}:arrived"] == 1, "the child runs and waits")
        assert polled == ["test-waiters"]  # its enqueue
        engine.send(f"child-{token}-0", "m", topic="wake")
        # The child's end polls its queue before it wakes the parent; the parent's end
        # would poll before `result()` returns.
        assert parent.result(poll_interval=3600.0) == "0:m"
        assert polled == ["test-waiters", "test-waiters"]
        assert not current._queue_of  # both ends found what they were started on


def test_waiting_async_workflows_hold_no_thread_and_wake_on_their_message(
    tmp_path: Path, task_db_url: str | None
) -> None:
    """Issue 13: 50 async workflows wait for a message, 50 more wait their turn on a keyed
    queue behind them, and 100 parents await their results: the process has no more
    threads than with nothing waiting, but for the bounded pool their steps run on (a
    sync workflow holds one thread each while it waits: 150 more here). Each message,
    sent through the engine or straight through DBOS, still wakes its workflow, and a
    finished child frees its key for the next."""
    from dbos import DBOS

    settings = _settings(tmp_path / "var", task_db_url, workflow_pool_size=4)
    token, keys = _token(), 50
    with tasks.TaskEngine(settings) as engine:
        warm = engine.start(await_child_async, workflow_id=f"aparent-{token}-warm")
        warm(token, -1, "warm")
        _until(lambda: calls[f"{token}:arrived"] == 1, "the warm-up child waits")
        engine.send(f"achild-{token}--1", "w", topic="wake")
        assert engine.handle(f"aparent-{token}-warm").result() == "-1:w"
        idle = threading.active_count()

        parents = [
            engine.start(await_child_async, workflow_id=f"aparent-{token}-{n}")(
                token, n, f"k{n % keys}"
            )
            for n in range(2 * keys)
        ]

        def running(n: int) -> bool:
            status = engine.get_status(f"achild-{token}-{n}")
            return status is not None and status.state == "PENDING"

        def enqueued() -> int:
            states = [engine.get_status(f"achild-{token}-{n}") for n in range(2 * keys)]
            return sum(1 for s in states if s is not None and s.state == "ENQUEUED")

        _until(lambda: calls[f"{token}:arrived"] == 1 + keys, "the first child of each key waits")
        _until(lambda: enqueued() == keys, "the second child of each key waits its turn")
        loaded = threading.active_count()
        assert loaded - idle <= settings.workflow_pool_size + 2, (idle, loaded)

        first = [n for n in range(2 * keys) if running(n)]
        assert len(first) == keys
        for n in first:
            if n % 2:
                engine.send(f"achild-{token}-{n}", f"m{n}", topic="wake")
            else:
                DBOS.send(f"achild-{token}-{n}", f"m{n}", "wake")  # not announced here
        _until(lambda: calls[f"{token}:arrived"] == 1 + 2 * keys, "the second child runs")
        assert threading.active_count() - idle <= settings.workflow_pool_size + 2
        for n in set(range(2 * keys)) - set(first):
            engine.send(f"achild-{token}-{n}", f"m{n}", topic="wake")
        results = sorted(p.result() for p in parents)
        assert results == sorted(f"{n}:m{n}" for n in range(2 * keys))


def test_an_async_workflows_step_is_retried_and_checkpointed(engine: tasks.TaskEngine) -> None:
    token = _token()
    handle = engine.start(call_flaky, workflow_id=f"flaky-{token}")
    assert handle(token).result() == "ok"
    assert calls[f"{token}:flaky"] == 3  # two failures, retried, then its result
    # started again under its id, it is not run again: the recorded result is its answer
    assert engine.start(call_flaky, workflow_id=f"flaky-{token}")(token).result() == "ok"
    assert calls[f"{token}:flaky"] == 3


def test_a_message_nobody_announced_is_found_by_the_sweep(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waker's safety net: a message written behind its back (no local send, and on
    SQLite no message watch) still wakes its workflow, by the one sweep over all waiters."""
    from dbos import DBOS

    monkeypatch.setattr(waker, "_MESSAGE_WATCH_SECONDS", 3600.0)
    monkeypatch.setattr(waker, "_MESSAGE_SWEEP_SECONDS", 0.5)
    token = _token()
    with tasks.TaskEngine(settings) as engine:
        handle = engine.start(wait_for_message, workflow_id=f"lone-{token}")(token, 1)
        _until(lambda: calls[f"{token}:arrived"] == 1, "the workflow waits")
        DBOS.send(f"lone-{token}", "found", "wake")
        assert handle.result() == "1:found"


def test_runtime_schedule_fires(engine: tasks.TaskEngine, tmp_path: Path) -> None:
    marker = tmp_path / "ticks"
    engine.set_schedule("test-every-second", on_tick, "* * * * * *", context=str(marker))
    deadline = time.monotonic() + 60
    while _lines(marker) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    engine.delete_schedule("test-every-second")
    assert _lines(marker) >= 1


def test_an_idle_engine_polls_no_queue_or_schedule_yet_a_new_schedule_fires(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: DBOS's queue thread (the queue table every second), its internal queue's
    worker (every second) and its schedule thread (every second for a minute) send
    nothing while the engine is idle; a schedule set at run time is read at once and its
    ticks, enqueued on DBOS's internal queue, start at once: the fallback polls are
    pushed out of the test's reach here, so only the wake-ups can make it fire."""
    import sqlalchemy as sa
    from sqlalchemy import event

    monkeypatch.setattr(waker, "_QUEUE_FALLBACK_SECONDS", 3600.0)
    monkeypatch.setattr(waker, "_SCHEDULES_POLL_SECONDS", 3600.0)
    pollers = ("queue_thread", "scheduler_loop", "queue-worker-_dbos_internal_queue")
    polled: Counter[str] = Counter()

    def count(*_: Any) -> None:
        name = threading.current_thread().name
        if any(p in name for p in pollers):
            polled[name] += 1

    with tasks.TaskEngine(settings) as engine:
        time.sleep(2.0)  # deliberate: the reads at launch are not counted
        event.listen(sa.engine.Engine, "before_cursor_execute", count)
        try:
            time.sleep(3.0)
        finally:
            event.remove(sa.engine.Engine, "before_cursor_execute", count)
        assert not polled, polled
        marker = tmp_path / "ticks"
        engine.set_schedule("test-woken", on_tick, "* * * * * *", context=str(marker))
        _until(lambda: _lines(marker) >= 1, "a tick of the new schedule runs")
        engine.delete_schedule("test-woken")


def test_a_bell_rings_in_every_process_once_its_transaction_commits(
    engine: tasks.TaskEngine, settings: Settings
) -> None:
    """`tasks.ring` in a transaction of the app's database, through a connection of its
    own (as another process would), wakes `tasks.listen`'s event through DBOS's LISTEN
    connection on PostgreSQL, once it commits and never when it rolls back. SQLite has no
    NOTIFY: `listen` says so, and the caller polls."""
    heard, other = threading.Event(), threading.Event()
    listening = [tasks.listen("test-bell", heard), tasks.listen("test-other", other)]
    if settings.database_url is None:
        assert listening == [False, False]
        return
    assert listening == [True, True]
    db = Database(settings.database_url)
    try:
        with db.sessions() as s:
            tasks.ring(s, "test-bell")
            s.rollback()
        with db.session() as s:
            tasks.ring(s, "test-other")
        assert other.wait(60)
        # NOTIFYs arrive in commit order: the rolled-back ring would have come first.
        assert not heard.is_set()
        with db.session() as s:
            tasks.ring(s, "test-bell")
        assert heard.wait(60)
    finally:
        tasks.unlisten("test-bell", heard)
        tasks.unlisten("test-other", other)
        db.dispose()


def test_engine_relaunches_in_one_process(settings: Settings) -> None:
    token = _token()
    first = tasks.TaskEngine(settings)
    first.launch()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            tasks.TaskEngine(settings).launch()
        assert first.start(add_then_double)(token, 0).result() == 2
    finally:
        first.shutdown()
    first.shutdown()  # idempotent
    with pytest.raises(RuntimeError, match="launch"):
        first.get_status("x")
    with tasks.TaskEngine(settings) as second:
        assert second.start(add_then_double)(token, 1).result() == 4


# -- durability: SIGKILL in a subprocess ---------------------------------------


def _spawn(mode: str, settings: Settings, markers: Path, workflow_id: str) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        __file__,
        mode,
        str(settings.data_dir),
        settings.database_url or "-",
        settings.worker_id or "-",
        str(markers),
        workflow_id,
    ]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _start_and_kill(
    settings: Settings, markers: Path, workflow_id: str, *, mode: str = "start"
) -> None:
    """Run the crash workflow in a child and SIGKILL it once step 1 is checkpointed."""
    child = _spawn(mode, settings, markers, workflow_id)
    try:
        # A deadline means "stuck": a loaded machine takes seconds to start a child.
        deadline = time.monotonic() + 120
        # Step 2 starts only after step 1's result is written.
        while _lines(markers / "step2.started") == 0:
            if child.poll() is not None or time.monotonic() > deadline:
                _, err = child.communicate(timeout=60)
                pytest.fail(f"child did not reach step 2 (rc={child.returncode}):\n{err}")
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert _lines(markers / "step1") == 1
    assert _lines(markers / "step2.done") == 0


@pytest.mark.parametrize("mode", ["start", "start-async"])
def test_killed_workflow_resumes_on_relaunch_without_redoing_step_one(
    settings: Settings, tmp_path: Path, mode: str
) -> None:
    """A sync workflow, and an async one whose steps run through `tasks.call`."""
    markers = tmp_path / "markers"
    markers.mkdir()
    workflow_id = f"crash-{_token()}"
    _start_and_kill(settings, markers, workflow_id, mode=mode)

    (markers / "release").touch()
    child = _spawn("resume", settings, markers, workflow_id)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.strip() == "21"
    assert _lines(markers / "step1") == 1  # not re-run
    assert _lines(markers / "step2.started") == 2  # interrupted, then run again
    assert _lines(markers / "step2.done") == 1


def test_live_executor_recovers_a_dead_ones_workflows(
    tmp_path: Path, task_db_url: str | None
) -> None:
    data_dir = tmp_path / "var"
    dead = _settings(data_dir, task_db_url, distributed=True, worker_id="worker-a")
    live = _settings(data_dir, task_db_url, distributed=True, worker_id="worker-b")
    markers = tmp_path / "markers"
    markers.mkdir()
    workflow_id = f"crash-{_token()}"
    _start_and_kill(dead, markers, workflow_id)

    (markers / "release").touch()
    with tasks.TaskEngine(live) as engine:
        with pytest.raises(ValueError, match="this one"):
            engine.recover_pending(["worker-b"])
        assert engine.recover_pending(["worker-a"]) == [workflow_id]
        assert engine.handle(workflow_id).result() == 21
        assert engine.recover_pending(["worker-a"]) == []  # nothing left to take over
        status = engine.get_status(workflow_id)
        assert status is not None
        assert status.executor_id == "worker-b"
    assert _lines(markers / "step1") == 1
    assert _lines(markers / "step2.done") == 1


def test_a_survivor_takes_over_by_itself_when_the_dead_ones_lease_expires(
    tmp_path: Path, task_db_url: str | None
) -> None:
    """No operator call: the dead executor held a lease; the live one notices it
    expired, claims it and recovers its workflow, which resumes after step one."""
    data_dir = tmp_path / "var"
    dead = _settings(data_dir, task_db_url, distributed=True, worker_id="worker-a")
    live = _settings(
        data_dir, task_db_url, distributed=True, worker_id="worker-b", executor_lease=1.0
    )
    markers = tmp_path / "markers"
    markers.mkdir()
    workflow_id = f"crash-{_token()}"
    _start_and_kill(dead, markers, workflow_id, mode="start-leased")

    (markers / "release").touch()
    db = Database(live.effective_database_url)
    try:
        with tasks.TaskEngine(live, db=db) as engine:
            assert engine.handle(workflow_id).result() == 21
            assert engine.lease is not None
            assert [dead_id for dead_id, _ in engine.lease.takeovers] == ["worker-a"]
            status = engine.get_status(workflow_id)
            assert status is not None and status.executor_id == "worker-b"
        leases = {lease.executor_id: lease for lease in ExecutorLease.leases(db, scope="embedded")}
        assert leases["worker-a"].state == "taken_over"
        assert leases["worker-a"].taken_over_by == "worker-b"
        assert leases["worker-a"].recovered == 1
        assert leases["worker-b"].state == "stopped"
    finally:
        db.dispose()
    assert _lines(markers / "step1") == 1  # the finished step did not run again
    assert _lines(markers / "step2.done") == 1


def _child(argv: list[str]) -> None:
    mode, data_dir, url, worker, markers, wfid = argv
    settings = Settings(
        data_dir=Path(data_dir),
        database_url=None if url == "-" else url,
        worker_id=None if worker == "-" else worker,
        distributed=worker != "-",
        log_level="WARNING",
    )
    db = None
    if mode == "start-leased":
        db = Database(settings.effective_database_url)
        migrate(db, "printcloud:migrations")
        mode = "start"
    with tasks.TaskEngine(settings, db=db) as engine:
        if mode == "start":
            handle = engine.start(crash_workflow, workflow_id=wfid)(markers)
        elif mode == "start-async":
            handle = engine.start(crash_workflow_async, workflow_id=wfid)(markers)
        else:  # "resume": this executor's launch recovered the workflow
            handle = engine.handle(wfid)
        print(handle.result())  # noqa: T201


if __name__ == "__main__":
    _child(sys.argv[1:])


def test_the_latest_version_answer_is_remembered_a_few_seconds(engine: tasks.TaskEngine) -> None:
    """Issue 13: DBOS asks whether this executor runs the latest application version on
    every claim of every queue partition; the answer is read once and then kept for
    `_LATEST_VERSION_SECONDS`, and it is the database's answer."""
    from dbos._dbos import _get_dbos_instance
    from sqlalchemy import event

    sys_db = _get_dbos_instance()._sys_db
    sys_db.__dict__.pop("_latest_memo", None)  # whatever the queues asked before
    seen: list[str] = []
    me = threading.get_ident()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # only this thread's queries: the queues' pollers ask too, from their own threads
        if "application_versions" in statement and threading.get_ident() == me:
            seen.append(statement)

    event.listen(sys_db.engine, "before_cursor_execute", count)
    try:
        answers = [sys_db._is_latest_version(engine.app_version) for _ in range(5)]
    finally:
        event.remove(sys_db.engine, "before_cursor_execute", count)
    assert answers == [True] * 5  # one release registered: this one
    # at most once (none if a queue's poller had just asked), not once per call
    assert len(seen) <= 1, seen
    remembered, until = sys_db.__dict__["_latest_memo"][engine.app_version]
    assert remembered is True
    assert 0 < until - time.monotonic() <= waker._LATEST_VERSION_SECONDS


def test_a_restarted_schedule_backfills_up_to_the_moment_its_thread_starts() -> None:
    """A tick that fell due while DBOS enqueued a schedule's backfill was in neither the
    backfill's window (it ends at a `now` read before the writes) nor the thread's (from a
    `now` read after them): a schedule restarted after a crash lost one tick. The
    backfill goes on from where it stopped until a pass finds nothing due."""
    from croniter import croniter

    windows: list[tuple[datetime, datetime]] = []

    def dbos_backfill(_sys_db: Any, _name: str, start: datetime, end: datetime) -> list[str]:
        """DBOS's enumeration: the every-second ticks after `start` and before `end`."""
        windows.append((start, end))
        it = croniter("* * * * * *", start, second_at_beginning=True)
        ids = []
        while (tick := it.get_next(datetime)) < end:
            ids.append(f"sched-s-{tick.isoformat()}")
        return ids

    now = datetime.now(UTC).replace(microsecond=0)
    last_fired = now - timedelta(seconds=10)
    # The first pass's end as DBOS read it, 3 s before the writes ended (a busy machine).
    first_end = now - timedelta(seconds=3)
    ids = waker._backfill_to_now(dbos_backfill)(None, "s", last_fired, first_end)
    ticks = sorted(datetime.fromisoformat(i.removeprefix("sched-s-")) for i in ids)
    assert len(ticks) == len(set(ticks)), "a tick enqueued twice"
    assert ticks[0] == last_fired + timedelta(seconds=1)
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(ticks)}
    assert gaps == {1.0}, ticks  # first_end's own tick included, none skipped
    assert ticks[-1] >= now - timedelta(seconds=1)  # up to the last pass's `now`
    assert windows[-1][1] > first_end  # it went on past DBOS's own end
    assert waker._backfill_to_now(dbos_backfill).to_now is True
