"""Durable work: workflows, steps, queues and schedules, on DBOS Transact.

This package is the only place that imports `dbos` (DESIGN, "Why these dependencies").
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

Databases. DBOS keeps its state in a *system database*: its own SQLite file, or
the app's PostgreSQL database in a schema of its own (`system_db`).

Waiting costs nothing. A workflow waiting in `recv`, a `TaskHandle.result()` and a
queue are woken by events through one thread per process (`waker`), not polled
per waiter. A workflow that waits long (a held print job, one waiting for its
printer) is an `async def`: it waits as a coroutine on DBOS's event loop, holding
no thread, and calls its steps with `await tasks.call(step, ...)`, which runs them
on a bounded pool of threads only while they run (`loop`)::

    @tasks.workflow()
    async def wait_for_release(tenant_id: str, job_id: str) -> str:
        await tasks.call(hold, tenant_id, job_id)
        message = await tasks.recv_async(topic="release", timeout=86400)
        return "released" if message else "expired"

One engine per process. DBOS is a process-wide singleton (its registry of
workflows, its threads, its global executor id and version), so a second
`TaskEngine` may only be launched after the first one's `shutdown()`, which
calls `DBOS.destroy()` but keeps the registry: workflows are declared once, at
import, and survive any number of launch/shutdown cycles, as tests need.

The modules, each one job: `declarations` (the decorators, queues and schedules
declared at import, and `recv`/`sleep`/`call`/`recv_async`/`sleep_async` inside a workflow),
`handles` (`TaskHandle`, `AsyncTaskHandle`, `TaskStatus`), `engine` (`TaskEngine`:
launch, shutdown, start, enqueue, send, schedules at run time, recovery), `waker`,
`loop` (async workflows: started from a thread, their bounded step threads) and
`system_db` (where DBOS's tables live, and one launch at a time on PostgreSQL).
Import the names from this package.
"""

from printcloud.core.tasks.declarations import (
    ScheduledWorkflow,
    TaskQueue,
    call,
    queue,
    recv,
    recv_async,
    scheduled,
    sleep,
    sleep_async,
    step,
    workflow,
)
from printcloud.core.tasks.engine import TaskEngine
from printcloud.core.tasks.handles import AsyncTaskHandle, TaskHandle, TaskStatus
from printcloud.core.tasks.system_db import SYSTEM_SCHEMA, system_database
from printcloud.core.tasks.waker import listen, ring, unlisten

__all__ = [
    "SYSTEM_SCHEMA",
    "AsyncTaskHandle",
    "ScheduledWorkflow",
    "TaskEngine",
    "TaskHandle",
    "TaskQueue",
    "TaskStatus",
    "call",
    "listen",
    "queue",
    "recv",
    "recv_async",
    "ring",
    "scheduled",
    "sleep",
    "sleep_async",
    "step",
    "system_database",
    "unlisten",
    "workflow",
]
