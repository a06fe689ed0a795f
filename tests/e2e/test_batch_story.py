"""Seed 000's whole story over real HTTP, in one `printcloud serve`: a CRM job's
schedule fires once; the CRM answers docgen's Digest challenge with the tenant's
secret key; docgen verifies the print token, fetches the invoices with the CRM
token, renders them, verifies again and sends them to the print service; the
virtual printer prints them; the CRM run and the docgen request show each step."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from printcloud.auth import service as auth_service
from tests.helpers.docgen import docgen_runtime, setup_org
from tests.helpers.schedules import finished, job, link


def test_a_scheduled_job_prints_the_invoices(make_print_stack: Any, tmp_path: Path) -> None:
    stack = make_print_stack(workers=1)
    rt = docgen_runtime(stack)
    try:
        org = setup_org(stack, rt)  # docgen tenant, printer, tokens; CRM tenant with invoices
        with stack.db.session() as s:
            t = auth_service.get_tenant(s, issuer="idp-b", tenant_id=org.crm_tenant)
            client, secret = auth_service.create_client(
                s, tenant=t, name="crm admin", kind="confidential", scope="crm.read crm.write"
            )
            client_id = client.client_id
        assert secret is not None
        token = httpx.post(
            f"{stack.base_url}/idp-b/token",
            data={"grant_type": "client_credentials", "scope": "crm.read crm.write"},
            auth=(client_id, secret),
        ).json()["access_token"]
        crm = httpx.Client(
            base_url=f"{stack.base_url}/crm",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        link(crm, org.tenant, org.key)  # S1407-S1412: the docgen tenant and its key
        # a one-off job three seconds from now: the schedule fires exactly once
        job_id = job(
            crm,
            recurrence="once",
            timezone="UTC",
            start_at=(datetime.now(UTC) + timedelta(seconds=3)).isoformat(),
            form="invoice",
            query={"record_set": "invoices", "filters": [], "order": []},
            print={"printer_id": "color-1", "color": True, "copies": 1, "duplex": False},
        )
        (run,) = finished(crm, job_id)
        assert run["outcome"] == "completed", run
        run_steps = [s["step"] for s in run["steps"]]
        assert run_steps[:2] == ["S1501", "S1506"] and "S1509" in run_steps, run_steps

        (request,) = [r for r in _requests(stack, org.tenant)]
        done = org.wait(request, "completed", "suspended", "failed")
        assert done["state"] == "completed", done
        steps = [s["step"] for s in done["steps"]]
        for step in ("S1515-S1516", "S1520-S1521", "S1517-S1518", "S1519", "S1522", "S1525"):
            assert step in steps, steps
        assert len(done["print_job_ids"]) == 2  # two invoices, two documents

        printed: set[str] = set()
        deadline = time.monotonic() + 120
        bearer = org.stored().print
        assert bearer is not None
        with (
            org.device(tmp_path) as agent,
            httpx.Client(
                base_url=stack.printing,
                headers={"Authorization": f"Bearer {bearer.access_token}"},
            ) as api,
        ):
            while printed != set(done["print_job_ids"]):
                assert time.monotonic() < deadline, stack.log()
                agent.poll_once()
                for print_job in done["print_job_ids"]:
                    if api.get(f"/api/jobs/{print_job}").json()["state"] == "printed":
                        printed.add(print_job)
                time.sleep(0.2)
        previews = sorted(tmp_path.rglob("page-0001-preview.png"))
        assert len(previews) == 2  # each invoice printed, with its preview
        time.sleep(3)  # a once job never fires again
        assert len(finished(crm, job_id)) == 1
    finally:
        rt.http.close()


def _requests(stack: Any, tenant_id: str) -> list[str]:
    from printcloud.docgen import service

    deadline = time.monotonic() + 30
    while True:
        with stack.db.session() as s:
            rows = [r.request_id for r in service.list_requests(s, tenant_id=tenant_id, limit=10)]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
