"""The admin API the way an admin tool reaches it: a browser session exchanged for a token
with scope `admin` (RFC 8693), a service client's token, and a client with one token."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Stack

ISSUER = "idp-a"


EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


SESSION_TYPE = "urn:printcloud:params:oauth:token-type:auth_session"


PASSWORD = "correct horse battery"


def login(stack: Stack, tenant: str, username: str, password: str = PASSWORD) -> str:
    """Sign in at the login page; answers the browser session id."""
    with httpx.Client(base_url=stack.base_url, timeout=60) as web:
        assert web.get(f"/{ISSUER}/login").status_code == 200
        answer = web.post(
            f"/{ISSUER}/login",
            data={
                "tenant": tenant,
                "username": username,
                "password": password,
                "csrf": web.cookies["pc_csrf"],
                "next": f"/{ISSUER}/account",
            },
        )
        assert answer.status_code == 303, answer.text
        return str(web.cookies[f"pc_sid_{ISSUER.replace('-', '_')}"])


def user_token(stack: Stack, tenant: str, username: str, scope: str = "admin") -> str:
    """A token for the user, exchanged from their browser session by the auth service client."""
    client_id, secret = stack.settings.service_client(ISSUER, "auth")
    answer = httpx.post(
        f"{stack.issuer_url(ISSUER)}/token",
        auth=(client_id, secret),
        data={
            "grant_type": EXCHANGE,
            "subject_token": login(stack, tenant, username),
            "subject_token_type": SESSION_TYPE,
            "scope": scope,
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def service_token(stack: Stack, scope: str = "admin") -> str:
    client_id, secret = stack.settings.service_client(ISSUER, "auth")
    answer = httpx.post(
        f"{stack.issuer_url(ISSUER)}/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": scope},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


class Api:
    """The admin API with one token."""

    def __init__(self, stack: Stack, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=f"{stack.issuer_url(ISSUER)}/api/admin", headers=headers, timeout=60
        )

    def __getattr__(self, method: str) -> Any:
        return getattr(self.http, method)
