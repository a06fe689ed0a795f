"""Durable work: workflows, steps, queues and schedules, on DBOS Transact.

This is the only module that imports `dbos` (DESIGN, "Why these dependencies").
Services declare their work at import time with the decorators below and start
it through the `TaskEngine` that their app factory is handed::

    from printcloud.core import tasks

    PRINT_JOBS = tasks.queue("print-jobs", per_key_concurrency=1)

    @tasks.step(retries=3)
    def render(job_id: str) -> str: ...

    @tasks.workflow()
    def print_job(tenant_id: str, job_id: str) -> str:
        return send(render(job_id))

    engine.enqueue(PRINT_JOBS, print_job, key=tenant_id, workflow_id=f"job-{job_id}")(
        tenant_id, job_id
    )

A workflow's finished steps are checkpointed in the system database; when its
process dies, the workflow resumes from the first unfinished step. DBOS's rules,
which every caller must keep:

- Each executor needs a unique, stable id (`PRINTCLOUD_WORKER_ID`, required in
  distributed mode). Two live executors sharing one id run each other's
  workflows twice. An executor recovers its own pending workflows when it
  launches; a dead executor's are taken over only when a live one is told to,
  with `TaskEngine.recover_pending([...dead ids])` — which an engine given the
  database does by itself when the dead one's lease expires (`core.executors`).
- The application version is pinned to `printcloud.__version__`. Executors only
  recover workflows started by the same version, so an upgrade leaves older
  pending work in place, visibly, rather than replaying it on changed code;
  drain before upgrading or recover it with the old release.
- Side effects belong in steps, never in the workflow body: the body is
  replayed on recovery and must be deterministic (same steps, same order).
- Steps run at least once (a crash after a step's effect and before its
  checkpoint re-runs it), so they must be idempotent.
- Queues and schedules are named `<service>.<name>`: a process that runs one
  service creates only its own (`TaskEngine.owns`).
- A workflow's name is its durable address: it defaults to
  `<module>.<qualname>`, so moving or renaming a function orphans its pending
  runs unless the old name is kept with `name=`.

Databases. DBOS keeps its state in a *system database*, separate from the
tables Alembic manages:

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

Waiting costs nothing. A workflow waiting in `recv`, a `TaskHandle.result()` and a
queue are woken by events through one thread per process (`_Waker`), not polled
per waiter: DBOS's per-waiter pollers are turned off or slowed down, and the
figures are in `bench/idle_cost.py` and docs/printing.md ("Waiting costs nothing").
This leans on a few DBOS internals (named where they are used); the tests in
tests/core/test_tasks.py that count statements per waiting workflow fail if a DBOS
upgrade changes them.

One engine per process. DBOS is a process-wide singleton (its registry of
workflows, its threads, its global executor id and version), so a second
`TaskEngine` may only be launched after the first one's `shutdown()`, which
calls `DBOS.destroy()` but keeps the registry: workflows are declared once, at
import, and survive any number of launch/shutdown cycles, as tests need.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar

from dbos import (
    DBOS,
    DBOSConfig,
    ScheduleInput,
    SetEnqueueOptions,
    SetWorkflowID,
    WorkflowHandle,
    WorkflowStatus,
)
from dbos import error as dbos_error
from sqlalchemy.engine import make_url

from printcloud import __version__
from printcloud.core.db import Database, normalise_url
from printcloud.core.errors import Conflict, NotFound
from printcloud.core.executors import ExecutorLease
from printcloud.core.settings import Settings

__all__ = [
    "SYSTEM_SCHEMA",
    "ScheduledWorkflow",
    "TaskEngine",
    "TaskHandle",
    "TaskQueue",
    "TaskStatus",
    "queue",
    "recv",
    "scheduled",
    "sleep",
    "step",
    "workflow",
]

P = ParamSpec("P")
R = TypeVar("R")

APP_NAME = "printcloud"
#: The PostgreSQL schema holding DBOS's tables (in the app's database).
SYSTEM_SCHEMA = "dbos"
SQLITE_FILE = "dbos.sqlite3"

#: A scheduled workflow receives its scheduled time (UTC) and its schedule's context.
ScheduledWorkflow = Callable[[datetime, Any], None]


# -- declarations (import time, no engine needed) ---------------------------


def workflow(
    *, name: str | None = None, max_recovery_attempts: int | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a durable workflow. Its body must be deterministic; effects go in steps.

    `max_recovery_attempts` bounds how often a workflow that keeps killing its
    process is retried before it is parked (DBOS's default: 100).
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        wf_name = name or _default_name(func)

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            finally:
                # A hint, not an effect: whoever waits for this run (a parent's
                # `result()`, a queue slot) looks again once DBOS has recorded its end.
                _Waker.ending(DBOS.workflow_id)

        if max_recovery_attempts is None:
            return DBOS.workflow(name=wf_name)(run)
        return DBOS.workflow(name=wf_name, max_recovery_attempts=max_recovery_attempts)(run)

    return decorate


def step(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_interval: float = 1.0,
    backoff: float = 2.0,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a step: its result is checkpointed, so a resumed workflow skips it.

    It runs at least once, so it must be idempotent. An exception is retried
    `retries` times, `retry_interval` seconds apart, growing by `backoff`.
    """
    if retries < 0:
        raise ValueError("retries must be >= 0")

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        return DBOS.step(
            name=name or _default_name(func),
            retries_allowed=retries > 0,
            max_attempts=retries + 1,
            interval_seconds=retry_interval,
            backoff_rate=backoff,
        )(func)

    return decorate


@dataclass(frozen=True)
class TaskQueue:
    """A durable queue, declared at import with `queue()` and created at launch.

    `concurrency` caps the queue's running workflows across all executors,
    `worker_concurrency` per executor, and `per_key_concurrency` per key (a
    tenant, a printer) across all executors; a queue with a per-key limit needs
    a `key` on every enqueue. Executors look for work every `poll_interval`
    seconds.
    """

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    per_key_concurrency: int | None = None
    poll_interval: float = 1.0

    @property
    def keyed(self) -> bool:
        return self.per_key_concurrency is not None


_queues: dict[str, TaskQueue] = {}
_schedules: dict[str, ScheduleInput] = {}
_declarations_lock = threading.Lock()


def queue(
    name: str,
    *,
    concurrency: int | None = None,
    worker_concurrency: int | None = None,
    per_key_concurrency: int | None = None,
    poll_interval: float = 1.0,
) -> TaskQueue:
    """Declare a queue (created, or its limits updated, when an engine launches)."""
    declared = TaskQueue(name, concurrency, worker_concurrency, per_key_concurrency, poll_interval)
    with _declarations_lock:
        existing = _queues.setdefault(name, declared)
    if existing != declared:
        raise ValueError(f"queue {name!r} is already declared with other limits: {existing}")
    return declared


def scheduled(
    cron: str,
    *,
    name: str | None = None,
    backfill: bool = False,
    timezone: str | None = None,
    queue: TaskQueue | None = None,
) -> Callable[[ScheduledWorkflow], ScheduledWorkflow]:
    """Declare a workflow run on a cron schedule (6 fields allowed: seconds first).

    The schedule is written when an engine launches; every executor writes the
    same one, and each tick runs once across all of them. With `backfill`,
    ticks missed while no executor ran are run once each on the next launch.
    For per-tenant schedules created at run time, use `TaskEngine.set_schedule`
    (above a few hundred, prefer one dispatcher schedule that fans out).
    """

    def decorate(func: ScheduledWorkflow) -> ScheduledWorkflow:
        wf_name = name or _default_name(func)
        wrapped = DBOS.workflow(name=wf_name)(func)
        entry = _schedule_input(
            wf_name, wrapped, cron, context=None, backfill=backfill, timezone=timezone, on=queue
        )
        with _declarations_lock:
            _schedules[wf_name] = entry
        return wrapped

    return decorate


# -- messages between the outside world and a running workflow --------------


def recv(*, topic: str, timeout: float) -> Any:
    """Inside a workflow: wait up to `timeout` seconds for a message on `topic`
    (None on timeout). Durable: a resumed workflow gets the same answer."""
    return DBOS.recv(topic, timeout_seconds=timeout)


def sleep(seconds: float) -> None:
    """Inside a workflow: a durable sleep (a resumed workflow sleeps only what is left)."""
    DBOS.sleep(seconds)


# -- results ----------------------------------------------------------------


@dataclass(frozen=True)
class TaskStatus:
    """A workflow's recorded state.

    `state` is one of DELAYED, ENQUEUED, PENDING, SUCCESS, ERROR, CANCELLED or
    MAX_RECOVERY_ATTEMPTS_EXCEEDED.
    """

    workflow_id: str
    state: str
    name: str
    queue: str | None
    executor_id: str | None
    app_version: str | None
    created_at: datetime | None
    updated_at: datetime | None
    error: str | None

    @property
    def done(self) -> bool:
        return self.state in {"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}


class TaskHandle(Generic[R]):
    """A started or enqueued workflow."""

    def __init__(self, handle: WorkflowHandle[R]) -> None:
        self._handle = handle

    @property
    def workflow_id(self) -> str:
        return self._handle.get_workflow_id()

    def result(self, *, poll_interval: float = 1.0) -> R:
        """Wait for the workflow and return its result (or raise its exception).

        No polling per handle: a run that ends in this process wakes its waiters at
        once; one that ends in another process is seen by this process's one sweep
        of every awaited workflow, at most `poll_interval` seconds later."""
        waker = _Waker.current
        if waker is not None:
            waker.until_done(self._handle.get_workflow_id(), poll_interval)
        return self._handle.get_result(polling_interval_sec=poll_interval)

    def status(self) -> TaskStatus:
        return _status(self._handle.get_status())


# -- the engine ---------------------------------------------------------------

_running_lock = threading.Lock()


class TaskEngine:
    """DBOS configured from `Settings`: `launch()` at start, `shutdown()` at stop.

    Constructing it has no side effect beyond checking the settings (the worker
    id is required in distributed mode); `launch()` connects, migrates DBOS's
    tables, recovers this executor's pending workflows and starts the queue and
    schedule threads.
    """

    #: The launched engine of this process, if any (DBOS allows one).
    _running: ClassVar[TaskEngine | None] = None

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """With `db`, the engine holds an executor lease there and takes over the
        workflows of executors of its scope whose lease expired (`core.executors`);
        `on_lost` runs when this executor finds its own lease taken (default: the
        process exits at once, for its supervisor to start it afresh)."""
        self.executor_id = settings.require_worker_id()
        self.scope = settings.service or "embedded"
        self._db = db
        self._lease_seconds = settings.executor_lease
        self._on_lost = on_lost or _exit_fenced
        self.lease: ExecutorLease | None = None
        self._limits: dict[str, TaskQueue] = {}
        self.app_version = __version__
        self.system_database_url, self.system_schema = system_database(settings)
        self._config: DBOSConfig = {
            "name": APP_NAME,
            "system_database_url": self.system_database_url,
            "application_version": self.app_version,
            "executor_id": self.executor_id,
            "log_level": settings.log_level.upper(),
            "sys_db_pool_size": settings.workflow_pool_size,
        }
        if self.system_schema is not None:
            self._config["dbos_system_schema"] = self.system_schema
            # DBOS's notifier thread pushes the NOTIFYs of events and streams (messages have
            # their own trigger), waking every 10 ms by default; we use neither.
            self._config["notification_coalesce_sec"] = 0.5
        self._data_dir = settings.data_dir
        self._launched = False
        self._waker: _Waker | None = None

    # lifecycle

    def launch(self) -> None:
        with _running_lock:
            if TaskEngine._running is not None:
                raise RuntimeError(
                    "a TaskEngine is already running in this process (DBOS is a singleton); "
                    "shut it down first"
                )
            if self.system_schema is None:
                self._data_dir.mkdir(parents=True, exist_ok=True)
            _route_dbos_logs()
            _quiet_dbos_pollers()
            DBOS(config=self._config)
            # Our queues are polled by the waker's workers, which a new enqueue or a
            # finished run wakes at once; DBOS's own queue thread keeps its internal ones.
            DBOS.listen_queues([])
            try:
                with _one_launch_at_a_time(self.system_database_url, self.system_schema):
                    DBOS.launch()
                with _declarations_lock:
                    queues = [q for q in _queues.values() if self.owns(q.name)]
                    schedules = [x for x in _schedules.values() if self.owns(x["schedule_name"])]
                for declared in queues:
                    _register_queue(self._limits.get(declared.name, declared))
                self._waker = _Waker.start(
                    [self._limits.get(q.name, q) for q in queues], schema=self.system_schema
                )
                if schedules:
                    DBOS.apply_schedules(schedules)
            except BaseException:
                if self._waker is not None:
                    self._waker.stop()
                    self._waker = None
                DBOS.destroy()
                raise
            TaskEngine._running = self
            self._launched = True
        if self._db is not None:
            self.lease = ExecutorLease(
                self._db,
                scope=self.scope,
                executor_id=self.executor_id,
                lease_seconds=self._lease_seconds,
                recover=self.recover_pending,
                on_lost=self._on_lost,
            )
            self.lease.start()

    def owns(self, name: str) -> bool:
        """Whether this engine creates the declared queue or schedule `name`: all of them
        embedded; one service's (`<service>.…`) when the process runs one service —
        every module is imported everywhere, but a CRM executor must not poll the print
        queues or run the print service's sweep."""
        return self.scope == "embedded" or name.startswith(f"{self.scope}.")

    def tune(self, on: TaskQueue, **limits: int | float | None) -> None:
        """Set a declared queue's limits from settings, before `launch()`:
        `engine.tune(QUEUE, per_key_concurrency=settings.tenant_concurrency)`."""
        if self._launched:
            raise RuntimeError("tune queues before launch()")
        tuned = replace(self._limits.get(on.name, on), **limits)  # type: ignore[arg-type]
        if tuned.keyed != on.keyed:
            raise ValueError(f"queue {on.name!r}: a per-key limit cannot be added or removed")
        self._limits[on.name] = tuned

    def shutdown(self, *, wait_seconds: int = 0) -> None:
        """Stop DBOS, first waiting up to `wait_seconds` for running workflows.

        Workflows still running are left PENDING and resume on this executor's
        next launch (or on another's `recover_pending`).
        """
        if self.lease is not None:
            self.lease.stop()
            self.lease = None
        with _running_lock:
            if not self._launched:
                return
            try:
                if self._waker is not None:
                    self._waker.stop()
                    self._waker = None
                DBOS.destroy(workflow_completion_timeout_sec=wait_seconds)
            finally:
                self._launched = False
                TaskEngine._running = None

    def __enter__(self) -> TaskEngine:
        self.launch()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    # starting work

    def start(
        self, func: Callable[P, R], *, workflow_id: str | None = None
    ) -> Callable[P, TaskHandle[R]]:
        """Start `func` in the background: `engine.start(wf, workflow_id=…)(*args)`.

        Starting again with a `workflow_id` already used does not run it again:
        the handle is the existing run's (`Conflict` if that run is another workflow).
        """
        self._check_launched()

        def call(*args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
            with _options(workflow_id, None):
                return TaskHandle(DBOS.start_workflow(func, *args, **kwargs))

        return call

    def enqueue(
        self,
        on: TaskQueue,
        func: Callable[P, R],
        *,
        key: str | None = None,
        workflow_id: str | None = None,
    ) -> Callable[P, TaskHandle[R]]:
        """Enqueue `func` on a declared queue: `engine.enqueue(q, wf, key=…)(*args)`.

        `key` is the per-key concurrency key (required on a keyed queue, refused
        on others). The same `workflow_id` is enqueued once.
        """
        self._check_launched()
        if on.keyed and key is None:
            raise ValueError(f"queue {on.name!r} has a per-key limit: enqueue with a key")
        if not on.keyed and key is not None:
            raise ValueError(f"queue {on.name!r} has no per-key limit: enqueue without a key")

        def call(*args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
            with _options(workflow_id, key):
                handle = TaskHandle(DBOS.enqueue_workflow(on.name, func, *args, **kwargs))
            if self._waker is not None:
                self._waker.nudge(on.name)
            return handle

        return call

    # schedules created at run time (per tenant, say)

    def set_schedule(
        self,
        name: str,
        func: ScheduledWorkflow,
        cron: str,
        *,
        context: Any = None,
        backfill: bool = False,
        timezone: str | None = None,
        queue: TaskQueue | None = None,
    ) -> None:
        """Create or replace schedule `name` running workflow `func(time, context)`."""
        self._check_launched()
        DBOS.apply_schedules(
            [
                _schedule_input(
                    name,
                    func,
                    cron,
                    context=context,
                    backfill=backfill,
                    timezone=timezone,
                    on=queue,
                )
            ]
        )

    def delete_schedule(self, name: str) -> None:
        self._check_launched()
        DBOS.delete_schedule(name)

    # observing and recovering

    def get_status(self, workflow_id: str) -> TaskStatus | None:
        self._check_launched()
        status = DBOS.get_workflow_status(workflow_id)
        return None if status is None else _status(status)

    def send(self, workflow_id: str, message: Any, *, topic: str) -> None:
        """Send `message` to workflow `workflow_id` on `topic` (it `recv`s it); durable:
        sent before the workflow waits, it is kept until it does."""
        self._check_launched()
        try:
            DBOS.send(workflow_id, message, topic)
        except dbos_error.DBOSNonExistentWorkflowError as exc:
            raise NotFound(f"no workflow {workflow_id!r}") from exc
        if self._waker is not None:
            self._waker.sent(workflow_id, topic)

    def handle(self, workflow_id: str) -> TaskHandle[Any]:
        """A handle on an existing workflow, to wait for its result (`NotFound` if none)."""
        self._check_launched()
        try:
            return TaskHandle(DBOS.retrieve_workflow(workflow_id))
        except dbos_error.DBOSNonExistentWorkflowError as exc:
            raise NotFound(f"no workflow {workflow_id!r}") from exc

    def recover_pending(self, executor_ids: Sequence[str]) -> list[str]:
        """Take over the pending workflows of dead executors; returns their ids.

        Only name executors known to be dead: a live one's running workflows
        would be run a second time. Each workflow goes back on its queue and
        resumes after its last finished step on whichever executor dequeues it;
        repeating the call is harmless. Only workflows of this app version are
        recovered.
        """
        self._check_launched()
        if self.executor_id in executor_ids:
            raise ValueError(
                f"executor {self.executor_id!r} is this one: it recovers its own at launch"
            )
        # DBOS's recovery entry point (what its admin endpoint and Conductor call):
        # re-enqueues atomically, so duplicate recoveries cannot run a workflow twice.
        handles = DBOS._recover_pending_workflows(list(executor_ids))
        if self._waker is not None:
            self._waker.nudge()
        return [h.get_workflow_id() for h in handles]

    def _check_launched(self) -> None:
        if not self._launched:
            raise RuntimeError("TaskEngine.launch() has not been called")


# -- waking what waits ---------------------------------------------------------------------

#: DBOS re-reads the database for each waiting `recv` this often, as a fallback behind its
#: listener; the waker's one sweep per process does that job instead.
_RECHECK_SECONDS = 24 * 3600.0
#: The waker's sweep of every waiting `recv` of this process, in one query: a safety net
#: behind PostgreSQL's NOTIFY and the SQLite message watch (`_Waker`).
_MESSAGE_SWEEP_SECONDS = 60.0
#: SQLite: how often the waker looks for messages another process sent (one query).
_MESSAGE_WATCH_SECONDS = 1.0
#: DBOS's background jobs (delayed workflows, timeouts: unused here) run this often.
_BACKGROUND_JOBS_SECONDS = 10.0
#: The looks at awaited runs' status, each one query for all that are due, are this far apart.
_SWEEP_GAP_SECONDS = 1.0
#: A queue with nothing announced is polled this often (work enqueued by another process).
_QUEUE_FALLBACK_SECONDS = 30.0
#: After a run says it ends, its recorded end is looked for at these delays (seconds).
_ENDING_CHECKS = (0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
_ACTIVE_STATES = ("PENDING", "ENQUEUED", "DELAYED")


class _Nudge(threading.Event):
    """The event DBOS's queue worker waits on between polls, made wakeable.

    DBOS's worker stops when its event is set and otherwise polls every interval.
    Here `set()` still stops it, while `nudge()` only ends its current wait: it
    polls now (though not more often than the queue's own interval), and without a
    nudge it polls every `_QUEUE_FALLBACK_SECONDS`."""

    def __init__(self) -> None:
        super().__init__()
        self._poke = threading.Event()
        self._poke.set()  # one poll at start: work left by a previous run

    def nudge(self) -> None:
        self._poke.set()

    def set(self) -> None:
        super().set()
        self._poke.set()

    def wait(self, timeout: float | None = None) -> bool:
        # `timeout` is DBOS's interval (the declared one, longer under contention).
        if super().wait(timeout):
            return True
        self._poke.wait(_QUEUE_FALLBACK_SECONDS)
        self._poke.clear()
        return self.is_set()


class _Waker:
    """Wakes waiting workflows and queues by events, one thread per process.

    What DBOS does by polling per waiter, done once per process:

    - a `recv` waits on DBOS's in-memory event. A message sent through
      `TaskEngine.send` in this process sets it at once. On PostgreSQL, DBOS's
      LISTEN/NOTIFY sets it for messages sent elsewhere; on SQLite (no NOTIFY),
      one query a second over the messages written since the last one does.
      DBOS's own per-waiter polling is turned off (`_quiet_dbos_pollers`,
      `_RECHECK_SECONDS`); one query a minute over every waiter is the safety net;
    - `TaskHandle.result()` waits on an event set when the run's end is recorded:
      a run of this process says when it ends (`workflow()`), and the waker reads
      its status until the end is recorded; runs of other processes are found by
      one query a second at most over the awaited runs due for a look (each
      every `poll_interval` of its `result()`);
    - a declared queue is polled when this process enqueues on it, when one of
      its runs ends here (a slot is free) or when dead executors' work is
      recovered, else every `_QUEUE_FALLBACK_SECONDS`.

    So the cost of waiting does not grow with the number of waiting workflows.
    """

    current: ClassVar[_Waker | None] = None

    def __init__(self, schema: str | None) -> None:
        from dbos._dbos import _get_dbos_instance

        self._dbos = _get_dbos_instance()
        self._sys_db = self._dbos._sys_db
        self._sqlite = schema is None
        self._cond = threading.Condition()
        self._stopped = False
        self._awaited: dict[str, dict[threading.Event, float]] = {}
        self._due: dict[str, float] = {}  # next look at an awaited run's status
        self._ending: dict[str, tuple[float, int]] = {}
        self._nudges: dict[str, _Nudge] = {}
        self._threads: list[threading.Thread] = []
        self._mark = 0

    @classmethod
    def start(cls, queues: Sequence[TaskQueue], *, schema: str | None) -> _Waker:
        from dbos._queue import queue_worker_thread

        waker = cls(schema)
        waker._sys_db._notification_fallback_polling_interval = _RECHECK_SECONDS
        if waker._sqlite:
            waker._mark = waker._newest_message()
        for declared in queues:
            queue = DBOS.retrieve_queue(declared.name)
            if queue is None:
                raise RuntimeError(f"queue {declared.name!r} missing after registration")
            nudge = _Nudge()
            waker._nudges[declared.name] = nudge
            waker._threads.append(
                threading.Thread(
                    target=queue_worker_thread,
                    args=(nudge, waker._dbos, queue),
                    name=f"queue-worker-{declared.name}",
                    daemon=True,
                )
            )
        waker._threads.append(threading.Thread(target=waker._run, name="tasks-waker", daemon=True))
        for thread in waker._threads:
            thread.start()
        cls.current = waker
        return waker

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            awaited = [e for events in self._awaited.values() for e in events]
            self._cond.notify_all()
        for nudge in self._nudges.values():
            nudge.set()
        for event in awaited:  # their `result()` falls back on DBOS's own wait
            event.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if _Waker.current is self:
            _Waker.current = None

    # events announced by this process

    @staticmethod
    def ending(workflow_id: str | None) -> None:
        waker = _Waker.current
        if waker is None or not workflow_id:
            return
        with waker._cond:
            waker._ending[workflow_id] = (time.monotonic() + _ENDING_CHECKS[0], 0)
            waker._cond.notify_all()

    def nudge(self, queue: str | None = None) -> None:
        for name, nudge in self._nudges.items():
            if queue is None or name == queue:
                nudge.nudge()

    def sent(self, workflow_id: str, topic: str | None) -> None:
        self._signal(workflow_id, topic)

    def until_done(self, workflow_id: str, poll_interval: float) -> None:
        """Return once the run's end is recorded (or the waker stops)."""
        event = threading.Event()
        with self._cond:
            if self._stopped:
                return
            interval = max(poll_interval, 0.01)
            self._awaited.setdefault(workflow_id, {})[event] = interval
            self._due[workflow_id] = min(
                self._due.get(workflow_id, float("inf")), time.monotonic() + interval
            )
            self._cond.notify_all()
        try:
            try:
                done = self._done([workflow_id])
            except Exception:  # the database is away: the waker's sweep looks again
                done = False
            if not done:
                event.wait()
        finally:
            with self._cond:
                events = self._awaited.get(workflow_id, {})
                events.pop(event, None)
                if not events:
                    self._awaited.pop(workflow_id, None)
                    self._due.pop(workflow_id, None)

    # the thread

    def _run(self) -> None:
        now = time.monotonic()
        last_sweep = now - _SWEEP_GAP_SECONDS
        next_messages = now + _MESSAGE_SWEEP_SECONDS
        next_watch = now + _MESSAGE_WATCH_SECONDS
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    due = [next_messages]
                    if self._sqlite:
                        due.append(next_watch)
                    if self._due:
                        due.append(max(min(self._due.values()), last_sweep + _SWEEP_GAP_SECONDS))
                    due.extend(at for at, _ in self._ending.values())
                    if min(due) <= now:
                        break
                    self._cond.wait(min(due) - now)
                if self._stopped:
                    return
                ending = [wid for wid, (at, _) in self._ending.items() if at <= now]
                swept: list[str] = []
                if now >= last_sweep + _SWEEP_GAP_SECONDS:
                    swept = [wid for wid, at in self._due.items() if at <= now]
                for wid in swept:
                    self._due[wid] = now + min(self._awaited.get(wid, {}).values(), default=1.0)
            try:
                if ending:
                    self._check_ending(ending)
                if swept:
                    last_sweep = now
                    self._wake_done(swept)
                if self._sqlite and next_watch <= now:
                    self._watch_messages()
                    next_watch = time.monotonic() + _MESSAGE_WATCH_SECONDS
                if next_messages <= now:
                    self._sweep_messages()
                    next_messages = time.monotonic() + _MESSAGE_SWEEP_SECONDS
            except Exception:  # the database may be away a while: try again, never die
                logging.getLogger("printcloud.tasks").warning("waker pass failed", exc_info=True)
                with self._cond:
                    self._cond.wait(1.0)

    def _check_ending(self, ids: list[str]) -> None:
        done = self._wake_done(ids)
        if done:
            self.nudge()  # a queue slot may be free
        with self._cond:
            now = time.monotonic()
            for wid in ids:
                _, attempt = self._ending.pop(wid, (0.0, 0))
                if wid in done or attempt + 1 >= len(_ENDING_CHECKS):
                    continue
                self._ending[wid] = (now + _ENDING_CHECKS[attempt + 1], attempt + 1)

    def _wake_done(self, ids: list[str]) -> set[str]:
        done = self._finished(ids)
        with self._cond:
            events = [e for wid in done for e in self._awaited.get(wid, {})]
        for event in events:
            event.set()
        return done

    def _done(self, ids: list[str]) -> bool:
        return set(ids) <= self._finished(ids)

    def _finished(self, ids: list[str]) -> set[str]:
        import sqlalchemy as sa

        status = self._sys_db.tables.workflow_status
        found: set[str] = set()
        for start in range(0, len(ids), 1000):
            query = sa.select(status.c.workflow_uuid, status.c.status).where(
                status.c.workflow_uuid.in_(ids[start : start + 1000])
            )
            with self._sys_db.engine.connect() as conn:
                rows = conn.execute(query).all()
            found.update(wid for wid, state in rows if state not in _ACTIVE_STATES)
        return found

    def _signal(self, workflow_id: str, topic: str | None) -> None:
        from dbos._sys_db import _dbos_null_topic

        payload, _ = self._sys_db._waiter(workflow_id, topic or _dbos_null_topic)
        signal = self._sys_db.notifications_map.get(payload)
        if signal is not None:
            signal.set()

    def _newest_message(self) -> int:
        import sqlalchemy as sa

        rowid: sa.ColumnClause[int] = sa.literal_column("rowid")
        with self._sys_db.engine.connect() as conn:
            query = sa.select(sa.func.max(rowid)).select_from(self._sys_db.tables.notifications)
            return int(conn.execute(query).scalar() or 0)

    def _watch_messages(self) -> None:
        """SQLite: wake the waiters of messages written since the last look."""
        import sqlalchemy as sa

        notes = self._sys_db.tables.notifications
        rowid: sa.ColumnClause[int] = sa.literal_column("rowid")
        query = (
            sa.select(rowid, notes.c.destination_uuid, notes.c.topic)
            .where(rowid > self._mark)
            .order_by(rowid)
            .limit(5000)
        )
        with self._sys_db.engine.connect() as conn:
            rows = conn.execute(query).all()
        for rowid, destination, topic in rows:
            self._mark = max(self._mark, int(rowid))
            self._signal(destination, topic)

    def _sweep_messages(self) -> None:
        """Every waiting `recv` of this process whose message is there, in one query."""
        import sqlalchemy as sa

        waiting = {components[0] for _, components, _ in self._sys_db.notifications_map.snapshot()}
        if not waiting:
            return
        notes = self._sys_db.tables.notifications
        ids = sorted(waiting)
        for start in range(0, len(ids), 1000):
            query = (
                sa.select(notes.c.destination_uuid, notes.c.topic)
                .where(notes.c.consumed == sa.false())
                .where(notes.c.destination_uuid.in_(ids[start : start + 1000]))
                .distinct()
            )
            with self._sys_db.engine.connect() as conn:
                rows = conn.execute(query).all()
            for destination, topic in rows:
                self._signal(destination, topic)


def _quiet_dbos_pollers() -> None:
    """Turn off DBOS's SQLite message poller, which reads the database once per waiting
    `recv` every interval: `_Waker` does its work with one query for all of them.

    And run DBOS's background jobs (start delayed workflows, cancel timed-out ones:
    printcloud uses neither) every `_BACKGROUND_JOBS_SECONDS`, not every second."""
    from dbos import _workflow_commands
    from dbos._sys_db_sqlite import SQLiteSystemDatabase

    SQLiteSystemDatabase._notification_listener = _wait_for_stop  # type: ignore[method-assign]
    _workflow_commands._BACKGROUND_JOBS_INTERVAL_SEC = _BACKGROUND_JOBS_SECONDS


def _wait_for_stop(self: Any) -> None:
    while self._run_background_processes:
        time.sleep(0.5)


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


# -- helpers --------------------------------------------------------------------


#: Serialises DBOS launches (its schema migrations) across processes sharing a database.
_LAUNCH_LOCK = 724012


@contextmanager
def _one_launch_at_a_time(url: str, schema: str | None) -> Iterator[None]:
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


def _exit_fenced() -> None:
    # Another executor runs this one's workflows now: running them here as well would
    # repeat their steps. Leave at once; the supervisor (systemd, `printcloud cluster`)
    # starts the process afresh with a new lease.
    logging.getLogger("printcloud.tasks").critical("executor lease lost; exiting")
    os._exit(75)


def _default_name(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


@contextmanager
def _options(workflow_id: str | None, key: str | None) -> Iterator[None]:
    with ExitStack() as stack:
        if workflow_id is not None:
            stack.enter_context(SetWorkflowID(workflow_id))
        if key is not None:
            stack.enter_context(SetEnqueueOptions(queue_partition_key=key))
        try:
            yield
        except dbos_error.DBOSConflictingWorkflowError as exc:
            raise Conflict(f"workflow id {workflow_id!r} is taken by another workflow") from exc


def _register_queue(declared: TaskQueue) -> None:
    DBOS.register_queue(
        declared.name,
        global_concurrency=declared.concurrency,
        worker_concurrency=declared.worker_concurrency,
        partition_concurrency=declared.per_key_concurrency,
        polling_interval_sec=declared.poll_interval,
    )


def _schedule_input(
    name: str,
    func: ScheduledWorkflow,
    cron: str,
    *,
    context: Any,
    backfill: bool,
    timezone: str | None,
    on: TaskQueue | None,
) -> ScheduleInput:
    if on is not None and on.keyed:
        raise ValueError(f"queue {on.name!r} has a per-key limit: schedules cannot give a key")
    return {
        "schedule_name": name,
        "workflow_fn": func,
        "schedule": cron,
        "context": context,
        "automatic_backfill": backfill,
        "cron_timezone": timezone,
        "queue_name": on.name if on is not None else None,
    }


def _status(status: WorkflowStatus) -> TaskStatus:
    def when(epoch_ms: int | None) -> datetime | None:
        return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC)

    return TaskStatus(
        workflow_id=status.workflow_id,
        state=str(status.status),
        name=status.name,
        queue=status.queue_name,
        executor_id=status.executor_id,
        app_version=status.app_version,
        created_at=when(status.created_at),
        updated_at=when(status.updated_at),
        error=None if status.error is None else repr(status.error),
    )


def _route_dbos_logs() -> None:
    # DBOS gives its logger a console handler and stops propagation unless the
    # logger already has a handler; a NullHandler keeps its records flowing to
    # the root handler that core.logs configures (one format, JSON in production).
    dbos_logger = logging.getLogger("dbos")
    if not dbos_logger.handlers:
        dbos_logger.addHandler(logging.NullHandler())
