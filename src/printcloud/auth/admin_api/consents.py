"""The admin API's consents (seed 002): tenant-wide ones and those users remembered."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from .. import service
from ..schemas import TenantConsentRead, UserConsentRead
from .deps import (
    AdminDep,
    ConsentId,
    RuntimeDep,
    TenantId,
    admin_session,
    managed_tenant,
    no_content,
)

router = APIRouter()


@router.get(
    "/tenants/{tenant_id}/consents",
    response_model=list[TenantConsentRead],
    summary="Tenant-wide consents: who granted them and when, and who revoked them and when",
)
def list_tenant_consents(
    tenant_id: TenantId,
    rt: RuntimeDep,
    admin: AdminDep,
    history: Annotated[bool, Query(description="Include revoked consents")] = True,
) -> list[TenantConsentRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        consents = service.list_tenant_consents(db, tenant=tenant, include_revoked=history)
        return [TenantConsentRead.of(c) for c in consents]


@router.post(
    "/tenants/{tenant_id}/consents/{consent_id}/revoke",
    response_model=TenantConsentRead,
    summary="Revoke a tenant-wide consent: its users are asked again (kept as history)",
)
def revoke_tenant_consent(
    tenant_id: TenantId, consent_id: ConsentId, rt: RuntimeDep, admin: AdminDep
) -> TenantConsentRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        consent = service.revoke_tenant_consent(
            db, tenant=tenant, consent_pk=consent_id, actor=admin.actor
        )
        return TenantConsentRead.of(consent)


@router.get(
    "/tenants/{tenant_id}/user-consents",
    response_model=list[UserConsentRead],
    summary="Consents users remembered for themselves",
)
def list_user_consents(
    tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep
) -> list[UserConsentRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return [
            UserConsentRead.of(c, u, cl)
            for c, u, cl in service.list_user_consents(db, tenant=tenant)
        ]


@router.delete(
    "/tenants/{tenant_id}/user-consents/{consent_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke a user's remembered consent: they are asked again",
)
def revoke_user_consent(
    tenant_id: TenantId, consent_id: ConsentId, rt: RuntimeDep, admin: AdminDep
) -> Response:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        service.revoke_user_consent(db, tenant=tenant, consent_pk=consent_id, actor=admin.actor)
    return no_content()
