"""Tenant-wide consent on a device (seed 002) in a real browser: Debian's Chromium
driven by Playwright against the embedded stack on loopback.

An administrator of tenant A allows a device client for everyone in A; another user
of A then gets a code without being asked; a user of tenant B is still asked, and
only those allowed to (admins, or everyone when the tenant says so) see the
tenant-wide box.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    Locator,
    Page,
    Response,
    Route,
    expect,
)

from tests.conftest import Stack, free_port
from tests.e2e.chromium import SCREENSHOTS, TIMEOUT_MS

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.slow]


class Device:
    """A device-kind client of one tenant, whose redirect URI points at a port nobody
    listens on: the browser's request to it is intercepted and answered here."""

    def __init__(self, stack: Stack, tenant: str) -> None:
        self.stack = stack
        self.redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
        self.client_id, secret = stack.client(
            tenant,
            kind="device",
            scope="print profile",
            redirect_uris=[self.redirect_uri],
            name="Lobby printer",
        )
        assert secret
        self.secret = secret
        self.name = "Lobby printer"

    def authorize_url(self, state: str, verifier: str) -> str:
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "print profile",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.stack.issuer_url()}/authorize?{urlencode(query)}"

    def open(self, browser: Browser) -> tuple[Page, str, str]:
        """A fresh context (no cookies) on the authorize URL; answers the page, state, verifier."""
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()

        def answer(route: Route) -> None:
            route.fulfill(status=200, content_type="text/html", body="<p>Back on the device.")

        page.route(f"{self.redirect_uri}**", answer)
        state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        page.goto(self.authorize_url(state, verifier))
        return page, state, verifier

    def redirected_params(self, page: Page, state: str) -> dict[str, str]:
        page.wait_for_url(f"{self.redirect_uri}?**")
        params = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
        assert params.get("state") == state
        return params

    def introspect_code(self, code: str, verifier: str) -> dict[str, object]:
        meta = self.stack.metadata()
        token = httpx.post(
            meta["token_endpoint"],
            auth=(self.client_id, self.secret),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
            },
        )
        assert token.status_code == 200, token.text
        info = httpx.post(
            meta["introspection_endpoint"],
            auth=(self.client_id, self.secret),
            data={"token": token.json()["access_token"]},
        )
        return dict(info.json())


def sign_in(page: Page, tenant: str, username: str, password: str) -> None:
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Organisation ID").fill(tenant)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def tenant_wide_box(page: Page, tenant_name: str, client_name: str) -> Locator:
    text = f"Allow everyone in {tenant_name} to use {client_name} on this device without asking"
    # The label's text wraps in the template, and the client's name sits in a <q>.
    return page.get_by_label(re.compile(r"\W*\s+\W*".join(map(re.escape, text.split()))))


def consent_heading(page: Page, client_name: str) -> Locator:
    name = re.compile(rf"Allow \W?{re.escape(client_name)}\W? to act for you")
    return page.get_by_role("heading", name=name)


def watch_consent_pages(page: Page) -> list[str]:
    """URLs of the consent pages the page receives: /authorize answers 200 only with one
    (otherwise it redirects, to the login page or back to the client)."""
    seen: list[str] = []

    def on_response(response: Response) -> None:
        if response.status == 200 and urlsplit(response.url).path.endswith("/authorize"):
            seen.append(response.url)

    page.on("response", on_response)
    return seen


def test_tenant_wide_consent_in_a_browser(sqlite_stack: Stack, browser: Browser) -> None:
    stack = sqlite_stack
    tenant_a, tenant_b = stack.tenant(prefix="a"), stack.tenant(prefix="b")
    name_a, name_b = f"Tenant {tenant_a}", f"Tenant {tenant_b}"
    admin = stack.user(tenant_a, "ada", "ada's long password", admin=True)
    second = stack.user(tenant_a, "bob", "bob's long password")
    plain = stack.user(tenant_a, "carol", "carol's long password")
    outsider = stack.user(tenant_b, "dave", "dave's long password")
    device = Device(stack, tenant_a)

    # A non-admin of A is asked, without the tenant-wide box, until the tenant lets users grant it.
    page, state, _ = device.open(browser)
    sign_in(page, tenant_a, *plain)
    expect(consent_heading(page, device.name)).to_be_visible()
    expect(tenant_wide_box(page, name_a, device.name)).to_have_count(0)
    stack.set_tenant(tenant_a, users_may_grant_tenant_consent=True)
    page.reload()
    expect(tenant_wide_box(page, name_a, device.name)).to_be_visible()
    stack.set_tenant(tenant_a, users_may_grant_tenant_consent=False)
    page.reload()
    expect(tenant_wide_box(page, name_a, device.name)).to_have_count(0)
    page.get_by_role("button", name="Deny").click()
    assert device.redirected_params(page, state)["error"] == "access_denied"
    page.context.close()

    # The administrator allows the client for the whole tenant.
    page, state, verifier = device.open(browser)
    sign_in(page, tenant_a, *admin)
    expect(consent_heading(page, device.name)).to_be_visible()
    box = tenant_wide_box(page, name_a, device.name)
    expect(box).to_be_visible()
    expect(box).not_to_be_checked()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "consent.png"), full_page=True)
    box.check()
    page.get_by_role("button", name="Allow").click()
    code = device.redirected_params(page, state)["code"]
    info = device.introspect_code(code, verifier)
    assert (info["active"], info["username"], info["tenant_id"]) == (True, "ada", tenant_a)
    page.context.close()

    # Another user of A signs in and is sent straight back with a code: no consent page.
    page, state, verifier = device.open(browser)
    consent_pages = watch_consent_pages(page)
    sign_in(page, tenant_a, *second)
    code = device.redirected_params(page, state)["code"]
    assert consent_pages == []
    info = device.introspect_code(code, verifier)
    assert (info["active"], info["username"], info["tenant_id"]) == (True, "bob", tenant_a)
    page.context.close()

    # A user of tenant B is not covered by A's consent: asked, and offered no tenant-wide box.
    page, state, _ = device.open(browser)
    consent_pages = watch_consent_pages(page)
    sign_in(page, tenant_b, *outsider)
    expect(consent_heading(page, device.name)).to_be_visible()
    assert len(consent_pages) == 1
    expect(page.get_by_text("This client is registered by another organisation")).to_be_visible()
    expect(tenant_wide_box(page, name_b, device.name)).to_have_count(0)
    expect(page.get_by_role("checkbox", name=re.compile("Allow everyone"))).to_have_count(0)
    page.get_by_role("button", name="Allow").click()
    assert device.redirected_params(page, state)["code"]
    page.context.close()
