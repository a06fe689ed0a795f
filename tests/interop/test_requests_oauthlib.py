"""requests-oauthlib (on oauthlib), unchanged, against printcloud's authorization server.

Endpoints come from RFC 8414 metadata; everything goes over real HTTP on
loopback. oauthlib refuses plain http unless OAUTHLIB_INSECURE_TRANSPORT is
set, which is what a developer does against a local server too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oauthlib.oauth2 import BackendApplicationClient, InvalidGrantError, InvalidScopeError
from requests_oauthlib import OAuth2Session

from tests.conftest import Stack
from tests.helpers.browser import Browser

REDIRECT = "https://app.example/callback"


@pytest.fixture(autouse=True)
def _plain_http_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def introspect(meta: dict[str, Any], auth: tuple[str, str], token: str) -> dict[str, Any]:
    answer = httpx.post(meta["introspection_endpoint"], auth=auth, data={"token": token})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_client_credentials_backend_application(stack: Stack) -> None:
    meta = stack.metadata()
    tenant = stack.tenant()
    client_id, secret = stack.client(tenant, scope="print jobs profile")
    assert secret
    # oauthlib sends the scope it finds on the client object, not the session's.
    client = BackendApplicationClient(client_id=client_id, scope=["print", "jobs"])
    with OAuth2Session(client=client, scope=["print", "jobs"]) as oauth:
        token = oauth.fetch_token(meta["token_endpoint"], client_id=client_id, client_secret=secret)
        assert oauth.authorized
        # The token works as a bearer token on a protected API, sent by the same library.
        me = oauth.get(f"{stack.issuer_url()}/api/me")
    assert token["token_type"] == "Bearer" and set(token["scope"]) == {"print", "jobs"}
    assert me.status_code == 200, me.text
    assert me.json()["client_id"] == client_id and me.json()["tenant_id"] == tenant
    info = introspect(meta, (client_id, secret), token["access_token"])
    assert info["active"] is True
    assert (info["tenant_id"], info["client_id"]) == (tenant, client_id)
    assert set(info["scope"].split()) == {"print", "jobs"}


def test_client_credentials_scope_outside_the_client_is_refused(stack: Stack) -> None:
    meta = stack.metadata()
    client_id, secret = stack.client(stack.tenant(), scope="print")
    client = BackendApplicationClient(client_id=client_id, scope=["print", "admin"])
    with (
        OAuth2Session(client=client, scope=["print", "admin"]) as oauth,
        pytest.raises(InvalidScopeError),
    ):
        oauth.fetch_token(meta["token_endpoint"], client_id=client_id, client_secret=secret)


def test_code_flow_with_pkce_then_refresh_rotation_and_reuse(stack: Stack) -> None:
    meta = stack.metadata()
    tenant = stack.tenant()
    username, password = stack.user(tenant)
    client_id, secret = stack.client(tenant, redirect_uris=[REDIRECT])
    assert secret
    auth = (client_id, secret)
    with (
        OAuth2Session(client_id, redirect_uri=REDIRECT, scope=["print"], pkce="S256") as oauth,
        Browser(stack.base_url) as browser,
    ):
        url, state = oauth.authorization_url(meta["authorization_endpoint"])
        assert "code_challenge_method=S256" in url
        done = browser.authorize(url, credentials=(tenant, username, password))
        assert done.pages == ["login", "consent"]
        assert parse_qs(urlsplit(done.location).query)["state"] == [state]
        first = dict(
            oauth.fetch_token(
                meta["token_endpoint"], authorization_response=done.location, client_secret=secret
            )
        )
        assert first["refresh_token"] and first["scope"] == ["print"]
        assert introspect(meta, auth, first["access_token"])["username"] == username

        second = dict(oauth.refresh_token(meta["token_endpoint"], auth=auth))
        assert second["refresh_token"] != first["refresh_token"]
        third = dict(oauth.refresh_token(meta["token_endpoint"], auth=auth))
        assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
        assert introspect(meta, auth, third["access_token"])["active"] is True

        # The rotated token, presented again: invalid_grant, and the family is gone.
        with pytest.raises(InvalidGrantError):
            oauth.refresh_token(
                meta["token_endpoint"], refresh_token=first["refresh_token"], auth=auth
            )
        for token in (third["access_token"], third["refresh_token"]):
            assert introspect(meta, auth, token)["active"] is False
        with pytest.raises(InvalidGrantError):
            oauth.refresh_token(
                meta["token_endpoint"], refresh_token=third["refresh_token"], auth=auth
            )
