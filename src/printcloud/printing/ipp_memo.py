"""What an IPP queue's Get-Printer-Attributes needs, kept in memory per process (issue
14; the benchmark's "Where Get-Printer-Attributes time goes", bench/README.md): the
queue's row and facts (`ipp_queue.facts`) and its printer status (`ipp_queue.busy_jobs`).

How fresh (docs/ipp.md "Caching"):

- a change made in this process (a queue or printer added, changed or deleted; a print
  job created or moved) is seen by the next request: each entry keeps the change
  counter (`changes.generation`) read before its database read, and is not used
  once the counter moved;
- a change made by another process (another server worker, a conversion worker
  finishing a job, the CLI) is seen within `TTL` (one second): no entry is used
  longer than that.

Only queues that exist are kept: an unknown tenant or queue is read (and refused) on
every request, exactly as without the memo.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from . import changes
from .ipp_printer import PrinterStatus, QueueFacts
from .models import QueueRow

#: The longest an entry is used, in seconds, for changes made by another process.
TTL = 1.0
T = TypeVar("T")


@dataclass(frozen=True)
class _Entry(Generic[T]):
    value: T
    generation: int
    expires: float


class _Memo(Generic[T]):
    def __init__(self, kind: str, *, ttl: float, limit: int, clock: Callable[[], float]) -> None:
        self._kind = kind
        self._ttl = ttl
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str], _Entry[T]] = OrderedDict()

    def get(self, key: tuple[str, str]) -> T | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry.generation != changes.generation(self._kind) or self._clock() >= entry.expires:
            return None
        return entry.value

    def keep(self, key: tuple[str, str], value: T, *, generation: int) -> None:
        entry = _Entry(value, generation, self._clock() + self._ttl)
        with self._lock:
            self._items[key] = entry
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)


class QueueMemo:
    """Queue facts and printer status by (tenant, queue name), bounded."""

    def __init__(
        self, *, ttl: float = TTL, limit: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._facts: _Memo[tuple[QueueRow, QueueFacts]] = _Memo(
            changes.CONFIG, ttl=ttl, limit=limit, clock=clock
        )
        self._status: _Memo[PrinterStatus] = _Memo(changes.JOBS, ttl=ttl, limit=limit, clock=clock)

    def facts(self, tenant_id: str, name: str) -> tuple[QueueRow, QueueFacts] | None:
        return self._facts.get((tenant_id, name))

    def keep_facts(
        self, tenant_id: str, name: str, found: tuple[QueueRow, QueueFacts], *, generation: int
    ) -> None:
        self._facts.keep((tenant_id, name), found, generation=generation)

    def status(self, facts: QueueFacts) -> PrinterStatus | None:
        found = self._status.get((facts.tenant_id, facts.name))
        # a queue re-made under the same name is another printer: its own status
        if found is not None and found.changed != facts.config_changed:
            return None
        return found

    def keep_status(self, facts: QueueFacts, status: PrinterStatus, *, generation: int) -> None:
        self._status.keep((facts.tenant_id, facts.name), status, generation=generation)
