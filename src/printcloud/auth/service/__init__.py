"""Domain functions of the authorization server: one module per domain.

Every function takes the session and, where data belongs to a tenant, the
tenant explicitly (keyword-only). Another tenant's object is `NotFound`,
never its data.

- `audit`: the audit trail.
- `tenants`: tenants and their settings.
- `users`: users, passwords and browser sessions (seed 000: the AUTH_ID).
- `clients`: OAuth clients, their grants, scopes and secrets.
- `consents`: tenant-wide and per-user consents (seed 002).
- `tokens`: seed 001's `local_user`, token lookup, revocation and purge.
- `platform_clients`: the system tenants and the platform's service clients.
- `keys`: the issuers' signing keys of JWT access tokens (RFC 9068) and their rotation.

Callers use the names through this package (`service.create_tenant(...)`).
"""

from __future__ import annotations

from ..store import ClientSnapshot, TokenInfo
from .audit import audit, count_rows, list_audit
from .clients import (
    CARD_GRANT,
    CLIENT_KINDS,
    GRANT_ALIASES,
    GRANTS,
    PLATFORM_SCOPES,
    SCOPES,
    create_client,
    delete_client,
    find_client,
    get_client,
    list_clients,
    rotate_client_secret,
    update_client,
)
from .consents import (
    active_tenant_consent,
    consent_covers,
    grant_tenant_consent,
    list_tenant_consents,
    list_user_consents,
    may_grant_tenant_consent,
    remember_user_consent,
    revoke_tenant_consent,
    revoke_user_consent,
)
from .keys import (
    add_key,
    ensure_keys,
    key_state,
    list_keys,
    published_jwks,
    rotate_keys,
)
from .platform_clients import SERVICES, WEB_SIGN_IN, bootstrap
from .tenants import (
    HELD_RELEASE,
    create_tenant,
    delete_tenant,
    get_tenant,
    list_tenants,
    update_tenant_settings,
)
from .tokens import lookup_token, parse_local_user, purge_expired, revoke_family, revoke_token
from .users import (
    authenticate_user,
    create_session,
    create_user,
    delete_user,
    end_session,
    find_session,
    get_user,
    list_users,
    revoke_user_grants,
    search_users,
    update_user,
)

__all__ = [
    "CARD_GRANT",
    "CLIENT_KINDS",
    "GRANTS",
    "GRANT_ALIASES",
    "HELD_RELEASE",
    "PLATFORM_SCOPES",
    "SCOPES",
    "SERVICES",
    "WEB_SIGN_IN",
    "ClientSnapshot",
    "TokenInfo",
    "active_tenant_consent",
    "add_key",
    "audit",
    "authenticate_user",
    "bootstrap",
    "consent_covers",
    "count_rows",
    "create_client",
    "create_session",
    "create_tenant",
    "create_user",
    "delete_client",
    "delete_tenant",
    "delete_user",
    "end_session",
    "ensure_keys",
    "find_client",
    "find_session",
    "get_client",
    "get_tenant",
    "get_user",
    "grant_tenant_consent",
    "key_state",
    "list_audit",
    "list_clients",
    "list_keys",
    "list_tenant_consents",
    "list_tenants",
    "list_user_consents",
    "list_users",
    "lookup_token",
    "may_grant_tenant_consent",
    "parse_local_user",
    "published_jwks",
    "purge_expired",
    "remember_user_consent",
    "revoke_family",
    "revoke_tenant_consent",
    "revoke_token",
    "revoke_user_consent",
    "revoke_user_grants",
    "rotate_client_secret",
    "rotate_keys",
    "search_users",
    "update_client",
    "update_tenant_settings",
    "update_user",
]
