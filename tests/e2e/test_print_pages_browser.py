"""The print pages in a real browser: Debian's Chromium driven by Playwright against
`printcloud serve` on loopback.

A user signs in at idp-a (code flow with PKCE, no consent: first party), uploads a
PDF through the print form, follows the job page as it moves on by itself
(`static/live.js`), a device agent prints the job, and the printed pages' previews
appear and load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    expect,
)

from printcloud.device.agent import DeviceAgent, DeviceConfig
from tests.e2e.chromium import SCREENSHOTS, TIMEOUT_MS, watch
from tests.e2e.console import make_pdf, sign_in
from tests.helpers.print_stack import PrintStack

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]


def test_sign_in_upload_and_watch_the_job_print(
    make_print_stack: Any,
    browser: Browser,
    tmp_path: Path,
) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    tenant = stack.tenant()
    stack.user(tenant, "alice", "alice's long password", admin=True)
    device_id, device_secret = stack.client(tenant, kind="device", scope="device print")
    stack.printer(tenant, "p1", client_id=device_id)
    stack.printer(tenant, "p2", color=False, client_id=device_id)

    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = watch(page)

    page.goto(f"{stack.printing}/")
    assert "/idp-a/login" in page.url
    sign_in(page, tenant, "alice", "alice's long password")
    expect(page.get_by_role("heading", name="Print", exact=True)).to_be_visible()
    assert page.url == f"{stack.printing}/"
    expect(page.get_by_text(f"alice · Tenant {tenant}")).to_be_visible()
    expect(page.get_by_text("No print jobs yet.")).to_be_visible()

    # A refused file shows the reason next to the form.
    page.get_by_label("PDF file").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a pdf"}
    )
    page.get_by_role("button", name="Print", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("not a PDF")

    # A PDF: to the job page, which follows the job by itself.
    page.get_by_label("PDF file").set_input_files(
        {"name": "report.pdf", "mimeType": "application/pdf", "buffer": make_pdf(2)}
    )
    page.get_by_label("Printer").select_option("p1")
    page.get_by_label("Resolution").select_option("150")
    page.get_by_label("Print on both sides (duplex)").check()
    page.get_by_role("button", name="Print", exact=True).click()
    page.wait_for_url(re.compile(r"/printing/jobs/[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", name="report.pdf")).to_be_visible()
    state = page.locator("#job-state")
    expect(state).to_contain_text("Waiting for the printer", timeout=60_000)
    expect(page.locator("#settings")).to_contain_text("both (duplex)")
    history = page.locator("#history tbody tr")
    expect(history.filter(has_text="Prepared for the printer")).to_have_count(1)
    # Step IDs and workers only in the administrators' details (alice is one).
    page.get_by_text("Details for administrators").click()
    details = page.locator("#history-details tbody tr")
    expect(details.filter(has_text="S108")).to_have_count(1)
    workers = {w["name"] for w in stack.workers()}
    converted_by = details.filter(has_text="S108").locator("td").nth(3).inner_text().strip()
    assert converted_by in workers
    expect(page.get_by_role("button", name="Cancel this job")).to_be_visible()

    config = DeviceConfig(
        server=stack.base_url,
        tenant_id=tenant,
        printer_id="p1",
        client_id=device_id,
        client_secret=device_secret,
        out_dir=tmp_path / "printer",
    )
    with DeviceAgent(config) as agent:
        assert [o.job_id for o in agent.poll_once()] == [job_id]

    # No reload: live.js swaps the job's part in when it changes.
    expect(state).to_contain_text("Printed", timeout=30_000)
    expect(page.get_by_role("button", name="Cancel this job")).to_have_count(0)
    previews = page.get_by_role("img", name=re.compile(r"Page \d as printed"))
    expect(previews).to_have_count(2)
    for n in (1, 2):
        image = page.get_by_role("img", name=f"Page {n} as printed")
        image.scroll_into_view_if_needed()
        loaded = "img => img.complete && img.naturalWidth > 0"
        page.wait_for_function(loaded, arg=image.element_handle())
        answer = page.request.get(f"{stack.printing}/jobs/{job_id}/pages/{n}/preview.png")
        assert answer.status == 200 and answer.headers["content-type"] == "image/png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "print-job.png"), full_page=True)

    page.get_by_role("link", name="← Your print jobs").click()
    row = page.locator(f"#job-{job_id}")
    expect(row).to_contain_text("report.pdf")
    expect(row).to_contain_text("Printed")
    page.screenshot(path=str(SCREENSHOTS / "print-form.png"), full_page=True)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Signed out")).to_be_visible()
    page.get_by_role("button", name="Also sign out of the sign-in page").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(f"{stack.printing}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # asked again
    assert watched.problems == []
    assert watched.refused == [(400, "/printing/jobs")]  # the text file, and nothing else
    context.close()
