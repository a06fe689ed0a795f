"""docgen's two tokens against the real authorization servers (seed 000, FIG. 11–13, 16)
and the batch-print settings, by API and through the pages (FIG. 8).

`sqlite_stack` runs idp-a (the platform's tenants: docgen's) and idp-b (the CRM's);
docgen runs beside it (tests/docgen/conftest.py). The browser is `tests.helpers.browser`'s:
it reads the real HTML and submits its forms, following redirects between docgen and
the issuers.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from printcloud.docgen import service, tokens
from printcloud.docgen.tokens import TokenRefused
from tests.conftest import Stack
from tests.helpers.browser import Browser, form_to
from tests.helpers.docgen import Docgen
from tests.helpers.docgen_admin import PASSWORD, AdminBrowser, Org, org, text_of

_KEY = re.compile(r'<output class="key" id="secret-key" aria-label="secret key">([^<]+)</output>')


def crm_org(stack: Stack) -> Org:
    tenant = stack.tenant("idp-b", prefix="crm")
    stack.user(tenant, "crm-admin", PASSWORD, "idp-b", admin=True)
    return Org(tenant, "crm-admin")


def bearer(stack: Stack, tenant: str, scope: str = "docgen admin") -> dict[str, str]:
    """An access token of the tenant's administrator `boss` as a header (only the
    platform's own clients may ask for `admin`: a tenant's client cannot)."""
    return {"Authorization": f"Bearer {stack.user_token(tenant, 'boss', PASSWORD, scope)}"}


def introspect(docgen: Docgen, issuer: str, token: str) -> dict[str, Any]:
    return docgen.rt.client(issuer).introspect(token)


def stored(docgen: Docgen, tenant: str) -> service.TenantTokens:
    with docgen.db.session() as s:
        return service.tokens_for(s, tenant_id=tenant, box=docgen.rt.box)


# -- FIG. 11 by API: RFC 8693 exchange of the admin's idp-a session -----------------------------


def test_the_print_token_by_exchange_of_the_admins_session(docgen: Docgen) -> None:
    stack, a = docgen.stack, org(docgen.stack)
    with Browser(stack.base_url) as browser:
        browser.login(*a.credentials)
        auth_id = browser.session_id
    assert auth_id
    answer = httpx.post(
        f"{docgen.base_url}/api/settings/print-token",
        json={"auth_id": auth_id},
        headers=bearer(stack, a.tenant),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["present"], body["issuer"], body["user"], body["tenant_id"]) == (
        True,
        "idp-a",
        "boss",
        a.tenant,
    )
    assert body["refreshable"] and body["expires_at"] and "access_token" not in body

    found = stored(docgen, a.tenant).print
    assert found is not None and found.refresh_token
    info = introspect(docgen, "idp-a", found.access_token)
    assert (info["active"], info["tenant_id"], info["username"], info["client_id"]) == (
        True,
        a.tenant,
        "boss",
        "svc-docgen",
    )
    assert info["scope"] == "print"
    # S1520–S1521
    verdict = tokens.verify_print_token(docgen.rt, tenant_id=a.tenant)
    assert verdict.valid and verdict.reason == ""


def test_fig_12_the_exchange_fails_with_the_reason(docgen: Docgen) -> None:
    stack, a = docgen.stack, org(docgen.stack)
    headers = bearer(stack, a.tenant)
    url = f"{docgen.base_url}/api/settings/print-token"
    unknown = httpx.post(url, json={"auth_id": "not-a-session"}, headers=headers)
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_grant"
    assert "did not exchange the session" in unknown.json()["error_description"]

    # A session that ended (the admin signed out at idp-a) is refused too.
    with Browser(stack.base_url) as browser:
        browser.login(*a.credentials)
        auth_id = browser.session_id
        account = browser.http.get("/idp-a/account")
        out = form_to(account.text, "/idp-a/logout")
        assert browser.http.post(out.action, data=out.hidden).status_code == 303
    ended = httpx.post(url, json={"auth_id": auth_id}, headers=headers)
    assert ended.status_code == 400 and "expired or ended" in ended.json()["error_description"]
    assert stored(docgen, a.tenant).print is None
    missing = httpx.post(url, json={}, headers=headers)
    assert missing.status_code == 400 and missing.json()["field"] == "auth_id"


def test_another_tenants_session_is_refused_and_revoked(docgen: Docgen) -> None:
    stack, a, b = docgen.stack, org(docgen.stack), org(docgen.stack)
    with Browser(stack.base_url) as browser:
        browser.login(*b.credentials)
        auth_id = browser.session_id
    answer = httpx.post(
        f"{docgen.base_url}/api/settings/print-token",
        json={"auth_id": auth_id},
        headers=bearer(stack, a.tenant),
    )
    assert answer.status_code == 400
    assert "belongs to another tenant" in answer.json()["error_description"]
    assert stored(docgen, a.tenant).print is None and stored(docgen, b.tenant).print is None


# -- refresh (S1607–S1611) and verification -------------------------------------------------------


def exchanged(docgen: Docgen) -> Org:
    """A tenant whose print token was stored by exchange of its admin's session."""
    a = org(docgen.stack)
    with Browser(docgen.stack.base_url) as browser:
        browser.login(*a.credentials)
        assert browser.session_id
        tokens.exchange_print_token(
            docgen.rt, tenant_id=a.tenant, session_id=browser.session_id, actor="test"
        )
    return a


def test_refreshing_the_print_token(docgen: Docgen) -> None:
    a = exchanged(docgen)
    before = stored(docgen, a.tenant).print
    assert before is not None
    after = tokens.refresh_print(docgen.rt, tenant_id=a.tenant)
    assert after.access_token != before.access_token
    assert after.refresh_token and after.refresh_token != before.refresh_token  # rotated
    assert after.refreshed_at is not None and after.set_by == "test" and after.user == "boss"
    assert tokens.verify_print_token(docgen.rt, tenant_id=a.tenant).valid
    # A caller that found the old access token expired gets the new one, no second refresh.
    again = tokens.refresh_print(docgen.rt, tenant_id=a.tenant, stale_access=before.access_token)
    assert again.access_token == after.access_token


def test_concurrent_refreshes_refresh_once(docgen: Docgen) -> None:
    # Two refreshes with one refresh token would be reuse: idp-a would revoke the family.
    a = exchanged(docgen)
    before = stored(docgen, a.tenant).print
    assert before is not None
    results: list[str] = []
    barrier = threading.Barrier(4)

    def refresh() -> None:
        barrier.wait()
        fresh = tokens.refresh_print(
            docgen.rt, tenant_id=a.tenant, stale_access=before.access_token
        )
        results.append(fresh.access_token)

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert tokens.verify_print_token(docgen.rt, tenant_id=a.tenant).valid
    assert tokens.refresh_print(docgen.rt, tenant_id=a.tenant).access_token not in results


def test_a_revoked_print_token_is_invalid_and_not_refreshable(docgen: Docgen) -> None:
    a = exchanged(docgen)
    current = stored(docgen, a.tenant).print
    assert current is not None and current.refresh_token
    docgen.rt.client("idp-a").revoke(current.refresh_token)  # revokes its family
    verdict = tokens.verify_print_token(docgen.rt, tenant_id=a.tenant)
    assert not verdict.valid and "not active" in verdict.reason
    with pytest.raises(TokenRefused, match="refused to refresh the print token"):
        tokens.refresh_print(docgen.rt, tenant_id=a.tenant)
    with docgen.db.session() as s:
        state = service.token_states(s, tenant_id=a.tenant)["print"]
    assert state.problem and "refused to refresh" in state.problem
    # Nothing stored at all: invalid, and nothing to refresh with.
    nobody = org(docgen.stack)
    assert tokens.verify_print_token(docgen.rt, tenant_id=nobody.tenant).reason == (
        "no print token is stored for this tenant"
    )
    with pytest.raises(TokenRefused, match="no print token is stored"):
        tokens.refresh_print(docgen.rt, tenant_id=nobody.tenant)


def test_removing_the_print_token_revokes_it(docgen: Docgen) -> None:
    a = exchanged(docgen)
    current = stored(docgen, a.tenant).print
    assert current is not None
    answer = httpx.delete(
        f"{docgen.base_url}/api/settings/print-token", headers=bearer(docgen.stack, a.tenant)
    )
    assert answer.status_code == 204
    assert stored(docgen, a.tenant).print is None
    assert introspect(docgen, "idp-a", current.access_token)["active"] is False


# -- the settings API ----------------------------------------------------------------------------


def test_the_settings_api_issues_and_rotates_the_key(docgen: Docgen) -> None:
    stack, a, b = docgen.stack, org(docgen.stack), org(docgen.stack)
    headers_a, headers_b = bearer(stack, a.tenant), bearer(stack, b.tenant)
    api = f"{docgen.base_url}/api/settings"
    assert httpx.get(api, headers=headers_a).json()["secret_key"] == {
        "issued": False,
        "issued_at": None,
        "issued_by": None,
        "previous_valid_until": None,
    }
    issued = httpx.post(f"{api}/secret-key", headers=headers_a)
    assert issued.status_code == 201 and issued.headers["cache-control"] == "no-store"
    key = issued.json()["secret_key"]
    assert issued.json()["tenant_id"] == a.tenant
    again = httpx.post(f"{api}/secret-key", headers=headers_a)
    assert again.status_code == 409 and "rotate" in again.json()["error_description"]
    rotated = httpx.post(f"{api}/secret-key/rotate", json={"overlap_hours": 2}, headers=headers_a)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret_key"] != key and rotated.json()["previous_valid_until"]
    view = httpx.get(api, headers=headers_a).json()
    assert view["secret_key"]["issued"] and view["secret_key"]["previous_valid_until"]
    assert key not in str(view) and rotated.json()["secret_key"] not in str(view)
    bad = httpx.post(f"{api}/secret-key/rotate", json={"overlap_hours": -1}, headers=headers_a)
    assert bad.status_code == 400 and bad.json()["field"] == "overlap_hours"
    # Both keys work at the batch-print endpoint; B's settings are B's own.
    for k in (key, rotated.json()["secret_key"]):
        ok = httpx.post(docgen.batch_url(a.tenant), auth=httpx.DigestAuth(a.tenant, k))
        assert ok.status_code == 202
    assert httpx.get(api, headers=headers_b).json()["secret_key"]["issued"] is False

    # The requests: A's to A, another tenant's are not found.
    listed = httpx.get(f"{docgen.base_url}/api/batch-requests", headers=headers_a).json()
    ids = [r["request_id"] for r in listed["requests"]]
    assert len(ids) == 2
    one = httpx.get(f"{docgen.base_url}/api/batch-requests/{ids[0]}", headers=headers_a)
    assert one.status_code == 200 and one.json()["state"] == "received"
    other = httpx.get(f"{docgen.base_url}/api/batch-requests/{ids[0]}", headers=headers_b)
    assert other.status_code == 404
    assert httpx.get(f"{docgen.base_url}/api/batch-requests", headers=headers_b).json() == {
        "requests": []
    }


def test_the_settings_api_is_for_admins_of_docgen(docgen: Docgen) -> None:
    stack, a = docgen.stack, org(docgen.stack)
    api = f"{docgen.base_url}/api/settings"
    assert httpx.get(api).status_code == 401
    assert httpx.get(api, headers={"Authorization": "Bearer nonsense"}).status_code == 401
    for scope in ("docgen", "admin", "print"):
        answer = httpx.post(f"{api}/secret-key", headers=bearer(stack, a.tenant, scope))
        assert answer.status_code == 403 and answer.json()["error"] == "insufficient_scope"
    with docgen.db.session() as s:
        assert not service.key_state(s, tenant_id=a.tenant).issued


# -- the pages (FIG. 8) and the redirect flows (FIG. 11, FIG. 13) --------------------------------


def test_the_settings_page_sets_everything_through_the_redirect_flows(docgen: Docgen) -> None:
    a, crm = org(docgen.stack), crm_org(docgen.stack)
    with AdminBrowser(docgen, {"idp-a": a.credentials, "idp-b": crm.credentials}) as browser:
        # Sign-in at idp-a (code flow with PKCE as svc-docgen, no consent: first party).
        page = browser.open("/settings")
        assert page.status_code == 200, page.text
        assert browser.trail[:4] == [
            "/docgen/settings",
            "/docgen/auth/login",
            "/idp-a/authorize",
            "/idp-a/login",
        ]
        assert text_of(page, "signed-in-as") == f"boss · Tenant {a.tenant}"
        assert text_of(page, "secret-key-state").startswith("Not issued yet")
        assert text_of(page, "print-token-state") == "Not set."
        assert text_of(page, "crm-token-state") == "Not set."
        assert f"/docgen/api/batch-print?tenant_ID={a.tenant}" in text_of(page, "endpoint")

        # S1401–S1406: the key, shown once.
        shown = browser.submit(page, "/settings/secret-key")
        assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
        found = _KEY.search(shown.text)
        assert found
        key = found.group(1)
        page = browser.open("/settings")
        assert text_of(page, "secret-key-state").startswith("Issued")
        assert key not in page.text
        ok = httpx.post(docgen.batch_url(a.tenant), auth=httpx.DigestAuth(a.tenant, key))
        assert ok.status_code == 202

        # FIG. 11: "Get print token" — idp-a answers from the admin's session, no login asked.
        done = browser.submit(page, "/settings/print-token")
        assert done.status_code == 200, done.text
        assert "/idp-a/login" not in browser.trail
        assert browser.trail[-1] == "/docgen/auth/callback"
        assert "The print service token is stored" in done.text

        # FIG. 13: "Get CRM token" — the code flow at idp-b, logging in as the CRM's admin.
        page = browser.open("/settings")
        done = browser.submit(page, "/settings/crm-token")
        assert done.status_code == 200, done.text
        assert browser.trail[1:4] == ["/idp-b/authorize", "/idp-b/login", "/idp-b/authorize"]
        assert browser.trail[-1] == "/docgen/auth/crm-callback"
        assert "The CRM token is stored" in done.text and crm.tenant in done.text

        page = browser.open("/settings")
        assert text_of(page, "print-token-state") == "Stored."
        assert text_of(page, "crm-token-state") == "Stored."
        assert crm.tenant in page.text and "crm-admin" in page.text

        # The rotation from the page: a new key, the old one still accepted for the overlap.
        shown = browser.submit(page, "/settings/secret-key/rotate", overlap_hours="24")
        found = _KEY.search(shown.text)
        assert found and found.group(1) != key
        assert "still accepted until" in shown.text

    both = stored(docgen, a.tenant)
    assert both.print is not None and both.crm is not None
    assert (both.print.user, both.print.set_by) == ("boss", "user:boss")
    assert (both.crm.issuer, both.crm.tenant_id, both.crm.user) == (
        "idp-b",
        crm.tenant,
        "crm-admin",
    )
    info = introspect(docgen, "idp-b", both.crm.access_token)
    assert (info["active"], info["tenant_id"], info["client_id"]) == (
        True,
        crm.tenant,
        "svc-docgen",
    )
    assert info["scope"] == tokens.CRM_SCOPE
    assert tokens.verify_print_token(docgen.rt, tenant_id=a.tenant).valid
    # S1603–S1605: the CRM token renews at idp-b.
    renewed = tokens.refresh_crm(docgen.rt, tenant_id=a.tenant)
    assert renewed.access_token != both.crm.access_token and renewed.tenant_id == crm.tenant
    assert introspect(docgen, "idp-b", renewed.access_token)["active"] is True


def test_fig_12_the_print_token_error_page(docgen: Docgen) -> None:
    a, b = org(docgen.stack), org(docgen.stack)
    with AdminBrowser(docgen, {"idp-a": a.credentials}) as browser:
        page = browser.open("/settings")
        form = form_to(page.text, "/docgen/settings/print-token")
        leave = browser.http.post(urljoin(str(page.url), form.action), data=form.hidden)
        assert leave.status_code == 303
        state = parse_qs(urlsplit(leave.headers["location"]).query)["state"][0]
        # The issuer answers with an error (S1201 NO → S1202).
        denied = browser.http.get(
            f"{docgen.base_url}/auth/callback",
            params={"error": "access_denied", "state": state},
        )
        assert denied.status_code == 400
        assert "The print service token was not stored" in denied.text
        said = text_of(denied, "message")
        assert "The request was declined." in said and "access_denied" not in said  # logged

        # The browser's idp-a session is now another tenant's user: refused, nothing stored.
        browser.login(*b.credentials)
        page = browser.open("/settings")
        refused = browser.submit(page, "/settings/print-token")
        assert refused.status_code == 400
        assert "belongs to another tenant" in text_of(refused, "message")
    assert stored(docgen, a.tenant).print is None and stored(docgen, b.tenant).print is None


def test_a_stray_crm_callback_is_refused(docgen: Docgen) -> None:
    with httpx.Client() as http:
        answer = http.get(
            f"{docgen.base_url}/auth/crm-callback", params={"code": "x", "state": "y"}
        )
    assert answer.status_code == 400 and "does not belong" in answer.text


def test_the_settings_forms_need_their_csrf_token(docgen: Docgen) -> None:
    a = org(docgen.stack)
    with AdminBrowser(docgen, {"idp-a": a.credentials}) as browser:
        page = browser.open("/settings")
        assert page.status_code == 200
        for action in ("/settings/secret-key", "/settings/print-token", "/settings/crm-token"):
            forged = browser.http.post(f"{docgen.base_url}{action}", data={"csrf": "forged"})
            assert forged.status_code == 400 and "expired" in forged.text
    with docgen.db.session() as s:
        assert not service.key_state(s, tenant_id=a.tenant).issued


def test_a_non_administrator_cannot_open_the_settings(docgen: Docgen) -> None:
    stack = docgen.stack
    tenant = stack.tenant(prefix="a")
    stack.user(tenant, "clerk", PASSWORD)  # not an administrator
    with AdminBrowser(docgen, {"idp-a": (tenant, "clerk", PASSWORD)}) as browser:
        page = browser.open("/settings")
    assert page.status_code == 403
