"""Grant behaviour of the authorization server, over real HTTP on every database.

Raw RFC requests (httpx) where the library clients in tests/interop would hide
the detail under test: PKCE and `state` rules, exact redirect URIs,
authorization-code replay (RFC 6749 §4.1.2), remembered consent (seed 002),
seed 001's `local_user`, revocation of other clients' tokens (RFC 7009 §2.1),
device authorization (RFC 8628) and token exchange of a browser session
(RFC 8693, seed 000 S1102-S1107 and FIG. 12's error path).
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.conftest import Stack
from tests.helpers.browser import Browser, form_to
from tests.helpers.oauth import (
    ACCESS_TOKEN_TYPE,
    DEVICE_CODE,
    REDIRECT,
    SESSION_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    Setup,
    authorize_url,
    code_for,
    confidential,
    exchange,
    introspect,
    oauth_error,
    pkce,
    post_token,
    query_of,
)

# -- client credentials, seed 001 ------------------------------------------------------


def test_client_credentials_local_user(stack: Stack) -> None:
    meta = stack.metadata()
    tenant = stack.tenant()
    device_id, device_secret = stack.client(tenant, kind="device")
    other_id, other_secret = stack.client(tenant, kind="confidential")
    assert device_secret and other_secret
    local = {"id": "jdoe", "name": "J. Doe", "groups": ["print"]}

    answer = post_token(
        meta,
        {"grant_type": "client_credentials", "local_user": json.dumps(local)},
        auth=(device_id, device_secret),
    )
    assert answer.status_code == 200, answer.text
    info = introspect(stack, meta, answer.json()["access_token"])
    assert info["active"] is True and info["local_user"] == local
    assert (info["tenant_id"], info["client_id"], info["sub"]) == (tenant, device_id, device_id)

    # Without local_user the token carries none.
    plain = post_token(
        meta, {"grant_type": "client_credentials"}, auth=(device_id, device_secret)
    ).json()
    assert "local_user" not in introspect(stack, meta, plain["access_token"])

    # Only device clients may name a local user, and it must be a JSON object with an id.
    refused = post_token(
        meta,
        {"grant_type": "client_credentials", "local_user": json.dumps(local)},
        auth=(other_id, other_secret),
    )
    assert oauth_error(refused) == "invalid_request"
    for bad in ("not json", "[1, 2]", '{"name": "no id"}', json.dumps({"id": "x" * 3000})):
        answer = post_token(
            meta,
            {"grant_type": "client_credentials", "local_user": bad},
            auth=(device_id, device_secret),
        )
        assert oauth_error(answer) == "invalid_request", bad


# -- authorization requests that must not reach the user ------------------------------------


def test_public_client_must_send_s256_pkce(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "public", user=False)
    _, challenge = pkce()
    with httpx.Client() as http:
        without = http.get(authorize_url(meta, setup.client_id, state="s1"))
        plain = http.get(
            authorize_url(
                meta,
                setup.client_id,
                state="s2",
                code_challenge=challenge,
                code_challenge_method="plain",
            )
        )
        fine = http.get(
            authorize_url(
                meta,
                setup.client_id,
                state="s3",
                code_challenge=challenge,
                code_challenge_method="S256",
            )
        )
    for answer, state in ((without, "s1"), (plain, "s2")):
        assert answer.status_code == 302
        assert answer.headers["location"].startswith(f"{REDIRECT}?")
        query = query_of(answer.headers["location"])
        assert query["error"] == "invalid_request" and query["state"] == state
        assert "code" not in query
    # The same request with S256 goes on to the login page.
    assert fine.status_code == 303 and fine.headers["location"].startswith("/idp-a/login?")


def test_state_is_required(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "confidential", user=False)
    answer = httpx.get(authorize_url(meta, setup.client_id, state=""))
    assert answer.status_code == 302
    query = query_of(answer.headers["location"])
    assert answer.headers["location"].startswith(f"{REDIRECT}?")
    assert query["error"] == "invalid_request" and "state" in query["error_description"]


def test_redirect_uri_must_match_exactly(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "confidential", user=False)
    for other in (
        f"{REDIRECT}/",
        f"{REDIRECT}?x=1",
        "https://app.example/callback2",
        "https://evil.example/callback",
        REDIRECT.upper(),
        "http://app.example/callback",
    ):
        answer = httpx.get(authorize_url(meta, setup.client_id, redirect_uri=other))
        assert answer.status_code == 400, other
        assert "location" not in answer.headers, other
        assert answer.headers["content-type"].startswith("text/html")
        assert "invalid_request" in answer.text
    unknown = httpx.get(authorize_url(meta, "no-such-client"))
    assert unknown.status_code == 400 and "location" not in unknown.headers


# -- authorization code -------------------------------------------------------------------


def test_code_is_single_use_and_replay_revokes_its_tokens(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "public")
    verifier, challenge = pkce()
    with Browser(stack.base_url) as browser:
        code = code_for(browser, meta, setup, challenge)
    first = exchange(meta, setup, code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert first.headers["cache-control"] == "no-store"
    assert introspect(stack, meta, tokens["access_token"])["active"] is True

    assert oauth_error(exchange(meta, setup, code, verifier)) == "invalid_grant"
    assert introspect(stack, meta, tokens["access_token"])["active"] is False
    assert introspect(stack, meta, tokens["refresh_token"])["active"] is False
    refreshed = post_token(
        meta,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": setup.client_id,
        },
    )
    assert oauth_error(refreshed) == "invalid_grant"


def test_wrong_code_verifier_and_redirect_uri_are_invalid_grant(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "public")
    verifier, challenge = pkce()
    other_verifier, _ = pkce()
    with Browser(stack.base_url) as browser:
        code = code_for(browser, meta, setup, challenge)
        second_code = code_for(browser, meta, setup, challenge)
    assert oauth_error(exchange(meta, setup, code, other_verifier)) == "invalid_grant"
    assert oauth_error(exchange(meta, setup, code, "")) == "invalid_request"
    missing = post_token(
        meta,
        {
            "grant_type": "authorization_code",
            "code": second_code,
            "client_id": setup.client_id,
            "redirect_uri": "https://app.example/other",
            "code_verifier": verifier,
        },
    )
    assert oauth_error(missing) == "invalid_grant"
    # Another client cannot redeem this client's code.
    stranger = Setup(stack, "public", user=False)
    stolen = post_token(
        meta,
        {
            "grant_type": "authorization_code",
            "code": second_code,
            "redirect_uri": REDIRECT,
            "client_id": stranger.client_id,
            "code_verifier": verifier,
        },
    )
    assert oauth_error(stolen) == "invalid_grant"


def test_remembered_consent_skips_the_consent_page(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "public")
    _, challenge = pkce()

    def url() -> str:
        return authorize_url(
            meta, setup.client_id, code_challenge=challenge, code_challenge_method="S256"
        )

    with Browser(stack.base_url) as browser:
        once = browser.authorize(url(), credentials=setup.credentials, remember=False)
        assert once.pages == ["login", "consent"] and "code=" in once.location
        # Not remembered: asked again. A decision without the page's CSRF token is refused.
        page = browser.http.get(url())
        form = form_to(page.text, "/idp-a/authorize")
        forged = browser.http.post(form.action, data={"csrf": "forged", "decision": "allow"})
        assert forged.status_code == 400 and "location" not in forged.headers
        asked_again = browser.authorize(url(), remember=True)
        assert asked_again.pages == ["consent"] and "code=" in asked_again.location
        remembered = browser.authorize(url())
        assert remembered.pages == []
        assert remembered.response.status_code == 302 and "code=" in remembered.location
        # A wider scope than was consented to is asked again.
        wider = browser.authorize(
            authorize_url(
                meta,
                setup.client_id,
                scope="print profile",
                code_challenge=challenge,
                code_challenge_method="S256",
            )
        )
        assert wider.pages == ["consent"]


# -- revocation (RFC 7009) ------------------------------------------------------------------


def test_revoking_another_clients_token_does_nothing(stack: Stack) -> None:
    meta = stack.metadata()
    tenant = stack.tenant()
    owner, other, stranger = (
        confidential(stack, tenant),
        confidential(stack, tenant),
        confidential(stack, stack.tenant()),
    )
    access = post_token(meta, {"grant_type": "client_credentials"}, auth=owner).json()[
        "access_token"
    ]
    for who in (other, stranger):
        answer = httpx.post(meta["revocation_endpoint"], auth=who, data={"token": access})
        assert answer.status_code == 200, answer.text
        assert introspect(stack, meta, access)["active"] is True
    # Nor may another tenant's client see the token (RFC 7662 §2.2: inactive, nothing more).
    peek = httpx.post(meta["introspection_endpoint"], auth=stranger, data={"token": access})
    assert peek.status_code == 200 and peek.json() == {"active": False}
    unknown = httpx.post(meta["revocation_endpoint"], auth=owner, data={"token": "nonsense"})
    assert unknown.status_code == 200
    mine = httpx.post(meta["revocation_endpoint"], auth=owner, data={"token": access})
    assert mine.status_code == 200
    assert introspect(stack, meta, access) == {"active": False}


# -- device authorization (RFC 8628) ----------------------------------------------------------


def _device_authorization(meta: dict[str, Any], client_id: str) -> dict[str, Any]:
    answer = httpx.post(
        meta["device_authorization_endpoint"], data={"client_id": client_id, "scope": "print"}
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_device_authorization(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "public")
    grant = _device_authorization(meta, setup.client_id)
    assert grant["verification_uri"] == f"{stack.issuer_url()}/device"
    assert grant["interval"] == stack.settings.device_poll_interval and grant["expires_in"] > 0
    poll = {
        "grant_type": DEVICE_CODE,
        "device_code": grant["device_code"],
        "client_id": setup.client_id,
    }

    assert oauth_error(post_token(meta, poll)) == "authorization_pending"
    # Polling again before `interval` seconds: slow_down (RFC 8628 §3.5).
    assert oauth_error(post_token(meta, poll)) == "slow_down"

    with Browser(stack.base_url) as browser:
        browser.login(*setup.credentials)
        page = browser.http.get(
            f"/idp-a/device?{urlencode({'user_code': grant['user_code'].lower()})}"
        )
        assert page.status_code == 200 and grant["user_code"] in page.text
        form = form_to(page.text, "/idp-a/device")
        assert form.hidden["user_code"] == grant["user_code"]
        done = browser.http.post(form.action, data={**form.hidden, "decision": "allow"})
        assert done.status_code == 200 and "Device allowed" in done.text
        # The code cannot be approved a second time.
        again = browser.http.post(form.action, data={**form.hidden, "decision": "allow"})
        assert again.status_code == 404

    issued = post_token(meta, poll)
    assert issued.status_code == 200, issued.text
    token = issued.json()
    info = introspect(stack, meta, token["access_token"])
    assert info["active"] is True
    assert (info["username"], info["tenant_id"], info["client_id"]) == (
        setup.username,
        setup.tenant,
        setup.client_id,
    )
    # The device code is spent.
    assert oauth_error(post_token(meta, poll)) == "invalid_grant"


def test_device_authorization_denied(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "public")
    grant = _device_authorization(meta, setup.client_id)
    with Browser(stack.base_url) as browser:
        browser.login(*setup.credentials)
        page = browser.http.get(grant["verification_uri_complete"])
        form = form_to(page.text, "/idp-a/device")
        assert (
            browser.http.post(form.action, data={**form.hidden, "decision": "deny"}).status_code
            == 200
        )
    poll = {
        "grant_type": DEVICE_CODE,
        "device_code": grant["device_code"],
        "client_id": setup.client_id,
    }
    assert oauth_error(post_token(meta, poll)) == "access_denied"
    # Another client cannot poll with this device code.
    other = Setup(stack, "public", user=False)
    stolen = post_token(meta, {**poll, "client_id": other.client_id})
    assert stolen.status_code in (400, 401) and stolen.json()["error"] in (
        "invalid_grant",
        "unauthorized_client",
    )


# -- token exchange of a browser session (RFC 8693, seed 000) -------------------------------------


def _exchange_session(
    stack: Stack, meta: dict[str, Any], session_id: str, issuer: str = "idp-a", **extra: str
) -> httpx.Response:
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": session_id,
        "subject_token_type": SESSION_TOKEN_TYPE,
        **extra,
    }
    return post_token(meta, data, auth=stack.settings.service_client(issuer, "docgen"))


def test_token_exchange_of_a_browser_session(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "public")
    with Browser(stack.base_url) as browser:
        browser.login(*setup.credentials)
        session_id = browser.session_id
        assert session_id

        answer = _exchange_session(stack, meta, session_id, scope="print docgen")
        assert answer.status_code == 200, answer.text
        token = answer.json()
        assert token["issued_token_type"] == ACCESS_TOKEN_TYPE
        assert token["token_type"] == "Bearer" and token["access_token"] and token["refresh_token"]
        assert set(token["scope"].split()) == {"print", "docgen"}
        info = introspect(stack, meta, token["access_token"])
        assert info["active"] is True
        assert (info["username"], info["tenant_id"], info["client_id"]) == (
            setup.username,
            setup.tenant,
            "svc-docgen",
        )
        # The refresh token is the service's to use.
        refreshed = post_token(
            meta,
            {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
            auth=stack.settings.service_client("idp-a", "docgen"),
        )
        assert refreshed.status_code == 200, refreshed.text
        assert (
            introspect(stack, meta, refreshed.json()["access_token"])["username"] == setup.username
        )

        # A session of idp-a means nothing at idp-b.
        at_b = _exchange_session(stack, stack.metadata("idp-b"), session_id, issuer="idp-b")
        assert oauth_error(at_b) == "invalid_grant"

        # FIG. 12: once the user signs out, the session can no longer be exchanged.
        account = browser.http.get("/idp-a/account")
        logout = form_to(account.text, "/idp-a/logout")
        assert browser.http.post(logout.action, data=logout.hidden).status_code == 303
    assert oauth_error(_exchange_session(stack, meta, session_id)) == "invalid_grant"


def test_token_exchange_errors(stack: Stack) -> None:
    meta = stack.metadata()
    assert oauth_error(_exchange_session(stack, meta, secrets.token_urlsafe(32))) == "invalid_grant"
    wrong_type = _exchange_session(
        stack, meta, secrets.token_urlsafe(32), subject_token_type=ACCESS_TOKEN_TYPE
    )
    assert oauth_error(wrong_type) == "invalid_request"
    wrong_wanted = _exchange_session(
        stack,
        meta,
        secrets.token_urlsafe(32),
        requested_token_type="urn:ietf:params:oauth:token-type:jwt",
    )
    assert oauth_error(wrong_wanted) == "invalid_request"
    missing = post_token(
        meta,
        {"grant_type": TOKEN_EXCHANGE, "subject_token_type": SESSION_TOKEN_TYPE},
        auth=stack.settings.service_client("idp-a", "docgen"),
    )
    assert oauth_error(missing) == "invalid_request"
    # An ordinary tenant client has no token-exchange grant.
    ordinary = post_token(
        meta,
        {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": "x",
            "subject_token_type": SESSION_TOKEN_TYPE,
        },
        auth=confidential(stack, stack.tenant()),
    )
    assert oauth_error(ordinary) == "unauthorized_client"
