"""ID cards (seed 004) in the browser, over real HTTP on SQLite and PostgreSQL: the
admin's cards, lockouts, retention period and directory pages, and the user's own
cards on the account page. Cards are registered the way a printer does, at the
token endpoint; the pages are read and submitted like a browser without JavaScript
(their forms, with the CSRF field; POST-redirect-GET)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import select

from printcloud.auth import cards, service
from printcloud.auth.models import AuditEvent
from printcloud.core.crypto import SecretBox
from tests.conftest import Stack, free_port, make_settings, start_stack
from tests.helpers.browser import Browser, Html, form_to
from tests.helpers.oauth import card_login
from tests.helpers.worlds import World
from tests.ldap_server import Slapd, write_test_pki

ISSUER = "idp-a"
PASSWORD = "correct horse battery"
ADMIN = f"/{ISSUER}/admin"


@pytest.fixture
def world(stack: Stack) -> World[Browser]:
    tenant, other = stack.tenant(prefix="cp"), stack.tenant(prefix="cpo")
    stack.user(tenant, "boss", PASSWORD, admin=True)
    # not "alice": test_cards.py asserts no card of any alice exists before it registers one
    for name in ("ann", "bob"):
        stack.user(tenant, name, PASSWORD)
    stack.user(other, "olga", PASSWORD, admin=True)
    return World(
        stack=stack,
        tenant=tenant,
        other=other,
        device=stack.client(tenant, kind="device", scope="device print", name="Copier 2F"),
        other_device=stack.client(other, kind="device", scope="device"),
        admin=Browser(stack).signed_in(tenant, "boss"),
    )


def register(stack: Stack, device: tuple[str, str | None], card: str, user: str) -> None:
    answer = card_login(stack, device, card, username=user, password=PASSWORD)
    assert answer.status_code == 200 and answer.json()["registered"] is True, answer.text


class Card(NamedTuple):
    pk: int
    username: str
    last_login_at: datetime
    #: last login + the tenant's period
    deleted_after: datetime


def bindings(stack: Stack, tenant_id: str) -> dict[str, Card]:
    """The tenant's cards by hint."""
    with stack.db.session() as db:
        tenant = service.get_tenant(db, issuer=ISSUER, tenant_id=tenant_id)
        period = timedelta(days=tenant.card_retention_days)
        return {
            b.hint: Card(b.pk, b.user.username, b.last_login_at, b.last_login_at + period)
            for b in cards.list_bindings(db, tenant=tenant)
        }


def audit(stack: Stack, tenant_id: str, action: str) -> list[AuditEvent]:
    with stack.db.session() as db:
        tenant = service.get_tenant(db, issuer=ISSUER, tenant_id=tenant_id)
        return list(
            db.scalars(
                select(AuditEvent).where(
                    AuditEvent.tenant_pk == tenant.pk, AuditEvent.action == action
                )
            )
        )


def rows(page: str) -> list[str]:
    """The hints of the cards a cards table lists."""
    return re.findall(r"<td[^>]*><code>(…[^<]+)</code></td>", page)


# -- the admin's cards ------------------------------------------------------------------------


def test_admin_sees_searches_and_deletes_cards(world: World[Browser]) -> None:
    stack, admin, path = world.stack, world.admin, f"{ADMIN}/cards"
    register(stack, world.device, "04:A2:B3:C4:D5", "ann")
    register(stack, world.device, "0B0B0B0B01", "bob")
    bound = bindings(stack, world.tenant)
    ann = bound["…C4D5"]

    overview = admin.page(ADMIN)
    assert "2 ID cards" in admin.get(ADMIN).text
    links = admin.get(ADMIN).text
    for section in ("/cards", "/card-lockouts", "/directory"):
        assert f'href="{ADMIN}{section}"' in links, section
    assert overview.forms

    page = admin.page(path)
    text = admin.get(path).text
    assert sorted(rows(text)) == ["…0B01", "…C4D5"]
    # registered at the device client, named (its client ID is the API's, not the page's)
    assert "Copier 2F" in text and world.device[0] not in text
    assert "04A2B3C4D5" not in text and "04:A2" not in text
    # "deleted after" = last login + the tenant's period
    assert f'datetime="{ann.deleted_after.isoformat()}"' in text
    assert [c for c in page.controls if c.get("name") == "q"]  # the search box, labelled

    assert rows(admin.get(f"{path}?q=c4d5").text) == ["…C4D5"]
    assert rows(admin.get(f"{path}?q=BOB").text) == ["…0B01"]
    none = admin.get(f"{path}?q=nobody-here").text
    assert rows(none) == [] and "No card matches." in none

    action = f"{path}/{ann.pk}/delete"
    answer = admin.submit_form(path, action)
    assert answer.headers["location"] == path
    after = admin.get(path).text
    assert "Card …C4D5 of ann deleted" in after
    assert rows(after) == ["…0B01"]
    assert card_login(stack, world.device, "04A2B3C4D5").json()["error"] == "registration_required"
    deleted = audit(stack, world.tenant, "card.deleted")
    assert [(e.actor, e.target, e.details["card"]) for e in deleted] == [
        ("user:boss", "ann", "…C4D5")
    ]
    assert "ID card deleted" in admin.get(f"{ADMIN}/audit").text

    # gone already: the page again with a 404 alert, not a server error
    csrf = admin.http.cookies["pc_csrf"]
    answer = admin.http.post(action, data={"csrf": csrf})
    assert answer.status_code == 404 and Html(answer.text).alerts
    for bad in (0, 2**40):
        assert admin.http.post(f"{path}/{bad}/delete", data={"csrf": csrf}).status_code == 404
    # without the right CSRF token nothing is deleted
    bob = bindings(stack, world.tenant)["…0B01"]
    answer = admin.http.post(f"{path}/{bob.pk}/delete", data={"csrf": "forged"})
    assert answer.status_code == 400
    assert "…0B01" in bindings(stack, world.tenant)


def test_a_tenant_admin_sees_no_other_tenants_cards(world: World[Browser]) -> None:
    stack, admin = world.stack, world.admin
    olga_pw = {"username": "olga", "password": PASSWORD}
    assert card_login(stack, world.other_device, "0123456789", **olga_pw).status_code == 200
    theirs = bindings(stack, world.other)["…6789"]

    for page in ("cards", "card-lockouts", "directory"):
        answer = admin.get(f"{ADMIN}/{page}?tenant={world.other}", status=404)
        assert "…6789" not in answer.text and "olga" not in answer.text
    assert "…6789" not in admin.get(f"{ADMIN}/cards?q=6789").text
    csrf = admin.http.cookies["pc_csrf"]
    for target in (
        f"{ADMIN}/cards/{theirs.pk}/delete",
        f"{ADMIN}/cards/{theirs.pk}/delete?tenant={world.other}",
    ):
        assert admin.http.post(target, data={"csrf": csrf}).status_code == 404
    assert "…6789" in bindings(stack, world.other)
    assert audit(stack, world.other, "card.deleted") == []

    # an administrator of the system tenant picks the tenant, and the search keeps it
    name = f"root{secrets.token_hex(3)}"
    stack.user("system", name, PASSWORD, admin=True)
    root = Browser(stack).signed_in("system", name)
    path = f"{ADMIN}/cards?tenant={world.other}"
    root.page(path)
    text = root.get(path).text
    assert rows(text) == ["…6789"]
    assert f'<input type="hidden" name="tenant" value="{world.other}">' in text
    assert rows(root.get(f"{ADMIN}/cards?tenant={world.other}&q=olga").text) == ["…6789"]
    answer = root.submit_form(path, f"{ADMIN}/cards/{theirs.pk}/delete?tenant={world.other}")
    assert answer.headers["location"] == f"{ADMIN}/cards?tenant={world.other}"
    assert bindings(stack, world.other) == {}


# -- the retention period --------------------------------------------------------------------


def test_retention_period_is_edited_on_the_settings_page(world: World[Browser]) -> None:
    stack, admin = world.stack, world.admin
    register(stack, world.device, "AAAA0001", "ann")
    field = [c for c in admin.page(ADMIN).controls if c.get("name") == "card_retention_days"]
    assert field and field[0]["value"] == "90"

    answer = admin.submit_form(
        ADMIN, f"{ADMIN}/settings", {"name": "Cards Co", "card_retention_days": "45"}
    )
    assert "Settings saved." in admin.get(answer.headers["location"]).text
    with stack.db.session() as db:
        assert (
            service.get_tenant(db, issuer=ISSUER, tenant_id=world.tenant).card_retention_days == 45
        )
    changes = [e.details for e in audit(stack, world.tenant, "tenant.settings")]
    assert {"card_retention_days": 45} in [
        {k: v for k, v in c.items() if k == "card_retention_days"} for c in changes
    ]
    card = bindings(stack, world.tenant)["…0001"]
    assert card.deleted_after == card.last_login_at + timedelta(days=45)
    assert f'datetime="{card.deleted_after.isoformat()}"' in admin.get(f"{ADMIN}/cards").text
    assert "not used for 45 days" in admin.get(f"{ADMIN}/cards").text

    for bad, message in (
        ("0", "1 to 3650"),
        ("3651", "1 to 3650"),
        ("abc", "whole number"),
        ("-5", "whole number"),
        ("9" * 12, "whole number"),
    ):
        answer = admin.submit_form(
            ADMIN, f"{ADMIN}/settings", {"name": "Cards Co", "card_retention_days": bad}, status=400
        )
        page = Html(answer.text)
        assert page.alerts and message in page.alerts[0], (bad, page.alerts)
        assert 'id="card_retention_days"' in answer.text and 'aria-invalid="true"' in answer.text
    # a form without the field (an older page) keeps the period
    admin.submit_form(ADMIN, f"{ADMIN}/settings", {"name": "Cards Co"})
    with stack.db.session() as db:
        assert (
            service.get_tenant(db, issuer=ISSUER, tenant_id=world.tenant).card_retention_days == 45
        )


# -- lockouts ------------------------------------------------------------------------------------


def test_lockouts_appear_after_repeated_failures(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None, card_failures_allowed=3, card_lockout_seconds=120)
    live, server, thread = start_stack(settings)
    try:
        tenant, other = live.tenant(), live.tenant()
        live.user(tenant, "alice", PASSWORD)
        live.user(tenant, "root", PASSWORD, admin=True)
        live.user(other, "olga", PASSWORD, admin=True)
        admin = Browser(live).signed_in(tenant, "root")
        path = f"{ADMIN}/card-lockouts"
        assert "No lockouts." in admin.get(path).text

        guesser = live.client(tenant, kind="device", scope="device")
        codes = [card_login(live, guesser, f"GUESS{i:05d}").status_code for i in range(13)]
        assert codes[-1] == 429
        device = live.client(tenant, kind="device", scope="device")
        for i in range(4):
            card_login(live, device, "FEEDF00D", username="alice", password=f"guess-{i}")

        admin.page(path)
        text = admin.get(path).text
        assert "No lockouts." not in text
        for kind in ("Device", "Card", "Directory user"):
            assert f'<th scope="row">{kind}</th>' in text, kind
        assert f"<code>{guesser[0]}</code>" in text and "<code>alice</code>" in text
        assert "FEEDF00D" not in text.upper().replace("…", "")  # a digest prefix, never the ID
        assert re.search(r"<td>1 min \d+ s</td>|<td>\d+ s</td>", text)

        # another tenant's administrator sees none of them
        other_admin = Browser(live).signed_in(other, "olga")
        assert "No lockouts." in other_admin.get(path).text
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        live.db.dispose()


# -- the directory -----------------------------------------------------------------------------


def directory_form(slapd: Slapd, **changes: str) -> dict[str, str]:
    return {
        "kind": "ldap",
        "url": slapd.url,
        "base_dn": slapd.base_dn,
        "user_attr": "uid",
        "object_class": "inetOrgPerson",
        "bind_dn": slapd.reader_dn,
        "bind_password": slapd.reader_password,
        "name_attr": "cn",
        "mail_attr": "mail",
        "ca_pem": "",
        "timeout": "5",
        **changes,
    }


def stored_password(stack: Stack, tenant_id: str) -> str | None:
    with stack.db.session() as db:
        tenant = service.get_tenant(db, issuer=ISSUER, tenant_id=tenant_id)
        row = cards.directory_of(db, tenant=tenant)
        assert row is not None
        if row.bind_password_sealed is None:
            return None
        return SecretBox(stack.settings.instance_secrets).open(row.bind_password_sealed)


@pytest.mark.peer("slapd")
def test_directory_form_saves_ldap_and_tests_the_connection(
    world: World[Browser], slapd: Slapd, tmp_path: Path
) -> None:
    stack, admin, path = world.stack, world.admin, f"{ADMIN}/directory"
    test = f"{path}/test"
    secret = slapd.reader_password
    page = admin.page(path)
    assert page.form_to(path) and page.form_to(test)
    assert "Now: this organisation's own users" in admin.get(path).text
    answer = admin.submit_form(path, test, status=400)
    assert "uses its own users" in Html(answer.text).alerts[0]

    answer = admin.submit_form(path, path, directory_form(slapd))
    assert answer.headers["location"] == path
    text = admin.get(path).text
    assert "Directory saved." in text and slapd.url in text
    assert "A password is stored" in text and secret not in text
    assert stored_password(stack, world.tenant) == secret
    assert [e.details["kind"] for e in audit(stack, world.tenant, "directory.set")] == ["ldap"]

    answer = admin.submit_form(path, test)
    shown = admin.get(answer.headers["location"]).text
    found = re.search(r"The directory answers: (\d+) users found\.", shown)
    assert found and int(found[1]) >= 6, shown
    assert secret not in shown

    # a user the directory knows registers a card; the admin sees which directory vouched
    answer = card_login(
        stack, world.device, "CA401C0001", username="carol", password="carol-ldap-pw"
    )
    assert answer.status_code == 200, answer.text
    cards_page = admin.get(f"{ADMIN}/cards").text
    assert "Carol Danvers" in cards_page and re.search(r"<td[^>]*>LDAP</td>", cards_page)

    # an empty password field keeps the stored password; the box removes it
    admin.submit_form(path, path, directory_form(slapd, bind_password=""))
    assert stored_password(stack, world.tenant) == secret
    assert "users found" in admin.get(admin.submit_form(path, test).headers["location"]).text

    # settings that cannot be saved: the form again with the error, and without the password
    typed = f"typed-{secrets.token_hex(6)}"
    for changes, field, message in (
        ({"url": "http://ldap.example.org"}, "url", "address as ldap://host"),
        ({"base_dn": " "}, "base_dn", "Enter the base DN"),
        ({"user_attr": "u id"}, "user_attr", "Enter an LDAP name"),
        ({"timeout": "soon"}, "timeout", "whole number of seconds"),
        ({"timeout": "600"}, "timeout", "seconds from 1 to 60"),
        ({"kind": "ad"}, "kind", "own users or an LDAP directory"),
    ):
        answer = admin.submit_form(
            path, path, directory_form(slapd, bind_password=typed, **changes), status=400
        )
        page = Html(answer.text)
        assert page.alerts and message in page.alerts[0], (changes, page.alerts)
        assert f'id="{field}"' in answer.text and 'aria-invalid="true"' in answer.text
        assert typed not in answer.text and secret not in answer.text
        assert f'value="{slapd.base_dn}"' in answer.text or field == "base_dn"  # kept as typed
    assert stored_password(stack, world.tenant) == secret

    # a directory that does not answer: saved, and "test connection" says so
    down = f"ldap://127.0.0.1:{free_port()}"
    admin.submit_form(path, path, directory_form(slapd, url=down, bind_password=""))
    answer = admin.submit_form(path, test, status=503)
    alert = Html(answer.text).alerts[0]
    assert (
        alert.startswith("The directory did not answer as it should") and "cannot connect" in alert
    ), alert
    assert secret not in answer.text

    # a CA that is a path on the server, not certificates: refused as it is saved
    answer = admin.submit_form(
        path,
        path,
        directory_form(slapd, ca_pem="/etc/ssl/certs/ca.pem", bind_password=""),
        status=400,
    )
    assert "Paste the CA certificates as text" in Html(answer.text).alerts[0]
    # settings check_settings refuses before connecting: a CA for an unencrypted URL
    ca_file, _, _ = write_test_pki(tmp_path)
    admin.submit_form(
        path, path, directory_form(slapd, ca_pem=ca_file.read_text(), bind_password="")
    )
    answer = admin.submit_form(path, test, status=400)
    assert "only used on an encrypted connection" in Html(answer.text).alerts[0]

    # a wrong service-account password: the directory refuses it
    admin.submit_form(path, path, directory_form(slapd, bind_password="not-the-password"))
    answer = admin.submit_form(path, test, status=503)
    assert "refused the service account" in Html(answer.text).alerts[0]

    # removing the password (with the box) leaves it unset, and the box disappears
    admin.submit_form(
        path, path, directory_form(slapd, bind_dn="", bind_password="", remove_bind_password="on")
    )
    assert stored_password(stack, world.tenant) is None
    text = admin.get(path).text
    assert "No password is stored." in text and 'name="remove_bind_password"' not in text
    # anonymous search works against this slapd
    assert "users found" in admin.get(admin.submit_form(path, test).headers["location"]).text

    admin.submit_form(path, path, {"kind": "builtin"})
    assert "Now: this organisation's own users" in admin.get(path).text


# -- the user's own cards ------------------------------------------------------------------------


def test_user_removes_their_own_card_on_the_account_page(world: World[Browser]) -> None:
    stack, account = world.stack, f"/{ISSUER}/account"
    register(stack, world.device, "04:A2:B3:C4:D5", "ann")
    register(stack, world.device, "A11CE00002", "ann")
    register(stack, world.device, "0B0B0B0B01", "bob")
    bound = bindings(stack, world.tenant)
    mine, other_mine, bobs = bound["…C4D5"], bound["…0002"], bound["…0B01"]

    with Browser(stack.base_url) as ann:
        ann.login(world.tenant, "ann", PASSWORD)
        page = ann.http.get(account)
        assert page.status_code == 200
        Html(page.text)  # well formed enough to parse
        assert "…C4D5" in page.text and "…0002" in page.text and "…0B01" not in page.text
        assert f'datetime="{mine.deleted_after.isoformat()}"' in page.text

        form = form_to(page.text, f"{account}/cards/{mine.pk}/delete")
        answer = ann.http.post(form.action, data=form.hidden)
        assert answer.status_code == 303 and answer.headers["location"] == account
        after = ann.http.get(account).text
        assert "…C4D5" not in after and "…0002" in after
        assert set(bindings(stack, world.tenant)) == {"…0002", "…0B01"}
        events = audit(stack, world.tenant, "card.deleted")
        assert [(e.actor, e.target, e.details["card"]) for e in events] == [
            ("user:ann", "ann", "…C4D5")
        ]

        # bob's card, a card that is gone, an absurd number: not found, nothing deleted
        csrf = form.hidden["csrf"]
        for pk in (bobs.pk, mine.pk, 2**40, 0):
            answer = ann.http.post(f"{account}/cards/{pk}/delete", data={"csrf": csrf})
            assert answer.status_code == 404, (pk, answer.text)
            assert "Card not found" in answer.text
        # without the CSRF token: refused
        answer = ann.http.post(f"{account}/cards/{other_mine.pk}/delete", data={"csrf": "forged"})
        assert answer.status_code == 400
        assert set(bindings(stack, world.tenant)) == {"…0002", "…0B01"}

    # signed out: to the login page, nothing deleted
    with Browser(stack.base_url) as anonymous:
        answer = anonymous.http.post(f"{account}/cards/{other_mine.pk}/delete", data={"csrf": "x"})
        assert answer.status_code == 303 and answer.headers["location"].startswith(
            f"/{ISSUER}/login?"
        )
    assert "…0002" in bindings(stack, world.tenant)

    # bob sees only his own card; the admin's account page has no cards
    with Browser(stack.base_url) as bob:
        bob.login(world.tenant, "bob", PASSWORD)
        text = bob.http.get(account).text
        assert "…0B01" in text and "…0002" not in text


def test_every_card_page_is_accessible(world: World[Browser]) -> None:
    register(world.stack, world.device, "ACCE55000001", "ann")
    for section in ("/cards", "/cards?q=ann", "/card-lockouts", "/directory", ""):
        page = world.admin.page(f"{ADMIN}{section}")
        assert all(f.hidden.get("csrf") for f in page.forms if f.method == "post"), section
    account = Html(world.admin.get(f"/{ISSUER}/account").text)
    assert account.headings.count("h1") == 1 and account.table_headers
