"""The console's promises (issue 16), checked on any page a browser test walks:
one shared navigation, no raw state code in the visible text, no horizontal overflow
at phone width, no serious or critical axe-core violation; and the page's screenshot
in docs/img/ (docs/console.md shows them).

Each service's walk lives in its own test file and calls `check_page`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import Page, expect

from printcloud.core import words

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
WIDTHS = {"desktop": 1280, "phone": 390}
#: Codes a person must never read: states and reasons with an underscore, the
#: seeds' step IDs (S105, S1501, ...) and service codes.
RAW_CODES = re.compile(
    r"\b(?:"
    + "|".join(sorted({c for c in [*words.STATES, *words.REASONS] if "_" in c}))
    + r"|S\d{3,4}|SVC00\d)\b"
)


def make_pdf(pages: int) -> bytes:
    """A PDF of `pages` plain pages, red, blue and green in turn (previews tell them apart)."""
    colors = [(220, 30, 30), (30, 30, 220), (30, 160, 30)]
    images = [Image.new("RGB", (200, 280), colors[i % 3]) for i in range(pages)]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=72.0)
    return out.getvalue()


def sign_in(page: Page, tenant: str, username: str, password: str) -> None:
    expect(page.get_by_role("heading", name="Sign in to")).to_be_visible()
    page.get_by_label("Organisation ID").fill(tenant)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def check_page(page: Page, name: str, size: str, axe: Axe) -> None:
    """The console's promises on the page shown, and its screenshot."""
    assert page.locator("header.console").count() == 1, name
    assert page.locator("nav#console-nav").count() == 1, name
    text = page.locator("body").inner_text()
    raw = RAW_CODES.findall(text)
    assert not raw, (name, size, raw)
    if size == "phone":
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (name, overflow)
    results = axe.run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, (name, size, bad)
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / f"console-{name}-{size}.png"), full_page=True)
