"""The printer's card panel in a real browser: Debian's Chromium driven by Playwright
against `printcloud serve` on loopback and the virtual printer in this process.

A user taps a card the issuer does not know, registers it with their directory
account, sees their held job, releases it, and the printer prints it (seed 004 at
the device, then seed 003's print path).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Response, expect

from printcloud.device.cards import CardReader
from printcloud.device.panel import Panel
from printcloud.device.status import PrintStatus
from tests.e2e.chromium import SCREENSHOTS, TIMEOUT_MS
from tests.helpers.device import PASSWORD, Site
from tests.helpers.print_stack import PrintStack

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]


def test_tap_register_release_and_print_in_the_panel(
    make_print_stack: Any,
    browser: Browser,
    tmp_path: Path,
) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    site = Site(stack, tmp_path / "printer")
    (job_id,) = site.held_jobs("CARD0001", "Board minutes")
    status = PrintStatus()
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    refused: list[tuple[int, str]] = []

    def on_response(response: Response) -> None:
        if response.status >= 400:
            refused.append((response.status, response.url))

    page.on("response", on_response)
    with (
        site.printing(status),
        CardReader(site.config) as reader,
        Panel(site.config, reader, status) as panel,
    ):
        page.goto(panel.url)
        expect(page.get_by_role("heading", name="Tap your card")).to_be_visible()
        page.get_by_label("Card ID").fill("CA:FE:00:99")
        page.get_by_role("button", name="Log in").click()

        expect(page.get_by_role("status")).to_contain_text("Card …0099 is not registered")
        page.get_by_label("Directory user name").fill("alice")
        page.get_by_label("Password").fill("not her password")
        page.get_by_role("button", name="Register and log in").click()
        expect(page.get_by_role("status")).to_contain_text("Wrong user name or password")

        page.get_by_label("Directory user name").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Register and log in").click()
        expect(page.get_by_role("status").first).to_contain_text("now registered to alice")
        held = page.locator("#held tbody tr")
        expect(held).to_have_count(1)
        expect(held.first).to_contain_text("Board minutes")

        page.get_by_role("button", name="Release Board minutes").click()
        expect(page.get_by_role("status").first).to_contain_text("Released “Board minutes”")
        expect(page.locator("#held")).to_have_count(0)
        deadline = time.monotonic() + 90
        while site.state(job_id) != "printed":
            assert time.monotonic() < deadline, f"the job stayed {site.state(job_id)}"
            time.sleep(0.2)
        # the page refreshes by itself while the released job prints
        expect(page.locator("#printing")).to_contain_text("printed", timeout=30_000)
        expect(page.locator("#printing")).to_contain_text("Board minutes")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "device-panel.png"), full_page=True)

        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("status")).to_contain_text("Logged out.")
        expect(page.get_by_role("heading", name="Tap your card")).to_be_visible()
    assert refused == []
    context.close()
