"""Per-printer caps and per-tenant fairness in the print service's queues.

A printer's later jobs wait *before* their conversion token (S106) while the
printer has `PRINTCLOUD_PRINTER_CONCURRENCY` jobs in hand, so no token times out
in a queue; and a job's conversion takes one of its tenant's
`PRINTCLOUD_TENANT_CONCURRENCY` slots, so one tenant's flood never holds another's.
(The many-tenant load through a real balancer is in tests/cluster.)
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from tests.helpers.printing import Tenant, make_pdf

WAITING = ("waiting_for_printer", "printing")


def states(t: Tenant, jobs: list[str]) -> list[str]:
    return [t.api.get(f"/api/jobs/{j}").json()["state"] for j in jobs]


def settle(t: Tenant, jobs: list[str], *, ready: int) -> list[str]:
    """Wait until `ready` of the jobs wait for their printer, then a little longer
    for any that should not (the queues poll every 0.1 s)."""
    deadline = time.monotonic() + 90
    while sum(s in WAITING for s in states(t, jobs)) < ready:
        assert time.monotonic() < deadline, states(t, jobs)
        time.sleep(0.1)
    time.sleep(1.5)  # deliberate: proves that no other job gets to wait for its printer
    return states(t, jobs)


def test_a_printer_takes_at_most_its_cap_and_later_jobs_wait_before_their_token(
    make_print_stack: Any, tmp_path: Path
) -> None:
    stack = make_print_stack(workers=2, printer_concurrency=1)
    t = Tenant(stack)
    jobs = [t.submit(make_pdf(1), "mono-1")["job_id"] for _ in range(3)]
    now = settle(t, jobs, ready=1)
    assert sorted(now) == ["accepted", "accepted", "waiting_for_printer"], now
    for job_id in jobs:
        if t.api.get(f"/api/jobs/{job_id}").json()["state"] == "accepted":
            history = t.api.get(f"/api/jobs/{job_id}").json()["history"]
            assert not [e for e in history if e["step"] == "S106"]  # no token yet
    # Another printer of the same tenant is not held back by the busy one.
    other = t.submit(make_pdf(1), "color-1")["job_id"]
    settle(t, [other], ready=1)

    printed: list[str] = []
    for _ in range(3):
        first = next(j for j, s in zip(jobs, states(t, jobs), strict=True) if s in WAITING)
        t.print_all("mono-1", tmp_path / "mono", first)
        assert stack.wait_for(t.api, first, "printed")["state"] == "printed"
        printed.append(first)
        rest = [j for j in jobs if j not in printed]
        if rest:
            assert sum(s in WAITING for s in settle(t, rest, ready=1)) == 1
    assert sorted(printed) == sorted(jobs)


def test_a_tenants_flood_does_not_hold_back_another_tenant(
    make_print_stack: Any, tmp_path: Path
) -> None:
    """Tenant A has five jobs in flight, one conversion at a time (tenant_concurrency=1);
    tenant B's one job is converted while A's wait for their turn."""
    stack = make_print_stack(workers=2, tenant_concurrency=1, printer_concurrency=10)
    a, b = Tenant(stack), Tenant(stack)
    flood = [a.submit(make_pdf(3), "color-1", dpi=200)["job_id"] for _ in range(5)]
    late = b.submit(make_pdf(1), "color-1")["job_id"]
    done_b = stack.wait_for(b.api, late, *WAITING, timeout=120)
    assert done_b["state"] in WAITING
    a_states = states(a, flood)
    # B did not wait for A's flood: some of A's jobs are still unconverted.
    assert sum(s in WAITING for s in a_states) < len(flood), a_states
    # A's conversions ran one at a time: their S108 intervals do not overlap.
    for job_id in flood:
        stack.wait_for(a.api, job_id, *WAITING, timeout=180)
    spans = []
    for job_id in flood:
        history = a.api.get(f"/api/jobs/{job_id}").json()["history"]
        start = next(e["at"] for e in history if e["step"] == "S106")
        end = next(e["at"] for e in history if e["step"] == "S108")
        spans.append((start, end))
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, spans
