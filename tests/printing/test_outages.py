"""Outages of the print service's peers (issue 5, "the distributed run").

- PostgreSQL restarted mid-run, then stopped for a few seconds: the services
  reconnect, no accepted job is lost, the API never answers 500, and a job
  submitted while the database is down is refused with a clear 503.
- Redis (the session store of seed 003) stopped while jobs are mid-flight:
  the session-store calls fail with a clear 503, the jobs' steps wait and
  retry instead of failing, and the jobs complete when Redis is back.

Each test has a peer of its own (`tests/peers.py`): the shared servers serve
other tests and are never stopped. No timing thresholds: the tests wait for
states, with generous deadlines.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.print_stack import PrintStack
from tests.helpers.printing import Tenant, assert_no_leftovers, make_pdf, planes
from tests.peers import PrivatePostgres, PrivateRedis, postgres_peer, redis_peer

__all__ = ["postgres_peer", "redis_peer"]  # the fixtures, for pytest to find

#: What a job may be in before the printer has it.
BEFORE_PRINTER = ("accepted", "token_issued", "downloaded", "converted")


def record_statuses(api: httpx.Client) -> list[tuple[str, int]]:
    """Every answer the client gets from now on, as (method path, status)."""
    seen: list[tuple[str, int]] = []

    def hook(response: httpx.Response) -> None:
        seen.append(
            (f"{response.request.method} {response.request.url.path}", response.status_code)
        )

    api.event_hooks["response"].append(hook)
    return seen


def assert_clear_503(response: httpx.Response, *words: str) -> dict[str, Any]:
    """A 503 with the JSON error body, naming what is unavailable; no stack trace."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = dict(response.json())
    assert body["error"] == "temporarily_unavailable", body
    description = str(body["error_description"])
    for word in words:
        assert word in description.lower(), body
    assert "Traceback" not in response.text
    return body


def wait_until(what: str, check: Any, *, timeout: float = 60, detail: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(
                f"gave up waiting for {what}" + (f": {detail()}" if detail else "")
            )
        time.sleep(0.2)


def print_everything(t: Tenant, out: Path, jobs: dict[str, tuple[str, int]]) -> None:
    """Run each printer until every job of `jobs` (job ID → (printer, pages)) is printed,
    then check each page came out exactly once."""
    for printer in sorted({printer for printer, _ in jobs.values()}):
        mine = [job_id for job_id, (p, _) in jobs.items() if p == printer]
        with t.device(printer, out) as agent:
            deadline = time.monotonic() + 120
            while True:
                states = {j: t.api.get(f"/api/jobs/{j}").json()["state"] for j in mine}
                if all(state == "printed" for state in states.values()):
                    break
                assert not [
                    s
                    for s in states.values()
                    if s not in (*BEFORE_PRINTER, "printed", "waiting_for_printer", "printing")
                ], states
                if time.monotonic() > deadline:
                    raise AssertionError(f"not all printed on {printer}: {states}")
                if any(s in ("waiting_for_printer", "printing") for s in states.values()):
                    agent.poll_once()
                time.sleep(0.2)
    colorants = {"color-1": 4, "mono-1": 1}
    for job_id, (printer, pages) in jobs.items():
        job = t.api.get(f"/api/jobs/{job_id}").json()
        assert job["state"] == "printed" and job["pages_printed"] == pages, job
        for page in range(1, pages + 1):
            assert len(planes(out / job_id, page)) == colorants[printer], (job_id, page)
        assert not list((out / job_id).glob(f"page-{pages + 1:04d}*")), job_id


def wait_completed(t: Tenant, job_id: str) -> None:
    wait_until(
        f"print completion (S112) of {job_id}",
        lambda: any(
            e["step"] == "S112" for e in t.api.get(f"/api/jobs/{job_id}").json()["history"]
        ),
    )


# -- PostgreSQL ------------------------------------------------------------------------------


def test_postgres_restarts_mid_run_and_no_accepted_job_is_lost(
    make_print_stack: Any, postgres_peer: PrivatePostgres, tmp_path: Path
) -> None:
    """Everything on one private PostgreSQL (jobs, DBOS, the session store): restart it
    while one job waits for its printer and others convert, then stop it for a few
    seconds; every job accepted prints, each page once, and the API never answers 500."""
    stack: PrintStack = make_print_stack(database_url=postgres_peer.url, sessions="sql")
    t = Tenant(stack)
    statuses = record_statuses(t.api)
    jobs: dict[str, tuple[str, int]] = {}

    waiting = t.submit(make_pdf(2), "color-1")
    jobs[waiting["job_id"]] = ("color-1", 2)
    stack.wait_for(t.api, waiting["job_id"], "waiting_for_printer")
    for pages, printer in ((4, "mono-1"), (3, "color-1"), (3, "mono-1")):
        job = t.submit(make_pdf(pages, size=(595, 842)), printer)
        jobs[job["job_id"]] = (printer, pages)
    busy = list(jobs)[1:]
    wait_until(
        "a job in conversion",
        lambda: t.api.get(f"/api/jobs/{busy[0]}").json()["state"] != "accepted",
    )

    # 1. a restart: the first request after it is answered, not failed
    postgres_peer.restart()
    first = t.api.get(f"/api/jobs/{waiting['job_id']}")
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "waiting_for_printer"
    assert t.api.get("/api/jobs").status_code == 200

    # 2. an outage of a few seconds, mid-conversion
    wait_until(
        "a job past its download",
        lambda: any(
            t.api.get(f"/api/jobs/{j}").json()["state"] not in ("accepted", "token_issued")
            for j in busy
        ),
    )
    postgres_peer.stop()
    try:
        refused = t.api.post(
            "/api/jobs",
            files={"file": ("doc.pdf", make_pdf(1), "application/pdf")},
            data={"printer_id": "mono-1"},
        )
        assert_clear_503(refused, "database")
        assert_clear_503(t.api.get(f"/api/jobs/{waiting['job_id']}"), "database")
        time.sleep(3)  # the outage: the workflows' steps meet it meanwhile
    finally:
        postgres_peer.start()
    again = t.api.get(f"/api/jobs/{waiting['job_id']}")
    assert again.status_code == 200, again.text

    # nothing accepted was lost; the refused job never existed
    listed = {j["job_id"] for j in t.api.get("/api/jobs").json()["jobs"]}
    assert listed == set(jobs)
    for job_id in jobs:
        job = t.api.get(f"/api/jobs/{job_id}").json()
        assert job["state"] in (*BEFORE_PRINTER, "waiting_for_printer"), job

    print_everything(t, tmp_path, jobs)
    for job_id in jobs:
        wait_completed(t, job_id)
        assert_no_leftovers(stack, job_id)
    with t.device("color-1", tmp_path) as agent:
        assert agent.poll_once() == []  # nothing is handed out twice
    # the API answered 503 while the database was down, 500 never
    assert not [s for s in statuses if s[1] >= 500 and s[1] != 503], statuses
    assert Counter(code for _, code in statuses)[503] == 2, statuses


# -- Redis -----------------------------------------------------------------------------------


def system_token(stack: PrintStack) -> str:
    """A platform service's token (the system tenant), as the workflows call workers with."""
    client_id, secret = stack.settings.service_client("idp-a", "printing")
    return stack.token(client_id, secret, "print")


def test_redis_outage_pauses_the_session_store_and_jobs_resume(
    make_print_stack: Any, redis_peer: PrivateRedis, tmp_path: Path
) -> None:
    stack: PrintStack = make_print_stack(session_store=redis_peer.url)
    t = Tenant(stack)
    statuses = record_statuses(t.api)
    jobs: dict[str, tuple[str, int]] = {}
    waiting = t.submit(make_pdf(2), "color-1")
    jobs[waiting["job_id"]] = ("color-1", 2)
    stack.wait_for(t.api, waiting["job_id"], "waiting_for_printer")

    redis_peer.stop()
    try:
        # jobs accepted while the session store is down: accepted, then waiting on it
        for pages, printer in ((3, "mono-1"), (2, "color-1")):
            job = t.submit(make_pdf(pages), printer)
            assert job["state"] == "accepted"
            jobs[job["job_id"]] = (printer, pages)
        late = list(jobs)[1:]

        # a conversion worker says why, clearly: 503 naming the session store
        worker = stack.workers()[0]["url"]
        token = system_token(stack)
        answer = httpx.post(
            f"{worker}/sessions",
            json={"tenant_id": t.id, "job_id": "probe-1", "printer_id": "color-1"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert_clear_503(answer, "session store")

        # the job waiting for its printer prints meanwhile (the converted data is in the
        # database); only its completion (FIG. 11) needs the session store and waits
        t.print_all("color-1", tmp_path, waiting["job_id"])
        assert stack.wait_for(t.api, waiting["job_id"], "printed")["pages_printed"] == 2

        # the jobs' steps meet the outage meanwhile: they wait and retry, no job fails
        time.sleep(3)  # deliberate: proves that no job fails during the outage
        for job_id in late:
            job = t.api.get(f"/api/jobs/{job_id}").json()
            assert job["state"] == "accepted", job
            assert job["reason"] is None, job
        done = t.api.get(f"/api/jobs/{waiting['job_id']}").json()
        assert not any(e["step"] == "S112" for e in done["history"])
    finally:
        redis_peer.start()

    print_everything(t, tmp_path, jobs)
    for job_id in jobs:
        wait_completed(t, job_id)
        assert_no_leftovers(stack, job_id)
    assert not [s for s in statuses if s[1] >= 500], statuses
