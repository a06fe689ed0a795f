"""The one started runtime of a service in this process, for its workflows.

DBOS runs a service's workflows and steps as module-level functions, so they cannot
be handed the service's runtime (database, clients, sealing box): they reach it
through `Running.current()`, which the runtime's `start` sets before the engine
launches (workflows recovered at launch need it at once). There is at most one per
service and process, as DBOS itself is per process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from printcloud.core.tasks.engine import TaskEngine

T = TypeVar("T")


class Running(Generic[T]):
    """Where a service's started runtime is kept; `what` names the service in errors."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._current: T | None = None

    def current(self) -> T:
        if self._current is None:
            raise RuntimeError(f"{self._what} is not started in this process")
        return self._current

    def set(self, runtime: T) -> None:
        self._current = runtime

    def clear(self, runtime: T) -> None:
        """Forget `runtime`, if it is still the current one (a later one stays)."""
        if self._current is runtime:
            self._current = None


class EngineHooks:
    """`start` / `started` / `stop` of a runtime whose workflows find it through its
    class's `running` (a mixin for the runtime's dataclass, which has the fields)."""

    running: ClassVar[Running[Any]]
    engine: TaskEngine | None
    #: Called once the process's workflow engine is launched.
    on_started: list[Callable[[], object]]

    def start(self, engine: TaskEngine | None) -> None:
        """Make this runtime the process's, with `engine`: call it before the engine
        launches (recovered workflows run at launch), then `started()` after."""
        self.engine = engine
        self.running.set(self)

    def started(self) -> None:
        """After the engine launched."""
        for hook in self.on_started:
            hook()

    def stop(self) -> None:
        self.engine = None
        self.running.clear(self)
