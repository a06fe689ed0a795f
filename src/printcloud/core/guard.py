"""The resource-server guard every service uses (seed 001, claim 1).

An opaque bearer token is verified by RFC 7662 introspection at its issuer, answers
are cached for a short time (never past the token's expiry), and the result is
a `Principal`. A JWT access token (RFC 9068) is checked here, with no round trip to
the issuer: its signature against the issuer's JWKS (fetched over HTTP, cached, and
fetched again when a token names an unknown `kid`), `typ`, `iss`, `aud` and `exp`
(RFC 9068 §4); its claims are what introspection would have answered when it was
issued, so a revocation or demotion reaches it only when it expires (docs/auth.md).

The tenant's *local authentication cooperation mode* (`local_auth_cooperation`)
decides who the request acts as: on, the device's local user; off, the client. A user
token acts as its user.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from fastapi import Depends, Request

from printcloud.core import crypto, jws
from printcloud.core.errors import Forbidden, InsufficientScope, Unauthorized, Unavailable
from printcloud.core.http import async_client, error_of
from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings

log = get_logger("guard")


@dataclass(frozen=True)
class Principal:
    issuer: str
    tenant_id: str
    client_id: str
    user_id: str | None
    local_user: dict[str, Any] | None
    scopes: frozenset[str]
    local_auth_cooperation: bool
    expires_at: float
    token_id: str = field(repr=False, default="")
    #: The issuer's `admin` claim, computed at introspection: the token's user is an
    #: administrator of its tenant now (or it is a platform service's own token). Cached
    #: no longer than the guard's cache, so a demotion is seen within `cache_ttl`.
    admin: bool = False
    #: RFC 8176 methods the issuer vouches for; `card`: a card login (seed 004).
    amr: frozenset[str] = frozenset()
    #: The tenant's `held_release` setting: `card_or_owner` or `device_local_auth`.
    held_release: str = "card_or_owner"
    #: The tenant's display name (the issuer's `tenant_name` claim); the ID when absent.
    tenant_name: str = ""

    @property
    def acting_kind(self) -> Literal["user", "local_user", "client"]:
        if self.user_id:
            return "user"
        if self.local_auth_cooperation and self.local_user:
            return "local_user"
        return "client"

    @property
    def acting_user(self) -> str:
        """The identity the request is processed as (seed 001, claim 1)."""
        kind = self.acting_kind
        if kind == "user":
            return str(self.user_id)
        if kind == "local_user":
            assert self.local_user is not None
            return str(self.local_user["id"])
        return self.client_id

    def has_scopes(self, *scopes: str) -> bool:
        return set(scopes) <= self.scopes


#: A token naming an unknown `kid` fetches the JWKS again at most this often.
JWKS_MIN_REFRESH = 1.0


class Guard:
    """Verifies bearer tokens of one issuer: JWTs locally against its JWKS (when
    `jwks_url` is given), opaque ones by introspection; with a short cache."""

    def __init__(
        self,
        *,
        issuer: str,
        introspection_url: str,
        client_id: str,
        client_secret: str,
        cache_ttl: float = 30.0,
        max_entries: int = 10_000,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        jwks_url: str | None = None,
        issuer_url: str | None = None,
        audience: str | None = None,
        jwks_ttl: float = 300.0,
    ) -> None:
        self.issuer = issuer
        self.introspection_url = introspection_url
        self._auth = (client_id, client_secret)
        self.cache_ttl = cache_ttl
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._clock = clock
        self.jwks_url = jwks_url
        self.issuer_url = issuer_url
        self.audience = audience
        self.jwks_ttl = jwks_ttl
        self._keys: dict[str, jws.VerifyKey] = {}
        self._keys_until = 0.0
        self._keys_fetched = -JWKS_MIN_REFRESH
        self._keys_lock: asyncio.Lock | None = None
        #: JWKS documents fetched (how often the issuer was asked for its keys).
        self.jwks_fetches = 0

    @classmethod
    def of_issuer(cls, settings: Settings, issuer: str, *, service: str) -> Guard:
        """The guard of a platform `service` for `issuer`, introspecting as the service's
        own client and checking JWT access tokens against the issuer's JWKS."""
        client_id, secret = settings.service_client(issuer, service)
        base = settings.issuer_url(issuer)
        return cls(
            issuer=issuer,
            introspection_url=f"{base}/introspect",
            client_id=client_id,
            client_secret=secret,
            cache_ttl=settings.guard_cache_ttl,
            jwks_url=f"{base}/jwks",
            issuer_url=base,
            audience=settings.access_token_audience,
            jwks_ttl=settings.guard_jwks_ttl,
        )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = async_client(transport=self._transport)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def forget(self, token: str) -> None:
        self._cache.pop(crypto.token_digest(token), None)

    async def verify(self, token: str) -> Principal:
        key = crypto.token_digest(token)
        now = self._clock()
        hit = self._cache.get(key)
        if hit and hit[1] > now:
            self._cache.move_to_end(key)
            return hit[0]
        if self.jwks_url is not None and jws.looks_like_jwt(token):
            return self._remember(key, await self._check_jwt(token, key, now), now)
        try:
            resp = await self._http().post(
                self.introspection_url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"authorization server {self.issuer} unreachable") from exc
        if resp.status_code != 200:
            log.warning("introspection failed", extra={"fields": {"status": resp.status_code}})
            detail = error_of(resp)[1][:300]  # why the issuer is down (its database, say)
            raise Unavailable(
                f"introspection at {self.issuer} answered {resp.status_code}"
                + (f": {detail}" if detail else "")
            )
        try:
            data = resp.json()
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
        except (ValueError, TypeError) as exc:
            raise Unavailable(f"introspection at {self.issuer} answered malformed JSON") from exc
        if not data.get("active"):
            self._cache.pop(key, None)
            raise Unauthorized("token is not active")
        if data.get("token_type") not in (None, "access_token", "Bearer"):
            raise Unauthorized("not an access token")
        try:
            principal = Principal(
                issuer=self.issuer,
                tenant_id=str(data["tenant_id"]),
                client_id=str(data["client_id"]),
                user_id=data.get("username") or None,
                local_user=data.get("local_user") or None,
                scopes=frozenset(str(data.get("scope") or "").split()),
                local_auth_cooperation=bool(data.get("local_auth_cooperation")),
                expires_at=float(data.get("exp") or now),
                token_id=key,
                admin=data.get("admin") is True,
                amr=frozenset(str(m) for m in data.get("amr") or ()),
                held_release=str(data.get("held_release") or "card_or_owner"),
                tenant_name=str(data.get("tenant_name") or data["tenant_id"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise Unavailable(f"introspection at {self.issuer} answered malformed JSON") from exc
        return self._remember(key, principal, now)

    def _remember(self, key: str, principal: Principal, now: float) -> Principal:
        until = min(now + self.cache_ttl, principal.expires_at)
        if until > now:
            self._cache[key] = (principal, until)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return principal

    # -- JWT access tokens (RFC 9068 §4) ---------------------------------------

    async def _check_jwt(self, token: str, key: str, now: float) -> Principal:
        try:
            try:
                claims = jws.decode(token, await self._key_set())
            except jws.UnknownKey as unknown:
                claims = jws.decode(token, await self._key_set(unknown=unknown.kid))
            jws.check_claims(
                claims,
                issuer=self.issuer_url or self.issuer,
                audience=self.audience,
                now=now,
            )
            local_user = claims.get("local_user")
            return Principal(
                issuer=self.issuer,
                tenant_id=str(claims["tenant_id"]),
                client_id=str(claims["client_id"]),
                user_id=str(claims["username"]) if claims.get("username") else None,
                local_user=local_user if isinstance(local_user, dict) else None,
                scopes=frozenset(str(claims.get("scope") or "").split()),
                local_auth_cooperation=claims.get("local_auth_cooperation") is True,
                expires_at=float(claims["exp"]),
                token_id=key,
                admin=claims.get("admin") is True,
                amr=frozenset(str(m) for m in claims.get("amr") or ()),
                held_release=str(claims.get("held_release") or "card_or_owner"),
                tenant_name=str(claims.get("tenant_name") or claims["tenant_id"]),
            )
        except jws.JWSError as exc:
            raise Unauthorized(f"invalid access token: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise Unauthorized("invalid access token: a required claim is missing") from exc

    async def _key_set(self, *, unknown: str | None = None) -> dict[str, jws.VerifyKey]:
        """The issuer's keys: cached for `jwks_ttl`; fetched again for an `unknown` kid,
        at most once per JWKS_MIN_REFRESH (concurrent requests share one fetch)."""
        if unknown is None and time.monotonic() < self._keys_until:
            return self._keys
        if self._keys_lock is None:
            self._keys_lock = asyncio.Lock()
        asked = time.monotonic()
        async with self._keys_lock:
            if unknown is None and time.monotonic() < self._keys_until:
                return self._keys
            if unknown is not None and (unknown in self._keys or self._keys_fetched >= asked):
                return self._keys  # fetched while we waited: that answer stands
            wait = self._keys_fetched + JWKS_MIN_REFRESH - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._keys = await self._fetch_jwks()
            self._keys_fetched = time.monotonic()
            self._keys_until = self._keys_fetched + self.jwks_ttl
            return self._keys

    async def _fetch_jwks(self) -> dict[str, jws.VerifyKey]:
        assert self.jwks_url is not None
        self.jwks_fetches += 1
        try:
            try:
                resp = await self._http().get(self.jwks_url)
            except httpx.TransportError:
                # Keys are fetched rarely, so the pooled connection may have been closed by
                # the issuer meanwhile (an idle keep-alive): a GET is safe to send again.
                resp = await self._http().get(self.jwks_url)
        except httpx.HTTPError as exc:
            raise Unavailable(f"the keys of {self.issuer} are unreachable") from exc
        if resp.status_code != 200:
            raise Unavailable(f"the keys of {self.issuer} answered {resp.status_code}")
        try:
            return jws.key_set(resp.json())
        except (ValueError, jws.JWSError) as exc:
            raise Unavailable(f"the keys of {self.issuer} are malformed: {exc}") from exc

    def require(
        self, *scopes: str, admin: bool = False
    ) -> Callable[[Request], Awaitable[Principal]]:
        """A FastAPI dependency: the request's Principal, with `scopes` required; with
        `admin`, also the issuer's `admin` claim (the scope alone makes no administrator)."""

        async def dependency(request: Request) -> Principal:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("missing bearer token")
            principal = await self.verify(token.strip())
            if not principal.has_scopes(*scopes):
                raise InsufficientScope(f"token lacks scope: {' '.join(scopes)}")
            if admin:
                require_admin(principal)
            request.state.principal = principal
            return principal

        return dependency


def scoped(guard_of: Callable[[Request], Guard], *scopes: str, admin: bool = False) -> Any:
    """`Depends(...)` on the Principal of a service whose guard `guard_of` finds (the
    service's runtime, made at start), with `scopes` and, with `admin`, the admin claim:
    `PrintCaller = Annotated[Principal, scoped(guard_of, "print")]`."""

    async def dependency(request: Request) -> Principal:
        return await guard_of(request).require(*scopes, admin=admin)(request)

    return Depends(dependency)


def require_admin(principal: Principal) -> None:
    """Refuse a token whose issuer does not say, now, that it acts as an administrator."""
    if not principal.admin:
        raise Forbidden(
            "the token does not act as an administrator of its tenant "
            "(its user is not, or no longer, an administrator)"
        )
