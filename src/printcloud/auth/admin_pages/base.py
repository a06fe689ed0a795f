"""What every admin page shares: the signed-in administrator and the tenant a page
is about (`Ctx`), the sign-in gate, the flash cookie, rendering a page and
running one form's change (POST-redirect-GET), and reading form fields."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from printcloud.core import crypto, words
from printcloud.core.errors import InvalidRequest, NotFound, PrintcloudError
from printcloud.core.web import check_csrf

from .. import service
from ..admin_api.deps import Admin, admin_session, managed_tenant
from ..models import Tenant, User
from ..pages import current_session, render
from ..runtime import Runtime, runtime_dependency

RuntimeDep = Annotated[Runtime, Depends(runtime_dependency)]
TenantQuery = Annotated[str | None, Query(max_length=64)]
Csrf = Annotated[str, Form(max_length=100)]
Flag = Annotated[str, Form(max_length=10)]
Number = Annotated[str, Form(max_length=20)]

FLASH_COOKIE = "pc_admin_flash"
FLASH_TTL = 300
EXPIRED = "Your form expired. Reload the page and try again."
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


@dataclass(frozen=True)
class Page:
    """One admin page: its template, its section in the menu, its title, and the
    loader of what it shows (called with the page's query and path values)."""

    template: str
    section: str
    title: str
    load: Callable[..., dict[str, Any]]


# -- sign-in, tenant and flash ----------------------------------------------------------


def message_page(
    rt: Runtime, request: Request, status: int, title: str, text: str, **context: Any
) -> Response:
    return render(rt, request, "message.html", status, title=title, message=text, **context)


def admin_gate(
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
        return message_page(
            rt,
            request,
            403,
            "Administrators only",
            "Your account may not administer this organisation.",
            viewer=rt.viewer(issuer, user, user.tenant),
        )
    home: Tenant = user.tenant
    admin = Admin.user(issuer, tenant_id=home.tenant_id, username=user.username)
    try:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id or home.tenant_id)
    except NotFound:
        return message_page(
            rt,
            request,
            404,
            "Not found",
            f"There is no organisation {tenant_id!r}.",
            viewer=rt.viewer(issuer, user, home),
        )
    return Ctx(issuer=issuer, admin=admin, user=user, tenant=tenant, session_id=sid)


def _box(rt: Runtime) -> crypto.SecretBox:
    return crypto.SecretBox(rt.settings.instance_secrets)


def set_flash(
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


# -- a page and a form ---------------------------------------------------------------------


def render_page(
    rt: Runtime,
    request: Request,
    db: Session,
    ctx: Ctx,
    page: Page,
    *,
    status: int = 200,
    error: str | None = None,
    error_field: str | None = None,
    form: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
) -> Response:
    try:
        data = page.load(rt, db, ctx, **(params or {}))
    except NotFound as exc:
        return message_page(
            rt,
            request,
            404,
            "Not found",
            words.form_error(exc.description, exc.field),
            viewer=rt.viewer(ctx.issuer, ctx.user, ctx.user.tenant),
        )
    # The services word their refusals for API clients: a person reads them plainly.
    error = words.form_error(error, error_field) if error else None
    flash = _take_flash(rt, request, ctx) if request.method == "GET" else None
    response = render(
        rt,
        request,
        page.template,
        status,
        issuer=ctx.issuer,
        ctx=ctx,
        tenant=ctx.tenant,
        me=ctx.user,
        viewer=rt.viewer(ctx.issuer, ctx.user, ctx.user.tenant),
        area="admin",
        section=page.section,
        title=page.title,
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


@dataclass
class Done:
    """What a successful change answers: a notice, where to go, maybe a new secret."""

    notice: str
    path: str = ""
    secret: dict[str, str | None] | None = None
    tenant_id: str | None = None
    #: A client (or its tenant) changed: drop the client cache once committed.
    clients_changed: bool = False


@dataclass(frozen=True)
class AdminCall:
    """One request to an admin page: the runtime, the request, the issuer and the tenant
    it is about (`?tenant=`, for a system administrator), and a form's CSRF token. Pages
    and forms take it as `PageCall` / `FormCall` and answer with `show` / `run`."""

    rt: Runtime
    request: Request
    issuer: str
    tenant_id: str | None
    csrf: str = ""

    def show(self, page: Page, **params: str) -> Response:
        """`page`, for the signed-in administrator (else the sign-in gate's answer)."""
        rt, request = self.rt, self.request
        with admin_session(rt) as db:
            ctx = admin_gate(rt, request, db, self.issuer, self.tenant_id)
            if isinstance(ctx, Response):
                return ctx
            return render_page(rt, request, db, ctx, page, params=params)

    def run(
        self,
        work: Callable[[Session, Ctx], Done],
        *,
        page: Page,
        form: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Response:
        """Run one change of a form: sign-in, CSRF, the change, then redirect (or `page`
        again, with the error and the form as it was sent)."""
        rt, request = self.rt, self.request
        with admin_session(rt) as db:
            ctx = admin_gate(rt, request, db, self.issuer, self.tenant_id)
            if isinstance(ctx, Response):
                return ctx
            if not check_csrf(request, self.csrf):
                return render_page(
                    rt, request, db, ctx, page, status=400, error=EXPIRED, form=form, params=params
                )
            try:
                done = work(db, ctx)
            except PrintcloudError as exc:
                db.rollback()
                return render_page(
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
        set_flash(rt, response, ctx, done.notice, done.secret)
        return response


def _page_call(
    request: Request, issuer: str, rt: RuntimeDep, tenant: TenantQuery = None
) -> AdminCall:
    return AdminCall(rt, request, issuer, tenant)


def _form_call(
    request: Request, issuer: str, rt: RuntimeDep, csrf: Csrf = "", tenant: TenantQuery = None
) -> AdminCall:
    return AdminCall(rt, request, issuer, tenant, csrf)


#: A page shown (GET) and a form sent (POST): `/{issuer}/admin/…?tenant=…`, and `csrf`.
PageCall = Annotated[AdminCall, Depends(_page_call)]
FormCall = Annotated[AdminCall, Depends(_form_call)]


# -- form fields ------------------------------------------------------------------------------


def checked(value: str) -> bool:
    return value in ("on", "1", "true", "yes")


def nonblank_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def whole_number(text: str, field: str, what: str) -> int:
    """A whole number typed into a form; within what an INTEGER column holds."""
    value = text.strip()
    if not value.isdigit() or not value.isascii() or len(value) > 6:
        raise InvalidRequest(f"Enter a whole number of {what}.", field=field)
    return int(value)


def confirm_missing(text: str) -> PrintcloudError:
    return InvalidRequest(text, field="confirm")


def row_pk(value: int, what: str = "consent") -> int:
    if not 0 < value < 2**31:
        raise NotFound(f"no {what} {value}")
    return value
