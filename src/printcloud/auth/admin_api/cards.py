"""The admin API's ID cards bound to users and their lockouts (seed 004)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import cards
from ..models import CardBinding, Client, Tenant
from ..runtime import Runtime
from ..schemas import CardLockoutRead, CardRead
from .deps import AdminDep, CardId, RuntimeDep, TenantId, admin_session, managed_tenant, no_content

router = APIRouter()


def card_read(binding: CardBinding, tenant: Tenant) -> CardRead:
    return CardRead(
        id=binding.pk,
        username=binding.user.username,
        display_name=binding.user.display_name,
        hint=binding.hint,
        directory=binding.directory,
        registered_by=binding.registered_by,
        created_at=binding.created_at,
        last_login_at=binding.last_login_at,
        expires_at=binding.last_login_at + timedelta(days=tenant.card_retention_days),
    )


def tenant_lockouts(rt: Runtime, db: Session, tenant: Tenant) -> list[CardLockoutRead]:
    """The tenant's card lockouts: its devices, its cards and its directory accounts."""
    devices = {
        f"{tenant.issuer}:{c.client_id}"
        for c in db.scalars(select(Client).where(Client.tenant_pk == tenant.pk))
    }
    prefix = f"{tenant.issuer}:{tenant.tenant_id}:"
    found = []
    for kind, key, attempts, left in rt.card_limits.locked():
        if (kind == "device" and key in devices) or (kind != "device" and key.startswith(prefix)):
            shown = key.split(":", 1)[1] if kind == "device" else key[len(prefix) :]
            if kind == "card":
                shown = f"card {shown[:8]}…"  # a digest prefix, never the card ID
            found.append(
                CardLockoutRead(kind=kind, key=shown, attempts=attempts, seconds_left=int(left))
            )
    return found


@router.get(
    "/tenants/{tenant_id}/cards",
    response_model=list[CardRead],
    summary="ID cards bound to users (seed 004), most recently used first",
)
def list_cards(
    tenant_id: TenantId,
    rt: RuntimeDep,
    admin: AdminDep,
    q: Annotated[str | None, Query(max_length=128, description="User name or card hint")] = None,
) -> list[CardRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return [card_read(b, tenant) for b in cards.list_bindings(db, tenant=tenant, text=q)]


@router.delete(
    "/tenants/{tenant_id}/cards/{card_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a card binding (the card must be registered again)",
)
def delete_card(tenant_id: TenantId, card_id: CardId, rt: RuntimeDep, admin: AdminDep) -> Response:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        cards.delete_binding(db, tenant=tenant, binding_pk=card_id, actor=admin.actor)
    return no_content()


@router.get(
    "/tenants/{tenant_id}/card-lockouts",
    response_model=list[CardLockoutRead],
    summary="Devices, cards and directory accounts locked out after failed attempts",
)
def list_card_lockouts(
    tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep
) -> list[CardLockoutRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return tenant_lockouts(rt, db, tenant)
