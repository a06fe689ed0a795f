"""Every admin form's refusal in words a person uses (issue 16, "Errors"): the plain
sentence sits beside its field (the field's `-error` element), the input is kept,
and neither the API's wording nor a raw field code is shown."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from printcloud.core import words
from tests.conftest import Stack
from tests.helpers.browser import Browser, Html
from tests.helpers.worlds import World

ISSUER = "idp-a"
PASSWORD = "correct horse battery"
ADMIN = f"/{ISSUER}/admin"
#: A field code (`card_retention_days`) or "tenant": what a person should not read.
RAW = re.compile(r"\b[a-z]+_[a-z_]+\b|\btenant\b")


@pytest.fixture(scope="module")
def world(stack: Stack) -> World[Browser]:
    tenant, other = stack.tenant(prefix="ew"), stack.tenant(prefix="ewo")
    stack.user(tenant, "boss", PASSWORD, admin=True)
    stack.user(tenant, "member", PASSWORD)
    return World(
        stack=stack, tenant=tenant, other=other, admin=Browser(stack).signed_in(tenant, "boss")
    )


def beside(answer: httpx.Response, field: str) -> str:
    """The text of the error element of `field`, checked to be the page's only alert,
    free of field codes, and named by the field's `aria-describedby`."""
    found = re.findall(
        rf'<p class="field-error" id="{field}-error" role="alert">(.*?)</p>', answer.text
    )
    assert found, f"no error beside {field}: {Html(answer.text).alerts}"
    text = html.unescape(found[0])
    assert Html(answer.text).alerts == [text]
    assert not RAW.search(text), text
    assert f'aria-describedby="{field}-error' in answer.text
    return text


def alert(answer: httpx.Response) -> str:
    [text] = Html(answer.text).alerts
    assert not RAW.search(text), text
    return text


def post(browser: Browser, action: str, data: dict[str, str]) -> httpx.Response:
    """A form sent as a browser sends it, with its CSRF token (for forms a page does
    not offer, such as deleting a card that is gone)."""
    return browser.http.post(action, data={"csrf": browser.http.cookies["pc_csrf"], **data})


def test_users_refusals_in_words(world: World[Browser]) -> None:
    admin, path = world.admin, f"{ADMIN}/users"
    answer = admin.submit_form(
        path,
        path,
        {"username": "no spaces please", "display_name": "Kept Name", "password": PASSWORD},
        status=400,
    )
    assert beside(answer, "username").startswith("Use 1 to 128 letters, digits or")
    assert "username must be" not in answer.text
    assert 'value="Kept Name"' in answer.text and 'value="no spaces please"' in answer.text

    answer = admin.submit_form(path, path, {"username": "member", "password": PASSWORD}, status=409)
    assert beside(answer, "username") == (
        "A user called member already exists. Choose another user name."
    )
    answer = admin.submit_form(path, path, {"username": "newbie", "password": "short"}, status=400)
    assert beside(answer, "password") == "Choose a password of at least 8 characters."
    assert "password must be" not in answer.text

    # change a user: a password too short
    member = f"{path}/member"
    answer = admin.submit_form(member, member, {"password": "short"}, status=400)
    assert beside(answer, "password") == "Choose a password of at least 8 characters."

    # disable: not oneself, said as a sentence
    answer = post(admin, f"{path}/boss/disable", {})
    assert answer.status_code == 400
    assert alert(answer) == "You cannot disable your own account: you would lock yourself out."
    answer = post(admin, f"{path}/nobody/disable", {})
    assert answer.status_code == 404 and "There is no such user" in answer.text
    assert "no user 'nobody'" not in answer.text


def test_overview_settings_refusals_in_words(world: World[Browser]) -> None:
    admin = world.admin
    answer = admin.submit_form(
        ADMIN, f"{ADMIN}/settings", {"name": "Kept Co", "card_retention_days": "0"}, status=400
    )
    assert beside(answer, "card_retention_days") == "Enter a number of days from 1 to 3650."
    assert 'value="Kept Co"' in answer.text
    answer = admin.submit_form(
        ADMIN, f"{ADMIN}/settings", {"name": "Kept Co", "card_retention_days": "ten"}, status=400
    )
    assert beside(answer, "card_retention_days") == "Enter a whole number of days."
    answer = admin.submit_form(
        ADMIN, f"{ADMIN}/settings", {"name": "Kept Co", "held_release": "anyone"}, status=400
    )
    assert beside(answer, "held_release") == "Choose who may release held jobs."
    assert "held_release must be" not in answer.text


def test_directory_refusals_in_words(world: World[Browser]) -> None:
    admin, path = world.admin, f"{ADMIN}/directory"
    ldap = {"kind": "ldap", "url": "ldap://127.0.0.1:3389", "base_dn": "dc=example,dc=org"}
    answer = admin.submit_form(path, path, {**ldap, "url": "http://dir.example"}, status=400)
    assert beside(answer, "url").startswith("Enter the directory server's address as ldap://")
    assert "url must start" not in answer.text and 'value="http://dir.example"' in answer.text

    answer = admin.submit_form(path, path, {**ldap, "base_dn": ""}, status=400)
    assert beside(answer, "base_dn").startswith("Enter the base DN where the users are")
    assert "base_dn is required" not in answer.text

    answer = admin.submit_form(path, path, {**ldap, "user_attr": "user id"}, status=400)
    assert beside(answer, "user_attr").startswith("Enter an LDAP name")

    answer = admin.submit_form(path, path, {**ldap, "timeout": "0"}, status=400)
    assert beside(answer, "timeout") == "Enter a number of seconds from 1 to 60."
    assert "timeout must be" not in answer.text

    # "test connection" while the organisation uses its own users
    answer = admin.submit_form(path, f"{path}/test", {}, status=400)
    assert beside(answer, "kind").startswith("This organisation uses its own users")


def test_clients_refusals_in_words(world: World[Browser]) -> None:
    admin, stack, path = world.admin, world.stack, f"{ADMIN}/clients"
    answer = admin.submit_form(
        path,
        path,
        {"name": "Kept app", "kind": "confidential", "grant_types": "authorization_code"},
        status=400,
    )
    assert beside(answer, "redirect_uris") == (
        "Browser sign-in (authorization code) needs at least one redirect URI."
    )
    assert "authorization_code needs" not in answer.text and 'value="Kept app"' in answer.text

    answer = admin.submit_form(
        path,
        path,
        {"name": "Bad uri", "kind": "confidential", "redirect_uris": "/relative#x"},
        status=400,
    )
    assert beside(answer, "redirect_uris").startswith("Enter each redirect URI as a full address")

    client_id, _ = stack.client(world.tenant, name="Tidy client")
    page = f"{path}/{client_id}"
    answer = admin.submit_form(page, page, {"name": "  "}, status=400)
    assert beside(answer, "name") == "Enter a name."
    assert "name must not be empty" not in answer.text

    public_id, _ = stack.client(
        world.tenant, name="Phone app", kind="public", redirect_uris=["https://app.example/cb"]
    )
    answer = post(admin, f"{path}/{public_id}/rotate", {"confirm": "on"})
    assert answer.status_code == 400
    assert alert(answer) == "An app without a secret has no secret to replace."


def test_cards_and_consents_refusals_in_words(world: World[Browser]) -> None:
    admin = world.admin
    admin.get(f"{ADMIN}/cards")
    answer = post(admin, f"{ADMIN}/cards/2000000000/delete", {})
    assert answer.status_code == 404
    assert alert(answer).startswith("That card is not registered any more")
    for kind in ("tenant", "user"):
        answer = post(admin, f"{ADMIN}/consents/{kind}/2000000000/revoke", {})
        assert answer.status_code == 404
        assert alert(answer).startswith("That consent no longer exists")


@pytest.mark.parametrize(
    ("field", "api"),
    [
        ("username", "username must be 1-128 letters, digits or . _ @ + -"),
        ("card_retention_days", "card_retention_days must be 1 to 3650"),
        ("held_release", "held_release must be one of card_or_owner, device_local_auth"),
        ("tenant_id", "tenant_id must be 1-64 letters, digits, '.', '_' or '-'"),
        ("url", "url: the host 'dir.example' cannot be resolved"),
        ("bind_password", "bind_password is required with bind_dn (an empty one is ...)"),
        ("start_tls", "start_tls upgrades ldap:// connections; ldaps:// is TLS already"),
        ("ca_pem", "ca_pem is set but the connection is not encrypted: use ldaps:// or start_tls"),
        ("grant_types", "a public client cannot use client_credentials or token exchange"),
        ("client_id", "platform service client 'svc-x' cannot be rotated; it is managed"),
        ("access_token_format", "access_token_format must be one of opaque, jwt"),
        ("tenant_wide", "this user may not grant consent for the whole tenant"),
        (None, "the change conflicts with another one made at the same time; try again"),
        ("display_name", "display_name must not contain NUL characters"),
        ("some_field", "some_field is wrong for this tenant"),
    ],
)
def test_every_api_phrase_reads_as_a_sentence(field: str | None, api: str) -> None:
    said = words.form_error(api, field)
    assert said != api and said[:1].isupper() and said.endswith(".")
    assert not RAW.search(said), said


def test_sentences_the_pages_wrote_stay() -> None:
    for plain in ("Enter a display name for the organisation.", "Your form expired. Reload."):
        assert words.form_error(plain, "name") == plain
