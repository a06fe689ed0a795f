"""Typed HTTP client of the authorization server, for other services and the CLI.

Endpoints are discovered from the issuer's RFC 8414 metadata. OAuth errors are
raised as `OAuthError` carrying the wire code and description.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from printcloud.core.crypto import SecretBox, token_digest
from printcloud.core.http import client as http_client
from printcloud.core.http import error_of

SESSION_TOKEN_TYPE = "urn:printcloud:params:oauth:token-type:auth_session"  # noqa: S105
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105


class OAuthError(Exception):
    """The issuer refused: `status`, wire `error`, its description, and for a 429 the
    seconds its `Retry-After` asks to wait."""

    def __init__(
        self, status: int, error: str, description: str = "", *, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.status = status
        self.error = error
        self.description = description
        self.retry_after = retry_after

    @classmethod
    def of(cls, resp: httpx.Response) -> OAuthError:
        code, description = error_of(resp)
        retry_after = None
        if resp.status_code == 429:
            try:
                retry_after = max(1, int(resp.headers.get("Retry-After") or 60))
            except ValueError:
                retry_after = 60
        return cls(resp.status_code, code or "error", description, retry_after=retry_after)


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
        self.http = http or http_client(timeout=10)
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
        if resp.status_code >= 400:
            raise OAuthError.of(resp)
        body: dict[str, Any] = resp.json() if resp.content else {}
        return body

    def grant(self, grant_type: str, **params: str) -> dict[str, Any]:
        """The token endpoint's whole answer for any grant, an extension grant included
        (the device's card login): the caller reads the fields its grant adds."""
        return self._post("token_endpoint", {"grant_type": grant_type, **params})

    def client_credentials(
        self, *, scope: str | None = None, local_user: dict[str, Any] | None = None
    ) -> TokenSet:
        data = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = scope
        if local_user is not None:
            data["local_user"] = json.dumps(local_user)
        return TokenSet.from_json(self._post("token_endpoint", data))

    def password_token(
        self, *, tenant: str, username: str, password: str, scope: str = "print"
    ) -> TokenSet:
        """RFC 6749 §4.3 for a platform service (the print service's IPP queues): a token
        of the tenant's user whose directory credentials were given; `OAuthError`
        `invalid_grant` when the directory refuses them, 429 when the account is locked."""
        data = {
            "grant_type": "password",
            "tenant": tenant,
            "username": username,
            "password": password,
            "scope": scope,
        }
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

    def revoke(self, token: str, *, token_type_hint: str | None = None) -> None:
        data = {"token": token}
        if token_type_hint:
            data["token_type_hint"] = token_type_hint
        self._post("revocation_endpoint", data)

    def me(self, access_token: str) -> dict[str, Any]:
        resp = self.http.get(
            f"{self.issuer_url}/api/me", headers={"Authorization": f"Bearer {access_token}"}
        )
        if resp.status_code >= 400:
            raise OAuthError.of(resp)
        body: dict[str, Any] = resp.json()
        return body

    def tenant_clients(self, access_token: str, tenant_id: str) -> list[dict[str, Any]]:
        """The admin API's `GET /api/admin/tenants/{tenant_id}/clients` (`ClientRead`s),
        with a token of scope `admin` that manages the tenant (404 otherwise)."""
        resp = self.http.get(
            f"{self.issuer_url}/api/admin/tenants/{quote(tenant_id, safe='')}/clients",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        if resp.status_code >= 400:
            raise OAuthError.of(resp)
        body: list[dict[str, Any]] = resp.json()
        return body


# -- for services whose web pages sign users in here (first-party relying parties) ----------


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: the code challenge of `verifier`."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def safe_next(target: str | None, *, prefix: str, home: str | None = None) -> str:
    """Where to go after signing in: only a path under `prefix` (no open redirects);
    `home` (default `prefix/`) otherwise."""
    home = home or f"{prefix}/"
    if not target:
        return home
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not parts.path.startswith(f"{prefix}/")
        or "\\" in target
        or any(ord(c) < 32 for c in target)
        or "/../" in f"{parts.path}/"
    ):
        return home
    return target


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser's tokens, kept sealed in a cookie (never readable by it)."""

    access_token: str
    refresh_token: str | None
    expires_at: float

    @classmethod
    def issued(cls, tokens: TokenSet, *, previous: WebSession | None = None) -> WebSession:
        return cls(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token or (previous.refresh_token if previous else None),
            expires_at=time.time() + tokens.expires_in,
        )

    def seal(self, box: SecretBox) -> str:
        return box.seal(
            json.dumps(
                {
                    "access_token": self.access_token,
                    "refresh_token": self.refresh_token,
                    "expires_at": self.expires_at,
                }
            )
        )

    @classmethod
    def unseal(cls, box: SecretBox, sealed: str | None) -> WebSession | None:
        if not sealed or len(sealed) > 4000:
            return None
        try:
            data = json.loads(box.open(sealed))
            return cls(
                access_token=str(data["access_token"]),
                refresh_token=str(data["refresh_token"]) if data.get("refresh_token") else None,
                expires_at=float(data["expires_at"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # another instance secret, or tampered with: sign in again


class RefreshOnce:
    """Refresh once per refresh token. The issuers rotate refresh tokens and revoke the
    whole family when a used one comes again, which two requests of one browser racing
    (a page and its live refresh) would otherwise do; the second gets the first's
    answer for a minute. One lock: refreshes are rare."""

    def __init__(self, refresh: Callable[[str], TokenSet]) -> None:
        self._refresh = refresh
        self._lock = threading.Lock()
        #: refresh token digest → (when it was used, what it gave)
        self._recent: dict[str, tuple[float, TokenSet]] = {}

    def __call__(self, refresh_token: str) -> TokenSet:
        key = token_digest(refresh_token)
        with self._lock:
            now = time.monotonic()
            self._recent = {k: v for k, v in self._recent.items() if now - v[0] < 60}
            if key in self._recent:
                used, tokens = self._recent[key]
                return replace(tokens, expires_in=max(0, tokens.expires_in - int(now - used)))
            tokens = self._refresh(refresh_token)
            self._recent[key] = (now, tokens)
            return tokens
