"""Debian's Chromium driven by Playwright, for the browser tests (never a downloaded browser)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, sync_playwright

from tests.conftest import require_peer

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
#: As root Chromium needs --no-sandbox; the rest keep it off the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 60_000  # a deadline means "stuck": loaded machines run 2–3× slower


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    require_peer(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@dataclass
class Watched:
    """What a page did wrong while a test drove it: script errors (a script refused by
    the CSP, say) and answers of 400 or more, as (status, path)."""

    problems: list[str] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def watch(page: Page) -> Watched:
    """Record `page`'s console errors, uncaught errors and refused answers from now on."""
    seen = Watched()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            seen.problems.append(message.text)

    def on_response(response: Response) -> None:
        if response.status >= 400:
            seen.refused.append((response.status, urlsplit(response.url).path))

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.problems.append(str(error)))
    page.on("response", on_response)
    return seen
