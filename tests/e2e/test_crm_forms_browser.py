"""The CRM's forms in a real browser (issue 16, items 2, 4, 9, 10): Debian's Chromium
driven by Playwright over `printcloud serve`.

The CRM's clerk signs in at idp-b, registers docgen's secret key (a wrong one first:
the error sits beside its field), registers a batch job with the printer, the form, the
time zone and the filter's comparison chosen from lists (a past start first: the error
sits beside the start, the rest is kept), runs it now, and reads its run in plain
words. Each page passes the console's checks (`check_page`) at desktop and phone width,
and its screenshot lands in docs/img/.

Only the data is set up outside the browser (`setup_org`: tenants, users, a printer,
invoices, docgen's key and print token) and "run now", which is an API call.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.conftest import user_token
from tests.e2e.chromium import TIMEOUT_MS, watch
from tests.e2e.console import WIDTHS, check_page, sign_in
from tests.helpers.docgen import PASSWORD, docgen_runtime, setup_org

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]


def _check_sizes(page: Page, name: str, axe: Axe) -> None:
    for size, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        check_page(page, name, size, axe)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_the_crm_forms_speak_plainly_in_the_browser(
    make_print_stack: Any, browser: Browser
) -> None:
    stack = make_print_stack(workers=1)
    org = setup_org(stack, docgen_runtime(stack))  # printer color-1, key, print token
    stack.printer(org.tenant, "mono-2", color=False, client_id=org.dev_id)
    axe = Axe()
    context = browser.new_context(base_url=stack.base_url)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        watched = watch(page)

        # -- FIG. 9: the secret key; a wrong one first -----------------------------------
        page.goto("/crm/docgen-link")
        page.wait_for_url("**/idp-b/login**")
        sign_in(page, org.crm_tenant, "clerk", PASSWORD)
        page.wait_for_url("**/crm/docgen-link")
        page.get_by_label("Organisation ID at document generation").fill(org.tenant)
        page.get_by_label("Secret key").fill("too-short")
        page.get_by_role("button", name="Register").click()
        expect(page.locator("#secret_key-error")).to_contain_text("at least 16 characters")
        expect(page.get_by_label("Secret key")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("Organisation ID at document generation")).to_have_value(
            org.tenant
        )
        _check_sizes(page, "crm-secret-key-error", axe)
        page.get_by_label("Secret key").fill(org.key)
        page.get_by_role("button", name="Register").click()
        page.wait_for_url("**/crm/docgen-link?done=registered")
        expect(page.locator("#notice")).to_have_text("The secret key is registered.")
        expect(page.locator("#key-status")).to_contain_text(org.tenant)
        _check_sizes(page, "crm-secret-key", axe)

        # -- FIG. 6: the job form, from lists -----------------------------------------------
        page.goto("/crm/jobs/new")
        printer = page.get_by_label("Printer", exact=True)
        expect(printer.locator("option")).to_have_count(3)  # "Choose a printer" and two
        expect(printer.locator("option[value='mono-2']")).to_contain_text("black and white")
        expect(page.get_by_label("Time zone")).to_have_value("UTC")
        page.get_by_label("Name", exact=True).fill("Reminders")
        page.get_by_label("First run (local time)").fill("2020-01-01T09:00")
        page.get_by_label("Repeats").select_option("once")
        page.get_by_label("Time zone").select_option("Europe/Paris")
        printer.select_option("mono-2")
        page.get_by_label("Color").select_option("mono")
        page.get_by_label("Form", exact=True).select_option("invoice")
        page.get_by_label("Filter 1: field").fill("customer_name")
        page.locator("#filter0_op").select_option(label="is not")
        page.locator("#filter0_value").fill("Globex")
        page.get_by_role("button", name="Register").click()
        expect(page.locator("#start_at-error")).to_contain_text("time has passed")
        expect(page.get_by_label("Name", exact=True)).to_have_value("Reminders")
        expect(page.get_by_label("Time zone")).to_have_value("Europe/Paris")
        expect(printer).to_have_value("mono-2")
        expect(page.locator("#filter0_op")).to_have_value("ne")
        _check_sizes(page, "crm-job-form-error", axe)

        start = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        page.get_by_label("First run (local time)").fill(start)
        page.get_by_role("button", name="Register").click()
        page.wait_for_url("**/crm/jobs?done=saved")
        expect(page.locator("#notice")).to_have_text("The batch job is saved.")
        row = page.locator("#jobs tbody tr", has_text="Reminders")
        expect(row).to_contain_text("Once")
        expect(row).to_contain_text("black and white")
        _check_sizes(page, "crm-jobs", axe)
        page.locator("#jobs tbody tr a", has_text="Reminders").click()
        expect(page.locator("#filter0_op option:checked")).to_have_text("is not")
        _check_sizes(page, "crm-job-form", axe)
        job_id = page.url.rsplit("/", 1)[-1]

        # -- FIG. 7: one run, now; its outcome in words -------------------------------------
        token = user_token(
            stack.base_url,
            stack.settings,
            org.crm_tenant,
            "clerk",
            PASSWORD,
            "crm.read crm.write",
            issuer="idp-b",
        )
        ran = httpx.post(
            f"{stack.base_url}/crm/api/jobs/{job_id}/run",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert ran.status_code == 202, ran.text
        page.goto("/crm/runs")
        run = page.locator("#runs tbody tr", has_text="Reminders")
        deadline = time.monotonic() + 90
        while not (run.count() and run.first.locator(".badge.completed").count()):
            assert time.monotonic() < deadline, stack.log()
            assert not (run.count() and run.first.locator(".badge.failed").count())
            time.sleep(1)
            page.reload()
        expect(run.first.locator(".badge")).to_have_text("Sent for printing")
        expect(run.first.locator(".steps")).to_contain_text("Handed to document generation")
        # The step IDs: in the administrators' details, closed, never in the visible text.
        details = run.first.locator("details.admin")
        expect(details).to_have_count(1)
        assert "S1509" not in run.first.inner_text()
        _check_sizes(page, "crm-runs", axe)
        details.locator("summary").click()
        expect(details).to_contain_text("S1509")
        assert not watched.problems, watched.problems
    finally:
        context.close()
