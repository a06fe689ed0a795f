"""OAuth clients of a tenant: their kinds, grants, scopes, redirect URIs and secrets."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from printcloud.core import crypto, jws
from printcloud.core.errors import Conflict, InvalidRequest, NotFound

from .. import store
from ..models import Client, Tenant
from .audit import audit
from .tenants import ID_PATTERN

CLIENT_KINDS = ("confidential", "public", "device", "service")
#: Seed 004: a device logs a user in by card (and registers a new card) at the token endpoint.
CARD_GRANT = store.CARD_GRANT
GRANTS = {
    CARD_GRANT,
    "authorization_code",
    "client_credentials",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
}
GRANT_ALIASES = {
    "id_card": CARD_GRANT,
    "code": "authorization_code",
    "device_code": "urn:ietf:params:oauth:grant-type:device_code",
    "token_exchange": "urn:ietf:params:oauth:grant-type:token-exchange",
}
#: Scopes every issuer knows. `admin` reaches the admin API.
SCOPES = ("print", "jobs", "profile", "admin", "crm.read", "crm.write", "docgen", "device", "cards")


# -- clients ------------------------------------------------------------------


def _normalise_grants(kind: str, grants: list[str] | None) -> list[str]:
    defaults = {
        "confidential": ["authorization_code", "refresh_token", "client_credentials"],
        "public": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        "device": [
            "client_credentials",
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            CARD_GRANT,
        ],
        "service": [
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "refresh_token",
        ],
    }
    chosen = [GRANT_ALIASES.get(g, g) for g in grants] if grants else defaults[kind]
    for grant in chosen:
        if grant not in GRANTS:
            raise InvalidRequest(f"unknown grant type {grant!r}", field="grant_types")
    if kind == "public" and (
        "client_credentials" in chosen
        or "urn:ietf:params:oauth:grant-type:token-exchange" in chosen
    ):
        raise InvalidRequest(
            "a public client cannot use client_credentials or token exchange", field="grant_types"
        )
    return sorted(set(chosen))


_ABSOLUTE_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s#]+$")
#: RFC 8252 §7.1: a native app's private-use scheme, a reversed domain name, then ":/path".
_PRIVATE_USE_URI = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+:/[^/\s#][^\s#]*$")


def _check_redirect_uris(uris: list[str]) -> list[str]:
    for uri in uris:
        if len(uri) > 2000 or not (_ABSOLUTE_URI.match(uri) or _PRIVATE_USE_URI.match(uri)):
            raise InvalidRequest(
                f"redirect URI {uri!r} must be absolute (or a native app's reverse-domain scheme, "
                "RFC 8252) and carry no fragment",
                field="redirect_uris",
            )
    return list(dict.fromkeys(uris))


#: Scopes only the platform's own clients (`service` clients of the system tenant) may
#: hold: `admin` reaches the admin APIs, and a third-party client must never act there.
PLATFORM_SCOPES = ("admin",)


def _check_scope(scope: str, *, kind: str) -> str:
    parts = scope.split()
    for part in parts:
        if part not in SCOPES:
            raise InvalidRequest(
                f"unknown scope {part!r}; known: {' '.join(SCOPES)}", field="scope"
            )
        if part in PLATFORM_SCOPES and kind != "service":
            raise InvalidRequest(
                f"scope {part!r} is only for the platform's own service clients; an "
                "administrator signs in through the platform's pages instead",
                field="scope",
            )
    return " ".join(dict.fromkeys(parts))


def _check_format(value: str) -> str:
    return _one_of(value, store.TOKEN_FORMATS, "access_token_format")


def _check_alg(value: str) -> str:
    return _one_of(value, jws.ALGORITHMS, "access_token_alg")


def _one_of(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise InvalidRequest(f"{field} must be one of {', '.join(allowed)}", field=field)
    return value


def create_client(
    db: Session,
    *,
    tenant: Tenant,
    name: str,
    kind: str,
    redirect_uris: list[str] | None = None,
    grant_types: list[str] | None = None,
    scope: str = "print",
    client_id: str | None = None,
    secret: str | None = None,
    actor: str = "system",
    access_token_format: str = store.TOKEN_FORMATS[0],
    access_token_alg: str = store.DEFAULT_JWT_ALG,
) -> tuple[Client, str | None]:
    """Register a client; answers it and its secret (shown once; None for public clients)."""
    if kind not in CLIENT_KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(CLIENT_KINDS)}", field="kind")
    if kind == "service" and not tenant.is_system:
        raise InvalidRequest("service clients belong to the system tenant", field="kind")
    if not name.strip():
        raise InvalidRequest("name must not be empty", field="name")
    uris = _check_redirect_uris(redirect_uris or [])
    grants = _normalise_grants(kind, grant_types)
    if grant_types is None and not uris:
        grants = [
            g for g in grants if g != "authorization_code"
        ]  # the default needs no redirect URI
    if "authorization_code" in grants and not uris and kind in ("confidential", "public"):
        raise InvalidRequest(
            "authorization_code needs at least one redirect URI", field="redirect_uris"
        )
    client_id = client_id or f"{kind[:3]}-{crypto.new_token(12)}"
    if not ID_PATTERN.match(client_id):
        raise InvalidRequest(
            "client_id must be letters, digits, '.', '_' or '-'", field="client_id"
        )
    if db.scalar(
        select(Client.pk).where(Client.issuer == tenant.issuer, Client.client_id == client_id)
    ):
        raise Conflict(f"client {client_id!r} already exists", field="client_id")
    secret = None if kind == "public" else secret or crypto.new_token()
    client = Client(
        tenant_pk=tenant.pk,
        issuer=tenant.issuer,
        client_id=client_id,
        name=name.strip(),
        kind=kind,
        secret_digest=crypto.token_digest(secret) if secret else None,
        redirect_uris=uris,
        grant_types=grants,
        scope=_check_scope(scope, kind=kind),
        access_token_format=_check_format(access_token_format),
        access_token_alg=_check_alg(access_token_alg),
    )
    db.add(client)
    db.flush()
    audit(
        db,
        tenant=tenant,
        actor=actor,
        action="client.create",
        target=client_id,
        details={
            "kind": kind,
            "grant_types": grants,
            "access_token_format": client.access_token_format,
        },
    )
    return client, secret


def get_client(db: Session, *, tenant: Tenant, client_id: str) -> Client:
    client = db.scalar(
        select(Client).where(Client.tenant_pk == tenant.pk, Client.client_id == client_id)
    )
    if client is None:
        raise NotFound(f"no client {client_id!r}")
    return client


def find_client(db: Session, *, issuer: str, client_id: str) -> Client | None:
    """A client by id at an issuer, whatever its tenant (for OAuth endpoints)."""
    return db.scalar(select(Client).where(Client.issuer == issuer, Client.client_id == client_id))


def list_clients(db: Session, *, tenant: Tenant) -> list[Client]:
    return list(
        db.scalars(select(Client).where(Client.tenant_pk == tenant.pk).order_by(Client.name))
    )


def update_client(
    db: Session,
    *,
    tenant: Tenant,
    client: Client,
    actor: str,
    name: str | None = None,
    redirect_uris: list[str] | None = None,
    scope: str | None = None,
    disabled: bool | None = None,
    access_token_format: str | None = None,
    access_token_alg: str | None = None,
) -> Client:
    if client.tenant_pk != tenant.pk:
        raise NotFound("no such client")
    changes: dict[str, Any] = {}
    if name is not None:
        if not name.strip():
            raise InvalidRequest("name must not be empty", field="name")
        client.name = changes["name"] = name.strip()
    if redirect_uris is not None:
        client.redirect_uris = changes["redirect_uris"] = _check_redirect_uris(redirect_uris)
    if scope is not None:
        client.scope = changes["scope"] = _check_scope(scope, kind=client.kind)
    if disabled is not None:
        client.disabled = changes["disabled"] = disabled
    if access_token_format is not None:
        client.access_token_format = changes["access_token_format"] = _check_format(
            access_token_format
        )
    if access_token_alg is not None:
        client.access_token_alg = changes["access_token_alg"] = _check_alg(access_token_alg)
    audit(
        db,
        tenant=tenant,
        actor=actor,
        action="client.update",
        target=client.client_id,
        details=changes,
    )
    return client


def rotate_client_secret(db: Session, *, tenant: Tenant, client: Client, actor: str) -> str:
    if client.tenant_pk != tenant.pk:
        raise NotFound("no such client")
    if client.kind == "public":
        raise InvalidRequest("a public client has no secret", field="client_id")
    secret = crypto.new_token()
    client.secret_digest = crypto.token_digest(secret)
    audit(db, tenant=tenant, actor=actor, action="client.rotate_secret", target=client.client_id)
    return secret


def delete_client(db: Session, *, tenant: Tenant, client: Client, actor: str) -> None:
    if client.tenant_pk != tenant.pk:
        raise NotFound("no such client")
    audit(db, tenant=tenant, actor=actor, action="client.delete", target=client.client_id)
    db.delete(client)
