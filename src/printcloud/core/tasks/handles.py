"""What the engine hands back: a started workflow (`TaskHandle`, or `AsyncTaskHandle`
inside an async workflow) and its recorded state (`TaskStatus`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from dbos import WorkflowHandle, WorkflowHandleAsync, WorkflowStatus

from printcloud.core.tasks.waker import Waker

R = TypeVar("R")


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
        waker = Waker.current
        if waker is not None:
            waker.until_done(self._handle.get_workflow_id(), poll_interval)
        return self._handle.get_result(polling_interval_sec=poll_interval)

    def status(self) -> TaskStatus:
        return task_status(self._handle.get_status())


class AsyncTaskHandle(Generic[R]):
    """A workflow enqueued by an async workflow (`TaskEngine.enqueue_async`): its
    `result()` is awaited, holding no thread, and is woken as `TaskHandle.result()` is."""

    def __init__(self, handle: WorkflowHandleAsync[R]) -> None:
        self._handle = handle

    @property
    def workflow_id(self) -> str:
        return self._handle.get_workflow_id()

    async def result(self, *, poll_interval: float = 1.0) -> R:
        waker = Waker.current
        if waker is not None:
            await waker.until_done_async(self._handle.get_workflow_id(), poll_interval)
        return await self._handle.get_result(polling_interval_sec=poll_interval)


def task_status(status: WorkflowStatus) -> TaskStatus:
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
