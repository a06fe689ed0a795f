"""Consents (seed 002): a tenant's, for all its users, and each user's own."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from printcloud.core.db import utcnow
from printcloud.core.errors import InvalidRequest, NotFound

from ..models import Client, Tenant, TenantConsent, User, UserConsent
from ..store import ClientSnapshot
from .audit import audit

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
    audit(db, tenant=tenant, actor=actor, action="consent.user.revoke", target=str(consent_pk))
    db.delete(consent)
