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

import itertools
import threading

from sqlalchemy import event
from sqlalchemy.orm import Session

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
    flags: set[str] = db.info.setdefault("printing.changes", set())
    if kind in flags:
        return
    flags.add(kind)

    def committed(session: Session) -> None:
        session.info.get("printing.changes", set()).discard(kind)
        bump(kind)

    def rolled_back(session: Session) -> None:
        session.info.get("printing.changes", set()).discard(kind)

    event.listen(db, "after_commit", committed, once=True)
    event.listen(db, "after_soft_rollback", rolled_back, once=True)
