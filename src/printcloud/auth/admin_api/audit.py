"""The admin API's audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from .. import service
from ..schemas import AuditEventRead
from .deps import AdminDep, RuntimeDep, TenantId, admin_session, managed_tenant

router = APIRouter()


@router.get(
    "/tenants/{tenant_id}/audit",
    response_model=list[AuditEventRead],
    summary="The tenant's audit log, newest first",
)
def list_audit(
    tenant_id: TenantId,
    rt: RuntimeDep,
    admin: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return [AuditEventRead.of(e) for e in service.list_audit(db, tenant=tenant, limit=limit)]
