"""The admin pages' users of a tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from .. import service
from ..admin_api.deps import refuse_self_lockout
from ..runtime import Runtime
from .base import (
    Csrf,
    Ctx,
    Done,
    Flag,
    Page,
    RuntimeDep,
    TenantQuery,
    checked,
    confirm_missing,
    run_form,
    show_page,
)

router = APIRouter()


def _users(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {"users": service.list_users(db, tenant=ctx.tenant)}


def _user(rt: Runtime, db: Session, ctx: Ctx, *, username: str = "", **_: str) -> dict[str, Any]:
    return {"subject": service.get_user(db, tenant=ctx.tenant, username=username)}


USERS = Page("admin/users.html", "users", "Users", _users)
USER = Page("admin/user.html", "users", "User", _user)


@router.get("/{issuer}/admin/users")
def users(request: Request, issuer: str, rt: RuntimeDep, tenant: TenantQuery = None) -> Response:
    return show_page(rt, request, issuer, tenant, USERS)


@router.post("/{issuer}/admin/users")
def create_user(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
    username: Annotated[str, Form(max_length=128)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    is_admin: Flag = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        user = service.create_user(
            db,
            tenant=ctx.tenant,
            username=username.strip(),
            password=password or None,
            is_admin=checked(is_admin),
            display_name=display_name.strip(),
            email=email.strip(),
            actor=ctx.admin.actor,
        )
        return Done(f"User {user.username} created.", "/users")

    return run_form(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page=USERS,
        form={
            "username": username,
            "display_name": display_name,
            "email": email,
            "is_admin": checked(is_admin),
        },
    )


@router.get("/{issuer}/admin/users/{username}")
def user_page(
    request: Request, issuer: str, username: str, rt: RuntimeDep, tenant: TenantQuery = None
) -> Response:
    return show_page(rt, request, issuer, tenant, USER, username=username)


@router.post("/{issuer}/admin/users/{username}")
def update_user(
    request: Request,
    issuer: str,
    username: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
    display_name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    is_admin: Flag = "",
    disabled: Flag = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        user = service.get_user(db, tenant=ctx.tenant, username=username)
        refuse_self_lockout(
            ctx.admin,
            tenant=ctx.tenant,
            user=user,
            is_admin=checked(is_admin),
            disabled=checked(disabled),
        )
        service.update_user(
            db,
            tenant=ctx.tenant,
            user=user,
            actor=ctx.admin.actor,
            password=password or None,
            is_admin=checked(is_admin),
            disabled=checked(disabled),
            display_name=display_name.strip(),
        )
        return Done(f"User {user.username} saved.", f"/users/{user.username}")

    return run_form(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page=USER,
        params={"username": username},
    )


@router.post("/{issuer}/admin/users/{username}/disable")
def disable_user(
    request: Request,
    issuer: str,
    username: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
) -> Response:
    return _set_disabled(
        rt, request, issuer, tenant_id=tenant, csrf=csrf, username=username, disabled=True
    )


@router.post("/{issuer}/admin/users/{username}/enable")
def enable_user(
    request: Request,
    issuer: str,
    username: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
) -> Response:
    return _set_disabled(
        rt, request, issuer, tenant_id=tenant, csrf=csrf, username=username, disabled=False
    )


def _set_disabled(
    rt: Runtime,
    request: Request,
    issuer: str,
    *,
    tenant_id: str | None,
    csrf: str,
    username: str,
    disabled: bool,
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        user = service.get_user(db, tenant=ctx.tenant, username=username)
        refuse_self_lockout(ctx.admin, tenant=ctx.tenant, user=user, disabled=disabled)
        service.update_user(
            db, tenant=ctx.tenant, user=user, actor=ctx.admin.actor, disabled=disabled
        )
        return Done(f"User {user.username} {'disabled' if disabled else 'enabled'}.", "/users")

    return run_form(rt, request, issuer, work, tenant_id=tenant_id, csrf=csrf, page=USERS)


@router.post("/{issuer}/admin/users/{username}/delete")
def delete_user(
    request: Request,
    issuer: str,
    username: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
    confirm: Flag = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        user = service.get_user(db, tenant=ctx.tenant, username=username)
        if not checked(confirm):
            raise confirm_missing(f"Tick the box to confirm deleting {user.username}.")
        refuse_self_lockout(ctx.admin, tenant=ctx.tenant, user=user, delete=True)
        service.delete_user(db, tenant=ctx.tenant, user=user, actor=ctx.admin.actor)
        return Done(f"User {username} deleted.", "/users")

    return run_form(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page=USER,
        params={"username": username},
    )
