"""What a job's page says to do next (issue 16): why a job waits for its printer (the
printer's online, offline-since or never-connected status), and, for a job the printer
stopped, "Print the remaining pages" and "Print again", which create new jobs through
the intake: the owner's or an administrator's, within the tenant.

A real `printcloud serve`, a real device agent that runs out of paper, a browser
without JavaScript.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from printcloud.core import words
from printcloud.core.db import utcnow
from printcloud.device.agent import DeviceAgent, DeviceConfig, Fault
from printcloud.printing.models import JobEventRow, PrinterRow, PrintJobRow
from tests.helpers.browser import PrintBrowser
from tests.helpers.print_stack import PrintStack
from tests.printing.test_pages import wait_for_state

pytestmark = pytest.mark.slow

_JOB_LINK = re.compile(r"/printing/jobs/([0-9a-f]+)$")
#: Each page its own width, so that a page can be told from the others by its preview.
WIDTHS = (200, 240, 280, 320)


def four_pages() -> bytes:
    images = [Image.new("RGB", (w, 400), (30, 30, 200)) for w in WIDTHS]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=72.0)
    return out.getvalue()


def text_of(page: Any) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.text))


def job_row(stack: PrintStack, job_id: str) -> PrintJobRow:
    with stack.db.session() as db:
        row = db.get(PrintJobRow, job_id)
        assert row is not None
        db.expunge(row)
        return row


def new_job(answer: Any) -> str:
    assert answer.status_code == 303, answer.text[:1500]
    found = _JOB_LINK.search(answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def test_waiting_says_why_and_a_stopped_job_prints_the_rest(
    make_print_stack: Any, tmp_path: Path
) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    tenant, other = stack.tenant(prefix="a"), stack.tenant(prefix="b")
    stack.user(tenant, "alice", "alice's password")
    stack.user(tenant, "bob", "bob's password")
    stack.user(tenant, "carol", "carol's password", admin=True)
    stack.user(other, "mallory", "mallory's password")
    device_id, device_secret = stack.client(tenant, kind="device", scope="device print")
    stack.printer(tenant, "p1", client_id=device_id)
    alice = PrintBrowser(stack, (tenant, "alice", "alice's password"))
    alice.open("/printing/")

    # A printer that never connected: the job says so, on its page and in the list.
    job_id = new_job(alice.submit(printer="p1", pdf=four_pages(), filename="four.pdf"))
    page = wait_for_state(alice, job_id, "waiting_for_printer")
    assert "Waiting: the printer P1 has never connected." in text_of(page)
    assert "Offline: never connected" in text_of(page)
    listing = alice.http.get("/printing/jobs")
    assert "Waiting: the printer P1 has never connected." in text_of(listing)

    # Seen an hour ago: offline since then.
    an_hour_ago = utcnow() - timedelta(hours=1)
    with stack.db.session() as db:
        printer = db.scalars(
            select(PrinterRow).where(PrinterRow.tenant_id == tenant, PrinterRow.printer_id == "p1")
        ).one()
        printer.last_seen_at = an_hour_ago
    since = an_hour_ago.strftime("%Y-%m-%d %H:%M:%S UTC")
    page = alice.http.get(f"/printing/jobs/{job_id}")
    assert f"Waiting: the printer P1 has been offline since {since}." in text_of(page)
    assert f"Offline since {since}" in text_of(page)
    assert "has been offline since" in text_of(alice.http.get("/printing/jobs"))
    assert words.PRINT_AGAIN not in page.text  # not ended: nothing to print again

    # The printer comes back, prints pages 1 and 2 and runs out of paper.
    config = DeviceConfig(
        server=stack.base_url,
        tenant_id=tenant,
        printer_id="p1",
        client_id=device_id,
        client_secret=device_secret,
        out_dir=tmp_path / "printer",
        faults=[Fault.parse("paper_out@3")],
    )
    with DeviceAgent(config) as agent:
        agent.poll_once()
    page = wait_for_state(alice, job_id, "printer_cancelled")
    seen = text_of(page)
    assert "The printer ran out of paper." in seen and "2 of 4 pages were printed." in seen
    assert '<span id="printer-state">Online</span>' in page.text
    assert f'action="/printing/jobs/{job_id}/remaining"' in page.text
    assert f'action="/printing/jobs/{job_id}/again"' in page.text
    assert words.PRINT_REMAINING in page.text and "paper_out" not in seen
    assert job_row(stack, job_id).data_key  # kept for what comes next

    # Another user of the tenant sees no actions and may not use them; another tenant's
    # user finds no such job.
    with PrintBrowser(stack, (tenant, "bob", "bob's password")) as bob:
        seen_by_bob = bob.open(f"/printing/jobs/{job_id}")
        assert seen_by_bob.status_code == 200 and words.PRINT_AGAIN not in seen_by_bob.text
        for action in ("remaining", "again"):
            refused = bob.http.post(
                f"/printing/jobs/{job_id}/{action}", data={"csrf": bob.csrf(seen_by_bob)}
            )
            assert refused.status_code == 403, refused.text[:500]
            assert "Only the job&#39;s owner or an administrator" in refused.text
    with PrintBrowser(stack, (other, "mallory", "mallory's password")) as mallory:
        home = mallory.open("/printing/")
        stolen = mallory.http.post(
            f"/printing/jobs/{job_id}/remaining", data={"csrf": mallory.csrf(home)}
        )
        assert stolen.status_code == 404 and "No such print job" in stolen.text
    forged = alice.http.post(f"/printing/jobs/{job_id}/remaining", data={"csrf": "forged"})
    assert forged.status_code == 400 and "form expired" in forged.text

    # The owner prints the remaining pages: a new job of pages 3 and 4, same printer and
    # settings, which the printer (paper added) prints.
    rest_id = new_job(alice.post_form(page, f"/printing/jobs/{job_id}/remaining"))
    rest = job_row(stack, rest_id)
    assert rest.page_count == 2 and rest.owner == "alice" and rest.printer_id == "p1"
    assert rest.title == "four.pdf (remaining pages)" and rest.options["dpi"] == 150
    wait_for_state(alice, rest_id, "waiting_for_printer")
    with DeviceAgent(replace(config, faults=[])) as agent:
        agent.poll_once()
    wait_for_state(alice, rest_id, "printed")
    first = alice.http.get(f"/printing/jobs/{rest_id}/pages/1/preview.png")
    assert first.status_code == 200
    width, height = Image.open(io.BytesIO(first.content)).size
    assert abs(width / height - WIDTHS[2] / 400) < 0.02, (width, height)  # page 3

    # An administrator of the tenant prints the whole document again: the new job is
    # still alice's (she sees it in her jobs); its history names carol as who asked.
    with PrintBrowser(stack, (tenant, "carol", "carol's password")) as carol:
        seen_by_carol = carol.open(f"/printing/jobs/{job_id}")
        assert words.PRINT_AGAIN in seen_by_carol.text
        again_id = new_job(carol.post_form(seen_by_carol, f"/printing/jobs/{job_id}/again"))
        details = html.unescape(carol.open(f"/printing/jobs/{again_id}").text)
        assert "printed again for alice at the request of carol" in details
    again = job_row(stack, again_id)
    assert again.page_count == 4 and again.owner == "alice" and again.title == "four.pdf"
    assert f'id="job-{again_id}"' in alice.open("/printing/jobs").text
    with stack.db.sessions() as db:
        asked = db.scalars(
            select(JobEventRow.detail).where(
                JobEventRow.job_id == again_id, JobEventRow.step == "S105"
            )
        ).all()
    assert asked == ["accepted from upload, printed again for alice at the request of carol"]
