"""The admin pages' users of a tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import Response
from sqlalchemy.orm import Session

from .. import service
from ..admin_api.deps import refuse_self_lockout
from ..runtime import Runtime
from .base import AdminCall, Ctx, Done, Flag, FormCall, Page, PageCall, checked, confirm_missing

router = APIRouter()


def _users(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {"users": service.list_users(db, tenant=ctx.tenant)}


def _user(rt: Runtime, db: Session, ctx: Ctx, *, username: str = "", **_: str) -> dict[str, Any]:
    return {"subject": service.get_user(db, tenant=ctx.tenant, username=username)}


USERS = Page("admin/users.html", "users", "Users", _users)
USER = Page("admin/user.html", "users", "User", _user)


@router.get("/{issuer}/admin/users")
def users(call: PageCall) -> Response:
    return call.show(USERS)


@router.post("/{issuer}/admin/users")
def create_user(
    call: FormCall,
    *,
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

    return call.run(
        work,
        page=USERS,
        form={
            "username": username,
            "display_name": display_name,
            "email": email,
            "is_admin": checked(is_admin),
        },
    )


@router.get("/{issuer}/admin/users/{username}")
def user_page(call: PageCall, username: str) -> Response:
    return call.show(USER, username=username)


@router.post("/{issuer}/admin/users/{username}")
def update_user(
    call: FormCall,
    username: str,
    *,
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

    return call.run(
        work,
        page=USER,
        params={"username": username},
    )


@router.post("/{issuer}/admin/users/{username}/disable")
def disable_user(call: FormCall, username: str) -> Response:
    return _set_disabled(call, username, disabled=True)


@router.post("/{issuer}/admin/users/{username}/enable")
def enable_user(call: FormCall, username: str) -> Response:
    return _set_disabled(call, username, disabled=False)


def _set_disabled(call: AdminCall, username: str, *, disabled: bool) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        user = service.get_user(db, tenant=ctx.tenant, username=username)
        refuse_self_lockout(ctx.admin, tenant=ctx.tenant, user=user, disabled=disabled)
        service.update_user(
            db, tenant=ctx.tenant, user=user, actor=ctx.admin.actor, disabled=disabled
        )
        return Done(f"User {user.username} {'disabled' if disabled else 'enabled'}.", "/users")

    return call.run(work, page=USERS)


@router.post("/{issuer}/admin/users/{username}/delete")
def delete_user(call: FormCall, username: str, *, confirm: Flag = "") -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        user = service.get_user(db, tenant=ctx.tenant, username=username)
        if not checked(confirm):
            raise confirm_missing(f"Tick the box to confirm deleting {user.username}.")
        refuse_self_lockout(ctx.admin, tenant=ctx.tenant, user=user, delete=True)
        service.delete_user(db, tenant=ctx.tenant, user=user, actor=ctx.admin.actor)
        return Done(f"User {username} deleted.", "/users")

    return call.run(
        work,
        page=USER,
        params={"username": username},
    )
