"""The console (issue 16) in a real browser: Debian's Chromium driven by Playwright
against `printcloud serve` on loopback.

An administrator walks the main pages of the print service, docgen and the
authorization server, at desktop (1280 px) and phone (390 px) widths. Each page has
one shared navigation, no raw state code in its visible text, no horizontal overflow
on the phone, and no serious or critical axe-core violation. The screenshots go to
docs/img/ (docs/console.md shows them). A second test walks the print path with
JavaScript off.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, expect

from printcloud.core import words
from printcloud.device.agent import DeviceAgent, DeviceConfig, Fault
from printcloud.printing import queues
from printcloud.printing.accounting import ledger, prices
from tests.e2e.chromium import TIMEOUT_MS, watch
from tests.e2e.console import WIDTHS, check_page, make_pdf, sign_in
from tests.helpers.print_stack import PrintStack
from tests.webhooks.receiver import receiver

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]

#: Walked again in dark mode (the stylesheet follows `prefers-color-scheme`).
DARK = ("print", "job", "queues", "balance", "admin-users", "not-found")


def test_walk_the_console_at_desktop_and_phone_sizes(
    make_print_stack: Any, browser: Browser, tmp_path: Path
) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    tenant = stack.tenant()
    stack.user(tenant, "alice", "alice's long password", admin=True)
    stack.user(tenant, "bob", "bob's long password")
    device_id, device_secret = stack.client(tenant, kind="device", scope="device print")
    stack.printer(tenant, "p1", client_id=device_id)
    stack.printer(tenant, "p2", color=False, client_id=device_id)
    with stack.db.session() as db:  # the queues page shows a queue and how to add it
        queues.add_queue(db, tenant_id=tenant, name="office", printer_id="p1", info="")
        # the tenant charges for printing (issue 18): its balance, prices and report pages
        prices.configure(db, tenant_id=tenant, currency="EUR", allowance=500, period="monthly")
        prices.set_price(db, tenant_id=tenant, mono=5, color=20)
        prices.set_price(db, tenant_id=tenant, printer_id="p1", media="A3", mono=9, color=30)
        ledger.save_account(db, tenant_id=tenant, kind="group", name="office", members=["x"])
    axe = Axe()

    # No printer polls: the job waits for its printer, the state most often shown raw.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = watch(page)
    page.goto(f"{stack.printing}/")
    sign_in(page, tenant, "alice", "alice's long password")
    expect(page.get_by_role("heading", name="Print", exact=True)).to_be_visible()
    page.get_by_label("PDF file").set_input_files(
        {"name": "report.pdf", "mimeType": "application/pdf", "buffer": make_pdf(2)}
    )
    page.get_by_role("button", name="Print", exact=True).click()
    page.wait_for_url(re.compile(r"/printing/jobs/[0-9a-f]+$"))
    job_url = page.url
    expect(page.locator("#job-state")).to_contain_text("Waiting for the printer", timeout=60_000)

    expect(page.locator("#job-waiting")).to_contain_text("has never connected")

    # A job that p2 stops for paper after 2 of its 3 pages: what to do next.
    page.goto(f"{stack.printing}/")
    page.get_by_label("PDF file").set_input_files(
        {"name": "minutes.pdf", "mimeType": "application/pdf", "buffer": make_pdf(3)}
    )
    page.get_by_label("Printer").select_option("p2")
    page.get_by_label("Color").select_option("mono")
    page.get_by_role("button", name="Print", exact=True).click()
    page.wait_for_url(re.compile(r"/printing/jobs/[0-9a-f]+$"))
    stopped_url = page.url
    expect(page.locator("#job-state")).to_contain_text("Waiting for the printer", timeout=60_000)
    printer = DeviceConfig(
        server=stack.base_url,
        tenant_id=tenant,
        printer_id="p2",
        client_id=device_id,
        client_secret=device_secret,
        out_dir=tmp_path / "p2",
        faults=[Fault.parse("paper_out@3")],
    )
    with DeviceAgent(printer) as agent:
        agent.poll_once()
    page.reload()
    expect(page.locator("#job-state")).to_contain_text("Stopped at the printer", timeout=60_000)
    expect(page.get_by_role("button", name=re.compile("^" + words.PRINT_REMAINING))).to_be_visible()

    nav = page.locator("nav#console-nav")
    for label in (
        "Print",
        "Jobs",
        "Balance",
        "Printers and queues",
        "Prices and accounts",
        "Batch printing",
        "Webhooks",
        "Admin",
    ):
        expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Jobs", exact=True)).to_have_attribute(
        "aria-current", "page"
    )

    # The webhooks pages (issue 18): add one, see its secret once, send it a test event
    # and read the receiver's answer in its log, give it a new secret.
    with receiver() as live:
        page.get_by_role("link", name="Webhooks", exact=True).click()
        expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
        page.get_by_label("Address").fill(f"{live.url}/ok/console")
        page.get_by_label("What it is for").fill("Our ticket system")
        page.get_by_label(words.webhook_event_label("job.printed")).check()
        page.get_by_role("button", name="Add webhook").click()
        expect(page.locator("#secret-value")).to_contain_text("whsec_")
        page.get_by_role("button", name="Send a test event").click()
        expect(page.locator("#notice")).to_contain_text("Test event sent")
        webhook_url = page.url.split("?")[0]
        deadline = time.monotonic() + 60  # polled: the log shows the receiver's answer
        while "Accepted (204)" not in page.locator("#delivery-log").inner_text():
            assert time.monotonic() < deadline, "stuck waiting for the test event's answer"
            page.reload()
        expect(page.locator("#delivery-log")).to_contain_text("Accepted (204)")
        page.get_by_role("button", name="New signing secret").click()
        expect(page.get_by_role("heading", name="Your new signing secret")).to_be_visible()
        assert len(live.at("ok/console")) == 1

    walk = {
        "print": f"{stack.printing}/",
        "jobs": f"{stack.printing}/jobs",
        "job": job_url,
        "job-stopped": stopped_url,
        "queues": f"{stack.printing}/queues",
        "balance": f"{stack.printing}/account",
        "prices-and-accounts": f"{stack.printing}/accounting",
        "usage-report": f"{stack.printing}/accounting/report",
        "webhooks": f"{stack.printing}/webhooks",
        "webhook": webhook_url,
        "batch": f"{stack.base_url}/docgen/settings",
        "account": f"{stack.base_url}/idp-a/account",
        "admin-users": f"{stack.base_url}/idp-a/admin/users",
        "not-found": f"{stack.printing}/no-such-page",
        "wrong-method": f"{job_url}/cancel",
    }
    for size, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        for name, url in walk.items():
            answer = page.goto(url)
            assert answer is not None
            if name == "not-found":
                assert answer.status == 404
                expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
            elif name == "wrong-method":
                assert answer.status == 405
            else:
                assert answer.status == 200, (name, answer.status)
            # Every page knows alice and offers sign-out, at the navigation's height.
            expect(page.locator("#signed-in-as")).to_contain_text("alice")
            check_page(page, name, size, axe)
        if size == "desktop":
            link = page.locator("nav#console-nav a").first.bounding_box()
            button = page.locator("header.console .who button").bounding_box()
            assert link and button and abs(link["height"] - button["height"]) <= 2

    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="dark")
    for name in DARK:
        page.goto(walk[name])
        check_page(page, name, "dark", axe)
    page.emulate_media(color_scheme="light")

    # alice is offered no way to disable herself; bob is.
    page.goto(walk["admin-users"])
    expect(page.get_by_role("button", name="Disable bob")).to_have_count(1)
    expect(page.get_by_role("button", name="Disable alice")).to_have_count(0)
    assert watched.problems == []
    context.close()

    # A user who is not an administrator sees only what they may use.
    context = browser.new_context(viewport={"width": 390, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{stack.printing}/jobs")
    sign_in(page, tenant, "bob", "bob's long password")
    expect(page.get_by_role("heading", name="Your print jobs")).to_be_visible()
    links = page.locator("nav#console-nav a").all_inner_texts()
    assert [t.strip() for t in links] == ["Print", "Jobs", "Balance"]
    page.goto(f"{stack.printing}/account")  # issue 18: his allowance, in words
    expect(page.locator("#balances")).to_contain_text("5.00 EUR, on the first of the month")
    refused = page.goto(f"{stack.printing}/accounting")
    assert refused is not None and refused.status == 403
    context.close()


def test_the_print_path_works_without_javascript(make_print_stack: Any, browser: Browser) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    tenant = stack.tenant()
    stack.user(tenant, "carol", "carol's long password")
    device_id, _ = stack.client(tenant, kind="device", scope="device print")
    stack.printer(tenant, "p1", client_id=device_id)

    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{stack.printing}/")
    sign_in(page, tenant, "carol", "carol's long password")
    # A refused file: the form again, the error beside its field, the address kept.
    page.get_by_label("PDF file").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a pdf"}
    )
    page.get_by_label("Title").fill("My notes")
    page.get_by_role("button", name="Print", exact=True).click()
    expect(page.locator("#file-error")).to_contain_text("This file is not a PDF.")
    expect(page.get_by_label("Title")).to_have_value("My notes")
    # Reloading the form's answer's address is the jobs page, not a 405.
    assert page.url.endswith("/printing/jobs")
    answer = page.goto(page.url)
    assert answer is not None and answer.status == 200
    page.goto(f"{stack.printing}/")
    page.get_by_label("PDF file").set_input_files(
        {"name": "report.pdf", "mimeType": "application/pdf", "buffer": make_pdf(1)}
    )
    page.get_by_role("button", name="Print", exact=True).click()
    page.wait_for_url(re.compile(r"/printing/jobs/[0-9a-f]+$"))
    # The job page refreshes itself by <noscript> meta refresh until the printer takes it.
    expect(page.locator("#job-state")).to_contain_text("Waiting for the printer", timeout=60_000)
    assert page.locator("nav#console-nav").count() == 1
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Signed out")).to_be_visible()
    context.close()
