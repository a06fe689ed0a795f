"""The batch flow over a real stack (seed 000, FIG. 15B–16, claims 2–3).

`printcloud serve` runs every service in a subprocess (tests/helpers/print_stack.py);
the set-up goes through the service layers on its database, and both tokens are
obtained for real: the print token by RFC 8693 exchange of the admin's idp-a
session, the CRM token by the authorization-code flow at idp-b (docgen's own
client and redirect URI), as docgen's settings do. The CRM then calls the
batch-print endpoint with Digest, and the virtual printer prints the invoices.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.docgen import (
    PASSWORD,
    blobs,
    docgen_runtime,
    setup_org,
    steps_of,
)


def test_the_nightly_batch_prints_the_invoices(make_print_stack: Any, tmp_path: Path) -> None:
    stack = make_print_stack(workers=1)
    rt = docgen_runtime(stack)
    try:
        org = setup_org(stack, rt)
        request_id = org.batch()
        done = org.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "completed", done
        assert steps_of(done) == [
            "S1512",
            "S1515-S1516",
            "S1520-S1521",
            "S1517-S1518",
            "S1519",
            "S1519",
            "S1520-S1521",
            "S1522",
            "S1522",
            "S1525",
        ]
        assert len(done["print_job_ids"]) == 2
        assert [p.name for p in blobs(stack, request_id)] == ["doc-0001.pdf", "doc-0002.pdf"]
        assert all(p.read_bytes().startswith(b"%PDF") for p in blobs(stack, request_id))

        # S1525: completed without the paper; the print jobs go on at the print service
        token = org.stored().print
        assert token is not None
        with httpx.Client(
            base_url=f"{stack.printing}", headers={"Authorization": f"Bearer {token.access_token}"}
        ) as api:
            printed: set[str] = set()
            deadline = time.monotonic() + 120
            with org.device(tmp_path / "out") as agent:
                while printed != set(done["print_job_ids"]):
                    assert time.monotonic() < deadline, stack.log()
                    agent.poll_once()
                    for job_id in done["print_job_ids"]:
                        job = api.get(f"/api/jobs/{job_id}").json()
                        assert job["state"] not in ("failed", "cancelled", "expired"), job
                        if job["state"] == "printed":
                            printed.add(job_id)
                    time.sleep(0.2)
        assert list((tmp_path / "out").rglob("*")), "the virtual printer printed nothing"

        # the same request seen through docgen's API: the print jobs' states
        bearer = stack.user_token(org.tenant, "boss", PASSWORD, "docgen admin")
        jobs = httpx.get(
            f"{stack.base_url}/docgen/api/batch-requests/{request_id}/print-jobs",
            headers={"Authorization": f"Bearer {bearer}"},
        )
        assert jobs.status_code == 200, jobs.text
        assert {j["state"] for j in jobs.json()["print_jobs"]} == {"printed"}
    finally:
        rt.http.close()


def test_refreshes_and_suspensions(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1)
    rt = docgen_runtime(stack)
    try:
        # Expired CRM token (its access token revoked): refreshed at idp-b, and completes.
        org = setup_org(stack, rt)
        crm = org.stored().crm
        assert crm is not None
        rt.client("idp-b").revoke(crm.access_token)
        request_id = org.batch()
        done = org.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "completed", done
        assert "S1601-S1605" in steps_of(done)
        fresh = org.stored().crm
        assert fresh is not None and fresh.access_token != crm.access_token

        # Revoked CRM refresh token (and its access token expired): suspended with that reason.
        # A new tenant: the CRM caches the introspection of a token it has seen.
        org = setup_org(stack, rt)
        crm = org.stored().crm
        assert crm is not None and crm.refresh_token
        rt.client("idp-b").revoke(crm.refresh_token)
        rt.client("idp-b").revoke(crm.access_token)
        request_id = org.batch()
        done = org.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "suspended", done
        assert "refused to refresh the CRM token" in (done["reason"] or ""), done
        assert done["print_job_ids"] == [] and blobs(stack, request_id) == []

        # Claim 3: print token invalid and not refreshable → no document is generated.
        org = setup_org(stack, rt)
        printing = org.stored().print
        assert printing is not None and printing.refresh_token
        rt.client("idp-a").revoke(printing.refresh_token)
        rt.client("idp-a").revoke(printing.access_token)
        request_id = org.batch()
        done = org.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "suspended", done
        assert "print token invalid and not refreshable" in (done["reason"] or ""), done
        assert "S1517-S1518" not in steps_of(done) and "S1519" not in steps_of(done)
        assert done["print_job_ids"] == [] and blobs(stack, request_id) == []

        # A CRM query error: suspended with the CRM's message (S1606).
        org = setup_org(stack, rt)
        request_id = org.batch(record_set="no_such_set")
        done = org.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "suspended", done
        assert done["reason"].startswith("the CRM refused the query: "), done
        assert "no_such_set" in done["reason"], done
        assert done["steps"][-1]["step"] == "S1606"
        assert done["print_job_ids"] == [] and blobs(stack, request_id) == []
    finally:
        rt.http.close()
