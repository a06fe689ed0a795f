"""The admin API's directory of a tenant for card registration (seed 004): its own
users or LDAP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from printcloud.core.errors import InvalidRequest

from .. import cards
from ..models import Tenant
from ..schemas import DirectoryRead, DirectoryTested, DirectoryUpdate
from .deps import AdminDep, RuntimeDep, TenantId, admin_session, managed_tenant

router = APIRouter()


def directory_read(tenant: Tenant, row: Any) -> DirectoryRead:
    if row is None:
        return DirectoryRead(
            kind="builtin",
            url="",
            base_dn="",
            user_attr="uid",
            object_class="inetOrgPerson",
            bind_dn=None,
            has_bind_password=False,
            name_attr="cn",
            mail_attr="mail",
            start_tls=False,
            ca_pem=None,
            timeout=5,
        )
    return DirectoryRead(
        kind=row.kind,
        url=row.url,
        base_dn=row.base_dn,
        user_attr=row.user_attr,
        object_class=row.object_class,
        bind_dn=row.bind_dn,
        has_bind_password=bool(row.bind_password_sealed),
        name_attr=row.name_attr,
        mail_attr=row.mail_attr,
        start_tls=row.start_tls,
        ca_pem=row.ca_pem,
        timeout=row.timeout,
    )


@router.get(
    "/tenants/{tenant_id}/directory",
    response_model=DirectoryRead,
    summary="The tenant's directory for card registration: its own users or LDAP",
)
def get_directory(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> DirectoryRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return directory_read(tenant, cards.directory_of(db, tenant=tenant))


@router.put(
    "/tenants/{tenant_id}/directory",
    response_model=DirectoryRead,
    summary="Set the tenant's directory (the service-account password is stored encrypted)",
)
def put_directory(
    tenant_id: TenantId, body: DirectoryUpdate, rt: RuntimeDep, admin: AdminDep
) -> DirectoryRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        row = cards.set_directory(
            db,
            tenant=tenant,
            box=rt.box,
            egress=rt.settings.egress_policy,
            actor=admin.actor,
            **body.model_dump(),
        )
        return directory_read(tenant, row)


@router.post(
    "/tenants/{tenant_id}/directory/test",
    response_model=DirectoryTested,
    summary="Connect to the tenant's LDAP directory and count its users",
)
def test_directory(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> DirectoryTested:
    from ..directory import check_settings

    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        row = cards.directory_of(db, tenant=tenant)
        if row is None or row.kind != "ldap":
            raise InvalidRequest("the tenant's directory is its own user store", field="kind")
        settings = cards.ldap_settings(row, rt.box)
    return DirectoryTested(users=check_settings(settings, egress=rt.settings.egress_policy))
