"""The CRM's web pages, driven over HTTP like a browser without JavaScript: sign-in at
idp-b (code flow with PKCE as svc-crm), CSV upload, records with a filter, the batch
job registration form (FIG. 6), the job list (FIG. 7) and the secret-key form (FIG. 9)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from tests.crm.conftest import CrmStack
from tests.helpers.browser import Browser, form_to

_JOB_ROW = re.compile(r'<tr id="job-([0-9a-f]+)">')


def sign_in(stack: CrmStack, username: str = "carol") -> tuple[Browser, str]:
    tenant = stack.tenant("idp-b")
    user, password = stack.user(tenant, username, issuer="idp-b", admin=True)
    browser = Browser(stack, "idp-b", credentials=(tenant, user, password))
    home = browser.open("/crm/")
    assert home.status_code == 200, home.text[:1000]
    assert f"{user} · Tenant {tenant}" in home.text  # the display name, not the ID
    return browser, tenant


def test_records_pages_and_csv_upload(crm_stack: CrmStack) -> None:
    browser, _ = sign_in(crm_stack)
    with browser:
        home = browser.open("/crm/")
        assert "No record sets yet" in home.text
        csv_text = "number,customer,total,paid\n1,Acme,10.50,yes\n2,Globex,99,no\n3,Initech,7,no\n"
        r = browser.http.post(
            "/crm/import",
            data={"csrf": browser.csrf(home), "record_set": "invoices"},
            files={"file": ("invoices.csv", csv_text.encode(), "text/csv")},
        )
        assert r.status_code == 200, r.text[:1000]
        assert "Imported 3 record(s) into invoices" in r.text
        assert 'id="set-invoices"' in r.text
        bad = "number,total\n4,abc\n5,1\n6,x.y\n"
        r = browser.http.post(
            "/crm/sets/invoices/import",
            data={"csrf": browser.csrf(home)},
            files={"file": ("more.csv", bad.encode(), "text/csv")},
        )
        assert r.status_code == 400
        assert "Nothing was imported. 2 problem(s)" in r.text
        assert "line 2, total" in r.text and "line 4, total" in r.text
        r = browser.http.post(
            "/crm/import",
            data={"csrf": "forged", "record_set": "x"},
            files={"file": ("x.csv", b"a\n1\n", "text/csv")},
        )
        assert r.status_code == 400 and "expired" in r.text
        page = browser.open("/crm/sets/invoices?field=paid&op=eq&value=no&order=-total")
        assert page.status_code == 200
        rows = re.findall(r"<tr><td>(\d+)</td>", page.text)
        assert rows == ["2", "3"]
        page = browser.open("/crm/sets/invoices?field=total&op=gt&value=lots")
        assert page.status_code == 400 and "lots" in html.unescape(page.text)
        assert browser.open("/crm/sets/nothing").status_code == 404


def test_batch_job_pages(crm_stack: CrmStack) -> None:
    browser, _ = sign_in(crm_stack)
    other, _ = sign_in(crm_stack, "dave")
    with browser, other:
        home = browser.open("/crm/")
        browser.http.post(
            "/crm/import",
            data={"csrf": browser.csrf(home), "record_set": "invoices"},
            files={"file": ("i.csv", b"number,total,paid\n1,5.00,no\n", "text/csv")},
        )
        form = browser.open("/crm/jobs/new")
        assert form.status_code == 200 and 'name="start_at"' in form.text
        start = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
        fields = {
            "csrf": browser.csrf(form),
            "name": "Month-end invoices",
            "start_at": start,
            "timezone": "Europe/Paris",
            "recurrence": "weekly",
            "cron": "",
            "printer_id": "printer-1",
            "color": "mono",
            "copies": "2",
            "duplex": "yes",
            "form": "invoice",
            "record_set": "invoices",
            "filter0_field": "paid",
            "filter0_op": "eq",
            "filter0_value": "no",
            "order": "-total",
            "limit": "",
        }
        r = browser.http.post("/crm/jobs", data={**fields, "timezone": "Mars/Olympus"})
        assert r.status_code == 400 and "Mars/Olympus" in html.unescape(r.text)
        assert 'value="Month-end invoices"' in r.text  # the form keeps what was typed
        r = browser.http.post("/crm/jobs", data={**fields, "copies": "many"})
        assert r.status_code == 400 and 'id="copies-error"' in r.text
        assert "Enter a number of copies from 1 to 999." in r.text
        r = browser.http.post("/crm/jobs", data=fields)
        assert r.status_code == 303 and r.headers["location"] == "/crm/jobs?done=saved"
        listing = browser.open("/crm/jobs")
        assert "Month-end invoices" in listing.text and "Europe/Paris" in listing.text
        [job_id] = _JOB_ROW.findall(listing.text)
        edit = browser.open(f"/crm/jobs/{job_id}")
        assert 'value="Month-end invoices"' in edit.text and 'value="-total"' in edit.text
        r = browser.http.post(
            f"/crm/jobs/{job_id}", data={**fields, "csrf": browser.csrf(edit), "copies": "3"}
        )
        assert r.status_code == 303
        pause = form_to(browser.open("/crm/jobs").text, f"/crm/jobs/{job_id}/pause")
        assert browser.http.post(pause.action, data=pause.hidden).status_code == 303
        listing = browser.open("/crm/jobs")
        assert "Paused</span>" in listing.text and "3×, duplex" in listing.text
        # another tenant's user sees nothing of it
        assert other.open(f"/crm/jobs/{job_id}").status_code == 404
        assert "Month-end invoices" not in other.open("/crm/jobs").text
        r = other.http.post(
            f"/crm/jobs/{job_id}/delete", data={"csrf": other.csrf(other.open("/crm/jobs"))}
        )
        assert r.status_code == 404
        assert "No runs yet" in browser.open("/crm/runs").text
        delete = form_to(browser.open("/crm/jobs").text, f"/crm/jobs/{job_id}/delete")
        assert browser.http.post(delete.action, data=delete.hidden).status_code == 303
        assert "No batch jobs yet" in browser.open("/crm/jobs").text


def test_secret_key_page(crm_stack: CrmStack) -> None:
    browser, tenant = sign_in(crm_stack)
    key = "0b3f7a52-6c1e-4d2a-9f8e-7a6b5c4d3e2f"
    with browser:
        page = browser.open("/crm/docgen-link")
        assert "No secret key is registered yet" in page.text
        form = form_to(page.text, "/crm/docgen-link")
        r = browser.http.post(
            form.action, data={**form.hidden, "docgen_tenant_id": "1000AA", "secret_key": "short"}
        )
        assert r.status_code == 400 and 'id="secret_key-error"' in r.text
        assert "at least 16 characters" in r.text and 'value="1000AA"' in r.text
        docgen_tenant = f"D{tenant}"
        r = browser.http.post(
            form.action,
            data={**form.hidden, "docgen_tenant_id": docgen_tenant, "secret_key": key},
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/crm/docgen-link?done=registered"
        r = browser.open(r.headers["location"])
        assert r.status_code == 200 and "The secret key is registered." in r.text
        assert key not in r.text and docgen_tenant in r.text
        assert key not in browser.open("/crm/docgen-link").text
        logout = form_to(browser.open("/crm/").text, "/crm/auth/logout")
        r = browser.http.post(logout.action, data=logout.hidden)
        assert r.status_code == 303
        r = browser.http.get("/crm/docgen-link")
        assert r.status_code == 303 and r.headers["location"].startswith("/crm/auth/login")
