"""Admin pages of each issuer, `/{issuer}/admin`: tenant settings, users,
clients, ID cards with their lockouts and directory (seed 004), consents
(seed 002) and the audit log. Server-rendered, they work without JavaScript;
every form is POST with the CSRF token, and a change answers with a redirect
(POST-redirect-GET).

They sit behind the browser login of `pages.py`; the signed-in user must be an
administrator. The rules are those of the admin API (`admin_api.py`): an
administrator of the system tenant picks any tenant of the issuer
(`?tenant=`), any other administrator sees only their own tenant.

A message for the next page, and a new client secret, travel in a short-lived
cookie sealed with the instance secret and bound to the login: never in a URL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from printcloud.core import crypto
from printcloud.core.errors import InvalidRequest, NotFound, PrintcloudError
from printcloud.core.web import check_csrf

from . import cards, service
from .admin_api import (
    Admin,
    admin_session,
    card_read,
    directory_read,
    managed_tenant,
    refuse_nul,
    refuse_platform_client,
    refuse_self_lockout,
    tenant_lockouts,
)
from .directory import LdapSettings, check_settings
from .models import CardBinding, Client, Tenant, TenantConsent, User
from .pages import SCOPE_TEXT, current_session, render
from .runtime import Runtime, runtime

router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_nul)])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
TenantQuery = Annotated[str | None, Query(max_length=64)]
Csrf = Annotated[str, Form(max_length=100)]
Flag = Annotated[str, Form(max_length=10)]
Number = Annotated[str, Form(max_length=20)]
Long = Annotated[str, Form(max_length=500)]
Attribute = Annotated[str, Form(max_length=64)]
#: The directory's CA certificates, pasted as PEM text (directory.MAX_CA_PEM).
CaPem = Annotated[str, Form(max_length=65_536)]

FLASH_COOKIE = "pc_admin_flash"
FLASH_TTL = 300
#: "Test connection" counts a directory's users up to this many.
COUNT_LIMIT = 10_000
EXPIRED = "Your form expired. Reload the page and try again."
GRANT_CHOICES = (
    ("authorization_code", "Authorization code (browser sign-in)"),
    ("refresh_token", "Refresh token"),
    ("client_credentials", "Client credentials"),
    ("urn:ietf:params:oauth:grant-type:device_code", "Device code (RFC 8628)"),
    ("urn:ietf:params:oauth:grant-type:token-exchange", "Token exchange (RFC 8693)"),
)
SECTIONS = (
    ("overview", "Overview"),
    ("users", "Users"),
    ("clients", "Clients"),
    ("cards", "ID cards"),
    ("card-lockouts", "Card lockouts"),
    ("directory", "Directory"),
    ("consents", "Consents"),
    ("audit", "Audit log"),
)


@dataclass
class Ctx:
    """The signed-in administrator and the tenant the page is about."""

    issuer: str
    admin: Admin
    user: User
    tenant: Tenant
    session_id: str

    def url(self, path: str = "", **query: str) -> str:
        if self.admin.is_system:
            query = {"tenant": self.tenant.tenant_id, **query}
        base = f"/{self.issuer}/admin{path}"
        return f"{base}?{urlencode(query)}" if query else base


# -- sign-in, tenant and flash ----------------------------------------------------------


def _message(rt: Runtime, request: Request, status: int, title: str, text: str) -> Response:
    return render(rt, request, "message.html", status, title=title, message=text)


def _gate(
    rt: Runtime, request: Request, db: Session, issuer: str, tenant_id: str | None
) -> Ctx | Response:
    rt.server(issuer)
    sid = request.cookies.get(rt.session_cookie(issuer), "")
    sess = current_session(rt, request, db, issuer)
    if sess is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            back = f"/{issuer}/admin"
        return RedirectResponse(f"/{issuer}/login?{urlencode({'next': back})}", status_code=303)
    user: User = sess.user
    if not user.is_admin:
        return _message(
            rt,
            request,
            403,
            "Administrators only",
            "Your account may not administer this organisation.",
        )
    home: Tenant = user.tenant
    admin = Admin(
        issuer=issuer,
        tenant_id=home.tenant_id,
        actor=f"user:{user.username}",
        username=user.username,
    )
    try:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id or home.tenant_id)
    except NotFound:
        return _message(rt, request, 404, "Not found", f"There is no tenant {tenant_id!r}.")
    return Ctx(issuer=issuer, admin=admin, user=user, tenant=tenant, session_id=sid)


def _box(rt: Runtime) -> crypto.SecretBox:
    return crypto.SecretBox(rt.settings.instance_secrets)


def _set_flash(
    rt: Runtime,
    response: Response,
    ctx: Ctx,
    notice: str,
    secret: dict[str, str | None] | None = None,
) -> None:
    payload = {
        "purpose": "admin-flash",
        "issuer": ctx.issuer,
        "sid": crypto.token_digest(ctx.session_id),
        "at": time.time(),
        "notice": notice,
        "secret": secret,
    }
    response.set_cookie(
        FLASH_COOKIE,
        _box(rt).seal(json.dumps(payload)),
        max_age=FLASH_TTL,
        httponly=True,
        samesite="strict",
        secure=rt.secure_cookies(),
        path=f"/{ctx.issuer}/admin",
    )


def _take_flash(rt: Runtime, request: Request, ctx: Ctx) -> dict[str, Any] | None:
    sealed = request.cookies.get(FLASH_COOKIE)
    if not sealed or len(sealed) > 4096:
        return None
    try:
        payload = json.loads(_box(rt).open(sealed))
        fresh = time.time() - float(payload["at"]) < FLASH_TTL
        ours = (
            payload["purpose"] == "admin-flash"
            and payload["issuer"] == ctx.issuer
            and crypto.equal(str(payload["sid"]), crypto.token_digest(ctx.session_id))
        )
    except (ValueError, TypeError, KeyError):
        return None  # sealed under another instance secret, or not ours: show nothing
    return payload if fresh and ours else None


# -- what each page shows ------------------------------------------------------------------


def _overview(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    tenant = ctx.tenant
    return {
        "counts": {
            "users": service.count_rows(db, User, User.tenant_pk == tenant.pk),
            "clients": service.count_rows(db, Client, Client.tenant_pk == tenant.pk),
            "cards": service.count_rows(db, CardBinding, CardBinding.tenant_pk == tenant.pk),
            "tenant_consents": service.count_rows(
                db,
                TenantConsent,
                TenantConsent.tenant_pk == tenant.pk,
                TenantConsent.revoked_at.is_(None),
            ),
        }
    }


def _users(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {"users": service.list_users(db, tenant=ctx.tenant)}


def _user(rt: Runtime, db: Session, ctx: Ctx, *, username: str = "", **_: str) -> dict[str, Any]:
    return {"subject": service.get_user(db, tenant=ctx.tenant, username=username)}


def _clients(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {"clients": service.list_clients(db, tenant=ctx.tenant), **_client_choices(ctx)}


def _client(rt: Runtime, db: Session, ctx: Ctx, *, client_id: str = "", **_: str) -> dict[str, Any]:
    client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
    return {"client": client, **_client_choices(ctx)}


def _client_choices(ctx: Ctx) -> dict[str, Any]:
    kinds = ["confidential", "public", "device"] + (["service"] if ctx.tenant.is_system else [])
    return {
        "kinds": kinds,
        # `admin` is for the platform's own service clients only (the system tenant's)
        "scope_choices": [
            (s, SCOPE_TEXT.get(s, s))
            for s in service.SCOPES
            if ctx.tenant.is_system or s not in service.PLATFORM_SCOPES
        ],
        "grant_choices": GRANT_CHOICES,
    }


def _consents(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {
        "tenant_consents": service.list_tenant_consents(
            db, tenant=ctx.tenant, include_revoked=True
        ),
        "user_consents": service.list_user_consents(db, tenant=ctx.tenant),
    }


def _audit(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {"events": service.list_audit(db, tenant=ctx.tenant, limit=200)}


def _cards(rt: Runtime, db: Session, ctx: Ctx, *, q: str = "", **_: str) -> dict[str, Any]:
    found = cards.list_bindings(db, tenant=ctx.tenant, text=q.strip() or None)
    return {"cards": [card_read(b, ctx.tenant) for b in found], "q": q}


def _card_lockouts(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {
        "lockouts": tenant_lockouts(rt, db, ctx.tenant),
        "allowed": rt.settings.card_failures_allowed,
        "window": rt.settings.card_lockout_seconds,
    }


def _directory(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {"directory": directory_read(ctx.tenant, cards.directory_of(db, tenant=ctx.tenant))}


PAGES: dict[str, tuple[str, str, str, Callable[..., dict[str, Any]]]] = {
    # page: (template, section, title, loader)
    "overview": ("admin/overview.html", "overview", "Overview", _overview),
    "users": ("admin/users.html", "users", "Users", _users),
    "user": ("admin/user.html", "users", "User", _user),
    "clients": ("admin/clients.html", "clients", "Clients", _clients),
    "client": ("admin/client.html", "clients", "Client", _client),
    "consents": ("admin/consents.html", "consents", "Consents", _consents),
    "audit": ("admin/audit.html", "audit", "Audit log", _audit),
    "cards": ("admin/cards.html", "cards", "ID cards", _cards),
    "card-lockouts": ("admin/card_lockouts.html", "card-lockouts", "Card lockouts", _card_lockouts),
    "directory": ("admin/directory.html", "directory", "Directory", _directory),
}


def _show(
    rt: Runtime,
    request: Request,
    db: Session,
    ctx: Ctx,
    page: str,
    *,
    status: int = 200,
    error: str | None = None,
    error_field: str | None = None,
    form: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
) -> Response:
    template, section, title, load = PAGES[page]
    try:
        data = load(rt, db, ctx, **(params or {}))
    except NotFound as exc:
        return _message(rt, request, 404, "Not found", exc.description)
    flash = _take_flash(rt, request, ctx) if request.method == "GET" else None
    response = render(
        rt,
        request,
        template,
        status,
        issuer=ctx.issuer,
        ctx=ctx,
        tenant=ctx.tenant,
        me=ctx.user,
        section=section,
        title=title,
        sections=SECTIONS,
        error=error,
        error_field=error_field,
        form=form or {},
        notice=flash["notice"] if flash else None,
        new_secret=flash.get("secret") if flash else None,
        tenants=service.list_tenants(db, issuer=ctx.issuer) if ctx.admin.is_system else [],
        **data,
    )
    if request.cookies.get(FLASH_COOKIE) and request.method == "GET":
        response.delete_cookie(FLASH_COOKIE, path=f"/{ctx.issuer}/admin")
    return response


def _page(
    rt: Runtime, request: Request, issuer: str, tenant_id: str | None, page: str, **params: str
) -> Response:
    with admin_session(rt) as db:
        ctx = _gate(rt, request, db, issuer, tenant_id)
        if isinstance(ctx, Response):
            return ctx
        return _show(rt, request, db, ctx, page, params=params)


@dataclass
class Done:
    """What a successful change answers: a notice, where to go, maybe a new secret."""

    notice: str
    path: str = ""
    secret: dict[str, str | None] | None = None
    tenant_id: str | None = None
    #: A client (or its tenant) changed: drop the client cache once committed.
    clients_changed: bool = False


def _act(
    rt: Runtime,
    request: Request,
    issuer: str,
    work: Callable[[Session, Ctx], Done],
    *,
    tenant_id: str | None,
    csrf: str,
    page: str,
    form: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
) -> Response:
    """Run one change of a form: sign-in, CSRF, the change, then redirect (or the page again,
    with the error and the form as it was sent)."""
    with admin_session(rt) as db:
        ctx = _gate(rt, request, db, issuer, tenant_id)
        if isinstance(ctx, Response):
            return ctx
        if not check_csrf(request, csrf):
            return _show(
                rt, request, db, ctx, page, status=400, error=EXPIRED, form=form, params=params
            )
        try:
            done = work(db, ctx)
        except PrintcloudError as exc:
            db.rollback()
            return _show(
                rt,
                request,
                db,
                ctx,
                page,
                status=exc.status_code,
                error=exc.description,
                error_field=exc.field,
                form=form,
                params=params,
            )
    if done.clients_changed:
        rt.clients.invalidate()
    query = {"tenant": done.tenant_id} if done.tenant_id else {}
    response = RedirectResponse(ctx.url(done.path, **query), status_code=303)
    _set_flash(rt, response, ctx, done.notice, done.secret)
    return response


def _checked(value: str) -> bool:
    return value in ("on", "1", "true", "yes")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _whole(text: str, field: str, what: str) -> int:
    """A whole number typed into a form; within what an INTEGER column holds."""
    value = text.strip()
    if not value.isdigit() or not value.isascii() or len(value) > 6:
        raise InvalidRequest(f"{field} must be a whole number of {what}", field=field)
    return int(value)


# -- overview and tenant settings ----------------------------------------------------------


@router.get("/{issuer}/admin")
def overview(request: Request, issuer: str, rt: RuntimeDep, tenant: TenantQuery = None) -> Response:
    return _page(rt, request, issuer, tenant, "overview")


@router.post("/{issuer}/admin/settings")
def save_settings(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
    name: Annotated[str, Form(max_length=200)] = "",
    local_auth_cooperation: Flag = "",
    users_may_grant_tenant_consent: Flag = "",
    card_retention_days: Number = "",
    held_release: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        service.update_tenant_settings(
            db,
            tenant=ctx.tenant,
            actor=ctx.admin.actor,
            name=name,
            local_auth_cooperation=_checked(local_auth_cooperation),
            users_may_grant_tenant_consent=_checked(users_may_grant_tenant_consent),
            # not sent (an older form): the period stays as it is
            card_retention_days=_whole(card_retention_days, "card_retention_days", "days")
            if card_retention_days
            else None,
            held_release=held_release or None,
        )
        return Done("Settings saved.", clients_changed=True)

    return _act(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page="overview",
        form={"name": name, "card_retention_days": card_retention_days},
    )


@router.post("/{issuer}/admin/tenants")
def create_tenant(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
    tenant_id: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        if not ctx.admin.is_system:
            raise NotFound("no such page")
        created = service.create_tenant(
            db, issuer=issuer, tenant_id=tenant_id.strip(), name=name.strip(), actor=ctx.admin.actor
        )
        return Done(f"Tenant {created.tenant_id} created.", tenant_id=created.tenant_id)

    return _act(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page="overview",
        form={"new_tenant_id": tenant_id, "new_tenant_name": name},
    )


# -- users -------------------------------------------------------------------------------------


@router.get("/{issuer}/admin/users")
def users(request: Request, issuer: str, rt: RuntimeDep, tenant: TenantQuery = None) -> Response:
    return _page(rt, request, issuer, tenant, "users")


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
            is_admin=_checked(is_admin),
            display_name=display_name.strip(),
            email=email.strip(),
            actor=ctx.admin.actor,
        )
        return Done(f"User {user.username} created.", "/users")

    return _act(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page="users",
        form={
            "username": username,
            "display_name": display_name,
            "email": email,
            "is_admin": _checked(is_admin),
        },
    )


@router.get("/{issuer}/admin/users/{username}")
def user_page(
    request: Request, issuer: str, username: str, rt: RuntimeDep, tenant: TenantQuery = None
) -> Response:
    return _page(rt, request, issuer, tenant, "user", username=username)


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
            is_admin=_checked(is_admin),
            disabled=_checked(disabled),
        )
        service.update_user(
            db,
            tenant=ctx.tenant,
            user=user,
            actor=ctx.admin.actor,
            password=password or None,
            is_admin=_checked(is_admin),
            disabled=_checked(disabled),
            display_name=display_name.strip(),
        )
        return Done(f"User {user.username} saved.", f"/users/{user.username}")

    return _act(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page="user",
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

    return _act(rt, request, issuer, work, tenant_id=tenant_id, csrf=csrf, page="users")


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
        if not _checked(confirm):
            raise _confirm_missing(f"Tick the box to confirm deleting {user.username}.")
        refuse_self_lockout(ctx.admin, tenant=ctx.tenant, user=user, delete=True)
        service.delete_user(db, tenant=ctx.tenant, user=user, actor=ctx.admin.actor)
        return Done(f"User {username} deleted.", "/users")

    return _act(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page="user",
        params={"username": username},
    )


def _confirm_missing(text: str) -> PrintcloudError:
    return InvalidRequest(text, field="confirm")


# -- clients ------------------------------------------------------------------------------------


@router.get("/{issuer}/admin/clients")
def clients(request: Request, issuer: str, rt: RuntimeDep, tenant: TenantQuery = None) -> Response:
    return _page(rt, request, issuer, tenant, "clients")


@router.post("/{issuer}/admin/clients")
def create_client(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=16)] = "confidential",
    redirect_uris: Annotated[str, Form(max_length=20_000)] = "",
    scope: Annotated[list[str] | None, Form()] = None,
    grant_types: Annotated[list[str] | None, Form()] = None,
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client, secret = service.create_client(
            db,
            tenant=ctx.tenant,
            name=name,
            kind=kind,
            redirect_uris=_lines(redirect_uris),
            grant_types=grant_types or None,
            scope=" ".join(scope or []),
            actor=ctx.admin.actor,
        )
        shown = {"client_id": client.client_id, "client_secret": secret}
        return Done(
            f"Client {client.name} registered.",
            f"/clients/{client.client_id}",
            secret=shown,
            clients_changed=True,
        )

    return _act(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page="clients",
        form={
            "name": name,
            "kind": kind,
            "redirect_uris": redirect_uris,
            "scope": scope or [],
            "grant_types": grant_types or [],
        },
    )


@router.get("/{issuer}/admin/clients/{client_id}")
def client_page(
    request: Request, issuer: str, client_id: str, rt: RuntimeDep, tenant: TenantQuery = None
) -> Response:
    return _page(rt, request, issuer, tenant, "client", client_id=client_id)


@router.post("/{issuer}/admin/clients/{client_id}")
def update_client(
    request: Request,
    issuer: str,
    client_id: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
    name: Annotated[str, Form(max_length=200)] = "",
    redirect_uris: Annotated[str, Form(max_length=20_000)] = "",
    scope: Annotated[list[str] | None, Form()] = None,
    disabled: Flag = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
        refuse_platform_client(rt.settings, client, "changed")
        service.update_client(
            db,
            tenant=ctx.tenant,
            client=client,
            actor=ctx.admin.actor,
            name=name,
            redirect_uris=_lines(redirect_uris),
            scope=" ".join(scope or []),
            disabled=_checked(disabled),
        )
        return Done(
            f"Client {client.name} saved.", f"/clients/{client.client_id}", clients_changed=True
        )

    return _act(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page="client",
        params={"client_id": client_id},
    )


@router.post("/{issuer}/admin/clients/{client_id}/rotate")
def rotate_client(
    request: Request,
    issuer: str,
    client_id: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
    confirm: Flag = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
        if not _checked(confirm):
            raise _confirm_missing("Tick the box to confirm that the old secret stops working.")
        refuse_platform_client(rt.settings, client, "rotated")
        secret = service.rotate_client_secret(
            db, tenant=ctx.tenant, client=client, actor=ctx.admin.actor
        )
        return Done(
            f"New secret issued for {client.name}; the old one no longer works.",
            f"/clients/{client.client_id}",
            secret={"client_id": client.client_id, "client_secret": secret},
            clients_changed=True,
        )

    return _act(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page="client",
        params={"client_id": client_id},
    )


@router.post("/{issuer}/admin/clients/{client_id}/delete")
def delete_client(
    request: Request,
    issuer: str,
    client_id: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
    confirm: Flag = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
        if not _checked(confirm):
            raise _confirm_missing(f"Tick the box to confirm deleting {client.name}.")
        refuse_platform_client(rt.settings, client, "deleted")
        service.delete_client(db, tenant=ctx.tenant, client=client, actor=ctx.admin.actor)
        return Done(f"Client {client.name} deleted.", "/clients", clients_changed=True)

    return _act(
        rt,
        request,
        issuer,
        work,
        tenant_id=tenant,
        csrf=csrf,
        page="client",
        params={"client_id": client_id},
    )


# -- consents (seed 002) and audit ----------------------------------------------------------------


@router.get("/{issuer}/admin/consents")
def consents(request: Request, issuer: str, rt: RuntimeDep, tenant: TenantQuery = None) -> Response:
    return _page(rt, request, issuer, tenant, "consents")


@router.post("/{issuer}/admin/consents/tenant/{consent_id}/revoke")
def revoke_tenant_consent(
    request: Request,
    issuer: str,
    consent_id: int,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        consent = service.revoke_tenant_consent(
            db, tenant=ctx.tenant, consent_pk=_pk(consent_id), actor=ctx.admin.actor
        )
        return Done(f"Tenant-wide consent for {consent.client.name} revoked.", "/consents")

    return _act(rt, request, issuer, work, tenant_id=tenant, csrf=csrf, page="consents")


@router.post("/{issuer}/admin/consents/user/{consent_id}/revoke")
def revoke_user_consent(
    request: Request,
    issuer: str,
    consent_id: int,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        service.revoke_user_consent(
            db, tenant=ctx.tenant, consent_pk=_pk(consent_id), actor=ctx.admin.actor
        )
        return Done("The user's consent was revoked.", "/consents")

    return _act(rt, request, issuer, work, tenant_id=tenant, csrf=csrf, page="consents")


def _pk(value: int, what: str = "consent") -> int:
    if not 0 < value < 2**31:
        raise NotFound(f"no {what} {value}")
    return value


@router.get("/{issuer}/admin/audit")
def audit(request: Request, issuer: str, rt: RuntimeDep, tenant: TenantQuery = None) -> Response:
    return _page(rt, request, issuer, tenant, "audit")


# -- ID cards, their lockouts and the directory (seed 004) ---------------------------------------


@router.get("/{issuer}/admin/cards")
def cards_page(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    tenant: TenantQuery = None,
    q: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    return _page(rt, request, issuer, tenant, "cards", q=q)


@router.post("/{issuer}/admin/cards/{card_id}/delete")
def delete_card(
    request: Request,
    issuer: str,
    card_id: int,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        binding = db.get(CardBinding, _pk(card_id, "card"))
        # cards.delete_binding refuses a card of another tenant: only then is `binding` named
        cards.delete_binding(db, tenant=ctx.tenant, binding_pk=card_id, actor=ctx.admin.actor)
        assert binding is not None
        return Done(
            f"Card {binding.hint} of {binding.user.username} deleted; "
            "it must be registered again before it signs anyone in.",
            "/cards",
        )

    return _act(rt, request, issuer, work, tenant_id=tenant, csrf=csrf, page="cards")


@router.get("/{issuer}/admin/card-lockouts")
def card_lockouts(
    request: Request, issuer: str, rt: RuntimeDep, tenant: TenantQuery = None
) -> Response:
    return _page(rt, request, issuer, tenant, "card-lockouts")


@router.get("/{issuer}/admin/directory")
def directory_page(
    request: Request, issuer: str, rt: RuntimeDep, tenant: TenantQuery = None
) -> Response:
    return _page(rt, request, issuer, tenant, "directory")


@router.post("/{issuer}/admin/directory")
def save_directory(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
    kind: Annotated[str, Form(max_length=16)] = "builtin",
    url: Long = "",
    base_dn: Long = "",
    user_attr: Attribute = "uid",
    object_class: Attribute = "inetOrgPerson",
    bind_dn: Long = "",
    bind_password: Long = "",
    remove_bind_password: Flag = "",
    name_attr: Attribute = "cn",
    mail_attr: Attribute = "mail",
    start_tls: Flag = "",
    ca_pem: CaPem = "",
    timeout: Number = "5",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        # The password is write-only: empty keeps the stored one, the box removes it.
        password = "" if _checked(remove_bind_password) else (bind_password or None)
        cards.set_directory(
            db,
            tenant=ctx.tenant,
            box=rt.box,
            egress=rt.settings.egress_policy,
            actor=ctx.admin.actor,
            kind=kind,
            url=url.strip(),
            base_dn=base_dn.strip(),
            user_attr=user_attr.strip(),
            object_class=object_class.strip(),
            bind_dn=bind_dn.strip() or None,
            bind_password=password,
            name_attr=name_attr.strip(),
            mail_attr=mail_attr.strip(),
            start_tls=_checked(start_tls),
            ca_pem=ca_pem.strip() or None,
            timeout=_whole(timeout, "timeout", "seconds"),
        )
        return Done("Directory saved.", "/directory")

    # never the password: a page with an error shows the form without it
    sent = {
        "kind": kind,
        "url": url,
        "base_dn": base_dn,
        "user_attr": user_attr,
        "object_class": object_class,
        "bind_dn": bind_dn,
        "remove_bind_password": _checked(remove_bind_password),
        "name_attr": name_attr,
        "mail_attr": mail_attr,
        "start_tls": _checked(start_tls),
        "ca_pem": ca_pem,
        "timeout": timeout,
    }
    return _act(rt, request, issuer, work, tenant_id=tenant, csrf=csrf, page="directory", form=sent)


@router.post("/{issuer}/admin/directory/test")
def try_directory(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    *,
    csrf: Csrf = "",
    tenant: TenantQuery = None,
) -> Response:
    """The saved LDAP settings' "test connection": bind and count the users.

    A plain `def`, so FastAPI runs it in its threadpool; the directory is asked with
    no database connection held, as it may take its whole timeout to answer."""
    with admin_session(rt) as db:
        ctx = _gate(rt, request, db, issuer, tenant)
        if isinstance(ctx, Response):
            return ctx
        if not check_csrf(request, csrf):
            return _show(rt, request, db, ctx, "directory", status=400, error=EXPIRED)
        row = cards.directory_of(db, tenant=ctx.tenant)
        settings: LdapSettings | PrintcloudError
        if row is None or row.kind != "ldap":
            settings = InvalidRequest(
                "The tenant's directory is its own user store: there is no connection to test.",
                field="kind",
            )
        else:
            try:
                settings = cards.ldap_settings(row, rt.box)
            except ValueError:  # sealed under an instance secret no longer configured
                settings = InvalidRequest(
                    "The stored service-account password cannot be decrypted; enter it again.",
                    field="bind_password",
                )
    try:
        if isinstance(settings, PrintcloudError):
            raise settings
        found = check_settings(settings, egress=rt.settings.egress_policy, limit=COUNT_LIMIT)
    except PrintcloudError as exc:
        with admin_session(rt) as db:
            again = _gate(rt, request, db, issuer, tenant)
            if isinstance(again, Response):
                return again
            return _show(
                rt,
                request,
                db,
                again,
                "directory",
                status=exc.status_code,
                error=exc.description,
                error_field=exc.field,
            )
    many = "at least " if found >= COUNT_LIMIT else ""
    response = RedirectResponse(ctx.url("/directory"), status_code=303)
    notice = f"The directory answers: {many}{found} user{'' if found == 1 else 's'} found."
    _set_flash(rt, response, ctx, notice)
    return response
