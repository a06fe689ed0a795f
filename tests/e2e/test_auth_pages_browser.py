"""The authorization server's pages in a real browser (issue 16, items 2, 4 and 10; the
token format of issue 17): Debian's Chromium driven by Playwright against the embedded
stack on loopback.

An administrator signs in (a wrong password first: the organisation and user name stay
filled, the password is cleared and the error sits beside it), then walks the account
page and every admin page at desktop (1280 px) and phone (390 px) widths and in dark
mode through `check_page`: one shared navigation, no raw code in the visible text, no
overflow on the phone, no serious axe-core violation. On the way the client page
switches a client to signed JWT access tokens, and the token endpoint then issues one.
Screenshots go to docs/img/console-auth-*.png (docs/console.md shows them).
"""

from __future__ import annotations

import re

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from printcloud.auth import cards, service
from tests.conftest import Stack
from tests.e2e.chromium import TIMEOUT_MS, watch
from tests.e2e.console import WIDTHS, check_page, sign_in

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]

ISSUER = "idp-a"
PASSWORD = "alice's long password"


def _world(stack: Stack) -> tuple[str, str, str]:
    """A tenant with an administrator, a second user, a device that registered a card
    for bob, a client, one consent of each kind and so an audit log with details."""
    tenant = stack.tenant(prefix="pages")
    stack.user(tenant, "alice", PASSWORD, admin=True)
    stack.user(tenant, "bob", "bob's long password")
    device_id, _ = stack.client(tenant, kind="device", scope="print", name="Lobby printer")
    client_id, secret = stack.client(
        tenant, scope="print", grant_types=["client_credentials"], name="Reception PC"
    )
    assert secret
    with stack.db.session() as db:
        row = service.get_tenant(db, issuer=ISSUER, tenant_id=tenant)
        alice = service.get_user(db, tenant=row, username="alice")
        bob = service.get_user(db, tenant=row, username="bob")
        device = service.get_client(db, tenant=row, client_id=device_id)
        digest = cards.card_digest(
            cards.card_key(stack.settings), issuer=ISSUER, tenant_id=tenant, card_id="04A1B2C3D4"
        )
        cards.register(
            db,
            tenant=row,
            card_id="04A1B2C3D4",
            digest=digest,
            user=bob,
            device=device_id,
            directory="builtin",
        )
        service.grant_tenant_consent(db, tenant=row, user=alice, client=device, scope="print")
        service.remember_user_consent(db, tenant=row, user=bob, client=device, scope="print")
    return tenant, client_id, secret


def _current_is_marked(page: Page) -> None:
    """The current admin section looks different from the others, not only to a screen reader."""
    current = page.locator('nav.sub a[aria-current="page"]')
    expect(current).to_have_count(1)
    other = page.locator('nav.sub a:not([aria-current="page"])').first
    style = "e => [getComputedStyle(e).boxShadow, getComputedStyle(e).fontWeight]"
    assert current.evaluate(style) != other.evaluate(style)


def test_walk_the_sign_in_and_admin_pages(sqlite_stack: Stack, browser: Browser) -> None:
    stack = sqlite_stack
    tenant, client_id, secret = _world(stack)
    base = f"{stack.base_url}/{ISSUER}"
    axe = Axe()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = watch(page)

    # A wrong password: the form again with the organisation and the user name kept.
    page.goto(f"{base}/admin")
    sign_in(page, tenant, "alice", "not her password")
    expect(page.locator("#login-error")).to_contain_text("is not right")
    expect(page.get_by_label("Organisation ID")).to_have_value(tenant)
    expect(page.get_by_label("User name")).to_have_value("alice")
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#tenant-help")).to_contain_text("short name of your company")
    for size, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        check_page(page, "auth-sign-in-error", size, axe)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("^Administration of"))).to_be_visible()
    expect(page.locator("#organisation-id")).to_have_text(tenant)  # what users sign in with

    # The client page: grant types by name, the codes only in the details; the token
    # format changed to a signed JWT (ES256), and the token endpoint then issues one.
    client_url = f"{base}/admin/clients/{client_id}"
    page.goto(client_url)
    facts = page.locator("dl.facts").first
    expect(facts).to_contain_text("Client credentials")
    expect(facts).not_to_contain_text("client_credentials")
    expect(page.locator("#token-format-now")).to_have_text("Opaque")
    page.get_by_label("Signed JWT").check()
    page.get_by_label("Signature of JWT access tokens").select_option("ES256")
    page.get_by_role("button", name="Save token format").click()
    expect(page.locator("p.notice")).to_contain_text("Signed JWT, ES256")
    expect(page.locator("#token-format-now")).to_contain_text("Signed JWT, ES256")
    token = httpx.post(
        f"{base}/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": "print"},
    )
    assert token.status_code == 200, token.text
    assert token.json()["access_token"].count(".") == 2  # a JWT, not an opaque string

    walk = {
        "auth-account": f"{base}/account",
        "auth-admin": f"{base}/admin",
        "auth-users": f"{base}/admin/users",
        "auth-user": f"{base}/admin/users/bob",
        "auth-clients": f"{base}/admin/clients",
        "auth-client": client_url,
        "auth-directory": f"{base}/admin/directory",
        "auth-cards": f"{base}/admin/cards",
        "auth-consents": f"{base}/admin/consents",
        "auth-audit": f"{base}/admin/audit",
    }
    for size, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        for name, url in walk.items():
            answer = page.goto(url)
            assert answer is not None and answer.status == 200, (name, url)
            expect(page.locator("#signed-in-as")).to_contain_text("alice")
            if name != "auth-account":
                _current_is_marked(page)
            check_page(page, name, size, axe)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="dark")
    for name, url in walk.items():
        page.goto(url)
        check_page(page, name, "dark", axe)
    page.emulate_media(color_scheme="light")

    # Words, not codes: the card's device by name, the audit log's events and details.
    page.goto(walk["auth-cards"])
    expect(page.locator("#cards")).to_contain_text("Lobby printer")
    expect(page.locator("main")).not_to_contain_text("seed")
    page.goto(walk["auth-directory"])
    expect(page.locator("main")).not_to_contain_text("seed")
    page.goto(walk["auth-audit"])
    log = page.locator("#audit")
    expect(log).to_contain_text("Client changed")
    expect(log).to_contain_text("Access token format: Signed JWT")
    expect(log).to_contain_text("ID card registered")
    expect(log).to_contain_text("Printer Lobby printer")
    text = log.inner_text()
    for raw in ("client.update", "user:alice", "\\u", "{", "urn:ietf"):
        assert raw not in text, raw
    assert watched.problems == []
    context.close()
