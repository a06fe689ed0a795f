"""The queues page of the print service (issue 14, "Admin"), driven over HTTP like a
browser without JavaScript against a real `printcloud serve`.

A tenant's administrator adds, changes and deletes IPP queues at `/printing/queues`
(post/redirect/get, a notice naming what happened); refused input shows the page again
with the reason and a 4xx. A user who is not an administrator never sees the section and
gets 403 on every form; another tenant's printers and queues are unknown.
"""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from printcloud.printing import pages
from printcloud.printing.models import QueueRow
from printcloud.printing.schemas import QueueRead
from tests.helpers.browser import Html, PrintBrowser, assert_accessible
from tests.helpers.print_stack import PrintStack
from tests.helpers.printing import Tenant

PASSWORD = "queue admin password"
_ALERT = re.compile(r'<p class="(?:field-)?error" role="alert" id="[a-z-]*error">([^<]*)</p>')
_NOTICE = re.compile(r'<p class="notice" role="status" id="notice">([^<]*)</p>')


def alert(page: httpx.Response) -> str:
    found = _ALERT.search(page.text)
    assert found, page.text[:2000]
    return html.unescape(found.group(1))


def notice(page: httpx.Response) -> str | None:
    found = _NOTICE.search(page.text)
    return html.unescape(found.group(1)) if found else None


def row(page: httpx.Response, name: str) -> str:
    """The queue's row of the table (empty when it is not listed)."""
    found = re.search(rf'<tr id="queue-{re.escape(name)}">(.*?)</tr>', page.text, re.S)
    return found.group(1) if found else ""


def queue_names(stack: PrintStack, tenant: Tenant) -> list[str]:
    return [q["name"] for q in tenant.api.get("/api/queues").json()["queues"]]


class QueueAdmin:
    """A signed-in browser at `/printing/queues` that posts its forms with their CSRF field."""

    def __init__(self, browser: PrintBrowser) -> None:
        self.browser = browser
        self.http = browser.http

    def page(self, status: int = 200) -> httpx.Response:
        page = self.http.get("/printing/queues")
        assert page.status_code == status, page.text[:1000]
        return page

    def post(self, action: str, **fields: str) -> httpx.Response:
        csrf = self.browser.csrf(self.browser.http.get("/printing/"))
        return self.http.post(action, data={"csrf": csrf, **fields})

    def add(self, name: str, target: str, info: str = "") -> httpx.Response:
        return self.post("/printing/queues", name=name, target=target, info=info)

    def edit(self, name: str, target: str, info: str) -> httpx.Response:
        return self.post(f"/printing/queues/{name}/edit", target=target, info=info)

    def delete(self, name: str) -> httpx.Response:
        return self.post(f"/printing/queues/{name}/delete")

    def landed(self, answer: httpx.Response) -> httpx.Response:
        """The page a successful form's redirect leads to."""
        assert answer.status_code == 303, answer.text[:1500]
        assert answer.headers["location"] == "/printing/queues"
        return self.page()


@pytest.mark.slow
def test_an_administrator_manages_queues_from_the_print_page(make_print_stack: Any) -> None:
    stack: PrintStack = make_print_stack(workers=1)
    port = stack.settings.port
    t, other = Tenant(stack), Tenant(stack)
    stack.user(t.id, "root", PASSWORD, admin=True)
    stack.user(t.id, "bob", PASSWORD)
    stack.user(other.id, "root", PASSWORD, admin=True)
    stack.printer(other.id, "their-hall", client_id=other.dev_id)

    root = PrintBrowser(stack, (t.id, "root", PASSWORD))
    home = root.open("/printing/")
    assert home.status_code == 200, home.text[:1000]
    assert 'href="/printing/queues">Manage queues</a>' in home.text
    assert "no print queues yet" in home.text
    admin = QueueAdmin(root)
    empty = admin.page()
    page = Html(empty.text)
    assert_accessible(page)
    page.form_to("/printing/queues")
    assert "No queues yet" in empty.text
    # the tenant's printers are offered, another tenant's are not
    assert 'value="printer:color-1"' in empty.text and 'value="follow-me"' in empty.text
    assert "their-hall" not in empty.text and "THEIR-HALL" not in empty.text

    # Add: back to the page with a notice; the row shows the URI and the lines that add it.
    listed = admin.landed(admin.add("office", "printer:color-1"))
    assert notice(listed) == "Queue office added: it prints on COLOR-1."
    uri = f"ipp://127.0.0.1:{port}/printing/ipp/print/{t.id}/office"
    office = row(listed, "office")
    assert f'<code class="queue-uri">{uri}</code>' in office and "COLOR-1" in office
    assert f"lpadmin -p office -E -v {uri} -m everywhere" in office
    assert "Add manually" in office
    assert 'action="/printing/queues/office/edit"' in office
    assert ">Delete queue office</button>" in office
    assert_accessible(Html(listed.text))
    assert notice(admin.page()) is None  # shown once
    assert queue_names(stack, t) == ["office"]
    anywhere = admin.landed(admin.add("anywhere", "follow-me", "Badge in at any printer"))
    assert notice(anywhere) == (
        "Queue anywhere added: it prints on any printer, by card (follow-me)."
    )
    assert "Badge in at any printer" in row(anywhere, "anywhere")

    # Refused input: the page again with the reason and a 4xx, what was typed kept, no queue.
    for name, target, info, status, message in [
        ("office", "printer:mono-1", "", 409, "A queue with this name already exists."),
        ("a b", "printer:mono-1", "", 400, "Use 1 to 64 letters, digits, dots"),
        ("x/y", "follow-me", "", 400, "Use 1 to 64 letters, digits, dots"),
        ("", "follow-me", "", 400, "Use 1 to 64 letters, digits, dots"),
        (
            "lobby",
            "printer:nope",
            "",
            400,
            "That printer is not one of your printers. Choose one from the list.",
        ),
        (
            "lobby",
            "printer:their-hall",
            "",
            400,
            "That printer is not one of your printers. Choose one from the list.",
        ),
        ("lobby", "", "", 400, "Choose the printer the queue prints on, or follow-me."),
        ("lobby", "printer:", "", 400, "Choose the printer the queue prints on, or follow-me."),
        ("lobby", "follow-me", "x" * 201, 400, "Keep the description to 200 characters or fewer."),
        ("lobby", "follow-me", "two\r\nlines", 400, "Write the description on one line."),
    ]:
        answer = admin.add(name, target, info)
        assert answer.status_code == status, (name, target, answer.text[:1500])
        assert alert(answer).startswith(message), (name, target, alert(answer))
        field = "target" if "printer" in message else "info" if "description" in message else "name"
        assert f'aria-describedby="queue-{field}-error"' in answer.text, (name, target)
        assert f'id="queue-{field}-error"' in answer.text and 'id="form-error"' not in answer.text
        assert f'id="name" name="name" value="{html.escape(name)}"' in answer.text
        assert_accessible(Html(answer.text))
    forged = root.http.post(
        "/printing/queues", data={"csrf": "forged", "name": "lobby", "target": "follow-me"}
    )
    assert forged.status_code == 400 and "Your form expired" in alert(forged)
    assert queue_names(stack, t) == ["anywhere", "office"]

    # Edit: the target and the description; the URI stays.
    edited = admin.landed(admin.edit("office", "follow-me", "Second floor, any printer"))
    assert notice(edited) == "Queue office saved: it prints on any printer, by card (follow-me)."
    office = row(edited, "office")
    assert "Second floor, any printer" in office and uri in office
    assert 'value="follow-me" selected' in office
    edited = admin.landed(admin.edit("office", "printer:mono-1", ""))
    assert notice(edited) == "Queue office saved: it prints on MONO-1."
    assert "MONO-1" in row(edited, "office")  # an empty description: the printer's name
    [api_view] = [q for q in t.api.get("/api/queues").json()["queues"] if q["name"] == "office"]
    assert api_view["printer_id"] == "mono-1" and api_view["info"] == "MONO-1"
    for target, info, status, message in [
        (
            "printer:their-hall",
            "x",
            400,
            "That printer is not one of your printers. Choose one from the list.",
        ),
        (
            "printer:nope",
            "x",
            400,
            "That printer is not one of your printers. Choose one from the list.",
        ),
        ("elsewhere", "x", 400, "Choose the printer the queue prints on, or follow-me."),
        ("follow-me", "x" * 201, 400, "Keep the description to 200 characters or fewer."),
    ]:
        answer = admin.edit("office", target, info)
        assert answer.status_code == status, (target, answer.text[:1500])
        assert alert(answer) == f"Queue office: {message}"
        assert f'value="{html.escape(info)}" aria-label="Description of queue office"' in (
            answer.text
        )
    unknown = admin.edit("nothing-here", "follow-me", "")
    assert unknown.status_code == 404 and "This queue no longer exists" in alert(unknown)
    assert t.api.get("/api/queues").json()["queues"][1]["printer_id"] == "mono-1"

    # A user who is not an administrator: no section, 403 on the page and on every form.
    with PrintBrowser(stack, (t.id, "bob", PASSWORD)) as bob_browser:
        bob_home = bob_browser.open("/printing/")
        assert bob_home.status_code == 200
        assert "Manage queues" not in bob_home.text and "/printing/queues" not in bob_home.text
        assert f"lpadmin -p office -E -v {uri} -m everywhere" in bob_home.text  # the user list
        bob = QueueAdmin(bob_browser)
        refused = bob.page(status=403)
        assert "Administrators only" in refused.text
        assert 'action="/printing/queues"' not in refused.text
        for answer in (
            bob.add("mine", "follow-me"),
            bob.edit("office", "follow-me", "hijacked"),
            bob.delete("office"),
        ):
            assert answer.status_code == 403, answer.text[:1000]
            assert "Administrators only" in answer.text
    assert queue_names(stack, t) == ["anywhere", "office"]
    assert t.api.get("/api/queues").json()["queues"][1]["info"] == "MONO-1"

    # Another tenant's administrator: none of these queues, nor these printers.
    with PrintBrowser(stack, (other.id, "root", PASSWORD)) as theirs_browser:
        assert theirs_browser.open("/printing/").status_code == 200
        theirs = QueueAdmin(theirs_browser)
        assert "office" not in theirs.page().text and "COLOR-1 (color)" in theirs.page().text
        assert theirs.edit("office", "follow-me", "x").status_code == 404
        assert theirs.delete("office").status_code == 404
        # the same name in their tenant is another queue
        theirs.landed(theirs.add("office", "printer:their-hall"))
        [their_queue] = other.api.get("/api/queues").json()["queues"]
        assert their_queue["printer_id"] == "their-hall"
    assert queue_names(stack, t) == ["anywhere", "office"]

    # Delete: a POST with its own button; the row goes, the user list too.
    gone = admin.landed(admin.delete("office"))
    assert (
        notice(gone) == "Queue office deleted. Computers that added it can no longer print to it."
    )
    assert row(gone, "office") == "" and row(gone, "anywhere")
    again = admin.delete("office")
    assert again.status_code == 404 and "This queue no longer exists" in alert(again)
    assert queue_names(stack, t) == ["anywhere"]
    assert "lpadmin -p office" not in root.http.get("/printing/").text
    root.http.close()


def test_queue_rows_show_the_ipps_uri_behind_tls() -> None:
    """With an https:// public URL (TLS on), the rows show the ipps:// URI and its lines.

    The template alone, rendered as the page does: in the embedded TLS run with a
    generated certificate, the pages' own sign-in cannot reach idp-a yet (the service's
    HTTP client does not trust that certificate), so no stack signs in here."""
    row = QueueRow(
        tenant_id="t1",
        name="secure",
        printer_id="color-1",
        info="Front desk",
        location="",
        uuid="0f4ad3a4-5a1c-4c3e-9d57-6a1f3c0b1d2e",
        job_privacy="attributes",
    )
    queue = QueueRead.of(row, ipp_url="https://print.example.com/printing")
    text = pages.pages.env.get_template("queues.html").render(
        queues=[queue],
        printers=[],
        printer_names={"color-1": "COLOR-1"},
        follow_me=pages.FOLLOW_ME,
        form=pages.QueueForm(),
        csrf="x",
        principal=None,
    )
    uri = "ipps://print.example.com:443/printing/ipp/print/t1/secure"
    assert f'<code class="queue-uri">{uri}</code>' in text
    assert f"lpadmin -p secure -E -v {uri} -m everywhere" in text
    assert "https://print.example.com:443/printing/ipp/print/t1/secure" in text  # Windows
    assert "ipp://" not in text
