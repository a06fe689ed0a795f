"""The print form's defaults and the printers' editing (issue 16, items 6 and 7), against
a real `printcloud serve`, over HTTP like a browser without JavaScript.

- The printer preselected: the person's last-used printer, else the first printer that
  is online and a person's printer: never the one docgen's batch printing sends to
  because it sorts first.
- Color asked for a black-and-white printer: printed, recorded and shown in black and
  white, and the job page says why (the form, the JSON API).
- A printer's name, color, location and device client changed from the printers page,
  the admin API (PATCH) and `printcloud admin printer set`: the device client must be
  one of the tenant's (the page offers only those), refused beside its field or with
  400 naming `client_id` otherwise; another tenant's printer is unknown.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from printcloud.core import words
from printcloud.printing import service
from tests.e2e.console import make_pdf
from tests.helpers.browser import PrintBrowser
from tests.helpers.cli import run_cli
from tests.helpers.print_stack import PrintStack
from tests.helpers.printing import Tenant
from tests.printing.test_printer_pages import field_error, printer_row, printers_of
from tests.printing.test_queue_pages import QueueAdmin, notice

pytestmark = pytest.mark.slow

PASSWORD = "a long enough password"
_SELECTED = re.compile(r'<option value="([^"]*)"[^>]*\bselected\b', re.S)


def select_of(page: httpx.Response, select_id: str) -> str:
    found = re.search(rf'<select[^>]*\bid="{select_id}"[^>]*>(.*?)</select>', page.text, re.S)
    assert found, page.text[:3000]
    return found.group(1)


def selected(page: httpx.Response, select_id: str) -> str:
    found = _SELECTED.search(select_of(page, select_id))
    return found.group(1) if found else ""


def batch_job(stack: PrintStack, tenant: str, printer_id: str, owner: str) -> None:
    """A job as docgen's batch printing records one: sent by docgen's platform client,
    with the print token of a user of the tenant (seed 000, S1522)."""
    docgen_client = stack.settings.service_client("idp-a", "docgen")[0]
    with stack.db.session() as db:
        service.create_job(
            db,
            tenant_id=tenant,
            printer_id=printer_id,
            owner=owner,
            client_id=docgen_client,
            title="invoice batch",
            source="upload",
            options=service.JobOptions(),
            job_id=service.new_job_id(),
        )


def test_the_print_form_preselects_a_persons_printer_and_prints_mono_in_black_and_white(
    make_print_stack: Any, tmp_path: Path
) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    t = Tenant(stack)  # COLOR-1 and MONO-1, both never seen
    stack.user(t.id, "alice", PASSWORD, admin=True)
    # docgen's batch printer sorts first and is online.
    stack.printer(t.id, "accounts", client_id=t.dev_id)
    with stack.db.session() as db:
        service.update_printer(db, tenant_id=t.id, printer_id="accounts", name="A batch printer")
    batch_job(stack, t.id, "accounts", "alice")
    with t.device("accounts", tmp_path / "accounts") as agent:
        agent.poll_once()
    with PrintBrowser(stack, (t.id, "alice", PASSWORD)) as alice:
        alice.open("/printing/")
        walk_the_print_form(stack, t, alice, tmp_path)

    # A tenant with only the batch printer: the person chooses.
    only = stack.tenant()
    dev, _ = stack.client(only, kind="device", scope="device print")
    stack.printer(only, "batch", client_id=dev)
    batch_job(stack, only, "batch", "bob")
    stack.user(only, "bob", PASSWORD)
    with PrintBrowser(stack, (only, "bob", PASSWORD)) as bob:
        bob.open("/printing/")
        form = bob.open("/printing/")
        assert selected(form, "printer_id") == ""
        assert '<option value="" selected disabled>Choose a printer</option>' in form.text


def walk_the_print_form(stack: PrintStack, t: Tenant, alice: PrintBrowser, tmp_path: Path) -> None:
    # Nothing else online: the first person's printer, not the batch printer.
    form = alice.open("/printing/")
    assert select_of(form, "printer_id").index("A batch printer") >= 0
    assert selected(form, "printer_id") == "color-1"
    assert selected(form, "color") == "color"
    assert 'data-color="false"' in select_of(form, "printer_id")
    assert '<script src="/printing/static/print-form.js" defer></script>' in form.text
    script = alice.http.get("/printing/static/print-form.js")
    assert script.status_code == 200 and "data-color" in script.text
    assert alice.http.get("/printing/static/nothing.js").status_code == 404

    # The mono printer comes online: it is the first online person's printer, and the
    # form offers it in black and white.
    with t.device("mono-1", tmp_path / "mono") as agent:
        agent.poll_once()
    form = alice.open("/printing/")
    assert selected(form, "printer_id") == "mono-1" and selected(form, "color") == "mono"
    assert words.MONO_HINT in html.unescape(form.text)

    # Color asked for the mono printer (a browser without JavaScript): printed in black
    # and white, recorded so, and the job page says why.
    answer = alice.submit(printer="mono-1", pdf=make_pdf(1), color="color")
    assert answer.status_code == 303, answer.text[:2000]
    job_id = answer.headers["location"].rsplit("/", 1)[1]
    options = alice.http.get(f"/printing/jobs/{job_id}")
    assert options.status_code == 200
    settings = re.search(r'<dd id="job-color">(.*?)</dd>', options.text, re.S)
    assert settings and settings.group(1).startswith("Black and white"), options.text[:3000]
    assert words.MONO_PRINTED in html.unescape(settings.group(1))
    with stack.db.sessions() as db:
        row = service.get_job(db, tenant_id=t.id, job_id=job_id)
        assert row.options["color"] is False and row.options["gray_for_mono"] is True
    # The API: the same.
    by_api = t.submit(make_pdf(1), printer="mono-1", color="true")
    assert by_api["options"]["color"] is False and by_api["options"]["gray_for_mono"] is True
    # A color printer keeps color.
    colored = alice.submit(printer="color-1", pdf=make_pdf(1), color="color")
    color_id = colored.headers["location"].rsplit("/", 1)[1]
    with stack.db.sessions() as db:
        row = service.get_job(db, tenant_id=t.id, job_id=color_id)
        assert row.options["color"] is True and "gray_for_mono" not in row.options

    # Now her last-used printer (color-1) is preselected; a later batch job on the
    # accounts printer in her name does not change that.
    batch_job(stack, t.id, "accounts", "alice")
    form = alice.open("/printing/")
    assert selected(form, "printer_id") == "color-1" and selected(form, "color") == "color"


def test_an_administrator_changes_a_printer_from_the_page_the_api_and_the_cli(
    make_print_stack: Any,
) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    t, other = Tenant(stack), Tenant(stack)
    stack.user(t.id, "root", PASSWORD, admin=True)
    stack.user(t.id, "bob", PASSWORD)
    spare, _ = stack.client(t.id, kind="device", scope="device print")
    app_client = t.app_id  # a confidential client: not a device client
    admin = QueueAdmin(PrintBrowser(stack, (t.id, "root", PASSWORD)))
    admin.browser.open("/printing/")

    # The device client pickers offer this tenant's device clients only.
    page = admin.page()
    picker = select_of(page, "client-mono-1")
    offered = re.findall(r'<option value="([^"]*)"', picker)
    assert sorted(offered) == sorted([t.dev_id, spare]), picker
    assert other.dev_id not in page.text and app_client not in picker
    assert selected(page, "client-mono-1") == t.dev_id
    add_picker = re.findall(r'<option value="([^"]*)"', select_of(page, "client_id"))
    assert sorted(add_picker) == sorted(["", t.dev_id, spare])

    # The page: name, color, location and device client.
    edited = admin.landed(
        admin.post(
            "/printing/printers/mono-1/edit",
            name="Hall laser",
            color="color",
            location="Second floor",
            client_id=spare,
            push_url="",
        )
    )
    assert notice(edited) == "Printer Hall laser saved."
    assert "Second floor" in printer_row(edited, "mono-1")
    changed = printers_of(stack, t.id)["mono-1"]
    assert (changed.name, changed.color, changed.location, changed.client_id) == (
        "Hall laser",
        True,
        "Second floor",
        spare,
    )
    # Refused: another tenant's or an unknown device client, a client that is not a
    # device's; the error beside the field, what was typed kept, nothing changed.
    for client in (other.dev_id, "nobody", app_client):
        refused = admin.post(
            "/printing/printers/mono-1/edit",
            name="Typed name",
            color="mono",
            location="Typed place",
            client_id=client,
            push_url="",
        )
        assert refused.status_code == 400, refused.text[:1500]
        assert "Choose one of your device clients" in field_error(refused, "mono-1-client_id")
        assert 'id="location-mono-1" value="Typed place"' in refused.text
        assert 'aria-describedby="printer-mono-1-client_id-error"' in refused.text
    assert printers_of(stack, t.id)["mono-1"].client_id == spare
    # An unknown printer (another tenant's is one): said at the top of the page.
    missing = admin.post(
        "/printing/printers/their-1/edit", name="x", color="color", client_id=spare, push_url=""
    )
    assert missing.status_code == 404, missing.text[:1500]
    top = re.search(r'<p class="error" role="alert" id="printer-error">([^<]*)</p>', missing.text)
    assert top and html.unescape(top.group(1)).startswith("Printer their-1:"), missing.text[:3000]
    # The add form refuses them too.
    added = admin.post("/printing/printers", printer_id="x1", name="X", client_id=other.dev_id)
    assert added.status_code == 400
    assert "Choose one of your device clients" in field_error(added, "client_id")
    forged = admin.http.post(
        "/printing/printers/mono-1/edit", data={"csrf": "forged", "name": "forged"}
    )
    assert forged.status_code == 400 and printers_of(stack, t.id)["mono-1"].name == "Hall laser"

    # The admin API.
    root_api = stack.api(stack.user_token(t.id, "root", PASSWORD, "print admin"))
    patched = root_api.patch(
        "/api/printers/mono-1", json={"color": False, "location": "", "client_id": t.dev_id}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["color"], body["location"], body["client_id"]) == (
        "Hall laser",
        False,
        "",
        t.dev_id,
    )
    for sent, status in (
        ({"client_id": other.dev_id}, 400),
        ({"client_id": "nobody"}, 400),
        ({"client_id": app_client}, 400),
    ):
        answer = root_api.patch("/api/printers/mono-1", json=sent)
        assert answer.status_code == status, answer.text
        assert answer.json()["field"] == "client_id", answer.text
    unknown_field = root_api.patch("/api/printers/mono-1", json={"colour": True})
    assert unknown_field.status_code == 400, unknown_field.text
    theirs = root_api.patch("/api/printers/their-1", json={"name": "mine"})
    assert theirs.status_code == 404
    stack.printer(other.id, "their-1", client_id=other.dev_id)
    assert root_api.patch("/api/printers/their-1", json={"name": "mine"}).status_code == 404
    assert printers_of(stack, other.id)["their-1"].name == "THEIR-1"
    bob_api = stack.api(stack.user_token(t.id, "bob", PASSWORD, "print"))
    assert bob_api.patch("/api/printers/mono-1", json={"name": "bob's"}).status_code == 403
    assert printers_of(stack, t.id)["mono-1"].client_id == t.dev_id

    # The CLI.
    def cli(*args: str) -> Any:
        return run_cli(stack.env, "admin", "printer", "set", *args, "--json")

    done = cli("mono-1", "--tenant", t.id, "--name", "Hall mono", "--mono", "--location", "Hall")
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(done.stdout)
    assert (shown["name"], shown["color"], shown["location"]) == ("Hall mono", False, "Hall")
    moved = cli("mono-1", "--tenant", t.id, "--client-id", spare, "--color")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert printers_of(stack, t.id)["mono-1"].client_id == spare
    for client in (other.dev_id, app_client):
        refused_cli = cli("mono-1", "--tenant", t.id, "--client-id", client)
        assert refused_cli.returncode == 2, refused_cli.stdout + refused_cli.stderr
        assert json.loads(refused_cli.stdout)["field"] == "client_id", refused_cli.stdout
    nothing = cli("mono-1", "--tenant", t.id)
    assert nothing.returncode == 2 and "at least one" in nothing.stdout + nothing.stderr
    assert cli("their-1", "--tenant", t.id, "--name", "mine").returncode == 2
    final = printers_of(stack, t.id)["mono-1"]
    assert (final.name, final.color, final.client_id) == ("Hall mono", True, spare)
