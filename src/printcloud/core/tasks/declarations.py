"""Declaring durable work at import: workflows, steps, queues, schedules, and the
calls a running workflow makes (`recv`, `sleep`; in an async workflow `call`,
`recv_async`). No engine is needed to declare; an engine launched later creates
what its process owns (`declared_for`).

A workflow that waits (for a message, for another workflow's end) may be an
`async def`: it then waits as a coroutine on DBOS's one event loop and holds no
thread while it waits. Its steps stay plain functions, run on a worker thread only
while they run (`await call(step, ...)`); see `engine` for the bounded pool."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar, cast

from dbos import DBOS, ScheduleInput, StepOptions

from printcloud.core.tasks.waker import Waker

P = ParamSpec("P")
R = TypeVar("R")

#: A scheduled workflow receives its scheduled time (UTC) and its schedule's context.
ScheduledWorkflow = Callable[[datetime, Any], None]


def workflow(
    *, name: str | None = None, max_recovery_attempts: int | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a durable workflow. Its body must be deterministic; effects go in steps.

    An `async def` workflow waits (`recv_async`, `AsyncTaskHandle.result`) without a
    thread; its steps are called with `await call(step, ...)`, never directly (a
    direct call would block the event loop every async workflow shares).

    `max_recovery_attempts` bounds how often a workflow that keeps killing its
    process is retried before it is parked (DBOS's default: 100).
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        wf_name = name or _default_name(func)
        run: Callable[P, R]
        if inspect.iscoroutinefunction(func):
            body = cast(Callable[P, Coroutine[Any, Any, Any]], func)

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                try:
                    return await body(*args, **kwargs)
                finally:
                    Waker.ending(DBOS.workflow_id)  # as below

            run = cast(Callable[P, R], run_async)
        else:

            @functools.wraps(func)
            def run_sync(*args: P.args, **kwargs: P.kwargs) -> R:
                try:
                    return func(*args, **kwargs)
                finally:
                    # A hint, not an effect: whoever waits for this run (a parent's
                    # `result()`, a queue slot) looks again once DBOS has recorded its end.
                    Waker.ending(DBOS.workflow_id)

            run = run_sync

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
        options: StepOptions = {
            "name": name or _default_name(func),
            "retries_allowed": retries > 0,
            "max_attempts": retries + 1,
            "interval_seconds": retry_interval,
            "backoff_rate": backoff,
        }
        declared = DBOS.step(
            name=options["name"],
            retries_allowed=options["retries_allowed"],
            max_attempts=options["max_attempts"],
            interval_seconds=options["interval_seconds"],
            backoff_rate=options["backoff_rate"],
        )(func)
        with _declarations_lock:
            _steps[declared] = (func, options)
        return declared

    return decorate


#: Each declared step (DBOS's wrapper) → its plain function and options, for `call`.
_steps: dict[Callable[..., Any], tuple[Callable[..., Any], StepOptions]] = {}


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
        entry = schedule_input(
            wf_name, wrapped, cron, context=None, backfill=backfill, timezone=timezone, on=queue
        )
        with _declarations_lock:
            _schedules[wf_name] = entry
        return wrapped

    return decorate


def declared_for(owns: Callable[[str], bool]) -> tuple[list[TaskQueue], list[ScheduleInput]]:
    """The queues and schedules declared so far whose names `owns` accepts."""
    with _declarations_lock:
        queues = [q for q in _queues.values() if owns(q.name)]
        schedules = [x for x in _schedules.values() if owns(x["schedule_name"])]
    return queues, schedules


# -- messages between the outside world and a running workflow --------------


def recv(*, topic: str, timeout: float) -> Any:
    """Inside a workflow: wait up to `timeout` seconds for a message on `topic`
    (None on timeout). Durable: a resumed workflow gets the same answer."""
    return DBOS.recv(topic, timeout_seconds=timeout)


async def recv_async(*, topic: str, timeout: float) -> Any:
    """`recv` inside an async workflow: waits as a coroutine, holding no thread."""
    return await DBOS.recv_async(topic, timeout_seconds=timeout)


async def call(step: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Inside an async workflow: run `step` (declared with `step()`) on a worker thread
    and checkpoint it, exactly as calling it in a sync workflow would (same name,
    retries, and place in the workflow's sequence of steps). Each attempt takes a
    thread of the bounded pool (`loop`) while it runs; the pause between retries
    is a coroutine's and takes none."""
    try:
        body, options = _steps[step]
    except KeyError:
        raise TypeError(f"{step!r} is not declared with tasks.step()") from None

    async def attempt() -> R:
        return await asyncio.to_thread(body, *args, **kwargs)

    return cast(R, await DBOS.run_step_async(options, attempt))


def sleep(seconds: float) -> None:
    """Inside a workflow: a durable sleep (a resumed workflow sleeps only what is left)."""
    DBOS.sleep(seconds)


async def sleep_async(seconds: float) -> None:
    """`sleep` inside an async workflow: waits as a coroutine, holding no thread."""
    await DBOS.sleep_async(seconds)


def _default_name(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def schedule_input(
    name: str,
    func: ScheduledWorkflow,
    cron: str,
    *,
    context: Any,
    backfill: bool,
    timezone: str | None,
    on: TaskQueue | None,
) -> ScheduleInput:
    """DBOS's entry for schedule `name` (a schedule cannot give a queue key)."""
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
