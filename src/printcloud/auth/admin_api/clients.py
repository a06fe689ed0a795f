"""The admin API's OAuth clients of a tenant."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from .. import service
from ..schemas import ClientCreate, ClientCreated, ClientRead, ClientUpdate, ErrorRead
from .deps import (
    AdminDep,
    ClientId,
    RuntimeDep,
    TenantId,
    admin_session,
    managed_tenant,
    no_content,
    refuse_platform_client,
)

router = APIRouter()


@router.get(
    "/tenants/{tenant_id}/clients",
    response_model=list[ClientRead],
    summary="List a tenant's clients",
)
def list_clients(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> list[ClientRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return [ClientRead.of(c) for c in service.list_clients(db, tenant=tenant)]


@router.post(
    "/tenants/{tenant_id}/clients",
    response_model=ClientCreated,
    status_code=201,
    summary="Register a client; the answer carries its secret, shown this once",
    responses={409: {"model": ErrorRead, "description": "The client id is taken"}},
)
def create_client(
    tenant_id: TenantId, body: ClientCreate, rt: RuntimeDep, admin: AdminDep
) -> ClientCreated:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        client, secret = service.create_client(
            db,
            tenant=tenant,
            name=body.name,
            kind=body.kind,
            redirect_uris=body.redirect_uris,
            grant_types=body.grant_types,
            scope=body.scope,
            client_id=body.client_id,
            actor=admin.actor,
            access_token_format=body.access_token_format,
            access_token_alg=body.access_token_alg,
        )
        return ClientCreated.with_secret(client, secret)


@router.get(
    "/tenants/{tenant_id}/clients/{client_id}", response_model=ClientRead, summary="A client"
)
def get_client(
    tenant_id: TenantId, client_id: ClientId, rt: RuntimeDep, admin: AdminDep
) -> ClientRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return ClientRead.of(service.get_client(db, tenant=tenant, client_id=client_id))


@router.patch(
    "/tenants/{tenant_id}/clients/{client_id}",
    response_model=ClientRead,
    summary="Change a client: name, redirect URIs, scope, disabled",
)
def update_client(
    tenant_id: TenantId, client_id: ClientId, body: ClientUpdate, rt: RuntimeDep, admin: AdminDep
) -> ClientRead:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        client = service.get_client(db, tenant=tenant, client_id=client_id)
        refuse_platform_client(rt.settings, client, "changed")
        service.update_client(
            db,
            tenant=tenant,
            client=client,
            actor=admin.actor,
            name=body.name,
            redirect_uris=body.redirect_uris,
            scope=body.scope,
            disabled=body.disabled,
            access_token_format=body.access_token_format,
            access_token_alg=body.access_token_alg,
        )
        return ClientRead.of(client)


@router.post(
    "/tenants/{tenant_id}/clients/{client_id}/rotate-secret",
    response_model=ClientCreated,
    summary="Issue a new client secret, shown this once; the old one stops working",
)
def rotate_client_secret(
    tenant_id: TenantId, client_id: ClientId, rt: RuntimeDep, admin: AdminDep
) -> ClientCreated:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        client = service.get_client(db, tenant=tenant, client_id=client_id)
        refuse_platform_client(rt.settings, client, "rotated")
        secret = service.rotate_client_secret(db, tenant=tenant, client=client, actor=admin.actor)
        return ClientCreated.with_secret(client, secret)


@router.delete(
    "/tenants/{tenant_id}/clients/{client_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a client with its tokens and consents",
)
def delete_client(
    tenant_id: TenantId, client_id: ClientId, rt: RuntimeDep, admin: AdminDep
) -> Response:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        client = service.get_client(db, tenant=tenant, client_id=client_id)
        refuse_platform_client(rt.settings, client, "deleted")
        service.delete_client(db, tenant=tenant, client=client, actor=admin.actor)
    return no_content()
