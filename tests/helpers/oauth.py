"""OAuth at idp-a over real HTTP: PKCE, authorization URLs, the token endpoint (codes,
introspection, card logins) and a tenant with a user and a client registered for REDIRECT."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from printcloud.auth.service import CARD_GRANT
from tests.conftest import Stack
from tests.helpers.browser import Browser

REDIRECT = "https://app.example/callback"


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


SESSION_TOKEN_TYPE = "urn:printcloud:params:oauth:token-type:auth_session"


ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def authorize_url(meta: dict[str, Any], client_id: str, **params: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "print",
        "state": secrets.token_urlsafe(8),
        **params,
    }
    return (
        f"{meta['authorization_endpoint']}?{urlencode({k: v for k, v in query.items() if v != ''})}"
    )


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def post_token(
    meta: dict[str, Any], data: dict[str, str], auth: tuple[str, str] | None = None
) -> httpx.Response:
    return httpx.post(meta["token_endpoint"], data=data, auth=auth)


def introspect(stack: Stack, meta: dict[str, Any], token: str) -> dict[str, Any]:
    """Introspect as the platform's resource servers do (a service client sees every tenant)."""
    answer = httpx.post(
        meta["introspection_endpoint"],
        auth=stack.settings.service_client("idp-a", "auth"),
        data={"token": token},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def oauth_error(answer: httpx.Response, status: int = 400) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["cache-control"] == "no-store"
    return str(answer.json()["error"])


class Setup:
    """A tenant with a user and an OAuth client registered for REDIRECT."""

    def __init__(self, stack: Stack, kind: str = "public", *, user: bool = True) -> None:
        self.tenant = stack.tenant()
        self.username, self.password = stack.user(self.tenant) if user else ("", "")
        self.client_id, self.secret = stack.client(self.tenant, kind=kind, redirect_uris=[REDIRECT])

    @property
    def credentials(self) -> tuple[str, str, str]:
        return self.tenant, self.username, self.password


def confidential(stack: Stack, tenant: str) -> tuple[str, str]:
    client_id, secret = stack.client(tenant)
    assert secret
    return client_id, secret


def code_for(browser: Browser, meta: dict[str, Any], setup: Setup, challenge: str) -> str:
    done = browser.authorize(
        authorize_url(
            meta, setup.client_id, code_challenge=challenge, code_challenge_method="S256"
        ),
        credentials=setup.credentials,
    )
    assert done.response.status_code == 302 and done.location.startswith(REDIRECT), (
        done.response.text
    )
    return query_of(done.location)["code"]


def exchange(
    meta: dict[str, Any], setup: Setup, code: str, verifier: str, **extra: str
) -> httpx.Response:
    return post_token(
        meta,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": setup.client_id,
            "code_verifier": verifier,
            **extra,
        },
    )


def card_login(
    stack: Stack, device: tuple[str, str | None], card: str, **extra: str
) -> httpx.Response:
    client_id, secret = device
    assert secret is not None
    return httpx.post(
        f"{stack.issuer_url()}/token",
        data={"grant_type": CARD_GRANT, "card_id": card, **extra},
        auth=(client_id, secret),
    )
