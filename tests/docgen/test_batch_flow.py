"""The batch flow over a real stack (seed 000, FIG. 15B–16, claims 2–3).

`printcloud serve` runs every service in a subprocess (tests/printing/conftest.py);
the set-up goes through the service layers on its database, and both tokens are
obtained for real: the print token by RFC 8693 exchange of the admin's idp-a
session, the CRM token by the authorization-code flow at idp-b (docgen's own
client and redirect URI), as docgen's settings do. The CRM then calls the
batch-print endpoint with Digest, and the virtual printer prints the invoices.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from printcloud.auth import service as auth_service
from printcloud.crm import service as crm_service
from printcloud.device.agent import DeviceAgent, DeviceConfig
from printcloud.docgen import service, tokens
from printcloud.docgen.runtime import DocgenRuntime, build_runtime
from tests.helpers.browser import Browser
from tests.helpers.print_stack import PrintStack

PASSWORD = "correct horse"
INVOICE_FIELDS = [
    {"name": "number", "type": "string"},
    {"name": "date", "type": "date"},
    {"name": "customer_name", "type": "string"},
    {"name": "customer_address", "type": "string"},
    {"name": "lines", "type": "string"},
]


@dataclass
class Org:
    """A docgen tenant (idp-a) with its printer, and its CRM tenant (idp-b) with invoices."""

    stack: PrintStack
    rt: DocgenRuntime
    tenant: str
    crm_tenant: str
    dev_id: str
    dev_secret: str
    key: str

    def batch(self, **parameters: Any) -> str:
        params = {"record_set": "invoices", "form": "invoice", **parameters}
        params.setdefault("print", {"printer_id": "color-1", "color": False, "copies": 1})
        answer = httpx.post(
            f"{self.stack.base_url}/docgen/api/batch-print",
            params={"tenant_ID": self.tenant},
            json={"job": "nightly invoices", "parameters": params},
            auth=httpx.DigestAuth(self.tenant, self.key),
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["request_id"])

    def request(self, request_id: str) -> dict[str, Any]:
        with self.stack.db.session() as s:
            row = service.get_request(s, tenant_id=self.tenant, request_id=request_id)
            return {
                "state": row.state,
                "reason": row.reason,
                "steps": [dict(step) for step in row.steps],
                "print_job_ids": list(row.print_job_ids),
            }

    def wait(self, request_id: str, *states: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.request(request_id)
            if found["state"] in states:
                return found
            assert time.monotonic() < deadline, (found, self.stack.log())
            time.sleep(0.2)

    def stored(self) -> service.TenantTokens:
        with self.stack.db.session() as s:
            return service.tokens_for(s, tenant_id=self.tenant, box=self.rt.box)

    def device(self, out: Path) -> DeviceAgent:
        return DeviceAgent(
            DeviceConfig(
                server=self.stack.base_url,
                tenant_id=self.tenant,
                printer_id="color-1",
                client_id=self.dev_id,
                client_secret=self.dev_secret,
                out_dir=out,
            )
        )


def invoice(number: str, customer: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "number": number,
        "date": "2026-11-20",
        "customer_name": customer,
        "customer_address": "1 Main Street\n75001 Paris",
        "lines": json.dumps(lines),
    }


def setup_org(stack: PrintStack, rt: DocgenRuntime) -> Org:
    # idp-a: docgen's tenant, its administrator, a printer and the printer's device client
    tenant = stack.tenant(prefix="a")
    with stack.db.session() as s:
        t = auth_service.get_tenant(s, issuer="idp-a", tenant_id=tenant)
        auth_service.create_user(s, tenant=t, username="boss", password=PASSWORD, is_admin=True)
    dev_id, dev_secret = stack.client(tenant, kind="device", scope="device print")
    stack.printer(tenant, "color-1", color=True, client_id=dev_id)
    # idp-b: the CRM's tenant, a CRM user and the invoices
    crm_tenant = f"crm{tenant[1:]}"
    with stack.db.session() as s:
        b = auth_service.create_tenant(s, issuer="idp-b", tenant_id=crm_tenant, name="CRM")
        auth_service.create_user(s, tenant=b, username="clerk", password=PASSWORD, is_admin=True)
    with stack.db.session() as s:
        crm_service.create_record_set(
            s, tenant_id=crm_tenant, name="invoices", fields=INVOICE_FIELDS
        )
        for data in (
            invoice(
                "INV-001",
                "Acme SA",
                [{"description": "Toner", "quantity": 2, "unit_price": "39.90"}],
            ),
            invoice(
                "INV-002",
                "Globex",
                [{"description": "Paper A4", "quantity": 10, "unit_price": "4.5"}],
            ),
        ):
            crm_service.add_record(s, tenant_id=crm_tenant, record_set="invoices", data=data)
    # docgen: the secret key, the print token (FIG. 11, exchange) and the CRM token (FIG. 13)
    with stack.db.session() as s:
        key = service.issue_secret_key(s, tenant_id=tenant, box=rt.box, actor="test")
    with Browser(stack.base_url) as browser:
        browser.login(tenant, "boss", PASSWORD)
        assert browser.session_id
        tokens.exchange_print_token(
            rt, tenant_id=tenant, session_id=browser.session_id, actor="test"
        )
    auth = tokens.start_authorization(rt, "idp-b", scope=tokens.CRM_SCOPE)
    with Browser(stack.base_url, issuer="idp-b") as browser:
        trip = browser.authorize(auth.url, credentials=(crm_tenant, "clerk", PASSWORD))
        query = parse_qs(urlsplit(trip.location).query)
        assert query.get("state") == [auth.state], trip.location
        tokens.crm_token_from_code(
            rt, tenant_id=tenant, code=query["code"][0], verifier=auth.verifier, actor="test"
        )
    org = Org(stack, rt, tenant, crm_tenant, dev_id, dev_secret, key)
    found = org.stored()
    assert found.crm is not None and found.crm.refresh_token and found.crm.tenant_id == crm_tenant
    assert found.print is not None and found.print.refresh_token
    return org


def docgen_runtime(stack: PrintStack) -> DocgenRuntime:
    """docgen's runtime in the test process (same settings: svc-docgen's secrets match)."""
    return build_runtime(stack.settings, db=stack.db)


def steps_of(found: dict[str, Any]) -> list[str]:
    return [step["step"] for step in found["steps"]]


def blobs(stack: PrintStack, request_id: str) -> list[Path]:
    folder = stack.settings.data_dir / "blobs" / "docgen" / request_id
    return sorted(folder.glob("*")) if folder.exists() else []


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
