"""Typed HTTP client of the authorization server, for other services and the CLI.

Endpoints are discovered from the issuer's RFC 8414 metadata. OAuth errors are
raised as `OAuthError` carrying the wire code and description.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

SESSION_TOKEN_TYPE = "urn:printcloud:params:oauth:token-type:auth_session"  # noqa: S105
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    token_type: str = "Bearer"  # noqa: S105

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenSet:
        return cls(
            access_token=data["access_token"],
            expires_in=int(data.get("expires_in", 0)),
            scope=data.get("scope", ""),
            refresh_token=data.get("refresh_token"),
            token_type=data.get("token_type", "Bearer"),
        )


class AuthClient:
    """Talks to one issuer as one client."""

    def __init__(
        self,
        issuer_url: str,
        *,
        client_id: str,
        client_secret: str | None,
        http: httpx.Client | None = None,
    ) -> None:
        self.issuer_url = issuer_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.http = http or httpx.Client(timeout=10)
        self._meta: dict[str, Any] | None = None

    def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            resp = self.http.get(f"{self.issuer_url}/.well-known/oauth-authorization-server")
            resp.raise_for_status()
            self._meta = dict(resp.json())
        return self._meta

    def _post(self, endpoint: str, data: dict[str, str]) -> dict[str, Any]:
        url = self.metadata()[endpoint]
        if self.client_secret is None:
            resp = self.http.post(url, data={**data, "client_id": self.client_id})
        else:
            resp = self.http.post(url, data=data, auth=(self.client_id, self.client_secret))
        body: dict[str, Any] = resp.json() if resp.content else {}
        if resp.status_code >= 400:
            raise OAuthError(
                resp.status_code,
                str(body.get("error", "error")),
                str(body.get("error_description", "")),
            )
        return body

    def client_credentials(
        self, *, scope: str | None = None, local_user: dict[str, Any] | None = None
    ) -> TokenSet:
        data = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = scope
        if local_user is not None:
            data["local_user"] = json.dumps(local_user)
        return TokenSet.from_json(self._post("token_endpoint", data))

    def exchange_session(self, session_id: str, *, scope: str | None = None) -> TokenSet:
        """RFC 8693: a browser's authentication session (seed 000's AUTH_ID) → tokens."""
        data = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": session_id,
            "subject_token_type": SESSION_TOKEN_TYPE,
        }
        if scope:
            data["scope"] = scope
        return TokenSet.from_json(self._post("token_endpoint", data))

    def refresh(self, refresh_token: str) -> TokenSet:
        return TokenSet.from_json(
            self._post(
                "token_endpoint", {"grant_type": "refresh_token", "refresh_token": refresh_token}
            )
        )

    def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str | None = None
    ) -> TokenSet:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            data["code_verifier"] = code_verifier
        return TokenSet.from_json(self._post("token_endpoint", data))

    def introspect(self, token: str) -> dict[str, Any]:
        return self._post("introspection_endpoint", {"token": token})

    def revoke(self, token: str) -> None:
        self._post("revocation_endpoint", {"token": token})

    def me(self, access_token: str) -> dict[str, Any]:
        resp = self.http.get(
            f"{self.issuer_url}/api/me", headers={"Authorization": f"Bearer {access_token}"}
        )
        body: dict[str, Any] = resp.json()
        if resp.status_code >= 400:
            raise OAuthError(
                resp.status_code, str(body.get("error")), str(body.get("error_description", ""))
            )
        return body
