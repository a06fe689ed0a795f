"""docgen beside the print stack: its runtime, an organisation with a printer and invoices
(the batch flow's seed steps), the forms the tests render, and docgen served on its own."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from printcloud.auth import service as auth_service
from printcloud.core.db import Database
from printcloud.crm import service as crm_service
from printcloud.device.agent import DeviceAgent, DeviceConfig
from printcloud.docgen import service, tokens
from printcloud.docgen.models import BatchRequest
from printcloud.docgen.runtime import DocgenRuntime, build_runtime
from tests.conftest import Stack
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


# A loop that runs only when the data holds TRIGGER: the upload's sample data passes.
DATA_LOOP = """#let d = json(bytes(sys.inputs.data))
#if sys.inputs.data.contains("TRIGGER") {
  let n = 0
  for i in range(100000) { for j in range(100000) { n += 1 } }
}
= Invoice #d.invoice.number
"""


# A package import the old source check missed (`\\u{40}` is "@"), behind the same trigger.
HIDDEN_IMPORT = """#let d = json(bytes(sys.inputs.data))
#if sys.inputs.data.contains("TRIGGER") {
  import "\\u{40}preview/cetz:0.3.0": canvas
}
= Invoice #d.invoice.number
"""


MINE = """#let d = json(bytes(sys.inputs.data))
#set page(paper: "a4")
= Our own invoice #d.invoice.number
Customer: #d.customer.name

Total: #d.totals.total #d.currency
"""


def admin(org: Org) -> httpx.Client:
    bearer = org.stack.user_token(org.tenant, "boss", PASSWORD, "docgen admin")
    return httpx.Client(
        base_url=f"{org.stack.base_url}/docgen",
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=60,
    )


@dataclass
class Docgen:
    stack: Stack
    rt: DocgenRuntime
    db: Database
    #: docgen's address, e.g. http://127.0.0.1:PORT/docgen
    base_url: str

    def batch_url(self, tenant: str) -> str:
        return f"{self.base_url}/api/batch-print?tenant_ID={tenant}"

    def issue_key(self, tenant: str) -> str:
        with self.db.session() as s:
            return service.issue_secret_key(s, tenant_id=tenant, box=self.rt.box, actor="test")

    def requests(self, tenant: str) -> list[BatchRequest]:
        with self.db.session() as s:
            return list(reversed(service.list_requests(s, tenant_id=tenant, limit=500)))
