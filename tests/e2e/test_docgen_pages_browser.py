"""docgen's pages in a real browser (issue 16, items 2, 4, 9 and 10): the batch-print
settings with a request in plain words, the secret key page, and "Your forms" with a
Typst form that does not compile — the error beside the editor, the failing line
marked — at 1280 px and 390 px through `check_page` (one navigation, no raw codes, no
overflow on the phone, no serious axe violation; screenshots into docs/img/). The
error and the marked line need no JavaScript; with it, "Go to line" selects the line
in the editor.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.e2e.chromium import TIMEOUT_MS, watch
from tests.e2e.console import WIDTHS, check_page, sign_in
from tests.helpers.print_stack import PrintStack

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]

PASSWORD = "alice's long password"
#: Line 4 does not compile (Typst: "unknown variable: totl").
BROKEN = """#let d = json(bytes(sys.inputs.data))
#set page(paper: "a4")
= Our invoice #d.invoice.number
Total: #totl #d.currency
Customer: #d.customer.name
"""
GOOD = BROKEN.replace("#totl", "#d.totals.total")


def _write_form(page: Page, name: str, source: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Data it is fed").select_option("invoice")
    page.get_by_label("Typst source").fill(source)
    page.get_by_role("button", name="Save the form").click()


def _wait_for_request(page: Page, label: str) -> None:
    """Reload the settings until the latest request shows `label` (the flow runs on)."""
    deadline = time.monotonic() + 90
    while True:
        page.reload()
        badge = page.locator("#request-list .badge").first
        if badge.count() and badge.inner_text() == label:
            return
        assert time.monotonic() < deadline, page.locator("#requests").inner_text()
        time.sleep(0.5)


def test_walk_docgen_pages_at_desktop_and_phone_sizes(
    make_print_stack: Any, browser: Browser
) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    tenant = stack.tenant()
    stack.user(tenant, "alice", PASSWORD, admin=True)
    axe = Axe()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = watch(page)
    settings = f"{stack.base_url}/docgen/settings"
    forms = f"{stack.base_url}/docgen/forms"

    page.goto(settings)
    sign_in(page, tenant, "alice", PASSWORD)
    expect(page.get_by_role("heading", name="Batch-print settings")).to_be_visible()
    page.get_by_role("button", name="Issue the secret key").click()
    key = page.locator("#secret-key").inner_text().strip()
    check_page(page, "docgen-key", "desktop", axe)

    # A batch-print request from "the CRM": no tokens yet, so it stops, said in words.
    page.goto(settings)
    endpoint = page.locator("#endpoint").inner_text().removeprefix("POST ").strip()
    sent = httpx.post(endpoint, auth=httpx.DigestAuth(tenant, key), json={"job": "nightly"})
    assert sent.status_code == 202, sent.text
    _wait_for_request(page, "Stopped")
    expect(page.locator("#request-list")).to_contain_text("The CRM's schedule")
    expect(page.locator("#secret-key-state")).to_contain_text("by alice")
    details = page.locator("#requests-details")
    step_id = details.locator("code", has_text=re.compile(r"^S1[56]\d\d")).first
    expect(step_id).to_be_hidden()
    details.locator("summary").click()
    expect(step_id).to_be_visible()
    details.locator("summary").click()

    for size, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(settings)
        check_page(page, "docgen-settings", size, axe)
        if size == "phone":  # the key page again, by rotating the key
            page.get_by_label("Keep accepting the current key for").select_option("24")
            page.get_by_role("button", name="Rotate the secret key").click()
            expect(page.get_by_role("heading", name="Your new secret key")).to_be_visible()
            check_page(page, "docgen-key", size, axe)

        page.goto(forms)
        check_page(page, "docgen-forms", size, axe)
        _write_form(page, "ours", BROKEN)
        problem = page.locator("#form-source-error")
        expect(problem).to_contain_text("The form was not saved")
        expect(problem).to_contain_text("line 4")
        expect(problem).to_contain_text("Unknown variable: totl")
        expect(page.get_by_label("Typst source")).to_have_value(BROKEN)
        expect(page.get_by_label("Name", exact=True)).to_have_value("ours")
        marked = page.locator("#line-4.failing mark")
        expect(marked).to_have_text("Total: #totl #d.currency")
        check_page(page, "docgen-form-error", size, axe)
        if size == "desktop":
            box = page.get_by_label("Typst source").bounding_box()
            assert box and box["width"] > 700 and box["height"] > 500, box
            # "Go to line 4" selects that line in the editor.
            page.get_by_role("link", name="Go to line 4").click()
            editor = page.get_by_label("Typst source")
            expect(editor).to_be_focused()
            chosen = editor.evaluate("a => a.value.slice(a.selectionStart, a.selectionEnd)")
            assert chosen == "Total: #totl #d.currency", chosen

        _write_form(page, "ours", GOOD)
        page.wait_for_url("**/docgen/forms/ours?saved=1")
        expect(page.locator("#notice")).to_contain_text("Saved")
        picture = page.get_by_role("img", name="The first page of the form ours")
        expect(picture).to_be_visible()
        assert picture.evaluate("img => img.naturalWidth") > 0
        check_page(page, "docgen-form", size, axe)
        page.get_by_role("button", name="Delete the form ours").click()
        expect(page.locator("#notice")).to_contain_text("is deleted")
    assert watched.problems == []
    context.close()

    # Without JavaScript: the error and the marked line are there all the same.
    context = browser.new_context(viewport={"width": 390, "height": 900}, java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(forms)
    sign_in(page, tenant, "alice", PASSWORD)
    _write_form(page, "ours", BROKEN)
    expect(page.locator("#form-source-error")).to_contain_text("line 4")
    expect(page.locator("#line-4.failing mark")).to_be_visible()
    page.get_by_role("link", name="Go to line 4").click()
    assert page.url.endswith("#line-4")
    context.close()
