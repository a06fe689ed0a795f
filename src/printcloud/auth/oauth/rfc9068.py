"""JWT access tokens: RFC 9068 (§2.1 header `typ: at+jwt`, §2.2 claims), signed per
client with EdDSA or ES256 (core.jws), and read back for introspection (RFC 7662).

Besides RFC 9068's `iss`, `sub`, `aud`, `exp`, `iat`, `jti`, `client_id` and `scope`,
a token carries what introspection answers of an opaque one: `tenant_id`,
`tenant_name`, `local_user`, `local_auth_cooperation`, `amr`, `held_release`, `admin` and, for a
user's token, `username`. They are true when the token is issued; resource servers
that check it locally see a change (a revocation, a demotion) once it has expired.

`KeyRing` is the issuer's view of its signing keys (service.keys), reloaded from the
database every few seconds so that a rotation made elsewhere (the CLI, a replica) is
seen; a JWT is never written to the database.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from authlib.oauth2.rfc6749.errors import InvalidScopeError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from printcloud.core import crypto, jws
from printcloud.core.crypto import SecretBox
from printcloud.core.db import utcnow
from printcloud.core.errors import InvalidRequest
from printcloud.core.settings import Settings

from .. import service
from ..models import SYSTEM_TENANT, User
from ..store import CARD_GRANT, JWT_FORMAT, ClientCache, ClientSnapshot, TokenInfo
from .views import ClientView, check_scope


@dataclass(frozen=True)
class _Ring:
    #: Per algorithm, (not_before, retired_at or +inf, signer), newest first.
    signers: dict[str, list[tuple[float, float, jws.Signer]]]
    #: Every published key, for introspection.
    keys: dict[str, jws.VerifyKey]
    jwks: dict[str, Any]
    until: float


class KeyRing:
    """One issuer's signing keys, cached for `ttl` seconds."""

    def __init__(self, *, issuer: str, engine: Engine, box: SecretBox, ttl: float) -> None:
        self.issuer = issuer
        self.engine = engine
        self.box = box
        self.ttl = ttl
        self._ring: _Ring | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        self._ring = None

    def _current(self) -> _Ring:
        ring = self._ring
        if ring is not None and ring.until > time.monotonic():
            return ring
        with self._lock:
            ring = self._ring
            if ring is None or ring.until <= time.monotonic():
                ring = self._ring = self._load()
        return ring

    def _load(self) -> _Ring:
        with Session(self.engine) as db:
            if service.ensure_keys(db, issuer=self.issuer, box=self.box):
                db.commit()
            rows = service.list_keys(db, issuer=self.issuer)
            now = utcnow()
            signers: dict[str, list[tuple[float, float, jws.Signer]]] = {}
            keys: dict[str, jws.VerifyKey] = {}
            for row in rows:
                state = service.key_state(key=row, now=now)
                if state == "expired":
                    continue
                keys[row.kid] = jws.VerifyKey.from_jwk(row.public_jwk)
                if state in ("signing", "published"):
                    signer = jws.Signer(
                        kid=row.kid, alg=row.alg, private_pem=self.box.open(row.private_sealed)
                    )
                    until = row.retired_at.timestamp() if row.retired_at else float("inf")
                    signers.setdefault(row.alg, []).append(
                        (row.not_before.timestamp(), until, signer)
                    )
            for entries in signers.values():
                entries.sort(key=lambda entry: entry[0], reverse=True)
            jwks = service.published_jwks(keys=rows, now=now)
        return _Ring(signers, keys, jwks, time.monotonic() + self.ttl)

    def signer(self, alg: str) -> jws.Signer:
        """The key that signs now: the newest whose `not_before` has passed and that is not
        retired (a key superseded before it ever signed never does)."""
        for attempt in (1, 2):
            ring = self._current()  # loaded first: a first key is created signing at once
            now = time.time()
            for not_before, until, signer in ring.signers.get(alg, ()):
                if not_before <= now < until:
                    return signer
            if attempt == 1:
                self.invalidate()  # a key retired under us, its successor not yet loaded
        raise RuntimeError(f"issuer {self.issuer} has no {alg} key that signs now")

    def jwks(self) -> dict[str, Any]:
        return self._current().jwks

    def decode(self, token: str) -> dict[str, Any]:
        """The claims of a token this issuer signed (signature and `typ` checked)."""
        try:
            return jws.decode(token, self._current().keys)
        except jws.UnknownKey:
            self.invalidate()  # signed by a key created after our last load
            return jws.decode(token, self._current().keys)


def issue(
    ring: KeyRing,
    *,
    settings: Settings,
    client: ClientSnapshot,
    user: User | None,
    scope: str,
    local_user: dict[str, Any] | None,
    grant_type: str,
) -> tuple[str, int]:
    """A signed JWT access token and its lifetime in seconds."""
    ttl = settings.jwt_access_token_ttl
    now = int(time.time())
    if user is not None:
        tenant_id = user.tenant.tenant_id
        cooperation = bool(user.tenant.local_auth_cooperation)
        held_release = user.tenant.held_release or "card_or_owner"
        tenant_name = user.tenant.name
        admin = bool(user.is_admin) and not user.disabled
    else:
        tenant_id = client.tenant.tenant_id
        cooperation = client.tenant.local_auth_cooperation
        held_release = client.tenant.held_release
        tenant_name = client.tenant.name
        admin = client.kind == "service" and tenant_id == SYSTEM_TENANT
    claims: dict[str, Any] = {
        "iss": settings.issuer_url(client.issuer),
        "sub": user.username if user is not None else client.client_id,
        "aud": settings.access_token_audience,
        "exp": now + ttl,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "client_id": client.client_id,
        "scope": scope,
        "tenant_id": tenant_id,
        "tenant_name": tenant_name,
        "local_auth_cooperation": cooperation,
        "held_release": held_release,
        "admin": admin,
    }
    if user is not None:
        claims["username"] = user.username
        claims["auth_time"] = now
    if local_user is not None:
        claims["local_user"] = local_user
    if grant_type == CARD_GRANT:
        claims["amr"] = ["card"]
    return ring.signer(client.access_token_alg).sign(claims), ttl


def introspect(
    ring: KeyRing, clients: ClientCache, *, settings: Settings, token: str
) -> TokenInfo | None:
    """What introspection answers of a JWT this issuer signed: its claims, inactive once
    expired or once its client is disabled or deleted; None if it is not ours."""
    try:
        claims = ring.decode(token)
        if claims.get("iss") != settings.issuer_url(ring.issuer):
            return None
        client = clients.get(ring.issuer, str(claims["client_id"]))
        issued = datetime.fromtimestamp(float(claims["iat"]), UTC)
        expires = datetime.fromtimestamp(float(claims["exp"]), UTC)
    except (jws.JWSError, KeyError, TypeError, ValueError, OverflowError):
        return None
    if client is None:
        return None
    tenant_id = str(claims.get("tenant_id") or "")
    local_user = claims.get("local_user")
    return TokenInfo(
        kind="access_token",
        digest=crypto.token_digest(token),
        tenant_pk=client.tenant.pk if client.tenant.tenant_id == tenant_id else 0,
        tenant_id=tenant_id,
        local_auth_cooperation=claims.get("local_auth_cooperation") is True,
        client_pk=client.pk,
        client_id=client.client_id,
        username=str(claims["username"]) if claims.get("username") else None,
        local_user=local_user if isinstance(local_user, dict) else None,
        scope=str(claims.get("scope") or ""),
        issued_at=issued,
        expires_at=expires,
        active=expires > utcnow() and not client.disabled,
        family_id=None,
        admin=claims.get("admin") is True,
        amr=tuple(str(m) for m in claims.get("amr") or ()),
        held_release=str(claims.get("held_release") or "card_or_owner"),
        tenant_name=str(claims.get("tenant_name") or ""),
    )


_PLAIN_FORM = frozenset(("grant_type", "scope", "local_user"))


def client_credentials(
    ring: KeyRing,
    clients: ClientCache,
    *,
    settings: Settings,
    authorization: str | None,
    form: list[tuple[str, str]],
) -> dict[str, Any] | None:
    """The token answer of a plain, valid client-credentials request (RFC 6749 §4.4)
    of a JWT client authenticated with HTTP Basic: what Authlib's grant answers, without
    its per-request machinery (a third of a JWT's cost). None for anything else, which
    then takes the full path and gets its exact error there."""
    fields = dict(form)
    if fields.get("grant_type") != "client_credentials" or not fields.keys() <= _PLAIN_FORM:
        return None
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    client_id, secret = unquote(client_id), unquote(secret)
    if not sep or not client_id or len(client_id) > 128 or "\x00" in client_id:
        return None
    snapshot = clients.get(ring.issuer, client_id)
    if (
        snapshot is None
        or snapshot.disabled
        or snapshot.access_token_format != JWT_FORMAT
        or snapshot.kind == "public"
        or "client_credentials" not in snapshot.grant_types
    ):
        return None
    view = ClientView(snapshot)
    if not view.check_client_secret(secret):
        return None
    local_user = None
    if "local_user" in fields:
        if snapshot.kind != "device":
            return None
        try:
            local_user = service.parse_local_user(fields["local_user"])
        except InvalidRequest:
            return None
    scope = fields.get("scope")
    try:
        check_scope(view, scope)
    except InvalidScopeError:  # the full path gives that answer
        return None
    allowed = view.get_allowed_scope(scope)
    if snapshot.kind != "service":
        allowed = " ".join(s for s in allowed.split() if s not in service.PLATFORM_SCOPES)
    token, ttl = issue(
        ring,
        settings=settings,
        client=snapshot,
        user=None,
        scope=allowed,
        local_user=local_user,
        grant_type="client_credentials",
    )
    return {"token_type": "Bearer", "access_token": token, "expires_in": ttl, "scope": allowed}
