"""The CRM's forms in the words of a person (issue 16, items 2, 4, 9): the batch job form's
selects (printers and forms from docgen, time zones, operator names), its errors beside
their fields with the input kept, the runs in plain words with the step IDs for
administrators only, and the secret-key form's errors. Driven over HTTP like a browser
without JavaScript.

The selects come from docgen (`GET /api/batch-print/choices`, Digest with the tenant's
key): `test_the_form_lists_the_printers_and_forms_docgen_offers` runs the whole
platform; the others run the CRM alone, where the form falls back to typed IDs."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from printcloud.crm import service
from printcloud.docgen.client import BatchPrintRefused, DocgenClient
from printcloud.docgen.schemas import BatchChoices
from tests.crm.conftest import CrmStack
from tests.helpers.browser import Browser, form_to
from tests.helpers.docgen import MINE, PASSWORD, admin, docgen_runtime, setup_org

_OPTION = re.compile(r'<option value="([^"]*)"(?: selected)?>([^<]*)</option>')


def _sign_in(stack: CrmStack, username: str, *, admin: bool = True) -> tuple[Browser, str]:
    tenant = stack.tenant("idp-b")
    user, password = stack.user(tenant, username, issuer="idp-b", admin=admin)
    browser = Browser(stack, "idp-b", credentials=(tenant, user, password))
    assert browser.open("/crm/").status_code == 200
    return browser, tenant


def _select(page: str, name: str) -> str:
    found = re.search(rf'<select id="{name}" name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert found, f"no select {name}"
    return found.group(1)


def _selected(page: str, name: str) -> str:
    found = re.search(r'<option value="([^"]*)" selected>', _select(page, name))
    if found is None:  # options written without a value attribute (the time zones)
        found = re.search(r"<option selected>([^<]*)</option>", _select(page, name))
    assert found, f"nothing selected in {name}"
    return html.unescape(found.group(1))


def _import(browser: Browser, name: str, csv_text: str) -> None:
    home = browser.open("/crm/")
    r = browser.http.post(
        "/crm/import",
        data={"csrf": browser.csrf(home), "record_set": name},
        files={"file": (f"{name}.csv", csv_text.encode(), "text/csv")},
    )
    assert r.status_code == 200, r.text[:1000]


def _fields(browser: Browser, page: httpx.Response, **changes: str) -> dict[str, str]:
    start = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    return {
        "csrf": browser.csrf(page),
        "name": "Overdue reminders",
        "start_at": start,
        "timezone": "Europe/Paris",
        "recurrence": "daily",
        "cron": "",
        "printer_id": "hall-1",
        "color": "color",
        "copies": "1",
        "form": "invoice",
        "record_set": "invoices",
        "order": "",
        "limit": "",
        **changes,
    }


def _field_error(page: str, name: str) -> str:
    found = re.search(rf'<p class="field-error" role="alert" id="{name}-error">([^<]*)</p>', page)
    assert found, f"no error beside {name}:\n{page[:3000]}"
    assert f'id="{name}"' in page and f'aria-describedby="{name}-error"' in page
    return html.unescape(found.group(1))


def test_the_job_form_without_docgen_speaks_plainly(crm_stack: CrmStack) -> None:
    browser, _ = _sign_in(crm_stack, "erin")
    with browser:
        _import(browser, "invoices", "number,total,paid\n1,5.00,no\n2,12.50,yes\n")
        page = browser.open("/crm/jobs/new")
        assert page.status_code == 200
        text = page.text
        # No link yet: typed IDs, and the form says why and what to do.
        assert '<input type="text" id="printer_id"' in text
        assert '<input type="text" id="form"' in text
        assert "No secret key is registered yet" in text and "Secret key page" in text
        # Operators by name; the API's codes stay the values sent.
        ops = dict(_OPTION.findall(_select(text, "filter0_op")))
        assert ops["eq"] == "equals" and ops["ne"] == "is not"
        assert ops["lt"] == "less than" and ops["le"] == "at most"
        assert ">eq<" not in text and ">le<" not in text
        # Time zones: a select, the common ones first, UTC for the organisation's first job.
        zones = _select(text, "timezone")
        assert zones.index("Europe/Paris") < zones.index("Africa/Abidjan")
        assert _selected(text, "timezone") == "UTC"
        assert "Every day" in _select(text, "recurrence")

        fields = _fields(browser, page)
        r = browser.http.post("/crm/jobs", data=fields)
        assert r.status_code == 303 and r.headers["location"] == "/crm/jobs?done=saved"
        listing = browser.open(r.headers["location"])
        assert "The batch job is saved." in listing.text and "Every day" in listing.text
        # The next job starts in the zone the organisation's jobs use.
        again = browser.open("/crm/jobs/new")
        assert _selected(again.text, "timezone") == "Europe/Paris"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"recurrence": "once", "start_at": "2020-01-01T09:00"}, "start_at", "time has passed"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Choose a time zone from the list"),
        ({"recurrence": "cron", "cron": "every night"}, "cron", "5 parts"),
        ({"copies": "many"}, "copies", "Enter a number of copies from 1 to 999."),
        ({"copies": "0"}, "copies", "Enter a number of copies from 1 to 999."),
        ({"limit": "lots"}, "limit", "Enter at most how many records"),
        ({"printer_id": "hall 1"}, "printer_id", "Choose a printer, or enter its ID"),
        ({"start_at": ""}, "start_at", "Enter the date and time of the first run."),
        ({"name": ""}, "name", "Enter a name for the job"),
        ({"record_set": "nothing"}, "record_set", "Choose one of your record sets."),
        ({"order": "-nope"}, "order", "has no field “nope”"),
        # The second row's filter: the first is left empty, the error still sits beside it.
        ({"filter1_field": "colour", "filter1_value": "red"}, "filter1_field", "no field"),
        (
            {"filter1_field": "total", "filter1_op": "gt", "filter1_value": "lots"},
            "filter1_value",
            '"lots" is not a decimal number',
        ),
        ({"filter2_field": "total", "filter2_op": "lt"}, "filter2_value", "Enter a value"),
        (
            {"filter0_field": "paid", "filter0_op": "lt", "filter0_value": "yes"},
            "filter0_op",
            "“equals” or “is not”",
        ),
    ],
)
def test_each_error_sits_beside_its_field_with_the_input_kept(
    crm_stack: CrmStack, changes: dict[str, str], field: str, says: str
) -> None:
    browser, _ = _sign_in(crm_stack, "frank")
    with browser:
        _import(browser, "invoices", "number,total,paid\n1,5.00,no\n")
        page = browser.open("/crm/jobs/new")
        fields = _fields(browser, page, **changes)
        r = browser.http.post("/crm/jobs", data=fields)
        assert r.status_code == 400, r.text[:2000]
        assert says in _field_error(r.text, field)
        assert f'not saved: <a href="#{field}">see the field marked below</a>' in r.text
        # No API field paths or pydantic words for a person.
        assert "print.copies" not in r.text and "query." not in r.text
        assert "Input should be" not in r.text
        # What was typed comes back.
        assert 'value="Overdue reminders"' in r.text or field == "name"
        for key, value in changes.items():
            if key.endswith("_op") or key in ("recurrence", "timezone", "record_set"):
                assert _selected(r.text, key) == value
            elif value:
                assert f'value="{html.escape(value)}"' in r.text, key
        assert browser.open("/crm/jobs").text.count('<tr id="job-') == 0


def test_an_expired_form_keeps_the_input(crm_stack: CrmStack) -> None:
    browser, _ = _sign_in(crm_stack, "gina")
    with browser:
        _import(browser, "invoices", "number,total\n1,5.00\n")
        page = browser.open("/crm/jobs/new")
        r = browser.http.post("/crm/jobs", data=_fields(browser, page, csrf="forged"))
        assert r.status_code == 400 and "Your form expired" in r.text
        assert 'value="Overdue reminders"' in r.text


def test_runs_in_plain_words_and_step_ids_for_administrators(crm_stack: CrmStack) -> None:
    boss, tenant = _sign_in(crm_stack, "hank")
    user, password = crm_stack.user(tenant, "ivy", issuer="idp-b", admin=False)
    clerk = Browser(crm_stack, "idp-b", credentials=(tenant, user, password))
    other, _ = _sign_in(crm_stack, "jack")
    with boss, clerk, other:
        _import(boss, "invoices", "number,total\n1,5.00\n")
        page = boss.open("/crm/jobs/new")
        assert boss.http.post("/crm/jobs", data=_fields(boss, page)).status_code == 303
        db = crm_stack.db
        with db.session() as s:
            [job] = service.list_jobs(s, tenant_id=tenant)
            outcomes = [
                ("completed", "S1509", "docgen accepted the batch: request abc"),
                ("suspended", "S1512", "docgen refused the batch (401 invalid_digest): wrong key"),
                ("failed", "S1506", "no docgen link registered: enter docgen's tenant ID"),
                ("failed", "S1502", "docgen unreachable: ConnectError"),
            ]
            for n, (outcome, step, detail) in enumerate(outcomes):
                at = datetime.now(UTC) - timedelta(hours=n + 1)
                run, _ = service.start_run(
                    s, tenant_id=tenant, job_id=job.job_id, scheduled_at=at, manual=True
                )
                service.add_step(run, step="S1501", detail="batch job started (run now)")
                service.add_step(run, step=step, detail=detail)
                service.finish_run(run, outcome=outcome, reason=detail)
        seen = boss.open("/crm/runs").text
        for label in ("Sent for printing", "Refused", "Failed"):
            assert f">{label}</span>" in seen
        assert "did not accept the secret key" in seen
        assert "No secret key is registered" in seen
        assert "did not answer, even after several tries" in seen
        assert "Handed to document generation" in seen and "Started" in seen
        # The step IDs and docgen's own words: in the administrators' details only.
        details = seen.split('<details class="admin">', 1)
        assert len(details) == 2 and "S1501" not in details[0]
        assert "<code>S1512</code>" in seen and "invalid_digest" in seen
        plain = clerk.open("/crm/runs")
        assert plain.status_code == 200 and "Sent for printing" in plain.text
        assert "S1501" not in plain.text and "invalid_digest" not in plain.text
        assert "ConnectError" not in plain.text
        # Another organisation sees none of them.
        assert "No runs yet" in other.open("/crm/runs").text


def test_secret_key_errors_beside_their_fields(crm_stack: CrmStack) -> None:
    first, _ = _sign_in(crm_stack, "kim")
    second, tenant = _sign_in(crm_stack, "lou")
    key = "9c8b7a65-4d3e-2f1a-0b9c-8d7e6f5a4b3c"
    with first, second:
        form = form_to(first.open("/crm/docgen-link").text, "/crm/docgen-link")
        r = first.http.post(
            form.action, data={**form.hidden, "docgen_tenant_id": "no spaces", "secret_key": key}
        )
        assert r.status_code == 400
        assert "up to 64 letters" in _field_error(r.text, "docgen_tenant_id")
        assert 'value="no spaces"' in r.text and key not in r.text
        docgen_tenant = f"D{tenant}"
        r = first.http.post(
            form.action,
            data={**form.hidden, "docgen_tenant_id": docgen_tenant, "secret_key": key},
        )
        assert r.status_code == 303
        # The same docgen tenant for a second organisation: refused, beside the field.
        form = form_to(second.open("/crm/docgen-link").text, "/crm/docgen-link")
        r = second.http.post(
            form.action,
            data={**form.hidden, "docgen_tenant_id": docgen_tenant, "secret_key": key},
        )
        assert r.status_code == 409
        assert "already linked to another organisation" in _field_error(r.text, "docgen_tenant_id")
        assert "No secret key is registered yet" in r.text
        # With a key but no docgen answering here, the job form says so and takes IDs.
        page = first.open("/crm/jobs/new")
        assert "Document generation does not answer right now" in page.text
        assert '<input type="text" id="printer_id"' in page.text


def test_the_form_lists_the_printers_and_forms_docgen_offers(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1)
    rt = docgen_runtime(stack)
    org = setup_org(stack, rt)  # printer color-1, a key and a print token
    other = setup_org(stack, rt)
    stack.printer(org.tenant, "mono-2", color=False, client_id=org.dev_id)
    with admin(org) as docgen:
        upload = docgen.post("/api/forms", json={"name": "ours", "kind": "invoice", "source": MINE})
        assert upload.status_code == 201, upload.text

    client = DocgenClient(f"{stack.base_url}/docgen")
    got = client.choices(tenant_id=org.tenant, secret_key=org.key)
    assert "invoice" in got.builtin_forms and got.forms == ["ours"]
    assert got.printers is not None
    assert sorted(p.printer_id for p in got.printers) == ["color-1", "mono-2"]
    # The other organisation's key sees its own printer and forms only.
    theirs = client.choices(tenant_id=other.tenant, secret_key=other.key)
    assert theirs.forms == [] and [p.printer_id for p in theirs.printers or []] == ["color-1"]
    with pytest.raises(BatchPrintRefused) as refused:
        client.choices(tenant_id=org.tenant, secret_key=other.key)
    assert refused.value.status == 401
    with stack.db.session() as s:  # a question refused is no suspended batch
        from printcloud.docgen import service as docgen_service

        assert docgen_service.list_requests(s, tenant_id=org.tenant, limit=10) == []
    BatchChoices.model_validate(
        httpx.get(
            f"{stack.base_url}/docgen/api/batch-print/choices",
            params={"tenant_ID": org.tenant},
            auth=httpx.DigestAuth(org.tenant, org.key),
        ).json()
    )

    with Browser(stack.base_url, "idp-b", credentials=(org.crm_tenant, "clerk", PASSWORD)) as b:
        assert b.open("/crm/").status_code == 200
        form = form_to(b.open("/crm/docgen-link").text, "/crm/docgen-link")
        r = b.http.post(
            form.action,
            data={**form.hidden, "docgen_tenant_id": org.tenant, "secret_key": org.key},
        )
        assert r.status_code == 303
        page = b.open("/crm/jobs/new")
        assert page.status_code == 200, page.text[:2000]
        printers = dict(_OPTION.findall(_select(page.text, "printer_id")))
        assert set(printers) == {"", "color-1", "mono-2"}
        assert "(black and white)" in printers["mono-2"]
        forms = _select(page.text, "form")
        assert 'label="Built-in forms"' in forms and 'label="Your organisation\'s forms"' in forms
        assert '<option value="ours">ours</option>' in forms
        assert "choices-problem" not in page.text
        fields = {
            **_fields(b, page, printer_id="mono-2", form="ours", color="mono"),
            "filter0_field": "customer_name",
            "filter0_op": "ne",
            "filter0_value": "Globex",
        }
        r = b.http.post("/crm/jobs", data=fields)
        assert r.status_code == 303, r.text[:3000]
        with stack.db.session() as s:
            [job] = service.list_jobs(s, tenant_id=org.crm_tenant)
            assert (job.printer_id, job.form) == ("mono-2", "ours")
            assert job.filters == [{"field": "customer_name", "op": "ne", "value": "Globex"}]
        edit = b.open(f"/crm/jobs/{job.job_id}")
        assert _selected(edit.text, "printer_id") == "mono-2"
        assert _selected(edit.text, "filter0_op") == "ne"
