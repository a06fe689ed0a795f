"""The print form's defaults and a printer's editing (issue 16, items 6 and 7) in a real
browser: Debian's Chromium driven by Playwright against `printcloud serve` on loopback.

- The print form does not preselect docgen's batch printer although it sorts first; a
  printer's full name shows (the select spans the form); choosing a black-and-white
  printer leaves only "Black and white" to choose (`static/print-form.js`, loaded under
  the console's CSP), choosing a color printer offers color again. With JavaScript off,
  color asked for the black-and-white printer is printed in black and white, and the
  job's page says so.
- The printers page: an administrator changes a printer's color and location.

Both pages pass the console's checks (`check_page`) at 1280 and 390 px.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from printcloud.core import words
from printcloud.printing import service
from tests.e2e.chromium import TIMEOUT_MS, watch
from tests.e2e.console import WIDTHS, check_page, make_pdf, sign_in
from tests.helpers.print_stack import PrintStack
from tests.printing.test_print_form_defaults import batch_job

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]

PASSWORD = "alice's long password"
LONG_NAME = "Lobby color MFP, second floor, beside the east stairs"


def enabled_colors(page: Page) -> list[str]:
    return page.locator("#color option:not([disabled])").all_inner_texts()


def test_the_print_form_follows_the_printer_and_a_printer_is_edited(
    make_print_stack: Any, browser: Browser, tmp_path: Path
) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    tenant = stack.tenant()
    stack.user(tenant, "alice", PASSWORD, admin=True)
    device_id, _ = stack.client(tenant, kind="device", scope="device print")
    for printer_id, name, color in (
        ("accounts", "Accounts batch printer", True),
        ("lobby", LONG_NAME, True),
        ("office", "Office mono laser", False),
    ):
        stack.printer(tenant, printer_id, color=color, client_id=device_id)
        with stack.db.session() as db:
            service.update_printer(db, tenant_id=tenant, printer_id=printer_id, name=name)
    batch_job(stack, tenant, "accounts", "alice")  # docgen's batch printing sends there
    axe = Axe()

    # With JavaScript, under the console's CSP.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = watch(page)
    page.goto(f"{stack.printing}/")
    sign_in(page, tenant, "alice", PASSWORD)
    printer = page.get_by_label("Printer")
    color = page.get_by_label("Color")
    expect(printer).to_have_value("lobby")  # not the batch printer, which sorts first
    expect(printer.locator("option:checked")).to_have_text(f"{LONG_NAME} (color)")
    form_width = page.locator("form fieldset").nth(1).bounding_box()
    select_width = printer.bounding_box()
    assert form_width and select_width and select_width["width"] > form_width["width"] * 0.9
    assert enabled_colors(page) == ["Color", "Black and white"]
    expect(color).to_have_value("color")

    printer.select_option("office")
    assert enabled_colors(page) == ["Black and white"]
    expect(color).to_have_value("mono")
    expect(page.locator("#color-hint")).to_be_visible()
    printer.select_option("lobby")
    assert enabled_colors(page) == ["Color", "Black and white"]
    expect(color).to_have_value("color")
    expect(page.locator("#color-hint")).to_be_hidden()

    # A job on the black-and-white printer: recorded and shown in black and white.
    printer.select_option("office")
    page.get_by_label("PDF file").set_input_files(
        {"name": "memo.pdf", "mimeType": "application/pdf", "buffer": make_pdf(1)}
    )
    page.get_by_role("button", name="Print", exact=True).click()
    page.wait_for_url(re.compile(r"/printing/jobs/[0-9a-f]+$"))
    expect(page.locator("#job-color")).to_have_text("Black and white")
    # Her last-used printer is preselected next time.
    page.goto(f"{stack.printing}/")
    expect(printer).to_have_value("office")
    expect(color).to_have_value("mono")
    assert watched.problems == [] and watched.refused == []
    context.close()

    # Without JavaScript: color stays on offer, and the print service decides.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{stack.printing}/")
    sign_in(page, tenant, "alice", PASSWORD)
    page.get_by_label("Printer").select_option("office")
    page.get_by_label("Color").select_option("color")
    page.get_by_label("PDF file").set_input_files(
        {"name": "poster.pdf", "mimeType": "application/pdf", "buffer": make_pdf(1)}
    )
    page.get_by_role("button", name="Print", exact=True).click()
    page.wait_for_url(re.compile(r"/printing/jobs/[0-9a-f]+$"))
    expect(page.locator("#job-color")).to_contain_text("Black and white")
    expect(page.locator("#job-color")).to_contain_text(words.MONO_PRINTED)
    context.close()

    # The console's checks; the printers page, where a printer is changed.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = watch(page)
    page.goto(f"{stack.printing}/")
    sign_in(page, tenant, "alice", PASSWORD)
    expect(page.get_by_role("heading", name="Print", exact=True)).to_be_visible()
    page.get_by_label("Printer").select_option("office")
    for size, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        check_page(page, "print-form", size, axe)

    page.goto(f"{stack.printing}/queues")
    row = page.locator("#printer-office")
    row.get_by_text("Change Office mono laser").click()
    row.get_by_label("Prints in").select_option("color")
    row.get_by_label("Location").fill("Second floor, room 2.14")
    expect(row.get_by_label("Device client")).to_have_value(device_id)
    row.get_by_role("button", name="Save Office mono laser").click()
    expect(page.get_by_role("status")).to_have_text("Printer Office mono laser saved.")
    expect(row.locator("th")).to_contain_text("color · Second floor, room 2.14")
    with stack.db.sessions() as db:
        saved = service.get_printer(db, tenant_id=tenant, printer_id="office")
        assert saved.color and saved.location == "Second floor, room 2.14"
    row.get_by_text("Change Office mono laser").click()  # the form open in the screenshots
    for size, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        check_page(page, "printer-edit", size, axe)

    # The print form offers it in color now.
    page.goto(f"{stack.printing}/")
    expect(page.get_by_label("Printer")).to_have_value("office")
    assert enabled_colors(page) == ["Color", "Black and white"]
    assert watched.problems == [] and watched.refused == []
    context.close()
