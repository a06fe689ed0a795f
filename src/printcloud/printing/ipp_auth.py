"""Who sends an IPP request to a queue (issue 14): HTTP Basic against the tenant's
directory, or an OAuth bearer token of idp-a. `requesting-user-name` never
authenticates: the job's owner is the authenticated user.

- **Bearer** (RFC 6750): the print service's usual check (`core.guard`, introspection
  with a short cache); scope `print`, and the token's tenant must be the queue's
  (another tenant's token finds no queue: 404, as everywhere in printcloud).
- **Basic** (RFC 7617, UTF-8): the print service never reads the directory. It asks
  the authorization server for a token of that user with the credentials
  (`AuthClient.password_token`, RFC 6749 §4.3 with the queue's tenant, a grant only
  the platform's print service may use), then checks that token like a bearer one.
  The issuer counts failures on the sign-in page's per-account limiter, so IPP is no
  faster way to guess a password. A good answer is remembered for the token's life
  under a keyed hash of tenant, user and password (a random key of this process:
  nothing here can be turned back into a password); every request still passes the
  guard, so a revoked token or a disabled user is refused within its cache time.
  Wrong credentials are never remembered: each goes to the issuer and is counted.

Refusals are `Unauthorized` with a challenge for both schemes (`CredentialsRequired`),
which the IPP endpoint answers as HTTP 401, as RFC 8010 §4 (HTTP authentication) wants.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from functools import partial

import httpx
from starlette.concurrency import run_in_threadpool

from printcloud.auth.client import AuthClient, OAuthError
from printcloud.core.errors import NotFound, RateLimited, Unauthorized, Unavailable
from printcloud.core.guard import Guard, Principal
from printcloud.core.http import client as http_client
from printcloud.core.settings import Settings

#: Remembered Basic credentials at most (the oldest are dropped beyond).
MAX_REMEMBERED = 10_000


class CredentialsRequired(Unauthorized):
    """401 for an IPP queue: the client may answer with Basic or Bearer credentials."""

    def __init__(self, description: str = "", *, realm: str = "printcloud") -> None:
        super().__init__(description or "authentication required")
        self.realm = "".join(c for c in realm if c.isalnum() or c in "-_. ")

    def headers(self) -> dict[str, str]:
        # Basic first: CUPS and the operating systems' print dialogs answer the first
        # scheme they know, and they know Basic.
        return {
            "WWW-Authenticate": (
                f'Basic realm="{self.realm}", charset="UTF-8", Bearer realm="{self.realm}"'
            )
        }


def parse_basic(value: str) -> tuple[str, str] | None:
    """RFC 7617: the user-id and password of a Basic header's token68, or None."""
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or any(ord(c) < 32 for c in user + password):
        return None
    return user, password


class QueueAuthenticator:
    """Authenticates the requests of one print service's IPP queues."""

    def __init__(self, settings: Settings, guard: Guard) -> None:
        issuer = settings.issuers[0]
        client_id, secret = settings.service_client(issuer, "printing")
        self.guard = guard
        self._issuer = AuthClient(
            settings.issuer_url(issuer),
            client_id=client_id,
            client_secret=secret,
            http=http_client(timeout=15),
        )
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        #: keyed digest of (tenant, user, password) → (access token, monotonic until)
        self._tokens: dict[str, tuple[str, float]] = {}

    def close(self) -> None:
        self._issuer.http.close()

    async def principal(self, authorization: str, *, tenant_id: str) -> Principal:
        """The caller of a queue of `tenant_id`, or `CredentialsRequired` (401)."""
        realm = f"printcloud {tenant_id}"
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and value.strip():
            principal = await self._verify(value.strip(), realm)
            if principal.tenant_id != tenant_id:
                raise NotFound("unknown queue")
            return principal
        if scheme == "basic":
            pair = parse_basic(value)
            if pair is None:
                raise CredentialsRequired("unreadable Basic credentials", realm=realm)
            return await self._basic(tenant_id, *pair, realm=realm)
        raise CredentialsRequired(realm=realm)

    async def _verify(self, token: str, realm: str) -> Principal:
        try:
            principal = await self.guard.verify(token)
        except Unauthorized as exc:
            raise CredentialsRequired(exc.description, realm=realm) from exc
        if not principal.has_scopes("print"):
            raise CredentialsRequired("the token lacks scope print", realm=realm)
        return principal

    def _digest(self, tenant_id: str, user: str, password: str) -> str:
        message = "\x00".join((tenant_id, user, password)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def _basic(self, tenant_id: str, user: str, password: str, *, realm: str) -> Principal:
        key = self._digest(tenant_id, user, password)
        with self._lock:
            known = self._tokens.get(key)
        if known is not None and known[1] > time.monotonic():
            try:
                return await self._verify(known[0], realm)
            except CredentialsRequired:
                pass  # revoked meanwhile: ask the issuer again (the password may be gone)
        with self._lock:
            self._tokens.pop(key, None)
        ask = partial(
            self._issuer.password_token, tenant=tenant_id, username=user, password=password
        )
        try:
            issued = await run_in_threadpool(ask)
        except OAuthError as exc:
            if exc.status == 429:
                raise RateLimited(
                    "too many failed sign-ins for this account; try again later",
                    retry_after=exc.retry_after or 60,
                ) from exc
            if exc.error in ("invalid_grant", "invalid_request"):
                raise CredentialsRequired(exc.description or "refused", realm=realm) from exc
            raise Unavailable(f"the authorization server refused: {exc.error}") from exc
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise Unavailable("the authorization server is unreachable") from exc
        principal = await self._verify(issued.access_token, realm)
        with self._lock:
            if len(self._tokens) >= MAX_REMEMBERED:
                now = time.monotonic()
                self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
                while len(self._tokens) >= MAX_REMEMBERED:
                    self._tokens.pop(next(iter(self._tokens)))
            self._tokens[key] = (issued.access_token, time.monotonic() + issued.expires_in - 30)
        return principal
