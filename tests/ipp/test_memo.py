"""The per-process memo behind the Get-Printer-Attributes fast lane (issue 14;
`printing/changes.py`, `printing/ipp_memo.py`): a change counted only once its
transaction commits, and memo entries dropped on such a change or after their time to
live (here with a clock the test moves, so nothing waits)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from printcloud.ipp.model import PrinterState
from printcloud.printing import changes
from printcloud.printing.ipp_memo import QueueMemo
from printcloud.printing.ipp_printer import PrinterStatus, QueueFacts

CHANGED = datetime(2026, 12, 1, tzinfo=UTC)
FACTS = QueueFacts(
    tenant_id="t1",
    name="q",
    uuid="00000000-0000-4000-8000-000000000000",
    info="q",
    location="",
    printer_id="p1",
    color=True,
    uri="ipp://127.0.0.1/printing/ipp/print/t1/q",
    more_info="http://127.0.0.1/printing",
    formats=("application/pdf",),
    config_changed=CHANGED,
)
IDLE = PrinterStatus(PrinterState.IDLE, ("none",), "Ready to print.", 0, CHANGED)


def test_a_change_counts_when_its_transaction_commits() -> None:
    engine = create_engine("sqlite://")
    with Session(engine) as db:
        start = changes.generation(changes.JOBS)
        changes.bump_on_commit(db, changes.JOBS)
        db.execute(text("select 1"))
        assert changes.generation(changes.JOBS) == start  # not yet committed
        db.rollback()
        assert changes.generation(changes.JOBS) == start  # rolled back: no change
        changes.bump_on_commit(db, changes.JOBS)
        db.execute(text("select 1"))
        db.commit()
        after = changes.generation(changes.JOBS)
        assert after != start
        db.execute(text("select 1"))
        db.commit()  # nothing changed in this transaction
        assert changes.generation(changes.JOBS) == after


def test_the_memo_drops_an_entry_on_a_change_or_after_its_time() -> None:
    now = [100.0]
    memo = QueueMemo(ttl=1.0, clock=lambda: now[0])
    memo.keep_status(FACTS, IDLE, generation=changes.generation(changes.JOBS))
    assert memo.status(FACTS) == IDLE
    now[0] += 0.5
    assert memo.status(FACTS) == IDLE
    now[0] += 0.5
    assert memo.status(FACTS) is None  # a change made elsewhere shows within the TTL
    memo.keep_status(FACTS, IDLE, generation=changes.generation(changes.JOBS))
    changes.bump(changes.JOBS)
    assert memo.status(FACTS) is None  # a change made here shows at once
    # a status read before a change (older generation) is never used after it
    stale = changes.generation(changes.JOBS)
    changes.bump(changes.JOBS)
    memo.keep_status(FACTS, IDLE, generation=stale)
    assert memo.status(FACTS) is None
    assert memo.facts("t1", "q") is None  # nothing kept for a queue never read
