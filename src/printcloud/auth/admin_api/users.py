"""The admin API's users of a tenant."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from .. import service
from ..schemas import ErrorRead, UserCreate, UserRead, UserUpdate
from .deps import (
    AdminDep,
    RuntimeDep,
    TenantId,
    Username,
    admin_session,
    managed_tenant,
    no_content,
    refuse_self_lockout,
)

router = APIRouter()


@router.get(
    "/tenants/{tenant_id}/users", response_model=list[UserRead], summary="List a tenant's users"
)
def list_users(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> list[UserRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return [UserRead.model_validate(u) for u in service.list_users(db, tenant=tenant)]


@router.post(
    "/tenants/{tenant_id}/users",
    response_model=UserRead,
    status_code=201,
    summary="Create a user",
    responses={409: {"model": ErrorRead, "description": "The user name is taken"}},
)
def create_user(tenant_id: TenantId, body: UserCreate, rt: RuntimeDep, admin: AdminDep) -> UserRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        user = service.create_user(
            db,
            tenant=tenant,
            username=body.username,
            password=body.password,
            is_admin=body.is_admin,
            display_name=body.display_name.strip(),
            email=body.email.strip(),
            actor=admin.actor,
        )
        return UserRead.model_validate(user)


@router.get("/tenants/{tenant_id}/users/{username}", response_model=UserRead, summary="A user")
def get_user(tenant_id: TenantId, username: Username, rt: RuntimeDep, admin: AdminDep) -> UserRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return UserRead.model_validate(service.get_user(db, tenant=tenant, username=username))


@router.patch(
    "/tenants/{tenant_id}/users/{username}",
    response_model=UserRead,
    summary="Change a user: password, display name, administrator role, disabled "
    "(disabling ends their sessions and revokes their tokens)",
)
def update_user(
    tenant_id: TenantId, username: Username, body: UserUpdate, rt: RuntimeDep, admin: AdminDep
) -> UserRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        user = service.get_user(db, tenant=tenant, username=username)
        refuse_self_lockout(
            admin, tenant=tenant, user=user, is_admin=body.is_admin, disabled=body.disabled
        )
        service.update_user(
            db,
            tenant=tenant,
            user=user,
            actor=admin.actor,
            password=body.password,
            is_admin=body.is_admin,
            disabled=body.disabled,
            display_name=body.display_name.strip() if body.display_name is not None else None,
        )
        return UserRead.model_validate(user)


@router.delete(
    "/tenants/{tenant_id}/users/{username}",
    status_code=204,
    response_class=Response,
    summary="Delete a user with their sessions, tokens and consents",
)
def delete_user(
    tenant_id: TenantId, username: Username, rt: RuntimeDep, admin: AdminDep
) -> Response:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        user = service.get_user(db, tenant=tenant, username=username)
        refuse_self_lockout(admin, tenant=tenant, user=user, delete=True)
        service.delete_user(db, tenant=tenant, user=user, actor=admin.actor)
    return no_content()
