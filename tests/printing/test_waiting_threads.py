"""Issue 13: a waiting job costs nothing — not even a thread.

`printcloud serve` in its own process, with printers that never come online: held jobs
wait for their owner, converted jobs wait for their printer and later ones wait their
turn behind the per-printer cap. The serve process's threads (/proc/<pid>/status) do
not grow with the number of waiting jobs, and each kind of wait still ends on its
event: a release, the printer's result, the owner's cancel.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.helpers.printing import Tenant, make_pdf

WAITING = 50
HELD = 50
PRINTERS = 5  # cap 2 each: 10 jobs wait for their printer, 40 wait their turn
#: The serve process's threads may grow by its bounded step pool (4 here) and a few the
#: HTTP server and DBOS start on first use; a thread per waiting job would be 100+.
POOL = 4
SLACK = 8


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for {pid}")


def _until(check: Any, what: str, *, deadline: float = 60) -> None:
    stop = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < stop, f"stuck: {what}"
        time.sleep(0.2)


def test_waiting_jobs_hold_no_thread_and_are_woken(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1, workflow_pool_size=POOL)
    t = Tenant(stack)
    printers = [f"p{n}" for n in range(PRINTERS)]
    for printer in printers:
        stack.printer(t.id, printer, color=False, client_id=t.dev_id)
    device = stack.api(stack.token(t.dev_id, t.dev_secret, "device print"))
    pid = int(stack.health()["pid"])
    pdf = make_pdf(1)

    def states(ids: list[str]) -> dict[str, str]:
        return {i: t.api.get(f"/api/jobs/{i}").json()["state"] for i in ids}

    def workflows(name: str, state: str) -> int:
        with sqlite3.connect(stack.settings.data_dir / "dbos.sqlite3", timeout=30) as db:
            row = db.execute(
                "SELECT count(*) FROM workflow_status WHERE name = ? AND status = ?",
                (name, state),
            ).fetchone()
        return int(row[0])

    # N = 0: the stack has served requests, converted and finished a job.
    warm = t.submit(pdf, printers[0])
    stack.wait_for(t.api, warm["job_id"], "waiting_for_printer")
    assert t.api.post(f"/api/jobs/{warm['job_id']}/cancel").json()["state"] == "cancelled"
    _until(lambda: workflows("printing.process_job", "PENDING") == 0, "the warm-up job ends")
    idle = _threads(pid)

    # N = 50 + 50
    waiting = [t.submit(pdf, printers[n % PRINTERS])["job_id"] for n in range(WAITING)]
    held = [t.submit(pdf, printers[0], hold="true")["job_id"] for _ in range(HELD)]
    at_printer = 2 * PRINTERS

    def settled() -> bool:
        seen = list(states(waiting).values())
        return (
            seen.count("waiting_for_printer") == at_printer
            and seen.count("accepted") == WAITING - at_printer
            and set(states(held).values()) == {"held"}
            # every job's workflow waits; the deliveries beyond the cap wait their turn
            and workflows("printing.process_job", "PENDING") == WAITING + HELD
            and workflows("printing.deliver", "PENDING") == at_printer
            and workflows("printing.deliver", "ENQUEUED") == WAITING - at_printer
        )

    _until(settled, "50 jobs wait for their printers and 50 for their owner", deadline=300)
    loaded = _threads(pid)
    assert loaded - idle <= POOL + SLACK, (idle, loaded)

    # The printer's result wakes each job waiting for it; the next ones take their turn.
    for job_id, state in states(waiting).items():
        if state == "waiting_for_printer":
            printer = t.api.get(f"/api/jobs/{job_id}").json()["printer_id"]
            answer = device.post(
                f"/api/device/jobs/{job_id}/result",
                json={"printer_id": printer, "outcome": "printed", "pages_printed": 1},
            )
            assert answer.status_code == 200, answer.text
    _until(
        lambda: list(states(waiting).values()).count("printed") == at_printer,
        "the printed jobs end",
    )
    # A release wakes a held job: it goes on to its printer's queue.
    released = held[:2]
    for job_id in released:
        assert t.api.post(f"/api/jobs/{job_id}/release").status_code == 200
    _until(
        lambda: "held" not in states(released).values(),
        "the released jobs leave `held`",
    )
    for job_id in released:
        history = t.api.get(f"/api/jobs/{job_id}").json()["history"]
        assert any("released by" in e["detail"] for e in history), history
    # The owner's cancel wakes the rest, wherever they wait.
    rest = [j for j, s in states(waiting + held).items() if s != "printed"]
    for job_id in rest:
        answer = t.api.post(f"/api/jobs/{job_id}/cancel")
        assert answer.status_code in (200, 409), answer.text
    _until(
        lambda: workflows("printing.process_job", "PENDING") == 0,
        "every job's workflow ends",
        deadline=300,
    )
    final = states(waiting + held)
    assert list(final.values()).count("printed") == at_printer
    assert {s for j, s in final.items() if j in rest} <= {"cancelled", "printed"}
    assert _threads(pid) - idle <= POOL + SLACK
