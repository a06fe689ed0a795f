"""The CRM's "Print" (seed 000, second embodiment, FIG. 19) over a real stack, walked like
a browser without JavaScript: the CRM person's second sign-in at idp-a (code flow with
PKCE as svc-crm), the print page with their printers, the request sent with their own
two tokens, and the request's page with their own print jobs — plus CSRF, field errors,
tenant isolation and the refusals (ended session, print service missing)."""

from __future__ import annotations

import html
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from printcloud.auth import service as auth_service
from printcloud.auth.client import AuthClient
from printcloud.core.crypto import SecretBox
from printcloud.core.db import Database
from printcloud.core.errors import InvalidRequest
from printcloud.crm import service as crm_service
from printcloud.printing.models import PrintJobRow
from tests.conftest import free_port
from tests.crm.conftest import CrmStack
from tests.helpers.browser import form_to
from tests.helpers.docgen import PASSWORD, Org, docgen_runtime, setup_org

_REQUEST = re.compile(r"^/crm/prints/([0-9a-f]+)$")


class Person:
    """One person's browser: signs in at idp-b (the CRM) and idp-a (printcloud) when sent."""

    def __init__(self, base_url: str, crm: tuple[str, str], platform: tuple[str, str]) -> None:
        self.base_url = base_url
        self.logins = {"idp-b": crm, "idp-a": platform}
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=60)
        self.trail: list[str] = []

    def close(self) -> None:
        self.http.close()

    def follow(self, response: httpx.Response) -> httpx.Response:
        """Follow redirects on this server, signing in where an issuer asks."""
        self.trail = []
        for _ in range(12):
            if not response.is_redirect:
                return response
            target = response.headers["location"]
            parts = urlsplit(target)
            assert not parts.netloc or target.startswith(self.base_url), target
            self.trail.append(parts.path)
            issuer = parts.path.strip("/").split("/")[0]
            if parts.path.endswith("/login") and issuer in self.logins:
                page = self.http.get(target)
                form = form_to(page.text, f"/{issuer}/login")
                tenant, user = self.logins[issuer]
                data = {**form.hidden, "tenant": tenant, "username": user, "password": PASSWORD}
                response = self.http.post(form.action, data=data)
            else:
                response = self.http.get(target)
        raise AssertionError(f"too many redirects: {self.trail}")

    def open(self, path: str) -> httpx.Response:
        return self.follow(self.http.get(path))

    def print_form(self, page: httpx.Response, **choice: str) -> httpx.Response:
        form = form_to(page.text, "/crm/sets/")
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        chosen = {"printer_id": "color-1", "form": "invoice", "copies": "1", "color": "mono"}
        data = {**fields, **form.hidden, **chosen, **choice}
        return self.http.post(form.action, data=data)


def _org(stack: Any) -> tuple[Org, SecretBox]:
    rt = docgen_runtime(stack)
    org = setup_org(stack, rt)
    rt.http.close()
    box = SecretBox(stack.settings.instance_secrets)
    with stack.db.session() as s:
        crm_service.set_docgen_link(
            s,
            tenant_id=org.crm_tenant,
            docgen_tenant_id=org.tenant,
            secret_key=org.key,
            by="test",
            box=box,
        )
        a = auth_service.get_tenant(s, issuer="idp-a", tenant_id=org.tenant)
        for name in ("alice", "bob"):
            auth_service.create_user(s, tenant=a, username=name, password=PASSWORD)
        b = auth_service.get_tenant(s, issuer="idp-b", tenant_id=org.crm_tenant)
        auth_service.create_user(s, tenant=b, username="bob", password=PASSWORD)
    return org, box


def _wait_done(person: Person, path: str) -> str:
    deadline = time.monotonic() + 120
    while True:
        page = person.open(path)
        assert page.status_code == 200, page.text[:1000]
        state = re.search(r'id="request-state" data-state="(\w+)"', page.text)
        assert state, page.text[:2000]
        if state.group(1) in ("completed", "suspended", "failed"):
            return page.text
        assert time.monotonic() < deadline, page.text
        time.sleep(0.5)


def test_a_crm_person_prints_records_as_themselves(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1)
    org, _ = _org(stack)
    alice = Person(stack.base_url, (org.crm_tenant, "clerk"), (org.tenant, "alice"))
    try:
        records = alice.open("/crm/sets/invoices")
        assert records.status_code == 200, records.text[:1000]
        assert (
            '<table id="records">' in records.text and '<th scope="col">number</th>' in records.text
        )
        assert "Print these 2 records" in records.text
        # the second sign-in at idp-a, then back to the print page
        page = alice.open("/crm/sets/invoices/print?field=number&op=eq&value=INV-002")
        assert "/idp-a/login" in alice.trail and "/crm/print/callback" in alice.trail, alice.trail
        assert page.status_code == 200, page.text[:2000]
        assert "You print as <strong>alice</strong>" in page.text
        assert "1 record matches the filter" in page.text and "Globex" in page.text
        assert '<option value="color-1" selected>' in page.text
        # the idp-a token is kept sealed in a cookie, never in the page
        sealed = str(alice.http.cookies.get("pc_crm_print") or "").strip('"')
        assert len(sealed) > 100 and sealed not in page.text

        # CSRF, and each field's problem beside it, the choices kept
        forged = alice.print_form(page, csrf="forged")
        assert forged.status_code == 400 and "Your form expired" in forged.text
        bad = alice.print_form(page, copies="0", printer_id="nowhere")
        assert bad.status_code == 400
        assert 'id="copies-error"' in bad.text and 'id="printer_id-error"' in bad.text
        assert 'value="0"' in bad.text

        sent = alice.print_form(page)
        alerts = re.findall(r'role="alert"[^>]*>([^<]*)', sent.text)
        assert sent.status_code == 303, (sent.status_code, alerts)
        found = _REQUEST.match(sent.headers["location"])
        assert found, sent.headers["location"]
        request_id = found.group(1)
        done = _wait_done(alice, sent.headers["location"])
        assert "Sent to the printer" in done, done
        [job_id] = re.findall(r'<tr id="job-([0-9a-f-]+)">', done)
        assert not re.search(r"\bS\d{3,4}\b", done)  # no step IDs for people
        with stack.db.session() as s:
            assert s.get_one(PrintJobRow, job_id).owner.endswith("alice")

        # one record's own Print, from its row of the table
        links = re.findall(
            r'<a class="print-one" href="([^"]+)" aria-label="([^"]+)"', records.text
        )
        assert [label for _, label in links] == ["Print number INV-001", "Print number INV-002"]
        one = alice.open(html.unescape(links[0][0]))
        assert one.status_code == 200 and "This record:" in one.text
        assert "Acme SA" in one.text and "Globex" not in one.text
        sent_one = alice.print_form(one)
        assert sent_one.status_code == 303, sent_one.text[:1000]
        done_one = _wait_done(alice, sent_one.headers["location"])
        assert "Sent to the printer" in done_one and "1/1" in done_one, done_one

        # only alice reads it: bob of the same CRM tenant (and printcloud tenant) gets 404
        bob = Person(stack.base_url, (org.crm_tenant, "bob"), (org.tenant, "bob"))
        try:
            other = bob.open(f"/crm/prints/{request_id}")
            assert other.status_code == 404, other.text[:1000]
            assert "Globex" not in other.text
        finally:
            bob.close()
        # another organisation's person: 404 too, and their own records only
        other_org, _ = _org(stack)
        carol = Person(stack.base_url, (other_org.crm_tenant, "clerk"), (other_org.tenant, "alice"))
        try:
            assert carol.open(f"/crm/prints/{request_id}").status_code == 404
        finally:
            carol.close()

        # a printcloud account of another organisation is refused at the second sign-in
        mallory = Person(stack.base_url, (org.crm_tenant, "bob"), (other_org.tenant, "bob"))
        try:
            refused = mallory.open("/crm/sets/invoices/print")
            assert refused.status_code == 403, refused.text[:1000]
            assert "another organisation" in html.unescape(refused.text)
            assert not mallory.http.cookies.get("pc_crm_print")
        finally:
            mallory.close()

        # alice's printcloud session ends (revoked) while docgen still trusts it from its
        # cache: the request is taken, and stops at docgen's own check, saying what to do
        page = alice.open("/crm/sets/invoices/print")
        _revoke(stack, _unsealed_access(stack, alice))
        sent = alice.print_form(page)
        assert sent.status_code == 303 and _REQUEST.match(sent.headers["location"])
        stopped = html.unescape(_wait_done(alice, sent.headers["location"]))
        assert "Stopped" in stopped and "sign in again" in stopped, stopped
        assert "Print again" in stopped

        # dave's session ends before docgen ever saw it: refused at the door, and Print
        # sends him to sign in again; idp-a's own session answers at once (no login form)
        with stack.db.session() as s:
            a = auth_service.get_tenant(s, issuer="idp-a", tenant_id=org.tenant)
            auth_service.create_user(s, tenant=a, username="dave", password=PASSWORD)
            b = auth_service.get_tenant(s, issuer="idp-b", tenant_id=org.crm_tenant)
            auth_service.create_user(s, tenant=b, username="dave", password=PASSWORD)
        dave = Person(stack.base_url, (org.crm_tenant, "dave"), (org.tenant, "dave"))
        try:
            page = dave.open("/crm/sets/invoices/print")
            assert page.status_code == 200, page.text[:1000]
            _revoke(stack, _unsealed_access(stack, dave))
            again = dave.print_form(page)
            assert again.status_code == 303, again.text[:1000]
            assert "/idp-a/authorize" in again.headers["location"], again.headers["location"]
            back = dave.follow(again)
            assert back.status_code == 200 and "/idp-a/login" not in dave.trail, dave.trail
            assert '<form method="post" action="/crm/sets/invoices/print">' in back.text
        finally:
            dave.close()

        # signing out of the CRM ends the print session too: revoked at idp-a, cookie gone
        home = alice.open("/crm/")
        token = _unsealed_access(stack, alice)
        out = alice.http.post(
            "/crm/auth/logout", data={"csrf": form_to(home.text, "/crm/auth/logout").hidden["csrf"]}
        )
        assert out.status_code == 303, out.text[:1000]
        assert not alice.http.cookies.get("pc_crm_print")
        with httpx.Client(timeout=60) as http:
            platform = stack.settings.issuers[0]
            client_id, secret = stack.settings.service_client(platform, "crm")
            issuer = AuthClient(
                stack.settings.issuer_url(platform),
                client_id=client_id,
                client_secret=secret,
                http=http,
            )
            assert issuer.introspect(token)["active"] is False
    finally:
        alice.close()


def _revoke(stack: Any, token: str) -> None:
    platform = stack.settings.issuers[0]
    client_id, secret = stack.settings.service_client(platform, "crm")
    with httpx.Client(timeout=60) as http:
        issuer = stack.settings.issuer_url(platform)
        AuthClient(issuer, client_id=client_id, client_secret=secret, http=http).revoke(token)


def _unsealed_access(stack: Any, person: Person) -> str:
    from printcloud.crm.print_pages import PrintSession
    from printcloud.crm.runtime import build_runtime

    rt = build_runtime(stack.settings, db=stack.db)
    try:
        sealed = str(person.http.cookies.get("pc_crm_print") or "").strip('"')
        found = PrintSession.unseal(rt, sealed)
    finally:
        rt.http.close()
    assert found is not None
    return found.access_token


def test_print_without_a_print_service_or_docgen_link(crm_stack: CrmStack) -> None:
    """The CRM alone (no print service, no docgen): the pages say so, never a 500."""
    crm_tenant = crm_stack.tenant("idp-b")
    user, _ = crm_stack.user(crm_tenant, "erin", issuer="idp-b", password=PASSWORD)
    platform_tenant = crm_stack.tenant("idp-a")
    crm_stack.user(platform_tenant, "erin", password=PASSWORD)
    with crm_stack.db.session() as s:
        crm_service.create_record_set(
            s, tenant_id=crm_tenant, name="invoices", fields=[{"name": "number", "type": "string"}]
        )
        crm_service.add_record(s, tenant_id=crm_tenant, record_set="invoices", data={"number": "1"})
    erin = Person(crm_stack.base_url, (crm_tenant, user), (platform_tenant, "erin"))
    try:
        unlinked = erin.open("/crm/sets/invoices/print")
        assert unlinked.status_code == 409 and "Printing is not set up" in unlinked.text
        with crm_stack.db.session() as s:
            crm_service.set_docgen_link(
                s,
                tenant_id=crm_tenant,
                docgen_tenant_id=platform_tenant,
                secret_key="k" * 32,
                by="test",
                box=SecretBox(crm_stack.settings.instance_secrets),
            )
        down = erin.open("/crm/sets/invoices/print")
        assert down.status_code == 503, down.text[:1000]
        assert "The print service does not answer" in down.text
        assert '<form method="post" action="/crm/sets/invoices/print">' not in down.text
        assert erin.open("/crm/prints/not-a-request").status_code == 404
        missing = erin.open("/crm/prints/0123456789abcdef")
        assert missing.status_code in (404, 503) and "Traceback" not in missing.text
    finally:
        erin.close()


def test_docgen_not_answering_is_said_in_words() -> None:
    """docgen down: the client's refusal (503, never an httpx error) and the page's words."""
    from printcloud.crm.print_pages import refusal_text
    from printcloud.docgen.client import BatchPrintRefused, DocgenClient

    with httpx.Client(timeout=60) as http:
        client = DocgenClient(f"http://127.0.0.1:{free_port()}/docgen", http=http)
        with pytest.raises(BatchPrintRefused) as refused:
            client.user_print(tenant_id="t1", print_token="a", crm_token="b")
        assert refused.value.status == 503
        assert "does not answer" in (refusal_text(refused.value) or "")
        with pytest.raises(BatchPrintRefused) as unread:
            client.own_request("0123", print_token="a")
        assert unread.value.status == 503
    assert refusal_text(BatchPrintRefused(401, "invalid_token", "expired")) is None
    said = refusal_text(BatchPrintRefused(400, "invalid_request", "no printer_id"))
    assert said == "The document service refused to print: no printer_id"


def test_one_record_is_selected_by_its_id(crm_db: Database) -> None:
    """`@id` (eq only) selects one record of the tenant's set, on both comparison paths;
    another tenant's ID selects nothing; no field can be named `@id`."""
    with crm_db.session() as db:
        crm_service.create_record_set(
            db,
            tenant_id="t-one",
            name="bills",
            fields=[{"name": "number", "type": "string"}, {"name": "total", "type": "decimal"}],
        )
        crm_service.create_record_set(
            db, tenant_id="t-two", name="bills", fields=[{"name": "number", "type": "string"}]
        )
        rows = [
            crm_service.add_record(
                db, tenant_id="t-one", record_set="bills", data={"number": n, "total": "1.5"}
            )
            for n in ("B1", "B2", "B3")
        ]
        theirs = crm_service.add_record(
            db, tenant_id="t-two", record_set="bills", data={"number": "X"}
        )
        wanted, theirs_id = rows[1].record_id, theirs.record_id
    with crm_db.session() as db:
        for in_python in (False, True):
            found = crm_service.query_records(
                db,
                tenant_id="t-one",
                record_set="bills",
                filters=[{"field": "@id", "op": "eq", "value": wanted}],
                in_python=in_python,
            )
            assert [r.data["number"] for r in found.records] == ["B2"] and found.total == 1
        other = crm_service.query_records(
            db,
            tenant_id="t-one",
            record_set="bills",
            filters=[{"field": "@id", "op": "eq", "value": theirs_id}],
        )
        assert other.total == 0
        for bad in ({"op": "ne", "value": wanted}, {"op": "eq", "value": "not hex"}):
            with pytest.raises(InvalidRequest, match="@id"):
                crm_service.query_records(
                    db, tenant_id="t-one", record_set="bills", filters=[{"field": "@id", **bad}]
                )
        with pytest.raises(InvalidRequest):
            crm_service.create_record_set(
                db, tenant_id="t-one", name="odd", fields=[{"name": "@id", "type": "string"}]
            )
