"""Domain functions of the authorization server.

Every function takes the session and, where data belongs to a tenant, the
tenant explicitly (keyword-only). Another tenant's object is `NotFound`,
never its data.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from printcloud.core import crypto
from printcloud.core.db import utcnow
from printcloud.core.errors import Conflict, InvalidRequest, NotFound
from printcloud.core.settings import Settings

from . import store
from .models import (
    SYSTEM_TENANT,
    AccessToken,
    AuditEvent,
    AuthorizationCode,
    AuthSession,
    Client,
    DeviceGrant,
    RefreshToken,
    Tenant,
    TenantConsent,
    User,
    UserConsent,
)
from .store import ClientSnapshot, TokenInfo

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

#: Issue 11, item 4: who may list and release a user's held jobs at a printer.
#: `card_or_owner` (default): a token of the card grant, or the owner's own user token;
#: `device_local_auth`: also a device token that names its local user itself (the
#: tenant trusts its devices' own local authentication, seed 001's cooperation mode).
HELD_RELEASE = ("card_or_owner", "device_local_auth")

_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_LOCAL_USER_MAX = 2048


# -- audit --------------------------------------------------------------------


def audit(
    db: Session,
    *,
    tenant: Tenant | None,
    actor: str,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
    issuer: str | None = None,
) -> None:
    """Record who did what. The issuer is the tenant's, unless there is no tenant."""
    if issuer is None:
        if tenant is None:
            raise ValueError("an audit event without a tenant needs its issuer")
        issuer = tenant.issuer
    db.add(
        AuditEvent(
            issuer=issuer,
            tenant_pk=tenant.pk if tenant else None,
            actor=actor,
            action=action,
            target=target,
            details=details or {},
        )
    )


def list_audit(db: Session, *, tenant: Tenant, limit: int = 100) -> list[AuditEvent]:
    return list(
        db.scalars(
            select(AuditEvent)
            .where(AuditEvent.tenant_pk == tenant.pk)
            .order_by(AuditEvent.at.desc(), AuditEvent.pk.desc())
            .limit(limit)
        )
    )


# -- tenants ------------------------------------------------------------------


def create_tenant(
    db: Session, *, issuer: str, tenant_id: str, name: str = "", actor: str = "system"
) -> Tenant:
    if not _TENANT_ID.match(tenant_id):
        raise InvalidRequest(
            "tenant_id must be 1-64 letters, digits, '.', '_' or '-'", field="tenant_id"
        )
    if db.scalar(select(Tenant).where(Tenant.issuer == issuer, Tenant.tenant_id == tenant_id)):
        raise Conflict(f"tenant {tenant_id!r} already exists at {issuer}", field="tenant_id")
    tenant = Tenant(issuer=issuer, tenant_id=tenant_id, name=name or tenant_id)
    db.add(tenant)
    db.flush()
    audit(db, issuer=issuer, tenant=tenant, actor=actor, action="tenant.create", target=tenant_id)
    return tenant


def get_tenant(db: Session, *, issuer: str, tenant_id: str) -> Tenant:
    tenant = db.scalar(select(Tenant).where(Tenant.issuer == issuer, Tenant.tenant_id == tenant_id))
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return tenant


def list_tenants(db: Session, *, issuer: str) -> list[Tenant]:
    return list(
        db.scalars(select(Tenant).where(Tenant.issuer == issuer).order_by(Tenant.tenant_id))
    )


def update_tenant_settings(
    db: Session,
    *,
    tenant: Tenant,
    actor: str,
    name: str | None = None,
    local_auth_cooperation: bool | None = None,
    users_may_grant_tenant_consent: bool | None = None,
    card_retention_days: int | None = None,
    held_release: str | None = None,
) -> Tenant:
    changes: dict[str, Any] = {}
    if held_release is not None:
        if held_release not in HELD_RELEASE:
            raise InvalidRequest(
                f"held_release must be one of {', '.join(HELD_RELEASE)}", field="held_release"
            )
        tenant.held_release = changes["held_release"] = held_release
    if card_retention_days is not None:
        if not 1 <= card_retention_days <= 3650:
            raise InvalidRequest(
                "card_retention_days must be 1 to 3650", field="card_retention_days"
            )
        tenant.card_retention_days = changes["card_retention_days"] = card_retention_days
    if name is not None:
        if not name.strip():
            raise InvalidRequest("name must not be empty", field="name")
        tenant.name = changes["name"] = name.strip()
    if local_auth_cooperation is not None:
        tenant.local_auth_cooperation = changes["local_auth_cooperation"] = local_auth_cooperation
    if users_may_grant_tenant_consent is not None:
        tenant.users_may_grant_tenant_consent = changes["users_may_grant_tenant_consent"] = (
            users_may_grant_tenant_consent
        )
    if changes:
        audit(
            db,
            tenant=tenant,
            actor=actor,
            action="tenant.settings",
            target=tenant.tenant_id,
            details=changes,
        )
    return tenant


def delete_tenant(db: Session, *, tenant: Tenant, actor: str) -> None:
    if tenant.is_system:
        raise InvalidRequest("the system tenant cannot be deleted", field="tenant_id")
    audit(
        db,
        tenant=None,
        issuer=tenant.issuer,
        actor=actor,
        action="tenant.delete",
        target=tenant.tenant_id,
    )
    db.delete(tenant)


# -- users --------------------------------------------------------------------


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidRequest("password must be at least 8 characters", field="password")
    if len(password) > 1024:
        raise InvalidRequest("password must be at most 1024 characters", field="password")


def create_user(
    db: Session,
    *,
    tenant: Tenant,
    username: str,
    password: str | None,
    is_admin: bool = False,
    display_name: str = "",
    email: str = "",
    actor: str = "system",
) -> User:
    if not _USERNAME.match(username):
        raise InvalidRequest(
            "username must be 1-128 letters, digits or . _ @ + -", field="username"
        )
    if password is not None:
        _check_password(password)
    if db.scalar(select(User.pk).where(User.tenant_pk == tenant.pk, User.username == username)):
        raise Conflict(
            f"user {username!r} already exists in tenant {tenant.tenant_id}", field="username"
        )
    user = User(
        tenant_pk=tenant.pk,
        username=username,
        is_admin=is_admin,
        display_name=display_name or username,
        email=email,
        password_hash=crypto.hash_password(password) if password is not None else None,
    )
    db.add(user)
    db.flush()
    audit(
        db,
        tenant=tenant,
        actor=actor,
        action="user.create",
        target=username,
        details={"is_admin": is_admin},
    )
    return user


def get_user(db: Session, *, tenant: Tenant, username: str) -> User:
    user = db.scalar(select(User).where(User.tenant_pk == tenant.pk, User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def list_users(db: Session, *, tenant: Tenant) -> list[User]:
    return list(db.scalars(select(User).where(User.tenant_pk == tenant.pk).order_by(User.username)))


def update_user(
    db: Session,
    *,
    tenant: Tenant,
    user: User,
    actor: str,
    password: str | None = None,
    is_admin: bool | None = None,
    disabled: bool | None = None,
    display_name: str | None = None,
) -> User:
    if user.tenant_pk != tenant.pk:
        raise NotFound("no such user")
    changes: dict[str, Any] = {}
    if password is not None:
        _check_password(password)
        user.password_hash = crypto.hash_password(password)
        changes["password"] = "changed"  # noqa: S105 - an audit note, not a password
    if is_admin is not None:
        user.is_admin = changes["is_admin"] = is_admin
    if disabled is not None:
        user.disabled = changes["disabled"] = disabled
        if disabled:
            revoke_user_grants(db, tenant=tenant, user=user)
    if display_name is not None:
        user.display_name = changes["display_name"] = display_name
    audit(
        db,
        tenant=tenant,
        actor=actor,
        action="user.update",
        target=user.username,
        details=changes,
    )
    return user


def delete_user(db: Session, *, tenant: Tenant, user: User, actor: str) -> None:
    if user.tenant_pk != tenant.pk:
        raise NotFound("no such user")
    audit(
        db,
        tenant=tenant,
        actor=actor,
        action="user.delete",
        target=user.username,
    )
    db.delete(user)


def authenticate_user(db: Session, *, tenant: Tenant, username: str, password: str) -> User | None:
    """The user if the password is right; None otherwise (same time either way)."""
    user = db.scalar(select(User).where(User.tenant_pk == tenant.pk, User.username == username))
    stored = user.password_hash if user and not user.disabled else None
    if not crypto.verify_password(stored, password) or user is None:
        return None
    if stored and crypto.password_needs_rehash(stored):
        user.password_hash = crypto.hash_password(password)
    user.last_login_at = utcnow()
    return user


def revoke_user_grants(db: Session, *, tenant: Tenant, user: User) -> None:
    """Revoke the user's access tokens, refresh tokens and browser sessions."""
    now = utcnow()
    for model in (AccessToken, RefreshToken, AuthSession):
        db.execute(
            update(model)
            .where(
                model.tenant_pk == tenant.pk, model.user_pk == user.pk, model.revoked_at.is_(None)
            )
            .values(revoked_at=now)
        )


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
    if not _TENANT_ID.match(client_id):
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
    )
    db.add(client)
    db.flush()
    audit(
        db,
        tenant=tenant,
        actor=actor,
        action="client.create",
        target=client_id,
        details={"kind": kind, "grant_types": grants},
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
    audit(
        db,
        tenant=tenant,
        actor=actor,
        action="client.rotate_secret",
        target=client.client_id,
    )
    return secret


def delete_client(db: Session, *, tenant: Tenant, client: Client, actor: str) -> None:
    if client.tenant_pk != tenant.pk:
        raise NotFound("no such client")
    audit(
        db,
        tenant=tenant,
        actor=actor,
        action="client.delete",
        target=client.client_id,
    )
    db.delete(client)


# -- browser sessions (seed 000: the AUTH_ID) ---------------------------------


def create_session(db: Session, *, tenant: Tenant, user: User, ttl: int) -> str:
    session_id = crypto.new_token()
    db.add(
        AuthSession(
            session_digest=crypto.token_digest(session_id),
            tenant_pk=tenant.pk,
            user_pk=user.pk,
            expires_at=utcnow() + timedelta(seconds=ttl),
        )
    )
    return session_id


def find_session(db: Session, *, issuer: str, session_id: str | None) -> AuthSession | None:
    if not session_id or len(session_id) > 200:
        return None
    found = db.scalar(
        select(AuthSession).where(AuthSession.session_digest == crypto.token_digest(session_id))
    )
    if found is None or found.revoked_at is not None or found.expires_at <= utcnow():
        return None
    if found.user.disabled or found.user.tenant.issuer != issuer:
        return None
    return found


def end_session(db: Session, *, session_id: str) -> None:
    db.execute(
        update(AuthSession)
        .where(AuthSession.session_digest == crypto.token_digest(session_id))
        .values(revoked_at=utcnow())
    )


# -- consents (seed 002) ------------------------------------------------------


def may_grant_tenant_consent(*, tenant: Tenant, user: User) -> bool:
    return user.is_admin or tenant.users_may_grant_tenant_consent


def active_tenant_consent(
    db: Session, *, tenant: Tenant, client: Client | ClientSnapshot
) -> TenantConsent | None:
    return db.scalar(
        select(TenantConsent).where(
            TenantConsent.tenant_pk == tenant.pk,
            TenantConsent.client_pk == client.pk,
            TenantConsent.revoked_at.is_(None),
        )
    )


def consent_covers(
    db: Session, *, tenant: Tenant, user: User, client: Client | ClientSnapshot, scope: str
) -> str | None:
    """Why the user need not be asked: 'first_party', 'tenant', 'user', or None (ask)."""
    if client.kind == "service":
        return "first_party"  # the platform's own pages (the print service's, say)
    wanted = set(scope.split())
    tc = active_tenant_consent(db, tenant=tenant, client=client)
    if tc is not None and wanted <= set(tc.scope.split()):
        return "tenant"
    uc = db.scalar(
        select(UserConsent).where(
            UserConsent.user_pk == user.pk, UserConsent.client_pk == client.pk
        )
    )
    if uc is not None and wanted <= set(uc.scope.split()):
        return "user"
    return None


def remember_user_consent(
    db: Session, *, tenant: Tenant, user: User, client: Client | ClientSnapshot, scope: str
) -> None:
    existing = db.scalar(
        select(UserConsent).where(
            UserConsent.user_pk == user.pk, UserConsent.client_pk == client.pk
        )
    )
    if existing:
        existing.scope = " ".join(sorted(set(existing.scope.split()) | set(scope.split())))
        existing.granted_at = utcnow()
    else:
        db.add(UserConsent(tenant_pk=tenant.pk, user_pk=user.pk, client_pk=client.pk, scope=scope))


def grant_tenant_consent(
    db: Session, *, tenant: Tenant, user: User, client: Client | ClientSnapshot, scope: str
) -> TenantConsent:
    if user.tenant_pk != tenant.pk:
        raise NotFound("no such user")
    if not may_grant_tenant_consent(tenant=tenant, user=user):
        raise InvalidRequest(
            "this user may not grant consent for the whole tenant", field="tenant_wide"
        )
    current = active_tenant_consent(db, tenant=tenant, client=client)
    if current is not None:
        scope = " ".join(sorted(set(current.scope.split()) | set(scope.split())))
        current.revoked_at, current.revoked_by = utcnow(), f"user:{user.username}"
    consent = TenantConsent(
        tenant_pk=tenant.pk, client_pk=client.pk, scope=scope, granted_by=f"user:{user.username}"
    )
    db.add(consent)
    db.flush()
    audit(
        db,
        tenant=tenant,
        actor=f"user:{user.username}",
        action="consent.tenant.grant",
        target=client.client_id,
        details={"scope": scope},
    )
    return consent


def list_tenant_consents(
    db: Session, *, tenant: Tenant, include_revoked: bool = False
) -> list[TenantConsent]:
    query = select(TenantConsent).where(TenantConsent.tenant_pk == tenant.pk)
    if not include_revoked:
        query = query.where(TenantConsent.revoked_at.is_(None))
    return list(
        db.scalars(query.order_by(TenantConsent.granted_at.desc(), TenantConsent.pk.desc()))
    )


def revoke_tenant_consent(
    db: Session, *, tenant: Tenant, consent_pk: int, actor: str
) -> TenantConsent:
    consent = db.scalar(
        select(TenantConsent).where(
            TenantConsent.tenant_pk == tenant.pk, TenantConsent.pk == consent_pk
        )
    )
    if consent is None:
        raise NotFound(f"no tenant consent {consent_pk}")
    if consent.revoked_at is None:
        consent.revoked_at, consent.revoked_by = utcnow(), actor
        audit(
            db,
            tenant=tenant,
            actor=actor,
            action="consent.tenant.revoke",
            target=consent.client.client_id,
            details={"consent": consent_pk},
        )
    return consent


def list_user_consents(db: Session, *, tenant: Tenant) -> list[tuple[UserConsent, User, Client]]:
    rows = db.execute(
        select(UserConsent, User, Client)
        .join(User, User.pk == UserConsent.user_pk)
        .join(Client, Client.pk == UserConsent.client_pk)
        .where(UserConsent.tenant_pk == tenant.pk)
        .order_by(User.username)
    )
    return [(c, u, cl) for c, u, cl in rows]


def revoke_user_consent(db: Session, *, tenant: Tenant, consent_pk: int, actor: str) -> None:
    consent = db.scalar(
        select(UserConsent).where(UserConsent.tenant_pk == tenant.pk, UserConsent.pk == consent_pk)
    )
    if consent is None:
        raise NotFound(f"no user consent {consent_pk}")
    audit(
        db,
        tenant=tenant,
        actor=actor,
        action="consent.user.revoke",
        target=str(consent_pk),
    )
    db.delete(consent)


# -- tokens -------------------------------------------------------------------


def parse_local_user(raw: str | None) -> dict[str, Any] | None:
    """Seed 001: the `local_user` parameter, a JSON object with at least `id`."""
    if raw is None or raw == "":
        return None
    if len(raw) > _LOCAL_USER_MAX:
        raise InvalidRequest(
            f"local_user must be at most {_LOCAL_USER_MAX} bytes", field="local_user"
        )
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest("local_user must be a JSON object", field="local_user") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("local_user must be a JSON object", field="local_user")
    ident = value.get("id")
    if not isinstance(ident, str) or not ident.strip() or len(ident) > 256:
        raise InvalidRequest("local_user.id must be a non-empty string", field="local_user")
    return value


def lookup_token(
    db: Session, *, issuer: str, token: str, hint: str | None = None
) -> TokenInfo | None:
    return store.lookup_token(db.connection(), issuer=issuer, token=token, hint=hint)


def revoke_family(db: Session, *, family_id: str) -> None:
    now = utcnow()
    db.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    db.execute(
        update(AccessToken)
        .where(AccessToken.family_id == family_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_token(db: Session, *, info: TokenInfo) -> None:
    if info.family_id and info.kind == "refresh_token":
        revoke_family(db, family_id=info.family_id)
        return
    model = AccessToken if info.kind == "access_token" else RefreshToken
    db.execute(
        update(model)
        .where(model.token_digest == info.digest, model.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def purge_expired(db: Session, *, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete tokens, codes, sessions and device grants expired for longer than `older_than`."""
    cutoff = utcnow() - older_than
    total = 0
    for model, column in (
        (AccessToken, AccessToken.expires_at),
        (RefreshToken, RefreshToken.expires_at),
        (AuthorizationCode, AuthorizationCode.expires_at),
        (AuthSession, AuthSession.expires_at),
        (DeviceGrant, DeviceGrant.expires_at),
    ):
        total += db.execute(delete(model).where(column < cutoff)).rowcount or 0  # type: ignore[attr-defined]
    return total


# -- bootstrap ----------------------------------------------------------------

#: Platform services that get a client in every issuer's system tenant.
SERVICES = ("auth", "crm", "docgen", "printing", "device")
#: Redirect paths (under the public URL) of the services whose web pages sign users in.
WEB_SIGN_IN: dict[str, tuple[str, ...]] = {
    "printing": ("/printing/auth/callback",),
    "crm": ("/crm/auth/callback",),
    # its own sign-in, and seed 000 FIG. 13's CRM token (code flow at the CRM's issuer)
    "docgen": ("/docgen/auth/callback", "/docgen/auth/crm-callback"),
}


def bootstrap(db: Session, *, settings: Settings, reconcile: bool) -> list[str]:
    """Make sure every issuer has its system tenant and the platform service clients.

    Service client secrets are derived from the instance secret, so each
    service can compute its own without a shared file (docs/adr/0004).

    Missing rows are always created. Existing service clients are brought in line
    with `settings` (redirect URIs from the public URL, the secret from the instance
    secret, the grants) only with `reconcile=True`: that is what a server does as it
    starts (`printcloud serve`, the cluster) and what `printcloud admin bootstrap`
    asks for. An admin command run with another environment must never rewrite the
    clients a running deployment signs its users in with. Answers what changed.
    """
    changes: list[str] = []
    for issuer in settings.issuers:
        tenant = db.scalar(
            select(Tenant).where(Tenant.issuer == issuer, Tenant.tenant_id == SYSTEM_TENANT)
        )
        if tenant is None:
            tenant = Tenant(issuer=issuer, tenant_id=SYSTEM_TENANT, name=f"{issuer} platform")
            db.add(tenant)
            try:
                db.flush()
            except IntegrityError:  # another process bootstrapped at the same time
                db.rollback()
                continue
            changes.append(f"{issuer}: created the system tenant")
        for service in SERVICES:
            client_id, secret = settings.service_client(issuer, service)
            digest = crypto.token_digest(secret)
            existing = db.scalar(
                select(Client).where(Client.issuer == issuer, Client.client_id == client_id)
            )
            # A service with web pages signs its users in with the code flow (first party).
            redirects = [f"{settings.public_url}{path}" for path in WEB_SIGN_IN.get(service, ())]
            grants = sorted(
                [
                    "client_credentials",
                    "refresh_token",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                    *(["authorization_code"] if redirects else []),
                ]
            )
            if existing is None:
                db.add(
                    Client(
                        tenant_pk=tenant.pk,
                        issuer=issuer,
                        client_id=client_id,
                        name=f"printcloud {service}",
                        kind="service",
                        secret_digest=digest,
                        redirect_uris=redirects,
                        grant_types=grants,
                        scope=" ".join(SCOPES),
                    )
                )
                changes.append(f"{issuer}: created the {service} service client")
                continue
            if not reconcile:
                continue
            if not crypto.equal(existing.secret_digest or "", digest):
                existing.secret_digest = digest  # the instance secret was rotated
                changes.append(f"{issuer}: the {service} service client's secret")
            if list(existing.redirect_uris or []) != redirects:
                changes.append(
                    f"{issuer}: the {service} service client's redirect URIs "
                    f"{list(existing.redirect_uris or [])} -> {redirects}"
                )
                existing.redirect_uris = redirects  # the public URL changed
            if sorted(existing.grant_types or []) != grants:
                existing.grant_types = grants
                changes.append(f"{issuer}: the {service} service client's grant types")
        db.flush()
    return changes


def count_rows(db: Session, model: type[Any], *conditions: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


def search_users(db: Session, *, tenant: Tenant, text: str) -> list[User]:
    like = f"%{text.lower()}%"
    return list(
        db.scalars(
            select(User)
            .where(
                User.tenant_pk == tenant.pk,
                or_(func.lower(User.username).like(like), func.lower(User.display_name).like(like)),
            )
            .order_by(User.username)
        )
    )
