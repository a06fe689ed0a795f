"""The engine: DBOS launched from `Settings`, and the calls that start, message,
observe and recover workflows and that set schedules at run time."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any, ClassVar, ParamSpec, TypeVar

from dbos import DBOS, DBOSConfig, SetEnqueueOptions, SetWorkflowID
from dbos import error as dbos_error

from printcloud import __version__
from printcloud.core.db import Database
from printcloud.core.errors import Conflict, NotFound
from printcloud.core.executors import ExecutorLease
from printcloud.core.settings import Settings
from printcloud.core.tasks.declarations import (
    ScheduledWorkflow,
    TaskQueue,
    declared_for,
    schedule_input,
)
from printcloud.core.tasks.handles import AsyncTaskHandle, TaskHandle, TaskStatus, task_status
from printcloud.core.tasks.loop import bound_step_threads, is_async, start_on_loop
from printcloud.core.tasks.system_db import APP_NAME, one_launch_at_a_time, system_database
from printcloud.core.tasks.waker import Waker, quiet_dbos_pollers

P = ParamSpec("P")
R = TypeVar("R")

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
        self._step_threads = settings.workflow_pool_size
        self._nice = settings.background_nice
        self._launched = False
        self._waker: Waker | None = None
        self._step_pool: ThreadPoolExecutor | None = None

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
            quiet_dbos_pollers()
            DBOS(config=self._config)
            # Our queues are polled by the waker's workers, which a new enqueue or a
            # finished run wakes at once; DBOS's own queue thread keeps its internal ones.
            DBOS.listen_queues([])
            try:
                with one_launch_at_a_time(self.system_database_url, self.system_schema):
                    DBOS.launch()
                self._step_pool = bound_step_threads(self._step_threads, nice=self._nice)
                queues, schedules = declared_for(self.owns)
                for declared in queues:
                    _register_queue(self._limits.get(declared.name, declared))
                self._waker = Waker.start(
                    [self._limits.get(q.name, q) for q in queues],
                    schema=self.system_schema,
                    nice=self._nice,
                )
                if schedules:
                    DBOS.apply_schedules(schedules)
                    Waker.schedules_changed()
            except BaseException:
                if self._waker is not None:
                    self._waker.stop()
                    self._waker = None
                DBOS.destroy()
                self._stop_step_pool()
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
                self._stop_step_pool()
                self._launched = False
                TaskEngine._running = None

    def _stop_step_pool(self) -> None:
        if self._step_pool is not None:
            self._step_pool.shutdown(wait=False, cancel_futures=True)
            self._step_pool = None

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
        An async workflow runs on the event loop (`loop`); call this from a thread,
        never from an async workflow (which enqueues with `enqueue_async`).
        """
        self._check_launched()

        def call(*args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
            self._expect(workflow_id, None)  # its end frees no queue's slot
            if is_async(func):
                with _options(None, None):  # a conflicting id raises `Conflict`
                    started = start_on_loop(func, workflow_id, args, kwargs)
                return TaskHandle(DBOS.retrieve_workflow(started, existing_workflow=False))
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
        _check_key(on, key)

        def call(*args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
            self._expect(workflow_id, on)
            with _options(workflow_id, key):
                handle = TaskHandle(DBOS.enqueue_workflow(on.name, func, *args, **kwargs))
            if self._waker is not None:
                if workflow_id is None:
                    self._waker.expect(handle.workflow_id, on.name)
                self._waker.nudge(on.name)
            return handle

        return call

    def enqueue_async(
        self,
        on: TaskQueue,
        func: Callable[P, Any],
        *,
        key: str | None = None,
        workflow_id: str | None = None,
    ) -> Callable[P, Coroutine[Any, Any, AsyncTaskHandle[Any]]]:
        """`enqueue` inside an async workflow: `await engine.enqueue_async(q, wf, …)(*args)`;
        the child (sync or async) is recorded as the workflow's step, as `enqueue` does."""
        self._check_launched()
        _check_key(on, key)

        async def call(*args: P.args, **kwargs: P.kwargs) -> AsyncTaskHandle[Any]:
            self._expect(workflow_id, on)
            with _options(workflow_id, key):
                handle = await DBOS.enqueue_workflow_async(on.name, func, *args, **kwargs)
            if self._waker is not None:
                if workflow_id is None:
                    self._waker.expect(handle.get_workflow_id(), on.name)
                self._waker.nudge(on.name)
            return AsyncTaskHandle(handle)

        return call

    def _expect(self, workflow_id: str | None, on: TaskQueue | None) -> None:
        """Tell the waker, before it starts, which queue run `workflow_id` takes a slot
        of (None: none), so that its end polls only that queue."""
        if self._waker is not None and workflow_id is not None:
            self._waker.expect(workflow_id, on.name if on is not None else None)

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
                schedule_input(
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
        Waker.schedules_changed()

    def delete_schedule(self, name: str) -> None:
        self._check_launched()
        DBOS.delete_schedule(name)
        Waker.schedules_changed()

    # observing and recovering

    def get_status(self, workflow_id: str) -> TaskStatus | None:
        self._check_launched()
        status = DBOS.get_workflow_status(workflow_id)
        return None if status is None else task_status(status)

    def get_statuses(self, workflow_ids: Sequence[str]) -> dict[str, TaskStatus]:
        """The recorded states of `workflow_ids`, in one read (an id with no workflow is
        missing from the answer)."""
        self._check_launched()
        if not workflow_ids:
            return {}
        found = DBOS.list_workflows(
            workflow_ids=list(workflow_ids), load_input=False, load_output=False
        )
        return {status.workflow_id: task_status(status) for status in found}

    def cancel(self, workflow_id: str) -> None:
        """Mark workflow `workflow_id` cancelled unless it has ended: no recovery resumes
        it, and a run in progress stops before its next step (no workflow: nothing)."""
        self._check_launched()
        DBOS.cancel_workflow(workflow_id)

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


def _exit_fenced() -> None:
    # Another executor runs this one's workflows now: running them here as well would
    # repeat their steps. Leave at once; the supervisor (systemd, `printcloud cluster`)
    # starts the process afresh with a new lease.
    logging.getLogger("printcloud.tasks").critical("executor lease lost; exiting")
    os._exit(75)


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


def _check_key(on: TaskQueue, key: str | None) -> None:
    if on.keyed and key is None:
        raise ValueError(f"queue {on.name!r} has a per-key limit: enqueue with a key")
    if not on.keyed and key is not None:
        raise ValueError(f"queue {on.name!r} has no per-key limit: enqueue without a key")


def _register_queue(declared: TaskQueue) -> None:
    DBOS.register_queue(
        declared.name,
        global_concurrency=declared.concurrency,
        worker_concurrency=declared.worker_concurrency,
        partition_concurrency=declared.per_key_concurrency,
        polling_interval_sec=declared.poll_interval,
    )


def _route_dbos_logs() -> None:
    # DBOS gives its logger a console handler and stops propagation unless the
    # logger already has a handler; a NullHandler keeps its records flowing to
    # the root handler that core.logs configures (one format, JSON in production).
    dbos_logger = logging.getLogger("dbos")
    if not dbos_logger.handlers:
        dbos_logger.addHandler(logging.NullHandler())
