"""Authlib's OAuth clients, unchanged, against printcloud's authorization server.

Every endpoint is discovered from RFC 8414 metadata and reached over real HTTP
on loopback; the browser part of the code flow is `tests.helpers.browser.Browser`,
which reads the real login and consent pages.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.requests_client import OAuthError as RequestsOAuthError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from tests.conftest import Stack
from tests.helpers.browser import Browser

REDIRECT = "https://app.example/callback"


def discover(stack: Stack, issuer: str = "idp-a") -> AuthorizationServerMetadata:
    url = f"{stack.issuer_url(issuer)}/.well-known/oauth-authorization-server"
    meta = AuthorizationServerMetadata(httpx.get(url).raise_for_status().json())
    meta.validate()
    return meta


def introspect(
    meta: AuthorizationServerMetadata, auth: tuple[str, str], token: str
) -> dict[str, object]:
    """RFC 7662 as a resource server would call it."""
    answer = httpx.post(meta["introspection_endpoint"], auth=auth, data={"token": token})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# -- RFC 8414 -----------------------------------------------------------------------


@pytest.mark.parametrize("issuer", ["idp-a", "idp-b"])
def test_metadata_at_both_locations_validates(stack: Stack, issuer: str) -> None:
    issuer_url = stack.issuer_url(issuer)
    under_issuer = httpx.get(f"{issuer_url}/.well-known/oauth-authorization-server")
    rfc_location = httpx.get(f"{stack.base_url}/.well-known/oauth-authorization-server/{issuer}")
    assert under_issuer.status_code == rfc_location.status_code == 200
    assert under_issuer.headers["content-type"].startswith("application/json")
    for body in (under_issuer.json(), rfc_location.json()):
        AuthorizationServerMetadata(body).validate()
        assert body["issuer"] == issuer_url
        for key in (
            "authorization_endpoint",
            "token_endpoint",
            "introspection_endpoint",
            "revocation_endpoint",
            "device_authorization_endpoint",
        ):
            assert body[key].startswith(f"{issuer_url}/"), key
        assert body["code_challenge_methods_supported"] == ["S256"]
        assert "urn:ietf:params:oauth:grant-type:token-exchange" in body["grant_types_supported"]
    assert under_issuer.json() == rfc_location.json()


def test_each_issuer_has_its_own_metadata(stack: Stack) -> None:
    a, b = stack.metadata("idp-a"), stack.metadata("idp-b")
    assert a["issuer"] != b["issuer"]
    assert a["token_endpoint"] != b["token_endpoint"]
    assert (
        httpx.get(f"{stack.base_url}/.well-known/oauth-authorization-server/nobody").status_code
        == 404
    )


# -- client credentials ------------------------------------------------------------


def test_client_credentials(stack: Stack) -> None:
    meta = discover(stack)
    tenant = stack.tenant()
    client_id, secret = stack.client(tenant, scope="print profile")
    assert secret
    with OAuth2Session(client_id, secret, scope="print") as oauth:
        token = oauth.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        assert token["token_type"] == "Bearer" and token["scope"] == "print"
        assert "refresh_token" not in token
        info = oauth.introspect_token(
            meta["introspection_endpoint"], token=token["access_token"]
        ).json()
    assert info["active"] is True
    assert (info["tenant_id"], info["client_id"], info["scope"]) == (tenant, client_id, "print")
    assert info["sub"] == client_id and "username" not in info


def test_client_credentials_bad_secret_is_invalid_client(stack: Stack) -> None:
    meta = discover(stack)
    client_id, _ = stack.client(stack.tenant())
    with (
        OAuth2Session(client_id, "not-the-secret") as oauth,
        pytest.raises(RequestsOAuthError) as caught,
    ):
        oauth.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert caught.value.error == "invalid_client"


# -- authorization code + PKCE -----------------------------------------------------------


def _user_and_client(stack: Stack, kind: str) -> tuple[tuple[str, str, str], str, str | None]:
    tenant = stack.tenant()
    username, password = stack.user(tenant)
    client_id, secret = stack.client(tenant, kind=kind, redirect_uris=[REDIRECT])
    return (tenant, username, password), client_id, secret


def test_code_flow_public_client_with_pkce(stack: Stack) -> None:
    meta = discover(stack)
    credentials, client_id, secret = _user_and_client(stack, "public")
    assert secret is None
    verifier = generate_token(48)
    with (
        OAuth2Session(
            client_id,
            token_endpoint_auth_method="none",
            scope="print",
            redirect_uri=REDIRECT,
            code_challenge_method="S256",
        ) as oauth,
        Browser(stack.base_url) as browser,
    ):
        url, state = oauth.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier
        )
        assert "code_challenge=" in url
        done = browser.authorize(url, credentials=credentials)
        assert done.pages == ["login", "consent"]
        assert done.response.status_code == 302
        assert done.location.startswith(f"{REDIRECT}?")
        query = parse_qs(urlsplit(done.location).query)
        assert query["state"] == [state] and query["code"]
        token = dict(
            oauth.fetch_token(
                meta["token_endpoint"], authorization_response=done.location, code_verifier=verifier
            )
        )
        assert token["token_type"] == "Bearer" and token["scope"] == "print"
        # A public client refreshes with its client_id alone.
        refreshed = dict(oauth.refresh_token(meta["token_endpoint"]))
        assert refreshed["refresh_token"] != token["refresh_token"]
    # A public client cannot introspect; a confidential client of the same tenant can.
    tenant = credentials[0]
    rs_id, rs_secret = stack.client(tenant, name="resource server")
    assert rs_secret
    assert introspect(meta, (rs_id, rs_secret), token["access_token"])["active"] is True
    info = introspect(meta, (rs_id, rs_secret), refreshed["access_token"])
    assert info["active"] is True
    assert (info["client_id"], info["tenant_id"], info["username"], info["scope"]) == (
        client_id,
        tenant,
        credentials[1],
        "print",
    )


# Authlib warns on importing its httpx integration without the `httpx2` package installed.
@pytest.mark.filterwarnings(
    "ignore:The httpx module is deprecated:authlib.deprecate.AuthlibDeprecationWarning"
)
def test_code_flow_confidential_client(stack: Stack) -> None:
    from authlib.integrations.httpx_client import OAuth2Client

    meta = discover(stack)
    credentials, client_id, secret = _user_and_client(stack, "confidential")
    assert secret
    verifier = generate_token(48)
    with (
        OAuth2Client(
            client_id,
            secret,
            scope="print profile",
            redirect_uri=REDIRECT,
            code_challenge_method="S256",
        ) as oauth,
        Browser(stack.base_url) as browser,
    ):
        url, state = oauth.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier
        )
        done = browser.authorize(url, credentials=credentials)
        assert done.pages == ["login", "consent"]
        assert done.location.startswith(f"{REDIRECT}?") and f"state={state}" in done.location
        token = oauth.fetch_token(
            meta["token_endpoint"], authorization_response=done.location, code_verifier=verifier
        )
        assert set(token["scope"].split()) == {"print", "profile"}
        info = oauth.introspect_token(
            meta["introspection_endpoint"], token=token["access_token"]
        ).json()
    assert info["active"] is True
    assert (info["client_id"], info["username"], info["tenant_id"]) == (
        client_id,
        credentials[1],
        credentials[0],
    )
    me = httpx.get(
        f"{stack.issuer_url()}/api/me", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["acting_kind"] == "user"


def test_consent_denied_redirects_access_denied(stack: Stack) -> None:
    meta = discover(stack)
    credentials, client_id, secret = _user_and_client(stack, "confidential")
    with (
        OAuth2Session(client_id, secret, redirect_uri=REDIRECT) as oauth,
        Browser(stack.base_url) as browser,
    ):
        url, state = oauth.create_authorization_url(meta["authorization_endpoint"])
        done = browser.authorize(url, credentials=credentials, decision="deny")
    assert done.pages == ["login", "consent"]
    query = parse_qs(urlsplit(done.location).query)
    assert query["error"] == ["access_denied"] and query["state"] == [state]
    assert "code" not in query


# -- refresh, rotation and reuse detection ------------------------------------------------


def _code_flow_token(
    stack: Stack, meta: AuthorizationServerMetadata
) -> tuple[OAuth2Session, tuple[str, str]]:
    """A confidential client holding a user's tokens (refresh token included) from a code flow."""
    credentials, client_id, secret = _user_and_client(stack, "confidential")
    assert secret
    verifier = generate_token(48)
    oauth = OAuth2Session(
        client_id, secret, scope="print", redirect_uri=REDIRECT, code_challenge_method="S256"
    )
    with Browser(stack.base_url) as browser:
        url, _ = oauth.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier
        )
        done = browser.authorize(url, credentials=credentials)
    oauth.fetch_token(
        meta["token_endpoint"], authorization_response=done.location, code_verifier=verifier
    )
    return oauth, (client_id, secret)


def test_refresh_rotates_and_reuse_revokes_family(stack: Stack) -> None:
    meta = discover(stack)
    oauth, auth = _code_flow_token(stack, meta)
    with oauth:
        first = dict(oauth.token)
        second = dict(oauth.refresh_token(meta["token_endpoint"]))
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]
        third = dict(oauth.refresh_token(meta["token_endpoint"]))
        assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
        # A rotated refresh token is no longer active, the newest one is.
        assert introspect(meta, auth, first["refresh_token"])["active"] is False
        assert introspect(meta, auth, third["refresh_token"])["active"] is True
        assert introspect(meta, auth, third["access_token"])["active"] is True

        # Reuse of a rotated token: refused, and the whole family is revoked.
        with pytest.raises(RequestsOAuthError) as caught:
            oauth.refresh_token(meta["token_endpoint"], refresh_token=second["refresh_token"])
        assert caught.value.error == "invalid_grant"
        for token in (third["refresh_token"], third["access_token"], second["access_token"]):
            assert introspect(meta, auth, token)["active"] is False
        with pytest.raises(RequestsOAuthError) as caught:
            oauth.refresh_token(meta["token_endpoint"], refresh_token=third["refresh_token"])
        assert caught.value.error == "invalid_grant"


# -- revocation (RFC 7009) ------------------------------------------------------------


def test_revoke_access_token(stack: Stack) -> None:
    meta = discover(stack)
    oauth, auth = _code_flow_token(stack, meta)
    with oauth:
        token = dict(oauth.token)
        answer = oauth.revoke_token(
            meta["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token"
        )
        assert answer.status_code == 200
        assert introspect(meta, auth, token["access_token"])["active"] is False
        # Only that access token: the refresh token still works.
        assert introspect(meta, auth, token["refresh_token"])["active"] is True
        fresh = oauth.refresh_token(meta["token_endpoint"])
        assert introspect(meta, auth, fresh["access_token"])["active"] is True


def test_revoke_refresh_token_revokes_family(stack: Stack) -> None:
    meta = discover(stack)
    oauth, auth = _code_flow_token(stack, meta)
    with oauth:
        first = dict(oauth.token)
        second = dict(oauth.refresh_token(meta["token_endpoint"]))
        answer = oauth.revoke_token(
            meta["revocation_endpoint"],
            token=second["refresh_token"],
            token_type_hint="refresh_token",
        )
        assert answer.status_code == 200
        for token in (second["refresh_token"], second["access_token"], first["access_token"]):
            assert introspect(meta, auth, token)["active"] is False
        with pytest.raises(RequestsOAuthError) as caught:
            oauth.refresh_token(meta["token_endpoint"], refresh_token=second["refresh_token"])
        assert caught.value.error == "invalid_grant"
