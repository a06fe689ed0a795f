"""The printers on the "Printers and queues" page (issue 16), driven over HTTP like a
browser without JavaScript against a real `printcloud serve`.

A tenant's administrator adds, renames (and sets the push address of) and deletes
printers with the service calls the admin API and `printcloud admin printer` use
(post/redirect/get, a notice); refused input shows the page again with the error beside
its field and the input kept. Each printer shows its status (online after its device
client polled, offline otherwise), its device client and its IPP INFRA address; each
queue how to add it on Windows, macOS, Linux and phones. Others get 403; another
tenant's printers are unknown.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from printcloud.printing.models import PrinterRow
from tests.helpers.browser import Html, PrintBrowser, assert_accessible
from tests.helpers.print_stack import PrintStack
from tests.helpers.printing import Tenant
from tests.printing.test_queue_pages import QueueAdmin, notice

PASSWORD = "printer admin password"


def printer_row(page: httpx.Response, printer_id: str) -> str:
    found = re.search(rf'<tr id="printer-{re.escape(printer_id)}">(.*?)</tr>', page.text, re.S)
    return found.group(1) if found else ""


def field_error(page: httpx.Response, field: str) -> str:
    found = re.search(
        rf'<p class="field-error" role="alert" id="printer-{field}-error">([^<]*)</p>', page.text
    )
    assert found, page.text[:3000]
    return html.unescape(found.group(1))


def printers_of(stack: PrintStack, tenant: str) -> dict[str, PrinterRow]:
    with stack.db.session() as db:
        rows = list(db.scalars(select(PrinterRow).where(PrinterRow.tenant_id == tenant)))
        for r in rows:
            db.expunge(r)
    return {r.printer_id: r for r in rows}


@pytest.mark.slow
def test_an_administrator_manages_printers(make_print_stack: Any, tmp_path: Path) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    port = stack.settings.port
    t, other = Tenant(stack), Tenant(stack)
    stack.user(t.id, "root", PASSWORD, admin=True)
    stack.user(t.id, "bob", PASSWORD)
    admin = QueueAdmin(PrintBrowser(stack, (t.id, "root", PASSWORD)))
    admin.browser.open("/printing/")

    # Never seen: offline; after its device client polls: online. The device client and
    # the IPP INFRA address are shown; another tenant's printers are not.
    page = admin.page()
    color = printer_row(page, "color-1")
    assert "Offline: never connected" in color and f"<code>{t.dev_id}</code>" in color
    assert "Polls for its jobs" in color
    infra = f"ipp://127.0.0.1:{port}/printing/ipp/infra/{t.id}/color-1"
    assert infra in color, color
    assert other.id not in page.text and 'id="printer-color-1"' in page.text
    assert_accessible(Html(page.text))
    with t.device("color-1", tmp_path / "out") as agent:
        agent.poll_once()
    assert '<span class="badge printed">Online</span>' in printer_row(admin.page(), "color-1")

    # Add: back to the page with a notice, the printer listed and in the database.
    listed = admin.landed(
        admin.post(
            "/printing/printers",
            printer_id="hall-3",
            name="Hall printer",
            client_id=t.dev_id,
            location="Third floor",
            push_url="",
            color="mono",
        )
    )
    assert notice(listed) == (
        "Printer Hall printer added. Start its device client to bring it online."
    )
    hall = printer_row(listed, "hall-3")
    assert "Hall printer" in hall and "black and white" in hall and "Third floor" in hall
    added = printers_of(stack, t.id)["hall-3"]
    assert not added.color and added.client_id == t.dev_id and added.push_url is None

    # Refused: the error beside its field, what was typed kept, nothing added.
    for fields, status, field, message in [
        ({"printer_id": "hall-3", "client_id": t.dev_id}, 409, "printer_id", "already a printer"),
        ({"printer_id": "a b", "client_id": t.dev_id}, 400, "printer_id", "Use 1 to 128 letters"),
        ({"printer_id": "hall-4", "client_id": ""}, 400, "client_id", "device client"),
        (
            {"printer_id": "hall-4", "client_id": "not-a-device"},
            400,
            "client_id",
            "Choose one of your device clients in the list.",
        ),
        (
            {"printer_id": "hall-4", "client_id": t.dev_id, "push_url": "ftp://printer.invalid/x"},
            400,
            "push_url",
            "Enter a full http:// or https:// address",
        ),
    ]:
        answer = admin.post("/printing/printers", name="Typed name", **fields)
        assert answer.status_code == status, (fields, answer.text[:1500])
        assert message in field_error(answer, field), (fields, field_error(answer, field))
        assert 'id="printer_name" name="name" value="Typed name"' in answer.text
        assert f'aria-describedby="printer-{field}-error"' in answer.text
        assert_accessible(Html(answer.text))
    forged = admin.http.post("/printing/printers", data={"csrf": "forged", "printer_id": "x"})
    assert forged.status_code == 400 and "Your form expired" in forged.text
    assert sorted(printers_of(stack, t.id)) == ["color-1", "hall-3", "mono-1"]

    # Edit: the name; delete: refused while a queue prints on it, then done.
    edited = admin.landed(admin.post("/printing/printers/hall-3/edit", name="Hall 3", push_url=""))
    assert notice(edited) == "Printer Hall 3 saved." and "Hall 3" in printer_row(edited, "hall-3")
    admin.landed(admin.add("hall", "printer:hall-3"))
    refused = admin.post("/printing/printers/hall-3/delete")
    assert refused.status_code == 409
    assert "Printer hall-3: Queues print on it" in html.unescape(refused.text)
    admin.landed(admin.delete("hall"))
    gone = admin.landed(admin.post("/printing/printers/hall-3/delete"))
    assert notice(gone) == "Printer hall-3 deleted." and not printer_row(gone, "hall-3")
    missing = admin.post(f"/printing/printers/{'their'}/delete")
    assert missing.status_code == 404

    # The queue's address and how to add it on each system.
    office = admin.landed(admin.add("office", "printer:color-1")).text
    for system in ("Windows", "macOS", "Linux", "iPhone, iPad, Android"):
        assert f"<strong>{system}</strong>" in office, system

    # Another tenant's printer cannot be changed from here; a non-administrator gets 403.
    theirs = admin.post("/printing/printers/color-1/edit", name="mine")
    assert theirs.status_code == 303  # its own color-1, not the other tenant's
    assert printers_of(stack, other.id)["color-1"].name == "COLOR-1"
    with PrintBrowser(stack, (t.id, "bob", PASSWORD)) as bob_browser:
        bob_browser.open("/printing/")
        bob = QueueAdmin(bob_browser)
        for action in (
            "/printing/printers",
            "/printing/printers/color-1/edit",
            "/printing/printers/color-1/delete",
        ):
            answer = bob.post(action, printer_id="x", client_id=t.dev_id, name="x")
            assert answer.status_code == 403 and "Administrators only" in answer.text
    assert sorted(printers_of(stack, t.id)) == ["color-1", "mono-1"]
