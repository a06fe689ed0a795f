"""The admin API's tenants and their settings (held-job release, seed 001
cooperation mode, seed 002 consent, card retention)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from .. import service
from ..schemas import ErrorRead, TenantCreate, TenantRead, TenantSettingsUpdate
from .deps import (
    AdminDep,
    RuntimeDep,
    TenantId,
    admin_session,
    managed_tenant,
    no_content,
    require_system,
)

router = APIRouter()


@router.get(
    "/tenants", response_model=list[TenantRead], summary="List the issuer's tenants (system only)"
)
def list_tenants(issuer: str, rt: RuntimeDep, admin: AdminDep) -> list[TenantRead]:
    require_system(admin, "list tenants")
    with admin_session(rt) as db:
        return [TenantRead.model_validate(t) for t in service.list_tenants(db, issuer=issuer)]


@router.post(
    "/tenants",
    response_model=TenantRead,
    status_code=201,
    summary="Create a tenant (system only)",
    responses={409: {"model": ErrorRead, "description": "The tenant already exists"}},
)
def create_tenant(issuer: str, body: TenantCreate, rt: RuntimeDep, admin: AdminDep) -> TenantRead:
    require_system(admin, "create tenants")
    with admin_session(rt) as db:
        tenant = service.create_tenant(
            db, issuer=issuer, tenant_id=body.tenant_id, name=body.name.strip(), actor=admin.actor
        )
        return TenantRead.model_validate(tenant)


@router.get("/tenants/{tenant_id}", response_model=TenantRead, summary="A tenant and its settings")
def get_tenant(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> TenantRead:
    with admin_session(rt) as db:
        return TenantRead.model_validate(managed_tenant(db, admin=admin, tenant_id=tenant_id))


@router.patch(
    "/tenants/{tenant_id}",
    response_model=TenantRead,
    summary="Change a tenant's name and settings (seed 001 cooperation mode, seed 002 consent, "
    "held-job release)",
)
def update_tenant(
    tenant_id: TenantId, body: TenantSettingsUpdate, rt: RuntimeDep, admin: AdminDep
) -> TenantRead:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        service.update_tenant_settings(
            db,
            tenant=tenant,
            actor=admin.actor,
            name=body.name,
            local_auth_cooperation=body.local_auth_cooperation,
            users_may_grant_tenant_consent=body.users_may_grant_tenant_consent,
            card_retention_days=body.card_retention_days,
            held_release=body.held_release,
        )
        return TenantRead.model_validate(tenant)


@router.delete(
    "/tenants/{tenant_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a tenant and everything it owns (system only)",
)
def delete_tenant(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> Response:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        require_system(admin, "delete tenants")
        service.delete_tenant(db, tenant=tenant, actor=admin.actor)
    return no_content()
