"""The queues page in a real browser (issue 14, "Admin"): Debian's Chromium driven by
Playwright against `printcloud serve` on loopback.

A tenant's administrator signs in at the print page, follows "Manage queues", adds a
queue (another tenant's printer is not offered), sees it listed with its ipp:// URI and
the line that adds it, changes its description, and deletes it. A user who is not an
administrator sees no link and is refused the page.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.chromium import SCREENSHOTS, TIMEOUT_MS, watch
from tests.helpers.print_stack import PrintStack
from tests.helpers.printing import Tenant

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]

PASSWORD = "queue admin's long password"


def sign_in(page: Page, tenant: str, username: str) -> None:
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Organisation ID").fill(tenant)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_an_administrator_adds_edits_and_deletes_a_queue(
    make_print_stack: Any, browser: Browser
) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    port = stack.settings.port
    t, other = Tenant(stack), Tenant(stack)
    stack.printer(other.id, "their-hall", client_id=other.dev_id)
    stack.user(t.id, "root", PASSWORD, admin=True)
    stack.user(t.id, "bob", PASSWORD)

    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = watch(page)

    page.goto(f"{stack.printing}/")
    sign_in(page, t.id, "root")
    expect(page.get_by_role("heading", name="Print", exact=True)).to_be_visible()
    page.get_by_role("link", name="Manage queues").click()
    expect(page.get_by_role("heading", name="Printers and queues")).to_be_visible()
    assert page.url == f"{stack.printing}/queues"

    # The tenant's printers and follow-me are offered; another tenant's printer is not.
    target = page.locator("#target")
    offered = target.locator("option").all_inner_texts()
    assert offered == ["COLOR-1 (color)", "MONO-1 (mono)", "Any printer, by card (follow-me)"]
    assert not any("THEIR-HALL" in o for o in offered)

    # Add: the queue is listed with its URI and the line that adds it.
    page.locator("#name").fill("office")
    target.select_option("printer:color-1")
    page.locator("#info").fill("Front desk")
    page.get_by_role("button", name="Add queue").click()
    expect(page.get_by_role("status")).to_have_text("Queue office added: it prints on COLOR-1.")
    uri = f"ipp://127.0.0.1:{port}/printing/ipp/print/{t.id}/office"
    row = page.locator("#queue-office")
    expect(row.locator("code.queue-uri")).to_have_text(uri)
    expect(row).to_contain_text("Front desk")
    expect(row).to_contain_text("COLOR-1")
    row.get_by_text("How to add it: Windows, macOS, Linux, phones").click()
    expect(
        row.locator("code", has_text=f"lpadmin -p office -E -v {uri} -m everywhere")
    ).to_be_visible()

    # The same name again: the reason on the page, nothing added.
    page.locator("#name").fill("office")
    page.get_by_role("button", name="Add queue").click()
    expect(page.get_by_role("alert")).to_have_text(
        "A queue with this name already exists. Choose another name."
    )
    expect(page.locator("#queue-list tbody tr")).to_have_count(1)

    # Edit its description.
    page.get_by_label("Description of queue office").fill("Second floor, by the window")
    page.get_by_role("button", name="Save office").click()
    expect(page.get_by_role("status")).to_have_text("Queue office saved: it prints on COLOR-1.")
    expect(row).to_contain_text("Second floor, by the window")
    expect(row.locator("code.queue-uri")).to_have_text(uri)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "print-queues.png"), full_page=True)

    # The print page lists it for everyone, with the line that adds it.
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Print", exact=True
    ).click()
    expect(page.locator("#queue-office")).to_contain_text("Second floor, by the window")

    # Delete it.
    page.get_by_role("link", name="Manage queues").click()
    page.get_by_role("button", name="Delete queue office").click()
    expect(page.get_by_role("status")).to_contain_text("Queue office deleted.")
    expect(page.locator("#queue-office")).to_have_count(0)
    expect(page.get_by_text("No queues yet")).to_be_visible()
    context.close()

    # A user who is not an administrator: no link, and the page refused.
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    bob = watch(page)
    page.goto(f"{stack.printing}/")
    sign_in(page, t.id, "bob")
    expect(page.get_by_role("heading", name="Print", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Manage queues")).to_have_count(0)
    expect(page.get_by_role("link", name="Printers and queues")).to_have_count(0)
    page.goto(f"{stack.printing}/queues")
    expect(page.get_by_role("heading", name="Administrators only")).to_be_visible()
    expect(page.get_by_role("button", name="Add queue")).to_have_count(0)
    context.close()

    assert watched.problems == bob.problems == []
    assert watched.refused == [(409, "/printing/queues")]
    assert bob.refused == [(403, "/printing/queues")]
