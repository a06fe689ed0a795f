"""Scheduled batch-print jobs fire (seed 000, FIG. 6–7, S1501–S1509), over a real
stack in its own process: `printcloud serve` with the CRM and docgen mounted, the
CRM calling docgen's batch-print endpoint with Digest, DBOS schedules ticking."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from printcloud.core.crypto import SecretBox
from tests.helpers.print_stack import PrintStack
from tests.helpers.schedules import finished, job, link, runs, wait


def crm_tenant(stack: PrintStack) -> tuple[str, httpx.Client]:
    """A new idp-b tenant with an invoices record set, and a CRM API client for it."""
    from printcloud.auth import service

    tenant_id = stack.tenant(prefix="b")
    with stack.db.session() as s:
        t = service.create_tenant(s, issuer="idp-b", tenant_id=tenant_id, name=tenant_id)
        c, secret = service.create_client(
            s, tenant=t, name="crm admin", kind="confidential", scope="crm.read crm.write"
        )
        client_id = c.client_id
    assert secret is not None
    token = httpx.post(
        f"{stack.base_url}/idp-b/token",
        data={"grant_type": "client_credentials", "scope": "crm.read crm.write"},
        auth=(client_id, secret),
    )
    assert token.status_code == 200, token.text
    api = httpx.Client(
        base_url=f"{stack.base_url}/crm",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=30,
    )
    r = api.post(
        "/api/record-sets/invoices/import",
        content=b"number,customer,total,paid\n1001,Acme,120.50,no\n",
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    return tenant_id, api


def docgen_tenant(stack: PrintStack) -> tuple[str, str]:
    """A new idp-a tenant with a secret key issued by docgen (S1401–S1406)."""
    from printcloud.docgen import service

    tenant_id = stack.tenant(prefix="a")
    with stack.db.session() as s:
        key = service.issue_secret_key(
            s,
            tenant_id=tenant_id,
            box=SecretBox(stack.settings.instance_secrets),
            actor="test",
        )
    return tenant_id, key


def every_seconds(api: httpx.Client, seconds: int, **changes: Any) -> str:
    start = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return job(
        api, recurrence="cron", cron=f"*/{seconds} * * * * *", timezone="UTC", start_at=start,
        **changes,
    )  # fmt: skip


def docgen_requests(stack: PrintStack, tenant_id: str) -> list[Any]:
    from printcloud.docgen import service

    with stack.db.session() as s:
        rows = service.list_requests(s, tenant_id=tenant_id, limit=500)
        s.expunge_all()
    return rows


def test_run_now_wrong_key_no_link_paused_and_isolation(make_print_stack: Any) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    _a_crm, a_api = crm_tenant(stack)
    _b_crm, b_api = crm_tenant(stack)
    a_docgen, a_key = docgen_tenant(stack)
    b_docgen, b_key = docgen_tenant(stack)
    link(a_api, a_docgen, a_key)
    link(b_api, b_docgen, b_key)

    # (a) run now: docgen records the request for A's docgen tenant; the run completed.
    a_job = job(a_api)
    r = a_api.post(f"/api/jobs/{a_job}/run")
    assert r.status_code == 202, r.text
    [run] = finished(a_api, a_job)
    assert run["outcome"] == "completed", run
    assert [s["step"] for s in run["steps"]] == ["S1501", "S1506", "S1509"]
    [request] = docgen_requests(stack, a_docgen)
    assert request.run_id == run["run_id"]
    assert request.source == "crm"
    assert request.parameters["print"] == {
        "printer_id": "printer-1",
        "color": False,
        "copies": 2,
        "duplex": True,
    }
    assert request.request_id in run["reason"]
    # Tenant isolation: B's docgen tenant saw nothing, B cannot run or see A's job.
    assert docgen_requests(stack, b_docgen) == []
    assert b_api.post(f"/api/jobs/{a_job}/run").status_code == 404
    assert b_api.get(f"/api/jobs/{a_job}/runs").status_code == 404

    # (c) a wrong key in the link: docgen refuses, the run is suspended with its reason.
    _c_crm, c_api = crm_tenant(stack)
    c_docgen, _ = docgen_tenant(stack)
    link(c_api, c_docgen, str(uuid.uuid4()))
    c_job = job(c_api)
    assert c_api.post(f"/api/jobs/{c_job}/run").status_code == 202
    [run] = finished(c_api, c_job)
    assert run["outcome"] == "suspended", run
    assert "401" in run["reason"] and "refused" in run["reason"], run
    assert run["steps"][-1]["step"] == "S1512"
    [refused] = docgen_requests(stack, c_docgen)
    assert refused.state == "suspended"

    # No link at all: the run fails, saying so.
    _, d_api = crm_tenant(stack)
    d_job = job(d_api)
    assert d_api.post(f"/api/jobs/{d_job}/run").status_code == 202
    [run] = finished(d_api, d_job)
    assert run["outcome"] == "failed"
    assert "no docgen link registered" in run["reason"]

    # (d) a paused job does not fire; pausing a firing job stops it.
    paused = every_seconds(b_api, 1, paused=True)
    firing = every_seconds(b_api, 1)
    finished(b_api, firing)
    assert b_api.post(f"/api/jobs/{firing}/pause").status_code == 200
    # A tick already started may still finish: there is no event to poll for when none was.
    time.sleep(1.5)
    count = len(runs(b_api, firing))
    time.sleep(3)  # deliberate: proves that no tick fires while the job is paused
    assert len(runs(b_api, firing)) == count
    assert runs(b_api, paused) == []
    # B's runs went to B's docgen tenant only.
    assert {q.run_id for q in docgen_requests(stack, b_docgen)} == {
        r["run_id"] for r in runs(b_api, firing)
    }
    assert len(docgen_requests(stack, a_docgen)) == 1

    # A job run once fires at its start second, once.
    start = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    once = job(a_api, recurrence="once", start_at=start.isoformat(), timezone="Asia/Tokyo")
    [run] = finished(a_api, once)
    assert datetime.fromisoformat(run["scheduled_at"]) == start
    assert run["outcome"] == "completed"
    time.sleep(2)  # deliberate: proves that the run-once job does not fire again
    assert len(runs(a_api, once)) == 1
    for api in (a_api, b_api, c_api, d_api):
        api.close()


def test_each_tick_runs_once_across_a_crash(make_print_stack: Any) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    _, api = crm_tenant(stack)
    docgen_id, key = docgen_tenant(stack)
    link(api, docgen_id, key)
    job_id = every_seconds(api, 2)
    finished(api, job_id, 2)

    stack.kill_all()  # kill -9, mid-tick perhaps
    time.sleep(7)  # deliberate: the server is down while about three ticks pass
    stack.start()
    restarted = datetime.now(UTC)
    wait(
        lambda: any(
            datetime.fromisoformat(r["scheduled_at"]) > restarted + timedelta(seconds=2)
            for r in runs(api, job_id)
        ),
        what="a tick after the restart",
    )
    # stop the ticks, so that the runs compared below are all the runs there will be
    assert api.post(f"/api/jobs/{job_id}/pause").status_code == 200
    time.sleep(1)  # a tick already started may still add its run (none may have)
    listed = runs(api, job_id)
    finished(api, job_id, len(listed))
    listed = runs(api, job_id)
    ticks = sorted(datetime.fromisoformat(r["scheduled_at"]) for r in listed)
    assert len(ticks) == len(set(ticks)), "a tick ran twice"
    # Every 2-second tick from the first to the last ran: the missed ones were backfilled.
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(ticks)}
    assert gaps == {2.0}, " ".join(t.strftime("%S") for t in ticks)
    assert {r["outcome"] for r in listed} == {"completed"}
    requests = docgen_requests(stack, docgen_id)
    assert sorted(q.run_id for q in requests) == sorted(r["run_id"] for r in runs(api, job_id))
    api.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_run_once_job_fires_once_across_restarts(make_print_stack: Any, database: str) -> None:
    """Issue 11, item 10: a run-once job that fired is not fired again by a restart, and
    one whose second passed while the server was down fires once when it is back."""
    stack: PrintStack = make_print_stack(database=database, workers=1)
    _, api = crm_tenant(stack)
    docgen_id, key = docgen_tenant(stack)
    link(api, docgen_id, key)

    # Start times with microseconds, as a form or an API client may send them.
    soon = datetime.now(UTC) + timedelta(seconds=4)
    fired = job(api, recurrence="once", timezone="Asia/Tokyo", start_at=soon.isoformat())
    # Due sooner than DBOS reads new schedules (every 30 s once the server has run a
    # minute, and it starts their clocks from then): its tick is started at the save,
    # and waits for its second (CI lost such a tick when the stack was slow to set up).
    assert tick_workflows(stack, fired), "the imminent tick was left to DBOS's scheduler"
    [before] = finished(api, fired)
    assert before["outcome"] == "completed", before
    assert datetime.fromisoformat(before["scheduled_at"]) == soon.replace(microsecond=0)
    assert datetime.fromisoformat(before["started_at"]) >= soon.replace(microsecond=0)

    # Saved with a start some seconds past (the API accepts up to a minute): no schedule
    # can fire it any more, so it runs at once, without waiting for a restart.
    past = datetime.now(UTC) - timedelta(seconds=20)
    late = job(api, recurrence="once", start_at=past.isoformat())
    [late_run] = finished(api, late)
    assert late_run["outcome"] == "completed", late_run
    assert datetime.fromisoformat(late_run["scheduled_at"]) == past.replace(microsecond=0)

    later = datetime.now(UTC) + timedelta(seconds=8)
    missed = job(api, recurrence="once", start_at=later.replace(microsecond=273254).isoformat())
    stack.stop()  # down before `missed`'s second
    assert runs_in_database(stack, missed) == 0
    while datetime.now(UTC) < later + timedelta(seconds=2):
        time.sleep(0.2)
    stack.start()

    [caught_up] = finished(api, missed)
    time.sleep(2)  # a second firing of either job would have been started with the first
    assert [r["run_id"] for r in runs(api, fired)] == [before["run_id"]]
    assert [r["run_id"] for r in runs(api, missed)] == [caught_up["run_id"]]
    assert caught_up["outcome"] == "completed", caught_up
    assert datetime.fromisoformat(caught_up["scheduled_at"]) == later.replace(microsecond=0)

    # Once more: both ran, neither fires again; docgen saw one request for each.
    stack.stop()
    stack.start()
    time.sleep(2)  # deliberate: proves that neither job fires again after a restart
    assert [r["run_id"] for r in runs(api, fired)] == [before["run_id"]]
    assert [r["run_id"] for r in runs(api, missed)] == [caught_up["run_id"]]
    assert [r["run_id"] for r in runs(api, late)] == [late_run["run_id"]]
    assert sorted(q.run_id for q in docgen_requests(stack, docgen_id)) == sorted(
        [before["run_id"], late_run["run_id"], caught_up["run_id"]]
    )
    api.close()


def tick_workflows(stack: PrintStack, job_id: str) -> list[str]:
    """The DBOS workflows started for the job's ticks (`sched-crm-job-<id>-<second>`)."""
    from sqlalchemy import column, create_engine, select, table

    from printcloud.core.tasks.system_db import system_database

    url, schema = system_database(stack.settings)
    name = column("workflow_uuid")
    workflows = table("workflow_status", name, schema=schema)
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            found = c.scalars(
                select(name).select_from(workflows).where(name.like(f"sched-crm-job-{job_id}-%"))
            )
            return [str(found_id) for found_id in found]
    finally:
        engine.dispose()


def runs_in_database(stack: PrintStack, job_id: str) -> int:
    """The job's runs, read from the database (the server may be down)."""
    from sqlalchemy import func, select

    from printcloud.crm.models import BatchJobRow, BatchRunRow

    with stack.db.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(BatchRunRow)
                .join(BatchJobRow, BatchJobRow.pk == BatchRunRow.job_pk)
                .where(BatchJobRow.job_id == job_id)
            )
            or 0
        )
