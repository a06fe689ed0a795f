"""Browser pages of each issuer: login, the signed-in user's account with their ID
cards (seed 004), consent (seed 002), device verification (RFC 8628), logout.
They work without JavaScript."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from authlib.oauth2.rfc6749.errors import OAuth2Error
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from printcloud.core import console, crypto
from printcloud.core.db import utcnow
from printcloud.core.errors import NotFound, RateLimited
from printcloud.core.web import check_csrf, csrf_token, set_csrf_cookie

from . import cards, service
from .models import AuthSession, Client, DeviceGrant, Tenant, User
from .oauth import ClientView, IssuerServer
from .oauth import Request as OAuthRequest
from .routes import client_ip, oauth_request, to_response
from .runtime import Runtime, runtime, runtime_dependency

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(runtime_dependency)]
Csrf = Annotated[str, Form(max_length=100)]
Choice = Annotated[str, Form(max_length=10)]

SCOPE_TEXT = {
    "print": "Print documents and see your print jobs",
    "jobs": "Manage your print jobs",
    "profile": "Read your name and user id",
    "admin": "Administer your organisation",
    "crm.read": "Read business data in the CRM",
    "crm.write": "Change business data in the CRM",
    "docgen": "Generate documents",
    "device": "Use this device for you",
    "cards": "Register and use ID cards",
}


def render(
    rt: Runtime, request: Request, name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    context.setdefault("issuer", request.path_params.get("issuer", ""))
    user, tenant = context.get("user"), context.get("tenant")
    if "viewer" not in context and isinstance(user, User) and isinstance(tenant, Tenant):
        context["viewer"] = rt.viewer(context["issuer"], user, tenant)
    context["csrf"] = csrf_token(request)
    response = rt.pages.TemplateResponse(request, name, context, status_code=status)
    set_csrf_cookie(request, response, secure=rt.secure_cookies())
    response.headers["Cache-Control"] = "no-store"
    return response


async def console_viewer(request: Request) -> console.Viewer | None:
    """Who is signed in at the issuer a path is under, for an error page's navigation."""
    rt = runtime(request)
    issuer = request.url.path.lstrip("/").split("/", 1)[0]
    if issuer not in rt.settings.issuers:
        return None

    def load() -> console.Viewer | None:
        with rt.db.sessions() as db:
            sess = current_session(rt, request, db, issuer)
            if sess is None:
                return None
            return rt.viewer(issuer, sess.user, sess.user.tenant)

    return await run_in_threadpool(load)


def safe_next(issuer: str, target: str | None) -> str:
    """Only a path on this issuer: no open redirects."""
    if not target:
        return f"/{issuer}/account"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(f"/{issuer}/") or "\\" in target:
        return f"/{issuer}/account"
    return target


def current_session(rt: Runtime, request: Request, db: Session, issuer: str) -> AuthSession | None:
    return service.find_session(
        db, issuer=issuer, session_id=request.cookies.get(rt.session_cookie(issuer))
    )


# -- login / logout ---------------------------------------------------------------


@router.get("/{issuer}/login")
async def login_form(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    next: str | None = None,
    tenant: str | None = None,
) -> Response:
    rt.server(issuer)
    return await _login_page(rt, request, issuer, 200, next=safe_next(issuer, next), tenant=tenant)


def _sign_in_place(rt: Runtime, issuer: str, tenant_id: str) -> str:
    """Where the person signs in, in words: their organisation's name when the page
    knows it, else the platform's (or the CRM's) name."""
    if tenant_id:
        with rt.db.sessions() as db:
            found = db.scalar(
                select(Tenant).where(Tenant.issuer == issuer, Tenant.tenant_id == tenant_id)
            )
        if found is not None and not found.is_system:
            return found.name or found.tenant_id
    return "printcloud" if issuer == rt.settings.issuers[0] else "the printcloud CRM"


async def _login_page(
    rt: Runtime,
    request: Request,
    issuer: str,
    status: int,
    *,
    next: str,
    tenant: str | None,
    username: str = "",
    error: str | None = None,
    error_field: str | None = None,
) -> HTMLResponse:
    place = await run_in_threadpool(_sign_in_place, rt, issuer, (tenant or "").strip())
    return render(
        rt,
        request,
        "login.html",
        status,
        next=next,
        tenant=tenant or "",
        username=username,
        place=place,
        error=error,
        error_field=error_field,
    )


def _login(
    rt: Runtime, issuer: str, tenant_id: str, username: str, password: str, ip: str
) -> str | None:
    key = f"{issuer}:{tenant_id}:{username.lower()}"
    rt.login_ip_limiter.hit(ip)
    rt.login_limiter.check(key)
    with rt.db.session() as db:
        tenant = db.scalar(
            select(Tenant).where(Tenant.issuer == issuer, Tenant.tenant_id == tenant_id)
        )
        if tenant is None:
            crypto.verify_password(None, password)  # the same time whether or not the tenant exists
            user = None
        else:
            user = service.authenticate_user(
                db, tenant=tenant, username=username, password=password
            )
        if user is None or tenant is None:
            rt.login_limiter.hit(key)
            return None
        rt.login_limiter.reset(key)
        sid = service.create_session(db, tenant=tenant, user=user, ttl=rt.settings.session_ttl)
        service.audit(
            db,
            issuer=issuer,
            tenant=tenant,
            actor=f"user:{username}",
            action="login",
            details={"ip": ip},
        )
        return sid


@router.post("/{issuer}/login")
async def login(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    tenant: Annotated[str, Form(max_length=64)] = "",
    username: Annotated[str, Form(max_length=128)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Csrf = "",
    next: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    rt.server(issuer)
    target = safe_next(issuer, next)
    if not check_csrf(request, csrf):
        return await _login_page(
            rt,
            request,
            issuer,
            400,
            next=target,
            tenant=tenant,
            username=username,
            error="Your form expired. Please try again.",
        )
    if not (tenant and username and password):
        missing = "tenant" if not tenant else "username" if not username else "password"
        return await _login_page(
            rt,
            request,
            issuer,
            400,
            next=target,
            tenant=tenant,
            username=username,
            error="Enter your organisation, user name and password.",
            error_field=missing,
        )
    try:
        sid = await run_in_threadpool(
            _login, rt, issuer, tenant.strip(), username.strip(), password, client_ip(request)
        )
    except RateLimited as exc:
        response = await _login_page(
            rt,
            request,
            issuer,
            429,
            next=target,
            tenant=tenant,
            username=username,
            error=f"Too many attempts. Try again in {exc.retry_after} seconds.",
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if sid is None:
        return await _login_page(
            rt,
            request,
            issuer,
            401,
            next=target,
            tenant=tenant,
            username=username,
            error="The organisation, user name or password is not right.",
            error_field="password",
        )
    redirect = RedirectResponse(target, status_code=303)
    redirect.set_cookie(
        rt.session_cookie(issuer),
        sid,
        httponly=True,
        samesite="lax",
        secure=rt.secure_cookies(),
        path=f"/{issuer}",
        max_age=rt.settings.session_ttl,
    )
    return redirect


@router.post("/{issuer}/logout")
async def logout(request: Request, issuer: str, rt: RuntimeDep, csrf: Csrf = "") -> Response:
    rt.server(issuer)
    sid = request.cookies.get(rt.session_cookie(issuer))
    if sid and check_csrf(request, csrf):

        def end() -> None:
            with rt.db.session() as db:
                service.end_session(db, session_id=sid)

        await run_in_threadpool(end)
    response = RedirectResponse(f"/{issuer}/login", status_code=303)
    response.delete_cookie(rt.session_cookie(issuer), path=f"/{issuer}")
    return response


@router.get("/{issuer}/account")
async def account(request: Request, issuer: str, rt: RuntimeDep) -> Response:
    rt.server(issuer)

    def load() -> dict[str, Any] | None:
        with rt.db.session() as db:
            sess = current_session(rt, request, db, issuer)
            if sess is None:
                return None
            user: User = sess.user
            tenant: Tenant = user.tenant
            period = timedelta(days=tenant.card_retention_days)
            own = cards.list_bindings(db, tenant=tenant, user=user)
            return {
                "user": user,
                "tenant": tenant,
                # (card, when it is deleted unless used again)
                "cards": [(b, b.last_login_at + period) for b in own],
            }

    ctx = await run_in_threadpool(load)
    if ctx is None:
        return _account_login(issuer)
    return render(rt, request, "account.html", **ctx)


def _account_login(issuer: str) -> RedirectResponse:
    return RedirectResponse(
        f"/{issuer}/login?{urlencode({'next': f'/{issuer}/account'})}", status_code=303
    )


@router.post("/{issuer}/account/cards/{card_id}/delete")
async def remove_card(
    request: Request,
    issuer: str,
    card_id: int,
    rt: RuntimeDep,
    csrf: Csrf = "",
) -> Response:
    """The user removes one of their own cards (seed 004's binding): it must be
    registered again. Another user's card is not found, whoever asks."""
    rt.server(issuer)

    def remove() -> str:
        with rt.db.session() as db:
            sess = current_session(rt, request, db, issuer)
            if sess is None:
                return "login"
            if not check_csrf(request, csrf):
                return "expired"
            user: User = sess.user
            if not 0 < card_id < 2**31:
                raise NotFound("You have no such card.")
            try:
                cards.delete_binding(
                    db,
                    tenant=user.tenant,
                    binding_pk=card_id,
                    actor=f"user:{user.username}",
                    user=user,
                )
            except NotFound as exc:
                raise NotFound("You have no such card.") from exc
            return "removed"

    try:
        result = await run_in_threadpool(remove)
    except NotFound as exc:
        return render(
            rt, request, "message.html", 404, title="Card not found", message=exc.description
        )
    if result == "login":
        return _account_login(issuer)
    if result == "expired":
        return _form_expired(rt, request, "Reload your account page and try again.")
    return RedirectResponse(f"/{issuer}/account", status_code=303)


def _form_expired(rt: Runtime, request: Request, what_next: str) -> Response:
    """400: the form's CSRF token is stale (or missing); `what_next` says how to go on."""
    return render(rt, request, "message.html", 400, title="Your form expired", message=what_next)


# -- authorization endpoint with consent (seed 002) ------------------------------------


def _login_redirect(issuer: str, request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/{issuer}/login?{urlencode({'next': here})}", status_code=303)


def _authorize(
    rt: Runtime, request: Request, issuer: str, oreq: OAuthRequest, decision: dict[str, Any] | None
) -> tuple[str, Any]:
    """One pass of the authorization endpoint. Answers (what, payload): ('login', None),
    ('error', (status, text)), ('response', authlib result) or ('consent', context)."""
    server: IssuerServer = rt.server(issuer)

    def work(server: IssuerServer, req: OAuthRequest) -> tuple[str, Any]:
        from .oauth import current_db

        db = current_db()
        sess = current_session(rt, request, db, issuer)
        try:
            grant = server.get_consent_grant(req, end_user=sess.user if sess else None)
        except OAuth2Error as error:
            if error.redirect_uri:
                return "response", server.handle_error_response(req, error)
            return "error", (
                400,
                f"{error.error}: {error.description or 'invalid authorization request'}",
            )
        if sess is None:
            return "login", None
        user: User = sess.user
        tenant: Tenant = user.tenant
        client: ClientView = grant.client
        scope = req.scope or client.get_allowed_scope(None)
        if decision is None:
            covered = service.consent_covers(
                db, tenant=tenant, user=user, client=client.row, scope=scope
            )
            if covered is not None:
                service.audit(
                    db,
                    issuer=issuer,
                    tenant=tenant,
                    actor=f"user:{user.username}",
                    action="consent.skipped",
                    target=client.row.client_id,
                    details={"because": covered},
                )
                return "response", server.create_authorization_response(
                    req, grant_user=user, grant=grant
                )
            return "consent", {
                "client": client.row,
                "client_tenant": client.row.tenant,
                "tenant": tenant,
                "user": user,
                "scopes": [(s, SCOPE_TEXT.get(s, s)) for s in scope.split()],
                "may_grant_tenant": service.may_grant_tenant_consent(tenant=tenant, user=user),
                "query": request.url.query,
            }
        if not decision["allow"]:
            service.audit(
                db,
                issuer=issuer,
                tenant=tenant,
                actor=f"user:{user.username}",
                action="consent.deny",
                target=client.row.client_id,
            )
            return "response", server.create_authorization_response(
                req, grant_user=None, grant=grant
            )
        if decision["remember"]:
            service.remember_user_consent(
                db, tenant=tenant, user=user, client=client.row, scope=scope
            )
        if decision["tenant_wide"] and service.may_grant_tenant_consent(tenant=tenant, user=user):
            service.grant_tenant_consent(
                db, tenant=tenant, user=user, client=client.row, scope=scope
            )
        service.audit(
            db,
            issuer=issuer,
            tenant=tenant,
            actor=f"user:{user.username}",
            action="consent.allow",
            target=client.row.client_id,
            details={
                "scope": scope,
                "remember": decision["remember"],
                "tenant_wide": decision["tenant_wide"],
            },
        )
        return "response", server.create_authorization_response(req, grant_user=user, grant=grant)

    del server
    return rt.oauth_call(issuer, oreq, work)


async def _authorize_response(
    request: Request, issuer: str, rt: Runtime, decision: dict[str, Any] | None
) -> Response:
    rt.server(issuer)
    oreq = oauth_request(request, [], rt, issuer)
    what, payload = await run_in_threadpool(_authorize, rt, request, issuer, oreq, decision)
    if what == "login":
        return _login_redirect(issuer, request)
    if what == "error":
        status, text = payload
        return render(
            rt,
            request,
            "message.html",
            status,
            title="This sign-in request cannot be used",
            message=text,
        )
    if what == "consent":
        return render(rt, request, "consent.html", **payload)
    return to_response(payload)


@router.get("/{issuer}/authorize")
async def authorize(request: Request, issuer: str, rt: RuntimeDep) -> Response:
    return await _authorize_response(request, issuer, rt, None)


@router.post("/{issuer}/authorize")
async def authorize_decision(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    decision: Choice = "",
    remember: Choice = "",
    tenant_wide: Choice = "",
    csrf: Csrf = "",
) -> Response:
    rt.server(issuer)
    if not check_csrf(request, csrf):
        return _form_expired(rt, request, "Go back to the application and start signing in again.")
    choice = {
        "allow": decision == "allow",
        "remember": bool(remember),
        "tenant_wide": bool(tenant_wide),
    }
    return await _authorize_response(request, issuer, rt, choice)


# -- device verification (RFC 8628 §3.3) -----------------------------------------------


def _normalise_user_code(code: str) -> str:
    raw = "".join(ch for ch in code.upper() if ch.isalnum())
    return f"{raw[:4]}-{raw[4:8]}" if len(raw) == 8 else code.strip().upper()


@router.get("/{issuer}/device")
async def device_page(
    request: Request, issuer: str, rt: RuntimeDep, user_code: str = ""
) -> Response:
    rt.server(issuer)

    def load() -> dict[str, Any] | None:
        with rt.db.session() as db:
            sess = current_session(rt, request, db, issuer)
            if sess is None:
                return None
            ctx: dict[str, Any] = {
                "user": sess.user,
                "user_code": user_code,
                "grant": None,
                "client": None,
            }
            if user_code:
                grant = db.scalar(
                    select(DeviceGrant).where(
                        DeviceGrant.user_code == _normalise_user_code(user_code)
                    )
                )
                if grant and grant.expires_at > utcnow() and grant.approved is None:
                    ctx["grant"], ctx["client"] = grant, db.get(Client, grant.client_pk)
                    ctx["scopes"] = [(s, SCOPE_TEXT.get(s, s)) for s in grant.scope.split()]
                else:
                    ctx["error"] = "That code is unknown, expired or already used."
            return ctx

    ctx = await run_in_threadpool(load)
    if ctx is None:
        return _login_redirect(issuer, request)
    return render(rt, request, "device.html", **ctx)


@router.post("/{issuer}/device")
async def device_decision(
    request: Request,
    issuer: str,
    rt: RuntimeDep,
    user_code: Annotated[str, Form(max_length=20)] = "",
    decision: Choice = "",
    csrf: Csrf = "",
) -> Response:
    rt.server(issuer)
    if not check_csrf(request, csrf):
        return _form_expired(rt, request, "Enter the code again.")

    def decide() -> str | None:
        with rt.db.session() as db:
            sess = current_session(rt, request, db, issuer)
            if sess is None:
                return None
            grant = db.scalar(
                select(DeviceGrant).where(DeviceGrant.user_code == _normalise_user_code(user_code))
            )
            if grant is None or grant.expires_at <= utcnow() or grant.approved is not None:
                raise NotFound("That code is unknown, expired or already used.")
            grant.user_pk, grant.tenant_pk = sess.user.pk, sess.user.tenant_pk
            grant.approved = decision == "allow"
            service.audit(
                db,
                issuer=issuer,
                tenant=sess.user.tenant,
                actor=f"user:{sess.user.username}",
                action="device.allow" if grant.approved else "device.deny",
                target=grant.user_code,
            )
            return "allowed" if grant.approved else "denied"

    try:
        result = await run_in_threadpool(decide)
    except NotFound as exc:
        return render(
            rt, request, "message.html", 404, title="Code not accepted", message=exc.description
        )
    if result is None:
        return _login_redirect(issuer, request)
    text = (
        "You can go back to the device now."
        if result == "allowed"
        else "The device was not allowed."
    )
    return render(rt, request, "message.html", title=f"Device {result}", message=text)
