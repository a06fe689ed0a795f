"""Change counters of this process (issue 14, IPP Get-Printer-Attributes fast path):
what the in-memory queue facts and printer status (`ipp_memo.QueueMemo`) compare with,
so a change made here is seen by the next request at once.

Two counters: `CONFIG` (a queue or printer added, changed or deleted) and `JOBS` (a
print job created or moved). They are bumped after the change's transaction commits
(`bump_on_commit`), never before, so a read that starts after the bump sees the
committed change. Changes made by another process are not counted here: the memo
keeps nothing longer than its time to live (one second) for them.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

T = TypeVar("T")

CONFIG = "config"
JOBS = "jobs"

_lock = threading.Lock()
_counters: dict[str, itertools.count[int]] = {CONFIG: itertools.count(1), JOBS: itertools.count(1)}
_values: dict[str, int] = {CONFIG: 0, JOBS: 0}


def generation(kind: str) -> int:
    """The counter now (read before a database read whose result is kept)."""
    return _values[kind]


def bump(kind: str) -> None:
    with _lock:
        _values[kind] = next(_counters[kind])


def bump_on_commit(db: Session, kind: str) -> None:
    """Bump `kind` once the session's transaction commits (nothing on a rollback)."""
    pending: set[str] | None = db.info.get(_PENDING)
    if pending is None:
        # one pair of listeners per session, however many transactions it runs
        pending = db.info[_PENDING] = set()
        event.listen(db, "after_commit", _committed)
        event.listen(db, "after_soft_rollback", _rolled_back)
    pending.add(kind)


_PENDING = "printing.changes"


def _committed(session: Session) -> None:
    pending: set[str] = session.info.get(_PENDING, set())
    for kind in sorted(pending):
        bump(kind)
    pending.clear()


def _rolled_back(session: Session, previous_transaction: object) -> None:
    session.info.get(_PENDING, set()).clear()


async def until_jobs_move(
    look: Callable[[], Awaitable[list[T]]],
    *,
    wait: bool,
    limit: float,
    every: float = 1.0,
    soonest: float = 0.0,
) -> list[T]:
    """An IPP long poll (RFC 3996 `notify-wait`): `look()` until it finds something, or
    at once when not `wait`, or until `limit` seconds have passed. It looks again after a
    job of this process moves (not sooner than `soonest` after the last look: moves come
    in bursts), else each `every` seconds for the moves of other processes."""
    deadline = time.monotonic() + limit
    while True:
        seen = generation(JOBS)
        found = await look()
        if found or not wait or time.monotonic() >= deadline:
            return found
        looked = time.monotonic()
        while time.monotonic() < min(looked + every, deadline) and (
            generation(JOBS) == seen or time.monotonic() - looked < soonest
        ):
            await asyncio.sleep(0.05)
