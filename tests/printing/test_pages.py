"""The print service's web pages, driven over HTTP like a browser without JavaScript.

A real `printcloud serve` (the `make_print_stack` fixture); the user signs in at
idp-a through the code flow with PKCE, submits PDFs through the form, a device
agent prints them, and the job page shows the history and the printed pages.
"""

from __future__ import annotations

import html
import io
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from printcloud.core import words
from printcloud.device.agent import DeviceAgent, DeviceConfig, Fault
from printcloud.printing.models import PrintJobRow
from tests.helpers.browser import PrintBrowser, form_to
from tests.helpers.print_stack import PrintStack

pytestmark = pytest.mark.slow

_CSRF = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)">')
_JOB_LINK = re.compile(r"/printing/jobs/([0-9a-f]+)$")
_HISTORY_ROW = re.compile(
    r"<tr><td><time[^>]*>[^<]*</time></td><td><code>(?P<step>[^<]+)</code></td>"
    r"<td><code>(?P<state>[^<]+)</code></td>"
    r"<td>(?:<code>(?P<worker>[^<]+)</code>|<span[^>]*>–</span>)</td>"
)


def make_pdf(pages: int = 2) -> bytes:
    colors = [(220, 30, 30), (30, 30, 220), (30, 160, 30)]
    images = [Image.new("RGB", (200, 280), colors[i % 3]) for i in range(pages)]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=72.0)
    return out.getvalue()


def jobs_of(stack: PrintStack, tenant: str) -> int:
    with stack.db.session() as db:
        return int(
            db.scalar(
                select(func.count()).select_from(PrintJobRow).where(PrintJobRow.tenant_id == tenant)
            )
            or 0
        )


def wait_for_state(browser: PrintBrowser, job_id: str, *states: str) -> httpx.Response:
    deadline = time.monotonic() + 90
    while True:
        page = browser.http.get(f"/printing/jobs/{job_id}")
        assert page.status_code == 200, page.text[:1000]
        found = re.search(r'<p id="job-state"><span class="badge [^"]+"[^>]*>([^<:]+)', page.text)
        assert found, page.text[:2000]
        if found.group(1) in {words.state_label(s) for s in states}:
            return page
        assert time.monotonic() < deadline, f"job stayed {found.group(1)}, wanted {states}"
        time.sleep(0.2)


def history(page: httpx.Response) -> list[dict[str, Any]]:
    return [m.groupdict() for m in _HISTORY_ROW.finditer(page.text)]


def test_sign_in_print_preview_cancel_and_sign_out(make_print_stack: Any, tmp_path: Path) -> None:
    stack: PrintStack = make_print_stack(workers=2)
    tenant, other = stack.tenant(prefix="a"), stack.tenant(prefix="b")
    stack.user(tenant, "alice", "alice's password", admin=True)  # sees the history's details
    stack.user(tenant, "bob", "bob's password")
    stack.user(other, "mallory", "mallory's password")
    device_id, device_secret = stack.client(tenant, kind="device", scope="device print")
    stack.printer(tenant, "p1", client_id=device_id)
    stack.printer(tenant, "p2", color=False, client_id=device_id)
    alice = PrintBrowser(stack, (tenant, "alice", "alice's password"))

    # Not signed in: sent to sign in, through idp-a and back (no consent: first party),
    # and never to another site, whatever `next` says.
    first = alice.http.get("/printing/")
    assert first.status_code == 303
    assert first.headers["location"] == "/printing/auth/login?next=%2Fprinting%2F"
    login = alice.http.get("/printing/auth/login?next=https://evil.example/printing/")
    authorize = urlsplit(login.headers["location"])
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert authorize.path == "/idp-a/authorize"
    assert query["response_type"] == "code" and query["scope"] == "print profile admin"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == f"{stack.printing}/auth/callback"
    page = alice.open(login.headers["location"])
    assert page.status_code == 200
    assert alice.trail[-2:] == ["/printing/auth/callback", "/printing/"]
    assert "/idp-a/login" in alice.trail and "consent" not in page.text.lower()
    assert alice.http.cookies.get("pc_print", path="/printing")
    assert f"alice · Tenant {tenant}" in page.text  # the display name, not the ID
    assert "P1 (color)" in page.text and "P2 (mono)" in page.text
    assert "No print jobs yet." in page.text and "http-equiv" not in page.text

    # Bad input shows the form again with the reason, and creates no job.
    for kwargs, status, message in [
        ({"pdf": b"hello, not a pdf", "filename": "notes.txt"}, 400, "This file is not a PDF."),
        ({"pdf": b"", "filename": "empty.pdf"}, 400, "The file you chose is empty."),
        ({}, 400, "Choose a PDF file, or enter the address of one."),
        ({"pdf": make_pdf(), "url": "https://example.com/x.pdf"}, 400, "not both"),
        ({"pdf": make_pdf(), "printer": "nope"}, 400, "Choose one of the printers"),
        ({"pdf": make_pdf(), "copies": "0"}, 400, "Enter a number of copies from 1 to 999"),
        ({"url": "http://127.0.0.1:9/gone.pdf"}, 400, "The address did not answer"),
        ({"pdf": make_pdf(), "csrf": "forged"}, 400, "Your form expired"),
    ]:
        answer = alice.submit(**{"printer": "p1", **kwargs})
        assert answer.status_code == status, (kwargs, answer.text[:1500])
        # Beside its field (or above the form when it concerns no field).
        error = re.search(
            r'<p class="(?:field-)?error" role="alert" id="[a-z_]+-error">([^<]*)</p>', answer.text
        )
        assert error and message in html.unescape(error.group(1)), (kwargs, answer.text[:1500])
        assert "<form" in answer.text and "http-equiv" not in answer.text
        if "url" in kwargs:  # what was typed is kept
            assert f'value="{kwargs["url"]}"' in answer.text
    assert jobs_of(stack, tenant) == 0

    # A PDF through the form: the job page, its history with the workers that served it.
    answer = alice.submit(printer="p1", pdf=make_pdf(2), filename="report.pdf", dpi="150")
    assert answer.status_code == 303, answer.text[:1500]
    found = _JOB_LINK.search(answer.headers["location"])
    assert found, answer.headers["location"]
    job_id = found.group(1)
    listing = alice.http.get("/printing/")
    assert f'href="/printing/jobs/{job_id}">report.pdf</a>' in listing.text
    assert '<span class="badge active"' in listing.text and "<progress value=" in listing.text
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in listing.text
    page = wait_for_state(alice, job_id, "waiting_for_printer")
    assert '<meta http-equiv="refresh" content="2">' in page.text and "data-live" in page.text
    assert "Cancel this job" in page.text
    assert re.search(r"<dt>Resolution</dt><dd>150 dpi</dd>", page.text)
    workers = {w["name"] for w in stack.workers()}
    served = {row["step"]: row for row in history(page)}
    assert {"S105", "S106", "S107", "S108", "S109"} <= set(served), history(page)
    for step in ("S106", "S107", "S108"):
        assert served[step]["worker"] in workers, (step, served[step], workers)

    # The printer prints it; the page shows it printed, with a preview of each page.
    config = DeviceConfig(
        server=stack.base_url,
        tenant_id=tenant,
        printer_id="p1",
        client_id=device_id,
        client_secret=device_secret,
        out_dir=tmp_path / "printer",
    )
    with DeviceAgent(config) as agent:
        outcomes = agent.poll_once()
    assert [o.job_id for o in outcomes] == [job_id]
    page = wait_for_state(alice, job_id, "printed")
    assert '<span class="badge printed"' in page.text
    assert "http-equiv" not in page.text and "Cancel this job" not in page.text
    assert served_by_printer(page) == "p1"
    images = re.findall(r'<img src="(/printing/jobs/[^"]+)"', page.text)
    assert images == [f"/printing/jobs/{job_id}/pages/{n}/preview.png" for n in (1, 2)]
    for src in images:
        image = alice.http.get(src)
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert alice.http.get(f"/printing/jobs/{job_id}/pages/3/preview.png").status_code == 404

    # The printer runs out of paper on the next job: red, with the printer's reason.
    answer = alice.submit(printer="p1", pdf=make_pdf(1), filename="jammed.pdf")
    jammed = _JOB_LINK.search(answer.headers["location"])
    assert jammed
    wait_for_state(alice, jammed.group(1), "waiting_for_printer")
    faulty = replace(config, faults=[Fault.parse("paper_out@1")])
    with DeviceAgent(faulty) as agent:
        agent.poll_once()
    page = wait_for_state(alice, jammed.group(1), "printer_cancelled")
    assert re.search(r'<span class="badge failed">Stopped at the printer</span>', page.text)
    assert "The printer ran out of paper." in page.text
    listing = alice.http.get("/printing/")
    assert "Stopped at the printer" in listing.text and "http-equiv" not in listing.text
    assert "printer_cancelled" not in listing.text and "paper_out" not in listing.text

    # Another tenant's user sees none of it: 404 for the page, the preview and the cancel.
    with PrintBrowser(stack, (other, "mallory", "mallory's password")) as mallory:
        home = mallory.open("/printing/")
        assert home.status_code == 200 and job_id not in home.text and "P1" not in home.text
        for url in (f"/printing/jobs/{job_id}", f"/printing/jobs/{job_id}/pages/1/preview.png"):
            assert mallory.http.get(url).status_code == 404, url
        stolen = mallory.http.post(
            f"/printing/jobs/{job_id}/cancel", data={"csrf": mallory.csrf(home)}
        )
        assert stolen.status_code == 404 and "No such print job" in stolen.text
        assert mallory.http.get("/printing/jobs/..%2f..%2fetc").status_code == 404

    # Cancel: the owner may, another user of the tenant may not.
    answer = alice.submit(printer="p2", pdf=make_pdf(1), filename="memo.pdf", color="mono")
    second = _JOB_LINK.search(answer.headers["location"])
    assert second
    second_id = second.group(1)
    page = wait_for_state(alice, second_id, "waiting_for_printer")
    assert "Black and white" in page.text
    with PrintBrowser(stack, (tenant, "bob", "bob's password")) as bob:
        seen = bob.open(f"/printing/jobs/{second_id}")
        assert seen.status_code == 200 and "Cancel this job" not in seen.text
        refused = bob.http.post(f"/printing/jobs/{second_id}/cancel", data={"csrf": bob.csrf(seen)})
        assert refused.status_code == 403 and "only the job&#39;s owner" in refused.text
    forged = alice.http.post(f"/printing/jobs/{second_id}/cancel", data={"csrf": "forged"})
    assert forged.status_code == 400 and "form expired" in forged.text
    done = alice.post_form(page, f"/printing/jobs/{second_id}/cancel")
    assert done.status_code == 303 and done.headers["location"] == f"/printing/jobs/{second_id}"
    page = wait_for_state(alice, second_id, "cancelled")
    assert "Cancelled by alice" in page.text and "Cancel this job" not in page.text
    again = alice.http.post(f"/printing/jobs/{second_id}/cancel", data={"csrf": alice.csrf(page)})
    assert again.status_code == 409 and "already ended" in again.text

    # Sign out: the cookie goes and its tokens are revoked at idp-a.
    session = alice.http.cookies.get("pc_print", path="/printing")
    assert alice.http.post("/printing/auth/logout", data={"csrf": "x"}).status_code == 400
    out = alice.post_form(page, "/printing/auth/logout")
    assert out.status_code == 303 and out.headers["location"] == "/printing/auth/signed-out"
    assert not alice.http.cookies.get("pc_print", path="/printing")
    signed_out = alice.http.get("/printing/auth/signed-out")
    assert "You are signed out of printing." in signed_out.text
    assert form_to(signed_out.text, "/idp-a/logout")
    assert alice.http.get("/printing/").status_code == 303
    assert session
    alice.http.cookies.set("pc_print", session, domain="127.0.0.1", path="/printing")
    replay = alice.http.get("/printing/")
    assert replay.status_code == 303 and "/printing/auth/login" in replay.headers["location"]
    alice.http.close()


def served_by_printer(page: httpx.Response) -> str | None:
    rows = [r for r in history(page) if r["step"] == "S110"]
    return rows[0]["worker"] if rows else None


def test_sign_in_errors_and_token_refresh(make_print_stack: Any) -> None:
    # Access tokens live 31 s and are refreshed 30 s before they end: at once, here.
    stack: PrintStack = make_print_stack(workers=1, access_token_ttl=31)
    tenant = stack.tenant()
    stack.user(tenant, "alice", "alice's password", admin=True)  # sees the history's details
    with PrintBrowser(stack, (tenant, "alice", "alice's password")) as alice:
        # OAuth errors and stray callbacks are pages that say so, never a 500.
        for query, message in [
            ("error=access_denied&state=x", "The sign-in was declined."),
            ("error=server_error&error_description=boom", "The sign-in service failed."),
            ("code=abc&state=def", "took too long"),
        ]:
            answer = alice.http.get(f"/printing/auth/callback?{query}")
            assert answer.status_code == 400, answer.text[:500]
            assert message in html.unescape(answer.text)
            assert "boom" not in answer.text and "server_error" not in answer.text  # logged
            assert 'href="/printing/auth/login?next=' in answer.text
        alice.http.get("/printing/auth/login?next=/printing/")  # a pending sign-in
        answer = alice.http.get("/printing/auth/callback?code=abc&state=wrong")
        assert answer.status_code == 400 and "does not belong" in answer.text

        page = alice.open("/printing/auth/login?next=/printing/jobs/nothing")
        assert alice.trail[-1] == "/printing/jobs/nothing"
        assert page.status_code == 404 and "No such print job" in page.text

        # Expired: refreshed, the cookie replaced; two requests racing with the old
        # cookie both pass (idp-a revokes a refresh token's family when it is used twice).
        old = alice.http.cookies.get("pc_print", path="/printing")
        time.sleep(1.5)  # a clock, not an event: the 31 s token comes within 30 s of its end
        jar = httpx.Cookies()
        jar.set("pc_print", str(old), domain="127.0.0.1", path="/printing")
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda _: httpx.get(
                        f"{stack.printing}/", cookies=jar, follow_redirects=False, timeout=30
                    ),
                    range(4),
                )
            )
        assert [a.status_code for a in answers] == [200] * 4
        assert all("pc_print=" in a.headers.get("set-cookie", "") for a in answers)
        for _ in range(3):
            time.sleep(1.2)  # a clock, not an event: each new token comes due in turn
            page = alice.http.get("/printing/")
            assert page.status_code == 200, page.headers.get("location")
            new = alice.http.cookies.get("pc_print", path="/printing")
            assert new and new != old
            old = new
