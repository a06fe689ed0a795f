"""The batch story's set-up done by people in a real browser (seed 000, FIG. 6–9,
11, 13): Debian's Chromium driven by Playwright over `printcloud serve`.

docgen's tenant administrator signs in to `/docgen/settings` (idp-a), issues the
secret key and reads it off the page, gets the print token (idp-a recognises the
session, FIG. 11) and the CRM token (idp-b's sign-in form, FIG. 13). The CRM clerk
signs in to `/crm/` (idp-b), registers docgen's tenant ID and key (FIG. 9) and a
batch job run once at the next whole minute (the form's time has minutes only),
then reloads the runs list until the scheduled run shows as completed.

Only the data is set up outside the browser: tenants, users, a printer and the
CRM's invoices.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from printcloud.auth import service as auth_service
from printcloud.crm import service as crm_service
from tests.e2e.chromium import SCREENSHOTS, TIMEOUT_MS
from tests.helpers.docgen import INVOICE_FIELDS, PASSWORD, invoice

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]


def _sign_in(page: Page, issuer: str, tenant: str, username: str) -> None:
    """Fill `issuer`'s sign-in form, which the page must be showing."""
    page.fill("#tenant", tenant)
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click(f"form[action='/{issuer}/login'] button[type=submit]")
    allow = page.locator(f"form[action^='/{issuer}/authorize'] button[value=allow]")
    if allow.count():  # a consent page, if the issuer asks
        allow.click()


def _at_login(page: Page, issuer: str) -> None:
    page.wait_for_url(f"**/{issuer}/login**")


def _next_minute() -> datetime:
    """The whole minute the job starts at (the job form takes minutes only): this one
    while it is under 30 s old, for a job run once is accepted up to a minute late and
    then runs at once; else the next one. The run is due within 30 s either way."""
    now = datetime.now(UTC)
    this = now.replace(second=0, microsecond=0)
    return this if now - this <= timedelta(seconds=30) else this + timedelta(minutes=1)


def test_people_set_up_a_scheduled_batch_in_the_browser(
    make_print_stack: Any, browser: Browser
) -> None:
    stack = make_print_stack(workers=1)
    # Data only: docgen's tenant (idp-a) with its admin and printer; the CRM's tenant
    # (idp-b) with its clerk and two invoices.
    tenant = stack.tenant(prefix="a")
    with stack.db.session() as s:
        t = auth_service.get_tenant(s, issuer="idp-a", tenant_id=tenant)
        auth_service.create_user(s, tenant=t, username="boss", password=PASSWORD, is_admin=True)
    dev_id, _ = stack.client(tenant, kind="device", scope="device print")
    stack.printer(tenant, "color-1", color=True, client_id=dev_id)
    crm_tenant = f"crm{tenant[1:]}"
    with stack.db.session() as s:
        b = auth_service.create_tenant(s, issuer="idp-b", tenant_id=crm_tenant, name="CRM")
        auth_service.create_user(s, tenant=b, username="clerk", password=PASSWORD, is_admin=True)
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

    base = stack.base_url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    admin = browser.new_context(base_url=base)
    clerk = browser.new_context(base_url=base)
    try:
        # -- docgen's settings: the administrator of the idp-a tenant ---------------------
        page = admin.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto("/docgen/settings")
        _at_login(page, "idp-a")
        _sign_in(page, "idp-a", tenant, "boss")
        page.wait_for_url("**/docgen/settings")
        expect(page.locator("#secret-key-state")).to_contain_text("Not issued yet")

        page.click("#secret-key button[type=submit]")  # S1401–S1406
        key = page.locator("output#secret-key").inner_text().strip()
        assert len(key) >= 32, key
        page.click("a[href='/docgen/settings']")

        # FIG. 11: idp-a recognises the signed-in admin; no form to fill
        page.click("#print-token button[type=submit]")
        expect(page.locator("#message")).to_contain_text("Batch printing will use it")
        expect(page.locator("h1")).to_contain_text("print")
        page.click("a[href='/docgen/settings']")

        # FIG. 13: the authorization-code flow at idp-b, as the CRM's clerk
        page.click("#crm-token button[type=submit]")
        _at_login(page, "idp-b")
        _sign_in(page, "idp-b", crm_tenant, "clerk")
        expect(page.locator("#message")).to_contain_text("Batch printing will use it")
        expect(page.locator("main")).to_contain_text(crm_tenant)
        page.click("a[href='/docgen/settings']")
        expect(page.locator("#print-token-state")).to_have_text("Stored.")
        expect(page.locator("#crm-token-state")).to_have_text("Stored.")
        expect(page.locator("#crm-token")).to_contain_text(crm_tenant)

        # -- the CRM's pages: the clerk of the idp-b tenant ------------------------------
        crm = clerk.new_page()
        crm.set_default_timeout(TIMEOUT_MS)
        crm.goto("/crm/")
        _at_login(crm, "idp-b")
        _sign_in(crm, "idp-b", crm_tenant, "clerk")
        crm.wait_for_url("**/crm/")
        expect(crm.locator("#set-invoices")).to_contain_text("2")

        # FIG. 9, S1407–S1412: docgen's tenant ID and the key read off docgen's page
        crm.goto("/crm/docgen-link")
        crm.fill("#docgen_tenant_id", tenant)
        crm.fill("#secret_key", key)
        crm.click("form[action='/crm/docgen-link'] button[type=submit]")
        expect(crm.locator("#key-status")).to_contain_text(tenant)

        # FIG. 6: a job run once, at the next whole minute (UTC)
        start = _next_minute()
        crm.goto("/crm/jobs/new")
        crm.fill("#name", "nightly invoices")
        crm.fill("#start_at", start.strftime("%Y-%m-%dT%H:%M"))
        crm.select_option("#timezone", "UTC")
        crm.select_option("#recurrence", "once")
        crm.select_option("#printer_id", "color-1")  # docgen's list of the tenant's printers
        crm.select_option("#color", "mono")
        crm.select_option("#form", "invoice")
        crm.select_option("#record_set", "invoices")
        crm.click("form[action='/crm/jobs'] button[type=submit]")
        crm.wait_for_url("**/crm/jobs?done=saved")
        row = crm.locator("#jobs tbody tr", has_text="nightly invoices")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Once")
        expect(row).to_contain_text(start.strftime("%Y-%m-%d %H:%M UTC"))
        # The CRM's pages wear the console (issue 16): one navigation with the CRM's
        # sections for its people, and no serious axe-core violation, also on a phone.
        nav = crm.locator("nav#console-nav")
        expect(nav).to_have_count(1)
        links = [t.strip() for t in nav.locator("a").all_inner_texts()]
        assert links == ["Documents", "Batch printing", "Admin"]  # the clerk administers
        expect(nav.get_by_role("link", name="Admin")).to_have_attribute("href", "/idp-b/admin")
        expect(nav.get_by_role("link", name="Batch printing")).to_have_attribute(
            "aria-current", "page"
        )
        for width in (1280, 390):
            crm.set_viewport_size({"width": width, "height": 900})
            for path in ("/crm/", "/crm/jobs"):
                crm.goto(path)
                found = Axe().run(crm).response["violations"]
                serious = [v["id"] for v in found if v["impact"] in ("serious", "critical")]
                assert not serious, (path, width, serious)
        crm.set_viewport_size({"width": 1280, "height": 720})

        # FIG. 7 / S1501–S1509: the tick fires; reload the runs until it is completed
        crm.goto("/crm/runs")
        deadline = time.monotonic() + (start - datetime.now(UTC)).total_seconds() + 300
        runs = crm.locator("#runs tbody tr", has_text="nightly invoices")
        while not (runs.count() and runs.first.locator(".badge.completed").count()):
            assert time.monotonic() < deadline, stack.log()
            assert not (runs.count() and runs.first.locator(".badge.failed").count())
            time.sleep(1)
            crm.reload()
        expect(runs).to_have_count(1)
        expect(runs.first.locator(".badge")).to_have_text("Sent for printing")
        expect(runs.first.locator(".steps")).to_contain_text("Handed to document generation")
        # the clerk administers: the step IDs are in the details
        expect(runs.first.locator("details.admin")).to_contain_text("S1509")
        expect(runs.first).to_contain_text(start.strftime("%Y-%m-%d %H:%M UTC"))
        crm.screenshot(path=str(SCREENSHOTS / "batch-runs.png"), full_page=True)

        # docgen's settings list the request the run made; it completes (S1525)
        request = page.locator("#requests tbody tr")
        deadline = time.monotonic() + 300
        while True:
            page.reload()
            expect(request).to_have_count(1)
            if request.locator(".badge.completed").count():
                break
            assert not request.locator(".badge.suspended, .badge.failed").count(), (
                request.inner_text()
            )
            assert time.monotonic() < deadline, stack.log()
            time.sleep(1)
        expect(request).to_contain_text("nightly invoices")
    finally:
        admin.close()
        clerk.close()
