"""Seed 000's second embodiment (FIG. 19) in a real browser: Debian's Chromium driven by
Playwright against `printcloud serve` on loopback.

A CRM person signs in to the CRM (idp-b), sees an invoice set as a table, presses
Print, signs in a second time at printcloud (idp-a: the print token is theirs), chooses
a printer and prints. The request's page shows the request and its print jobs, read
with the person's own token, in plain words. Each page goes through `check_page` at
1280 and 390 px (one navigation, no raw codes, no overflow, axe-core), and the
navigation names the organisation by its display name, not its ID.

Only the data is set up outside the browser: tenants, users, a printer, the invoices
and the CRM's docgen link.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, expect

from printcloud.auth import service as auth_service
from printcloud.core.crypto import SecretBox
from printcloud.crm import service as crm_service
from tests.e2e.chromium import TIMEOUT_MS, watch
from tests.e2e.console import WIDTHS, check_page, sign_in
from tests.helpers.docgen import INVOICE_FIELDS, invoice
from tests.helpers.print_stack import PrintStack

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]

PASSWORD = "alice's long password"


def _set_up(stack: PrintStack) -> tuple[str, str]:
    """printcloud's tenant (idp-a) with alice and a printer; the CRM's (idp-b) with alice,
    two invoices and the link to printcloud's document service."""
    tenant = stack.tenant(prefix="a")
    crm_tenant = f"crm{tenant[1:]}"
    with stack.db.session() as s:
        a = auth_service.get_tenant(s, issuer="idp-a", tenant_id=tenant)
        a.name = "Acme Printing"
        auth_service.create_user(s, tenant=a, username="alice", password=PASSWORD)
        b = auth_service.create_tenant(s, issuer="idp-b", tenant_id=crm_tenant, name="Acme Sales")
        auth_service.create_user(s, tenant=b, username="alice", password=PASSWORD)
    dev_id, _ = stack.client(tenant, kind="device", scope="device print")
    stack.printer(tenant, "color-1", color=True, client_id=dev_id)
    with stack.db.session() as s:
        crm_service.create_record_set(
            s, tenant_id=crm_tenant, name="invoices", fields=INVOICE_FIELDS
        )
        for number, customer in (("INV-001", "Acme SA"), ("INV-002", "Globex")):
            line = {"description": "Toner", "quantity": 2, "unit_price": "39.90"}
            crm_service.add_record(
                s,
                tenant_id=crm_tenant,
                record_set="invoices",
                data=invoice(number, customer, [line]),
            )
        crm_service.set_docgen_link(
            s,
            tenant_id=crm_tenant,
            docgen_tenant_id=tenant,
            secret_key="a-secret-key-of-at-least-32-characters",
            by="test",
            box=SecretBox(stack.settings.instance_secrets),
        )
    return tenant, crm_tenant


def test_a_crm_person_prints_records_as_themselves_in_the_browser(
    make_print_stack: Any, browser: Browser
) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    tenant, crm_tenant = _set_up(stack)
    axe = Axe()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = watch(page)

    # the CRM's sign-in (idp-b), then the invoices as a table with their fields as columns
    page.goto(f"{stack.base_url}/crm/sets/invoices")
    sign_in(page, crm_tenant, "alice", PASSWORD)
    page.wait_for_url("**/crm/sets/invoices")
    table = page.locator("table#records")
    expect(table.locator("thead th")).to_have_text(
        ["number", "date", "customer_name", "customer_address", "lines", "Print"]
    )
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(page.locator("#signed-in-as")).to_have_text("alice · Acme Sales")

    # Print: the second sign-in, at printcloud (idp-a), then the print page
    page.get_by_role("button", name="Print these 2 records").click()
    expect(page.get_by_role("heading", name="Sign in to")).to_be_visible()
    sign_in(page, tenant, "alice", PASSWORD)
    page.wait_for_url(re.compile(r"/crm/sets/invoices/print"))
    expect(page.locator("#print-as")).to_contain_text("alice")
    expect(page.locator("#print-count")).to_contain_text("2 records")
    print_url = page.url
    page.get_by_label("Printer").select_option("color-1")
    page.get_by_label("Colour").select_option("mono")
    page.get_by_role("button", name="Print", exact=True).click()
    page.wait_for_url(re.compile(r"/crm/prints/[0-9a-f]+$"))
    request_url = page.url

    # the request and its jobs, the person's own, in plain words; reload until handed over
    deadline = time.monotonic() + 120
    state = page.locator("#request-state")
    while state.inner_text() != "Sent to the printer":
        assert state.inner_text() not in ("Stopped", "Failed"), page.locator("main").inner_text()
        assert time.monotonic() < deadline, stack.log()
        time.sleep(1)
        page.reload()
    jobs = page.locator("#print-jobs tbody tr")
    expect(jobs).to_have_count(2)
    while "Waiting for the printer" not in jobs.first.inner_text():  # no printer polls here
        assert time.monotonic() < deadline, jobs.first.inner_text()
        time.sleep(1)
        page.get_by_role("link", name="Check again").click()  # works without JavaScript
    expect(jobs.first).to_contain_text("color-1")

    # printcloud's own pages know the jobs as alice's, and name the organisation
    jobs.first.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/printing/jobs/[0-9a-f]+$"))
    expect(page.locator("#signed-in-as")).to_have_text("alice · Acme Printing")
    expect(page.locator("#job-state")).to_contain_text("Waiting for the printer")

    walk = {
        "crm-records": f"{stack.base_url}/crm/sets/invoices",
        "crm-print": print_url,
        "crm-print-request": request_url,
    }
    for size, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        for name, url in walk.items():
            answer = page.goto(url)
            assert answer is not None and answer.status == 200, (name, answer)
            expect(page.locator("#signed-in-as")).to_have_text("alice · Acme Sales")
            check_page(page, name, size, axe)
    # and in dark mode (the stylesheet follows `prefers-color-scheme`)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="dark")
    for name, url in walk.items():
        page.goto(url)
        check_page(page, name, "dark", axe)
    page.emulate_media(color_scheme="light")
    assert watched.problems == []
    context.close()
