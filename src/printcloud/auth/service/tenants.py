"""Tenants and their settings (seed 000: one tenant per organisation, per issuer)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from printcloud.core.errors import Conflict, InvalidRequest, NotFound

from ..models import Tenant
from .audit import audit

#: Issue 11, item 4: who may list and release a user's held jobs at a printer.
#: `card_or_owner` (default): a token of the card grant, or the owner's own user token;
#: `device_local_auth`: also a device token that names its local user itself (the
#: tenant trusts its devices' own local authentication, seed 001's cooperation mode).
HELD_RELEASE = ("card_or_owner", "device_local_auth")

#: A tenant ID, and a client ID, as they may be spelled.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def create_tenant(
    db: Session, *, issuer: str, tenant_id: str, name: str = "", actor: str = "system"
) -> Tenant:
    if not ID_PATTERN.match(tenant_id):
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
