"""docgen's web pages: the batch-print settings of seed 000's FIG. 8.

- Sign-in at idp-a with the authorization code flow and PKCE (RFC 6749 §4.1,
  RFC 7636, S256) as `svc-docgen`, first party (no consent), asking for the
  scopes `docgen admin`: only a tenant's administrator may see the page. The
  tokens live in a cookie sealed with the instance secret (`pc_docgen`).
- `/docgen/settings` (FIG. 8): the secret key 804 — issue it once (S1401–S1406:
  shown once, then never again), rotate it with an overlap; "Get print token"
  802 (FIG. 11) and "Get CRM token" 803 (FIG. 13) with their state (obtained
  at, by, expires, refreshed, last problem); the batch-print endpoint to give
  the CRM; the latest batch-print requests with their reasons.
- "Get print token" sends the browser to idp-a's authorization endpoint (the
  admin's idp-a session answers it, see `tokens.py` for why not the session
  ID itself); "Get CRM token" to idp-b's (S1303). Their answers come back to
  `/docgen/auth/callback` (idp-a) and `/docgen/auth/crm-callback` (idp-b):
  stored (S1108–S1110, S1313–S1315: a completion page) or refused (FIG. 12,
  S1202: an error page with the reason).

Forms carry a CSRF token (double-submit cookie); every query filters on the
signed-in admin's tenant.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from printcloud.auth.client import OAuthError, WebSession
from printcloud.auth.client import safe_next as client_safe_next
from printcloud.core import crypto
from printcloud.core.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
    Unavailable,
)
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger
from printcloud.core.web import check_csrf, csrf_token, set_csrf_cookie, templates

from . import forms, service, tenant_forms, tokens
from .deps import RuntimeDep, actor_of
from .runtime import PREFIX, DocgenRuntime
from .schemas import BatchRequestRead
from .tokens import TokenRefused

log = get_logger("docgen.pages")
router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "pc_docgen"
LOGIN_COOKIE = "pc_docgen_login"
FLOW_COOKIE = "pc_docgen_flow"
#: How long a trip to an issuer may take (the state and PKCE verifier live this long).
FLOW_TTL = 600
#: Refresh the sign-in's access token this many seconds before it expires.
REFRESH_MARGIN = 30
SIGN_IN_SCOPE = "docgen admin"
#: The overlaps offered when rotating the key (hours, label).
OVERLAPS = (
    (0, "none (the current key stops now)"),
    (24, "1 day"),
    (168, "7 days"),
    (720, "30 days"),
)
_LABELS = {"print": "print service", "crm": "CRM"}

pages = templates(Path(__file__).parent / "templates")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


pages.env.filters["when"] = _when


# -- answers ----------------------------------------------------------------------------------


def _secure(rt: DocgenRuntime) -> bool:
    return rt.base_url.startswith("https://")


def _set_cookie(
    rt: DocgenRuntime, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=PREFIX, httponly=True, samesite="lax", secure=_secure(rt)
    )


def _delete_cookie(rt: DocgenRuntime, response: Response, name: str) -> None:
    response.delete_cookie(name, path=PREFIX, httponly=True, samesite="lax", secure=_secure(rt))


def _finish(request: Request, rt: DocgenRuntime, response: Response) -> Response:
    """Every answer: the CSRF cookie, and the session cookie when it was refreshed."""
    set_csrf_cookie(request, response, secure=_secure(rt))
    sealed = getattr(request.state, "docgen_session", None)
    if sealed:
        _set_cookie(rt, response, SESSION_COOKIE, sealed)
    response.headers["Cache-Control"] = "no-store"
    return response


def _render(
    request: Request, rt: DocgenRuntime, name: str, status_code: int = 200, **context: Any
) -> Response:
    context["csrf"] = csrf_token(request)
    context.setdefault("principal", None)
    context["prefix"] = PREFIX
    response: HTMLResponse = pages.TemplateResponse(request, name, context, status_code=status_code)
    return _finish(request, rt, response)


def _message(
    request: Request, rt: DocgenRuntime, status_code: int, title: str, message: str, **context: Any
) -> Response:
    return _render(
        request,
        rt,
        "message.html",
        status_code,
        title=title,
        message=message,
        error=status_code >= 400,
        **context,
    )


def safe_next(target: str | None) -> str:
    """Only a path of docgen's pages: no open redirects."""
    return client_safe_next(target, prefix=PREFIX, home=f"{PREFIX}/settings")


def _seal(rt: DocgenRuntime, data: dict[str, Any]) -> str:
    return rt.box.seal(json.dumps(data))


def _pending(rt: DocgenRuntime, request: Request, cookie: str) -> dict[str, str] | None:
    """A trip to an issuer this browser started (sealed: not forgeable), if not too old."""
    sealed = request.cookies.get(cookie)
    if not sealed or len(sealed) > 4000:
        return None
    try:
        data = json.loads(rt.box.open(sealed))
        if float(data.pop("until")) < time.time():
            return None
        return {str(k): str(v) for k, v in data.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# -- the sign-in session ------------------------------------------------------------------------


#: The sealed session cookie's content.
SignIn = WebSession


async def _refresh(request: Request, rt: DocgenRuntime, current: SignIn) -> SignIn | None:
    if not current.refresh_token:
        return None
    try:
        issued = await run_in_threadpool(rt.refresh_sign_in, current.refresh_token)
    except OAuthError as exc:
        log.info("sign-in refresh refused", extra={"fields": {"error": exc.error}})
        return None
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise Unavailable(f"the sign-in service {rt.platform_issuer} does not answer") from exc
    fresh = SignIn.issued(issued, previous=current)
    request.state.docgen_session = fresh.seal(rt.box)
    return fresh


def _sign_in_first(request: Request) -> StarletteHTTPException:
    """A redirect to the sign-in and back (after a POST: to the settings page). Raised,
    as a dependency cannot answer; the error handler keeps its Location."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        here = f"{PREFIX}/settings"
    location = f"{PREFIX}/auth/login?{urlencode({'next': safe_next(here)})}"
    return StarletteHTTPException(303, "sign in first", headers={"Location": location})


async def signed_in(request: Request, rt: RuntimeDep) -> Principal:
    """The signed-in administrator, the access token refreshed when due; else a
    redirect to sign in. A user without the scopes `docgen admin` is refused."""
    current = SignIn.unseal(rt.box, request.cookies.get(SESSION_COOKIE))
    refreshed = False
    if current is not None and current.expires_at - REFRESH_MARGIN <= time.time():
        current, refreshed = await _refresh(request, rt, current), True
    while current is not None:
        try:
            principal = await rt.guard.verify(current.access_token)
        except Unauthorized:  # revoked, or expired early: one refresh
            if refreshed:
                break
            current, refreshed = await _refresh(request, rt, current), True
            continue
        if not principal.has_scopes("docgen", "admin"):
            raise Forbidden(
                "batch-print settings are for your organisation's administrators "
                "(your sign-in lacks the scopes docgen and admin)"
            )
        if not principal.admin:
            raise Forbidden(
                "batch-print settings are for your organisation's administrators "
                "(you are no longer one)"
            )
        request.state.principal = principal
        return principal
    raise _sign_in_first(request)


SignedIn = Annotated[Principal, Depends(signed_in)]


# -- sign-in: RFC 6749 §4.1 with RFC 7636 -------------------------------------------------------


@router.get("/")
async def home() -> Response:
    return RedirectResponse(f"{PREFIX}/settings", status_code=303)


@router.get("/auth/login")
async def login(
    request: Request, rt: RuntimeDep, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    issuer = rt.platform_issuer
    try:
        started = await run_in_threadpool(
            partial(tokens.start_authorization, rt, issuer, scope=SIGN_IN_SCOPE)
        )
    except Unavailable:
        return _message(
            request,
            rt,
            503,
            "Sign-in is unavailable",
            f"The sign-in service {issuer} does not answer. Try again shortly.",
        )
    pending = {
        "state": started.state,
        "verifier": started.verifier,
        "next": safe_next(next),
        "until": time.time() + FLOW_TTL,
    }
    response = RedirectResponse(started.url, status_code=303)
    _set_cookie(rt, response, LOGIN_COOKIE, _seal(rt, pending), max_age=FLOW_TTL)
    return _finish(request, rt, response)


_OAUTH_ERRORS = {
    "access_denied": "The request was declined.",
    "login_required": "You are not signed in at the sign-in service.",
    "invalid_scope": "Your account may not be given this access.",
    "temporarily_unavailable": "The sign-in service is busy. Try again shortly.",
    "server_error": "The sign-in service failed. Try again shortly.",
}


def _oauth_error_text(error: str, description: str) -> str:
    text = _OAUTH_ERRORS.get(error, "The request did not complete.")
    return f"{text} ({error}{': ' + description if description else ''})"


@router.get("/auth/callback")
async def callback(
    request: Request,
    rt: RuntimeDep,
    code: Annotated[str, Query(max_length=512)] = "",
    state: Annotated[str, Query(max_length=512)] = "",
    error: Annotated[str, Query(max_length=100)] = "",
    error_description: Annotated[str, Query(max_length=1000)] = "",
) -> Response:
    """idp-a's answer: to the sign-in, or to "Get print token" (told apart by `state`)."""
    flow = _pending(rt, request, FLOW_COOKIE)
    if flow and flow.get("purpose") == "print" and state and crypto.equal(state, flow["state"]):
        return await _token_callback(
            request, rt, flow, code=code, error=error, error_description=error_description
        )
    return await _sign_in_callback(
        request, rt, code=code, state=state, error=error, error_description=error_description
    )


async def _sign_in_callback(
    request: Request,
    rt: DocgenRuntime,
    *,
    code: str,
    state: str,
    error: str,
    error_description: str,
) -> Response:
    issuer = rt.platform_issuer
    pending = _pending(rt, request, LOGIN_COOKIE)
    retry = f"{PREFIX}/auth/login?{urlencode({'next': pending['next'] if pending else ''})}"

    def failed(status_code: int, message: str) -> Response:
        response = _message(request, rt, status_code, "You are not signed in", message, retry=retry)
        _delete_cookie(rt, response, LOGIN_COOKIE)
        return response

    if error:
        return failed(400, _oauth_error_text(error, error_description))
    if pending is None:
        return failed(400, "The sign-in took too long or began in another browser.")
    if not (code and state and crypto.equal(state, pending["state"])):
        return failed(400, "The sign-in answer does not belong to this browser's sign-in.")
    try:
        issued = await run_in_threadpool(
            partial(tokens.redeem_code, rt, issuer, code=code, verifier=pending["verifier"])
        )
        principal = await rt.guard.verify(issued.access_token)
    except TokenRefused as exc:
        return failed(400, f"The sign-in service refused the sign-in: {exc.reason}")
    except Unauthorized:
        return failed(400, "The sign-in service issued a token that is not valid.")
    except Unavailable:
        return failed(503, f"The sign-in service {issuer} does not answer.")
    if not principal.has_scopes("docgen", "admin") or not principal.admin:
        return failed(
            403,
            "Batch-print settings are for your organisation's administrators "
            "(your account lacks the scopes docgen and admin).",
        )
    log.info(
        "signed in",
        extra={"fields": {"tenant": principal.tenant_id, "user": principal.acting_user}},
    )
    response = RedirectResponse(pending["next"], status_code=303)
    _set_cookie(rt, response, SESSION_COOKIE, SignIn.issued(issued).seal(rt.box))
    _delete_cookie(rt, response, LOGIN_COOKIE)
    return _finish(request, rt, response)


@router.post("/auth/logout")
async def logout(
    request: Request, rt: RuntimeDep, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    if not check_csrf(request, csrf):
        return _message(request, rt, 400, "Your form expired", "Go back and sign out again.")
    current = SignIn.unseal(rt.box, request.cookies.get(SESSION_COOKIE))
    if current is not None:
        rt.guard.forget(current.access_token)
        client = rt.client(rt.platform_issuer)
        for token in (current.refresh_token, current.access_token):
            if token:
                try:
                    await run_in_threadpool(client.revoke, token)
                except (OAuthError, httpx.HTTPError, ValueError, KeyError) as exc:
                    log.warning("token not revoked at sign-out: %r", exc)
    response = _render(request, rt, "signed_out.html", issuer=rt.platform_issuer)
    _delete_cookie(rt, response, SESSION_COOKIE)
    return response


# -- the settings page (FIG. 8) -----------------------------------------------------------------


def _settings_context(rt: DocgenRuntime, tenant_id: str) -> dict[str, Any]:
    with rt.db.session() as db:
        key = service.key_state(db, tenant_id=tenant_id)
        states = service.token_states(db, tenant_id=tenant_id)
        requests = [
            BatchRequestRead.of(r) for r in service.list_requests(db, tenant_id=tenant_id, limit=20)
        ]
    return {
        "key": key,
        "print_token": states["print"],
        "crm_token": states["crm"],
        "requests": requests,
        "forms": tenant_forms.list_forms(rt.blobs, tenant_id=tenant_id),
        "form_kinds": forms.BUILTIN_FORMS,
        "endpoint": f"{rt.base_url}/api/batch-print?tenant_ID={quote(tenant_id, safe='')}",
        "platform_issuer": rt.platform_issuer,
        "crm_issuer": rt.crm_issuer,
        "overlaps": OVERLAPS,
    }


async def _settings_page(
    request: Request,
    rt: DocgenRuntime,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    context = await run_in_threadpool(_settings_context, rt, principal.tenant_id)
    return _render(
        request, rt, "settings.html", status_code, principal=principal, error=error, **context
    )


@router.get("/settings")
async def settings_page(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    return await _settings_page(request, rt, principal)


_EXPIRED = "Your form expired. Please try again."


def _issue_key(
    rt: DocgenRuntime,
    principal: Principal,
    *,
    rotate: bool = False,
    overlap: timedelta = service.DEFAULT_OVERLAP,
) -> service.IssuedKey:
    with rt.db.session() as db:
        return service.issue_key(
            db,
            tenant_id=principal.tenant_id,
            box=rt.box,
            actor=actor_of(principal),
            rotate=rotate,
            overlap=overlap,
        )


@router.post("/settings/secret-key")
async def issue_secret_key(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """S1401–S1406: issue the key and show it, this once."""
    if not check_csrf(request, csrf):
        return await _settings_page(request, rt, principal, status_code=400, error=_EXPIRED)
    try:
        issued = await run_in_threadpool(_issue_key, rt, principal)
    except Conflict as exc:
        return await _settings_page(request, rt, principal, status_code=409, error=exc.description)
    return _render(request, rt, "key.html", principal=principal, issued=issued, rotated=False)


@router.post("/settings/secret-key/rotate")
async def rotate_secret_key(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    csrf: Annotated[str, Form(max_length=100)] = "",
    overlap_hours: Annotated[str, Form(max_length=10)] = "168",
) -> Response:
    if not check_csrf(request, csrf):
        return await _settings_page(request, rt, principal, status_code=400, error=_EXPIRED)
    try:
        hours = int(overlap_hours)
        if hours not in {h for h, _ in OVERLAPS}:
            raise ValueError(hours)
    except ValueError:
        return await _settings_page(
            request, rt, principal, status_code=400, error="Choose one of the overlaps offered."
        )
    try:
        issued = await run_in_threadpool(
            partial(_issue_key, rt, principal, rotate=True, overlap=timedelta(hours=hours))
        )
    except (Conflict, InvalidRequest) as exc:
        return await _settings_page(
            request, rt, principal, status_code=exc.status_code, error=exc.description
        )
    return _render(request, rt, "key.html", principal=principal, issued=issued, rotated=True)


@router.post("/settings/forms")
async def upload_form(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    csrf: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=64)] = "",
    kind: Annotated[str, Form(max_length=20)] = "",
    source: Annotated[str, Form(max_length=forms.MAX_TEMPLATE_BYTES)] = "",
) -> Response:
    """The tenant's own form (`tenant_forms`): refused with the compiler's message."""
    if not check_csrf(request, csrf):
        return await _settings_page(request, rt, principal, status_code=400, error=_EXPIRED)
    try:
        await run_in_threadpool(
            partial(
                tenant_forms.save_form,
                rt.blobs,
                tenant_id=principal.tenant_id,
                name=name.strip(),
                kind=kind,
                source=source,
                actor=actor_of(principal),
            )
        )
    except InvalidRequest as exc:  # FormError included: the compiler's message
        return await _settings_page(
            request, rt, principal, status_code=400, error=f"Form not kept: {exc.description}"
        )
    return RedirectResponse(f"{PREFIX}/settings#forms", status_code=303)


@router.post("/settings/forms/{name}/delete")
async def delete_form(
    name: str,
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not check_csrf(request, csrf):
        return await _settings_page(request, rt, principal, status_code=400, error=_EXPIRED)
    try:
        await run_in_threadpool(
            partial(tenant_forms.delete_form, rt.blobs, tenant_id=principal.tenant_id, name=name)
        )
    except (InvalidRequest, NotFound) as exc:
        return await _settings_page(
            request, rt, principal, status_code=exc.status_code, error=exc.description
        )
    return RedirectResponse(f"{PREFIX}/settings#forms", status_code=303)


async def _start_token_flow(
    request: Request, rt: DocgenRuntime, principal: Principal, kind: str, csrf: str
) -> Response:
    """S1101–S1102 / S1301–S1303: off to the issuer, with a sealed note of the trip."""
    if not check_csrf(request, csrf):
        return await _settings_page(request, rt, principal, status_code=400, error=_EXPIRED)
    try:
        issuer = rt.platform_issuer if kind == "print" else tokens.crm_issuer(rt)
        scope = tokens.PRINT_SCOPE if kind == "print" else tokens.CRM_SCOPE
        started = await run_in_threadpool(
            partial(tokens.start_authorization, rt, issuer, scope=scope)
        )
    except Unavailable as exc:
        return await _settings_page(request, rt, principal, status_code=503, error=exc.description)
    flow = {
        "purpose": kind,
        "issuer": issuer,
        "state": started.state,
        "verifier": started.verifier,
        "tenant_id": principal.tenant_id,
        "actor": actor_of(principal),
        "until": time.time() + FLOW_TTL,
    }
    response = RedirectResponse(started.url, status_code=303)
    _set_cookie(rt, response, FLOW_COOKIE, _seal(rt, flow), max_age=FLOW_TTL)
    return _finish(request, rt, response)


@router.post("/settings/print-token")
async def get_print_token(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """FIG. 8's button 802 (S1101): the print token from the admin's idp-a session."""
    return await _start_token_flow(request, rt, principal, "print", csrf)


@router.post("/settings/crm-token")
async def get_crm_token(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """FIG. 8's button 803 (S1301): the CRM token through idp-b's code flow."""
    return await _start_token_flow(request, rt, principal, "crm", csrf)


@router.get("/auth/crm-callback")
async def crm_callback(
    request: Request,
    rt: RuntimeDep,
    code: Annotated[str, Query(max_length=512)] = "",
    state: Annotated[str, Query(max_length=512)] = "",
    error: Annotated[str, Query(max_length=100)] = "",
    error_description: Annotated[str, Query(max_length=1000)] = "",
) -> Response:
    """S1308: idp-b sends the browser back with the code (or an error)."""
    flow = _pending(rt, request, FLOW_COOKIE)
    ours = flow is not None and flow.get("purpose") == "crm"
    if flow is None or not ours or not (state and crypto.equal(state, flow["state"])):
        response = _message(
            request,
            rt,
            400,
            "The CRM token was not stored",
            "This answer does not belong to a CRM token request made in this browser in the "
            "last ten minutes. Start again from the batch-print settings page.",
            back=True,
        )
        _delete_cookie(rt, response, FLOW_COOKIE)
        return response
    return await _token_callback(
        request, rt, flow, code=code, error=error, error_description=error_description
    )


async def _token_callback(
    request: Request,
    rt: DocgenRuntime,
    flow: dict[str, str],
    *,
    code: str,
    error: str,
    error_description: str,
) -> Response:
    """S1107–S1110 / S1309–S1315 and, when it fails, FIG. 12's error page (S1202)."""
    kind = flow["purpose"]
    label = _LABELS[kind]

    def failed(status_code: int, reason: str) -> Response:
        log.info(
            "token not stored",
            extra={"fields": {"tenant": flow["tenant_id"], "kind": kind, "status": status_code}},
        )
        response = _message(
            request, rt, status_code, f"The {label} token was not stored", reason, back=True
        )
        _delete_cookie(rt, response, FLOW_COOKIE)
        return response

    if error:
        text = _oauth_error_text(error, error_description)
        return failed(400, f"{flow['issuer']} answered: {text}")
    if not code:
        return failed(400, f"{flow['issuer']} sent no authorization code back.")
    redeem = tokens.print_token_from_code if kind == "print" else tokens.crm_token_from_code
    try:
        stored = await run_in_threadpool(
            partial(
                redeem,
                rt,
                tenant_id=flow["tenant_id"],
                code=code,
                verifier=flow["verifier"],
                actor=flow["actor"],
            )
        )
    except TokenRefused as exc:
        return failed(400, exc.reason)
    except Unavailable as exc:
        return failed(503, exc.description)
    response = _render(request, rt, "token_stored.html", kind=kind, label=label, token=stored)
    _delete_cookie(rt, response, FLOW_COOKIE)
    return response
