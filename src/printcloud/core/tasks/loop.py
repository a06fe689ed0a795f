"""The event loop of async workflows: starting one from a thread, and the bounded pool
of threads their blocking parts run on.

An `async def` workflow runs as a coroutine on DBOS's one background event loop (a
thread of its own): while it waits for a message or for another workflow it holds
no thread at all. Everything blocking it does — its steps, DBOS's checkpoints,
the reads behind `recv_async` — goes through `asyncio.to_thread`, which DBOS points
at its executor: a pool with no upper bound whose threads never end. A burst of a
thousand jobs starting at once would leave a thousand idle threads behind. So the
loop's default executor is replaced by a pool of at most `size` threads
(`PRINTCLOUD_WORKFLOW_POOL_SIZE`, the size of DBOS's connection pool, which those
blocking parts need anyway): the threads of a process no longer grow with the
number of jobs it holds, whether they wait or start together.

This leans on DBOS internals (named where used), as `waker` does; the test of
threads per waiting job in tests/core/test_tasks.py fails if an upgrade changes them.
Sync workflows still run on DBOS's executor, one thread each while they run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from dbos import DBOS, SetWorkflowID

from printcloud.core.tasks.priority import lower_this_thread, lower_threads


def is_async(func: Callable[..., Any]) -> bool:
    """Whether `func` (a declared workflow) is an `async def` one."""
    return inspect.iscoroutinefunction(func)


def start_on_loop(func: Callable[..., Any], workflow_id: str | None, args: Any, kwargs: Any) -> str:
    """Start async workflow `func` from a thread (not from the loop): its row is written,
    then it runs on the loop; returns its workflow id.

    DBOS's `start_workflow` would run an async workflow in an executor thread that
    blocks until the workflow ends: a thread per waiting workflow again.
    """
    from dbos._dbos import _get_dbos_instance

    async def begin() -> str:
        # DBOS's start options live in context variables of the task that starts it.
        if workflow_id is None:
            handle = await DBOS.start_workflow_async(func, *args, **kwargs)
        else:
            with SetWorkflowID(workflow_id):
                handle = await DBOS.start_workflow_async(func, *args, **kwargs)
        return handle.get_workflow_id()

    started: str = _get_dbos_instance()._background_event_loop.submit_coroutine(begin())
    return started


def bound_step_threads(size: int, *, nice: int = 0) -> ThreadPoolExecutor:
    """Run the blocking parts of async workflows on at most `size` threads (the pool
    returned, for `shutdown` when the engine stops). Call after `DBOS.launch()`.

    `nice`: those threads, DBOS's event loop and the threads DBOS starts sync workflows
    on from now on run at this nice value (`priority.py`)."""
    from dbos._dbos import _get_dbos_instance, _SharedExecutor

    dbos = _get_dbos_instance()
    lower = partial(lower_this_thread, nice)
    pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="tasks-steps", initializer=lower)
    # DBOS's executor (a ThreadPoolExecutor) starts its threads on demand, each running
    # its `_initializer` first; the ones it started already (the launch's recovery) are
    # lowered here: an idle one is reused for the next workflow.
    dbos._executor._initializer = lower
    lower_threads(dbos._executor._threads, nice)

    class Bounded(_SharedExecutor):
        # DBOS re-installs its `_shared_executor_field` as the loop's default executor
        # before its `to_thread` calls (`DBOS._configure_asyncio_thread_pool`), keeping
        # it while its `executor` is DBOS's own: this one is, and submits to `pool`.
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
            return pool.submit(fn, *args, **kwargs)

    bounded = Bounded(dbos._executor)
    dbos._shared_executor_field = bounded
    loop = dbos._background_event_loop._loop
    if loop is None:
        raise RuntimeError("DBOS's event loop is not running")
    # Until the first of those calls, the loop's default is DBOS's executor itself.
    loop.call_soon_threadsafe(loop.set_default_executor, bounded)
    loop.call_soon_threadsafe(lower)
    return pool
