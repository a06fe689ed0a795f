"""The authorization server's pages in plain words (issue 16, items 2, 4 and 10) and a
client's access-token format in the admin pages (issue 17), over real HTTP, driven like
a browser without JavaScript.

- the sign-in keeps the organisation and the user name after a wrong password (and
  while rate-limited), never the password, with the error beside the password;
- clients show grant types and kinds by name, the codes only in a details section;
- the token-format form changes the format (with CSRF, within the tenant, errors
  beside their fields), and the token endpoint follows it;
- the audit log lists details as words, never JSON; no page's copy names a seed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest

from printcloud.auth import service
from printcloud.core import words
from tests.conftest import Stack, make_settings, start_stack
from tests.helpers.browser import Browser, Html

ISSUER = "idp-a"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own with 3 sign-in attempts a minute, so the limit is reached."""
    settings = make_settings(
        tmp_path_factory.mktemp("pages-in-words"), None, login_attempts_per_minute=3
    )
    live, server, thread = start_stack(settings)
    yield live
    server.should_exit = True
    thread.join(timeout=10)
    live.db.dispose()


def _field_value(page: str, field: str) -> str | None:
    found = re.search(rf'<input [^>]*name="{field}"[^>]*>', page)
    assert found, field
    value = re.search(r'value="([^"]*)"', found[0])
    return html.unescape(value[1]) if value else None


def test_a_wrong_password_keeps_the_organisation_and_the_user_name(strict: Stack) -> None:
    tenant = strict.tenant()
    strict.user(tenant, "alice", PASSWORD)
    browser = Browser(strict)
    for attempt in range(4):
        answer = browser.login(tenant, "alice", "not her password", status=None)
        assert answer.status_code == (401 if attempt < 3 else 429), attempt
        page = answer.text
        assert _field_value(page, "tenant") == tenant
        assert _field_value(page, "username") == "alice"
        assert _field_value(page, "password") is None  # the password is never sent back
        assert "not her password" not in page
        assert "short name of your company" in page  # what an Organisation ID is
        if attempt < 3:  # beside the password, in words
            assert re.search(r'id="password"[^>]*aria-invalid="true"', page)
            assert "is not right" in Html(page).alerts[0]
        else:  # the limit still holds, said at the form
            assert "Too many attempts" in Html(page).alerts[0]
            assert int(answer.headers["retry-after"]) >= 1
    assert browser.session_id is None


@pytest.fixture(scope="module")
def admin_world(sqlite_stack: Stack) -> tuple[Stack, str, str, Browser]:
    stack = sqlite_stack
    tenant, other = stack.tenant(prefix="words"), stack.tenant(prefix="wordso")
    stack.user(tenant, "boss", PASSWORD, admin=True)
    stack.user(other, "otherboss", PASSWORD, admin=True)
    return stack, tenant, other, Browser(stack).signed_in(tenant, "boss", PASSWORD)


def test_clients_show_grant_types_by_name_and_codes_only_in_details(
    admin_world: tuple[Stack, str, str, Browser],
) -> None:
    stack, tenant, _, admin = admin_world
    client_id, _ = stack.client(
        tenant,
        kind="device",
        name="Copier 2F",
        grant_types=["client_credentials", "urn:ietf:params:oauth:grant-type:device_code"],
    )
    table = admin.get(f"/{ISSUER}/admin/clients").text.split('id="new-client"')[0]
    assert "Client credentials, Device code" in table and "Printer or device" in table
    assert "urn:ietf" not in table  # (the register form's values are codes; its labels words)
    page = admin.get(f"/{ISSUER}/admin/clients/{client_id}").text
    shown, details = page.split('<details class="admin" id="client-details">', 1)
    assert "Client credentials, Device code" in shown
    assert "urn:ietf" not in shown and "client_credentials" not in shown.split("<form")[0]
    assert "urn:ietf:params:oauth:grant-type:device_code" in details and client_id in details


def _token(stack: Stack, client_id: str, secret: str) -> str:
    answer = httpx.post(
        f"{stack.issuer_url(ISSUER)}/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": "print"},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _format(stack: Stack, tenant: str, client_id: str) -> tuple[str, str]:
    with stack.db.session() as db:
        row = service.get_tenant(db, issuer=ISSUER, tenant_id=tenant)
        client = service.get_client(db, tenant=row, client_id=client_id)
        return client.access_token_format, client.access_token_alg


def test_the_token_format_is_changed_on_the_client_page(
    admin_world: tuple[Stack, str, str, Browser],
) -> None:
    stack, tenant, other, admin = admin_world
    client_id, secret = stack.client(tenant, grant_types=["client_credentials"], name="Desk")
    assert secret
    path = f"/{ISSUER}/admin/clients/{client_id}"
    action = f"{path}/tokens"
    assert _token(stack, client_id, secret).count(".") == 0  # opaque by default

    answer = admin.submit_form(
        path, action, {"access_token_format": "jwt", "access_token_alg": "ES256"}
    )
    assert answer.headers["location"] == path
    page = admin.get(path).text
    assert "Access tokens of Desk: Signed JWT, ES256 (ECDSA P-256)." in html.unescape(page)
    assert _format(stack, tenant, client_id) == ("jwt", "ES256")
    assert _token(stack, client_id, secret).count(".") == 2  # an RFC 9068 JWT

    # Bad values: 400, the page again with the error beside its field, nothing changed.
    answer = admin.submit_form(path, action, {"access_token_format": "paper"}, status=400)
    assert 'id="access_token_format-error"' in answer.text
    assert "Choose opaque or signed JWT" in Html(answer.text).alerts[0]
    answer = admin.submit_form(
        path, action, {"access_token_format": "jwt", "access_token_alg": "HS256"}, status=400
    )
    assert 'id="access_token_alg-error"' in answer.text
    assert re.search(r'id="access_token_alg"[^>]*aria-invalid="true"', answer.text)
    assert _format(stack, tenant, client_id) == ("jwt", "ES256")

    # Without the form's CSRF token: refused, nothing changed.
    stale = admin.http.post(action, data={"csrf": "stale", "access_token_format": "opaque"})
    assert stale.status_code == 400 and "Your form expired" in stale.text
    assert _format(stack, tenant, client_id) == ("jwt", "ES256")

    # Another tenant's client: not found, from this admin's tenant or by naming the other.
    theirs, _ = stack.client(other, grant_types=["client_credentials"], name="Theirs")
    csrf = admin.csrf()
    for target in (
        f"/{ISSUER}/admin/clients/{theirs}/tokens",
        f"/{ISSUER}/admin/clients/{theirs}/tokens?tenant={other}",
    ):
        answer = admin.http.post(target, data={"csrf": csrf, "access_token_format": "jwt"})
        assert answer.status_code == 404, target
    assert _format(stack, other, theirs)[0] == "opaque"

    # Back to opaque: the algorithm stays for a later switch, the tokens are opaque again.
    admin.submit_form(path, action, {"access_token_format": "opaque"})
    assert _format(stack, tenant, client_id) == ("opaque", "ES256")
    assert _token(stack, client_id, secret).count(".") == 0


def test_the_audit_log_and_the_copy_are_words(
    admin_world: tuple[Stack, str, str, Browser],
) -> None:
    stack, tenant, _, admin = admin_world
    client_id, _ = stack.client(tenant, name="Café “Nord” kiosk")
    admin.submit_form(
        f"/{ISSUER}/admin/clients/{client_id}",
        f"/{ISSUER}/admin/clients/{client_id}/tokens",
        {"access_token_format": "jwt", "access_token_alg": "EdDSA"},
    )
    log = html.unescape(admin.get(f"/{ISSUER}/admin/audit").text)
    assert "Client changed" in log and "Client registered" in log
    assert "Access token format:</span> Signed JWT" in log
    assert "JWT algorithm:</span> EdDSA" in log
    assert "Café “Nord” kiosk" in log  # as written, not \u escapes
    for code in ("client.update", "client.create", '{"', "\\u", "user:boss"):
        assert code not in log, code
    for path in ("", "/users", "/clients", "/cards", "/directory", "/consents", "/audit"):
        page = admin.get(f"/{ISSUER}/admin{path}").text
        assert not re.search(r"\bseed\b", page, re.IGNORECASE), path


def test_words_for_the_audit_details() -> None:
    assert words.grant_label("urn:ietf:params:oauth:grant-type:token-exchange") == "Token exchange"
    assert words.grant_label("urn:example:grant-type:magic_link") == "Magic link"
    assert words.event_label("tenant.settings") == "Settings changed"
    assert words.event_label("key.rotated_now") == "Key rotated now"
    assert words.actor_label("device:dev-1", {"dev-1": "Lobby"}) == "Printer Lobby"
    assert words.actor_label("user:alice") == "alice"
    assert words.audit_details(
        {
            "grant_types": ["client_credentials", "refresh_token"],
            "tenant_wide": False,
            "held_release": "card_or_owner",
            "redirect_uris": [],
        }
    ) == [
        ("Grant types", "Client credentials, Refresh token"),
        ("For the whole organisation", "No"),
        ("Held jobs released by", "The user, by ID card or their own sign-in"),
        ("Redirect URIs", "—"),
    ]
    assert words.audit_details(None) == []


def test_a_refused_sign_in_is_said_in_words() -> None:
    """The shared sign-in's default words (the CRM's pages use them): the issuer's error
    code and its description go to the log, not to the page."""
    from printcloud.auth.sign_in import _plain_oauth_error as said

    assert said("access_denied", "") == "The sign-in was declined."
    assert said("server_error", "boom") == "The sign-in service failed. Try again shortly."
    assert said("weird_thing", "x_y") == "The sign-in did not complete. Sign in again."
