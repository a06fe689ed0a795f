"""The CRM's HTTP API over real HTTP, with idp-b tokens from the real authorization
server: scopes, record sets and records, CSV upload, the query docgen calls (through
the typed client), batch jobs, the write-only docgen link, bad input and isolation."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from printcloud.crm.client import CrmClient, CrmError, TokenRejected
from tests.crm.conftest import CrmStack

INVOICES_CSV = (
    "number,customer,total:decimal,due,paid\n"
    "1001,Acme,120.50,2025-01-31,yes\n"
    "1002,Globex,99.99,2025-02-28,no\n"
    "1003,Initech,1000,2024-12-01,no\n"
)


@pytest.fixture
def tenant(crm_stack: CrmStack) -> tuple[str, str]:
    """A new idp-b tenant and a token of it with crm.read and crm.write."""
    tenant_id = crm_stack.tenant("idp-b")
    return tenant_id, crm_stack.token(tenant_id)


def load(stack: CrmStack, token: str) -> None:
    with stack.api(token) as api:
        r = api.post(
            "/api/record-sets/invoices/import",
            files={"file": ("invoices.csv", INVOICES_CSV.encode(), "text/csv")},
        )
        assert r.status_code == 200, r.text


def job_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Nightly invoices",
        "start_at": (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "recurrence": "daily",
        "timezone": "Asia/Tokyo",
        "print": {"printer_id": "printer-1", "color": False, "copies": 2, "duplex": True},
        "form": "invoice",
        "query": {
            "record_set": "invoices",
            "filters": [{"field": "paid", "op": "eq", "value": False}],
            "order": ["-total"],
        },
    }
    body.update(changes)
    return body


def test_tokens_and_scopes(crm_stack: CrmStack) -> None:
    tenant_id = crm_stack.tenant("idp-b")
    reader = crm_stack.token(tenant_id, scope="crm.read")
    with crm_stack.api(None) as anonymous:
        r = anonymous.get("/api/record-sets")
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        assert r.headers["www-authenticate"].startswith("Bearer")
    with crm_stack.api("not-a-token") as bogus:
        assert bogus.get("/api/record-sets").status_code == 401
    with crm_stack.api(reader) as api:
        assert api.get("/api/record-sets").json() == {"record_sets": []}
        for method, path in [
            ("POST", "/api/record-sets"),
            ("POST", "/api/record-sets/x/import"),
            ("GET", "/api/jobs"),
            ("PUT", "/api/docgen-link"),
            ("GET", "/api/docgen-link"),
        ]:
            r = api.request(method, path, json={})
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"] == "insufficient_scope"
    # a token of idp-a is not the CRM's
    a_tenant = crm_stack.tenant("idp-a")
    client_id, secret = crm_stack.client(a_tenant, "idp-a", scope="print")
    token = httpx.post(
        f"{crm_stack.issuer_url('idp-a')}/token",
        data={"grant_type": "client_credentials", "scope": "print"},
        auth=(client_id, secret or ""),
    ).json()["access_token"]
    with crm_stack.api(token) as api:
        assert api.get("/api/record-sets").status_code == 401


def test_record_sets_and_records(crm_stack: CrmStack, tenant: tuple[str, str]) -> None:
    _, token = tenant
    with crm_stack.api(token) as api:
        r = api.post(
            "/api/record-sets",
            json={
                "name": "customers",
                "fields": [
                    {"name": "name", "type": "string", "required": True},
                    {"name": "credit", "type": "decimal"},
                    {"name": "since", "type": "date"},
                ],
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["records"] == 0
        assert api.post("/api/record-sets", json=r.json() | {"records": 0}).status_code == 409
        ids = []
        for data in (
            {"name": "Acme", "credit": "1500.00", "since": "2020-05-01"},
            {"name": "Globex", "credit": 250},
            {"name": "Initech"},
        ):
            r = api.post("/api/record-sets/customers/records", json={"data": data})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        assert r.json()["data"] == {"name": "Initech"}
        r = api.post(
            "/api/record-sets/customers/records", json={"data": {"name": "X", "credit": "abc"}}
        )
        assert r.status_code == 400
        assert r.json()["field"] == "data.credit" and "abc" in r.json()["error_description"]
        r = api.get(
            "/api/record-sets/customers/records",
            params=[("where", "credit:gt:300"), ("order", "-credit")],
        )
        assert [x["data"]["name"] for x in r.json()["records"]] == ["Acme"]
        r = api.get(
            "/api/record-sets/customers/records",
            params={"where": "name:contains:o", "order": "name", "limit": 1},
        )
        body = r.json()
        assert [x["data"]["name"] for x in body["records"]] == ["Globex"]
        assert (body["total"], body["next_offset"]) == (1, None)
        r = api.get("/api/record-sets/customers/records", params={"where": "since:lt:yesterday"})
        assert r.status_code == 400 and r.json()["field"] == "filters.0.value"
        r = api.get("/api/record-sets/customers/records", params={"where": "credit"})
        assert r.status_code == 400 and r.json()["field"] == "where.0"
        r = api.put(
            f"/api/record-sets/customers/records/{ids[2]}",
            json={"data": {"name": "Initech", "since": "2021-01-01"}},
        )
        assert r.status_code == 200 and r.json()["data"]["since"] == "2021-01-01"
        assert api.get(f"/api/record-sets/customers/records/{ids[2]}").status_code == 200
        assert api.delete(f"/api/record-sets/customers/records/{ids[2]}").status_code == 204
        assert api.get(f"/api/record-sets/customers/records/{ids[2]}").status_code == 404
        listing = api.get("/api/record-sets").json()["record_sets"]
        assert [(s["name"], s["records"]) for s in listing] == [("customers", 2)]
        assert api.delete("/api/record-sets/customers").status_code == 204
        assert api.get("/api/record-sets/customers").status_code == 404


def test_csv_upload(crm_stack: CrmStack, tenant: tuple[str, str]) -> None:
    _, token = tenant
    load(crm_stack, token)
    with crm_stack.api(token) as api:
        info = api.get("/api/record-sets/invoices").json()
        assert {f["name"]: f["type"] for f in info["fields"]} == {
            "number": "integer",
            "customer": "string",
            "total": "decimal",
            "due": "date",
            "paid": "boolean",
        }
        assert info["records"] == 3
        bad = "number,total\n1004,12.00\n1005,abc\n1006\n1007,1.5.5\n"
        r = api.post(
            "/api/record-sets/invoices/import",
            files={"file": ("more.csv", bad.encode(), "text/csv")},
            data={"create_fields": "false"},
        )
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["error"] == "invalid_request" and body["field"] == "file"
        assert body["error_count"] == 3
        assert [(e["line"], e["field"]) for e in body["errors"]] == [
            (3, "total"),
            (4, None),
            (5, "total"),
        ]
        assert api.get("/api/record-sets/invoices").json()["records"] == 3  # all or nothing
        # a text/csv body, replacing the set's records
        r = api.post(
            "/api/record-sets/invoices/import",
            params={"replace": "true"},
            content=b"number,total\n2001,5\n",
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        assert (r.json()["imported"], r.json()["replaced"]) == (1, 3)
        r = api.post(
            "/api/record-sets/invoices/import",
            content="number\n\xe9\n".encode("latin-1"),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 400 and "UTF-8" in r.json()["error_description"]
        r = api.post("/api/record-sets/invoices/import", json={"csv": "a\n1\n"})
        assert r.status_code == 400 and r.json()["field"] == "file"
        r = api.post(
            "/api/record-sets/invoices/import",
            files={"file": ("empty.csv", b"", "text/csv")},
        )
        assert r.status_code == 400 and r.json()["field"] == "file"
        r = api.post(
            "/api/record-sets/bad name/import",
            content=b"a\n1\n",
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 400 and r.json()["field"] == "record_set"
        r = api.post(
            "/api/record-sets/big/import",
            content=b"a\n" + b"1\n" * (3 * 1024 * 1024),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 413


def test_the_query_docgen_calls(crm_stack: CrmStack, tenant: tuple[str, str]) -> None:
    _, token = tenant
    load(crm_stack, token)
    reader = crm_stack.token(tenant[0], scope="crm.read")
    with httpx.Client(timeout=60) as http:
        crm = CrmClient(crm_stack.crm_url, http=http)
        page = crm.query(
            reader,
            record_set="invoices",
            filters=[("paid", "eq", False)],
            order=["-total"],
        )
        assert [r["number"] for r in page.rows] == [1003, 1002]
        assert page.rows[0]["total"] == "1000" and page.total == 2
        first = crm.query(reader, record_set="invoices", order=["number"], limit=2)
        assert first.next_offset == 2 and len(first.records) == 2
        everything = crm.query_all(reader, record_set="invoices", order=["number"])
        assert [r["number"] for r in everything] == [1001, 1002, 1003]
        capped = crm.query_all(reader, record_set="invoices", order=["number"], limit=1)
        assert [r["number"] for r in capped] == [1001]
        with pytest.raises(CrmError) as err:
            crm.query(reader, record_set="payments")
        assert err.value.status == 404 and "payments" in err.value.description
        with pytest.raises(CrmError) as err:
            crm.query(reader, record_set="invoices", filters=[{"field": "total", "op": "gt"}])
        assert err.value.status == 400 and err.value.field == "filters.0.value"
        with pytest.raises(TokenRejected):
            crm.query("expired-or-revoked", record_set="invoices")
        with pytest.raises(CrmError) as err:
            CrmClient("http://127.0.0.1:9/crm", http=http).query(reader, record_set="invoices")
        assert err.value.status == 0
    with crm_stack.api(reader) as api:
        r = api.post("/api/query", json={"record_set": "invoices", "limit": 0})
        assert r.status_code == 400 and r.json()["field"] == "limit"
        r = api.post("/api/query", json={"record_set": "invoices", "filters": [{"op": "eq"}]})
        assert r.status_code == 400 and r.json()["field"] == "filters.0.field"


def test_batch_jobs(crm_stack: CrmStack, tenant: tuple[str, str]) -> None:
    tenant_id, token = tenant
    load(crm_stack, token)
    assert crm_stack.runtime is not None
    changed: list[tuple[str, str]] = []
    crm_stack.runtime.on_job_changed.append(lambda t, j: changed.append((t, j)))
    try:
        with crm_stack.api(token) as api:
            r = api.post("/api/jobs", json=job_body())
            assert r.status_code == 201, r.text
            job = r.json()
            job_id = job["job_id"]
            assert job["print"] == {
                "printer_id": "printer-1",
                "color": False,
                "copies": 2,
                "duplex": True,
            }
            assert job["timezone"] == "Asia/Tokyo" and job["schedule"].endswith(" * * *")
            assert job["next_run_at"] is not None and job["created_by"]
            assert api.post("/api/jobs", json=job_body()).status_code == 409
            r = api.put(f"/api/jobs/{job_id}", json=job_body(recurrence="cron", cron="0 2 * * *"))
            assert r.status_code == 200 and r.json()["schedule"] == "0 2 * * *"
            r = api.post(f"/api/jobs/{job_id}/pause")
            assert r.json()["paused"] is True and r.json()["next_run_at"] is None
            r = api.post(f"/api/jobs/{job_id}/resume")
            assert r.json()["paused"] is False
            assert [j["job_id"] for j in api.get("/api/jobs").json()["jobs"]] == [job_id]
            assert api.get(f"/api/jobs/{job_id}/runs").json() == {"runs": []}
            assert api.get("/api/runs").json() == {"runs": []}
            assert api.delete(f"/api/jobs/{job_id}").status_code == 204
            assert api.get(f"/api/jobs/{job_id}").status_code == 404
    finally:
        crm_stack.runtime.on_job_changed.clear()
    assert changed == [(tenant_id, job_id)] * 5


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"recurrence": "cron", "cron": "every night"}, "cron"),
        ({"recurrence": "fortnightly"}, "recurrence"),
        ({"start_at": "tomorrow"}, "start_at"),
        ({"recurrence": "once", "start_at": "2001-01-01T00:00"}, "start_at"),
        ({"print": {"printer_id": "p", "copies": 0}}, "print.copies"),
        ({"print": {"copies": 1}}, "print.printer_id"),
        ({"query": {"record_set": "nope"}}, "query.record_set"),
        (
            {"query": {"record_set": "invoices", "filters": [{"field": "x", "value": 1}]}},
            "query.filters.0.field",
        ),
        ({"name": ""}, "name"),
    ],
)
def test_bad_jobs_are_400_naming_the_field(
    crm_stack: CrmStack, tenant: tuple[str, str], changes: dict[str, Any], field: str
) -> None:
    _, token = tenant
    load(crm_stack, token)
    with crm_stack.api(token) as api:
        r = api.post("/api/jobs", json=job_body(**changes))
        assert r.status_code == 400, r.text
        assert r.json()["field"] == field, r.json()


def test_the_docgen_link_is_write_only(crm_stack: CrmStack, tenant: tuple[str, str]) -> None:
    tenant_id, token = tenant
    key = "5f0c7d1e-9a7b-4c1d-8e2f-3a4b5c6d7e8f"
    docgen_tenant = f"1000{secrets.token_hex(3).upper()}"
    with crm_stack.api(token) as api:
        assert api.get("/api/docgen-link").status_code == 404
        r = api.put("/api/docgen-link", json={"docgen_tenant_id": docgen_tenant, "secret_key": key})
        assert r.status_code == 200, r.text
        assert key not in r.text
        shown = api.get("/api/docgen-link")
        assert key not in shown.text
        assert shown.json()["docgen_tenant_id"] == docgen_tenant
        assert shown.json()["secret_key_set"] is True and shown.json()["set_by"]
        r = api.put("/api/docgen-link", json={"docgen_tenant_id": docgen_tenant, "secret_key": "x"})
        assert r.status_code == 400 and r.json()["field"] == "secret_key"
        r = api.put("/api/docgen-link", json={"docgen_tenant_id": docgen_tenant})
        assert r.status_code == 400 and r.json()["field"] == "secret_key"
    # one-to-one (S1412): another CRM tenant cannot claim the same docgen tenant
    other = crm_stack.token(crm_stack.tenant("idp-b"))
    with crm_stack.api(other) as api:
        r = api.put("/api/docgen-link", json={"docgen_tenant_id": docgen_tenant, "secret_key": key})
        assert r.status_code == 409 and key not in r.text
    from printcloud.crm import service

    assert crm_stack.runtime is not None
    with crm_stack.db.sessions() as db:
        creds = service.docgen_credentials(db, tenant_id=tenant_id, box=crm_stack.runtime.box)
    assert creds.secret_key == key


def test_tenants_are_isolated(crm_stack: CrmStack, tenant: tuple[str, str]) -> None:
    _, token_a = tenant
    load(crm_stack, token_a)
    with crm_stack.api(token_a) as api:
        record_id = api.get("/api/record-sets/invoices/records").json()["records"][0]["id"]
        job_id = api.post("/api/jobs", json=job_body()).json()["job_id"]
        api.put(
            "/api/docgen-link",
            json={"docgen_tenant_id": f"d{secrets.token_hex(4)}", "secret_key": "k" * 24},
        )
    token_b = crm_stack.token(crm_stack.tenant("idp-b"))
    with crm_stack.api(token_b) as api:
        assert api.get("/api/record-sets").json() == {"record_sets": []}
        assert api.get("/api/jobs").json() == {"jobs": []}
        assert api.get("/api/runs").json() == {"runs": []}
        assert api.get("/api/docgen-link").status_code == 404
        for method, path in [
            ("GET", "/api/record-sets/invoices"),
            ("GET", "/api/record-sets/invoices/records"),
            ("DELETE", "/api/record-sets/invoices"),
            ("GET", f"/api/jobs/{job_id}"),
            ("POST", f"/api/jobs/{job_id}/pause"),
            ("DELETE", f"/api/jobs/{job_id}"),
            ("GET", f"/api/jobs/{job_id}/runs"),
        ]:
            r = api.request(method, path)
            assert r.status_code == 404, (method, path)
            assert "Acme" not in r.text
        r = api.post("/api/query", json={"record_set": "invoices"})
        assert r.status_code == 404 and "Acme" not in r.text
        # B makes its own "invoices": A's record is not in it, even by ID
        api.post("/api/record-sets", json={"name": "invoices", "fields": [{"name": "n"}]})
        assert api.get(f"/api/record-sets/invoices/records/{record_id}").status_code == 404
        r = api.put(f"/api/record-sets/invoices/records/{record_id}", json={"data": {"n": "x"}})
        assert r.status_code == 404
        assert api.delete(f"/api/record-sets/invoices/records/{record_id}").status_code == 404
    with crm_stack.api(token_a) as api:
        assert api.get("/api/record-sets/invoices").json()["records"] == 3
        assert api.get(f"/api/jobs/{job_id}").json()["paused"] is False


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        (
            "POST",
            "/api/record-sets",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
        ),
        ("POST", "/api/record-sets", {"json": {"name": "x\u0000", "fields": [{"name": "a"}]}}),
        (
            "POST",
            "/api/record-sets",
            {"json": {"name": "x", "fields": [{"name": "a", "type": "blob"}]}},
        ),
        ("POST", "/api/record-sets", {"json": {"name": "x" * 65, "fields": [{"name": "a"}]}}),
        ("POST", "/api/record-sets", {"json": [1, 2]}),
        ("POST", "/api/record-sets/invoices/records", {"json": {"data": [1]}}),
        ("POST", "/api/record-sets/invoices/records", {"json": {"data": {"number": 10**30}}}),
        ("GET", "/api/record-sets/invoices/records", {"params": {"limit": "lots"}}),
        ("GET", "/api/record-sets/invoices/records", {"params": {"order": "-nope"}}),
        ("GET", "/api/record-sets/invoices/records", {"params": {"where": "a%00:eq:1"}}),
        ("POST", "/api/query", {"json": {"record_set": "invoices", "order": "number"}}),
        ("POST", "/api/query", {"json": {"record_set": "invoices", "offset": -1}}),
        ("POST", "/api/jobs", {"json": {}}),
        ("PUT", "/api/docgen-link", {"json": {"docgen_tenant_id": "a/b", "secret_key": "k" * 20}}),
    ],
)
def test_bad_input_is_400_never_500(
    crm_stack: CrmStack, tenant: tuple[str, str], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    _, token = tenant
    load(crm_stack, token)
    with crm_stack.api(token) as api:
        r = api.request(method, path, **kwargs)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request" and r.json()["error_description"]


def test_unknown_ids_are_404(crm_stack: CrmStack, tenant: tuple[str, str]) -> None:
    _, token = tenant
    load(crm_stack, token)
    with crm_stack.api(token) as api:
        for path in (
            "/api/record-sets/nope",
            "/api/record-sets/invoices/records/zz-not-an-id",
            "/api/record-sets/invoices/records/" + "a" * 40,
            "/api/jobs/nope",
            "/api/jobs/%2e%2e",
        ):
            r = api.get(path)
            assert r.status_code == 404, path
            assert r.json()["error"] == "not_found"
