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
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from printcloud.auth.sign_in import Issuer, SignInPages, oauth_error_text
from printcloud.core import crypto
from printcloud.core.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    Unavailable,
)
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger
from printcloud.core.web import check_csrf, templates

from . import forms, service, tenant_forms, tokens
from .deps import RuntimeDep, actor_of, runtime
from .runtime import PREFIX, DocgenRuntime
from .schemas import BatchRequestRead
from .tokens import TokenRefused

log = get_logger("docgen.pages")
router = APIRouter(include_in_schema=False)

FLOW_COOKIE = "pc_docgen_flow"
#: How long a trip to an issuer may take (the state and PKCE verifier live this long).
FLOW_TTL = 600
SIGN_IN_SCOPE = "docgen admin"
#: The overlaps offered when rotating the key (hours, label).
OVERLAPS = (
    (0, "none (the current key stops now)"),
    (24, "1 day"),
    (168, "7 days"),
    (720, "30 days"),
)
_LABELS = {"print": "print service", "crm": "CRM"}

pages = templates(Path(__file__).parent / "templates", service="docgen")
#: The forms editor's "Go to line" (a file: the pages' CSP allows no inline script).
_EDITOR_JS = (Path(__file__).parent / "static" / "editor.js").read_bytes()


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def _sentence(text: str | None) -> str:
    """A message as a sentence: a capital first, a full stop last."""
    text = (text or "").strip()
    if not text:
        return ""
    text = text[:1].upper() + text[1:]
    return text if text[-1] in ".!?)" else text + "."


pages.env.filters["when"] = _when
pages.env.filters["sentence"] = _sentence

pages.env.globals.update(prefix=PREFIX, principal=None)


def issuer_words(rt: DocgenRuntime, issuer: str | None) -> str:
    """An issuer as a person knows it: printcloud's sign-in or the CRM's (its name, e.g.
    `idp-b`, only for another one)."""
    if issuer == rt.platform_issuer:
        return "printcloud's sign-in page"
    if issuer is not None and issuer == rt.crm_issuer:
        return "the CRM's sign-in page"
    return f"the sign-in service {issuer}" if issuer else "the sign-in service"


# -- the sign-in at idp-a ---------------------------------------------------------------------


def _issuer(request: Request) -> Issuer:
    """idp-a as docgen's pages use it: `svc-docgen`, its code redeemed by `tokens`."""
    rt = runtime(request)
    name = rt.platform_issuer
    return Issuer(
        name=name,
        client=rt.client(name),
        redirect_uri=rt.redirect_uri(name),
        box=rt.box,
        guard=rt.guard,
        secure=rt.base_url.startswith("https://"),
        refresh=rt.refresh_sign_in,
        redeem=lambda code, verifier: tokens.redeem_code(rt, name, code=code, verifier=verifier),
    )


_FOR_ADMINS = "batch-print settings are for your organisation's administrators"


def _admin(principal: Principal) -> str | None:
    if not principal.has_scopes("docgen", "admin"):
        return f"{_FOR_ADMINS} (your sign-in lacks the scopes docgen and admin)"
    if not principal.admin:
        return f"{_FOR_ADMINS} (you are no longer one)"
    return None


_oauth_error_text = oauth_error_text(
    {
        "access_denied": "The request was declined.",
        "login_required": "You are not signed in at the sign-in service.",
        "invalid_scope": "Your account may not be given this access.",
        "temporarily_unavailable": "The sign-in service is busy. Try again shortly.",
        "server_error": "The sign-in service failed. Try again shortly.",
    },
    "The request did not complete.",
)


async def _print_token_answer(
    request: Request, *, code: str, state: str, error: str, error_description: str
) -> Response | None:
    """idp-a's answer to "Get print token", which comes back to the sign-in's redirect
    URI (told apart by `state`); None for a sign-in's."""
    flow = site.pending(request, FLOW_COOKIE)
    if flow and flow.get("purpose") == "print" and state and crypto.equal(state, flow["state"]):
        return await _token_callback(
            request,
            runtime(request),
            flow,
            code=code,
            error=error,
            error_description=error_description,
        )
    return None


site = SignInPages(
    prefix=PREFIX,
    pages=pages,
    issuer=_issuer,
    scope=SIGN_IN_SCOPE,
    check=_admin,
    refused_at_sign_in=(
        "Batch-print settings are for your organisation's administrators "
        "(your account lacks the scopes docgen and admin)."
    ),
    session_cookie="pc_docgen",
    login_cookie="pc_docgen_login",
    home=f"{PREFIX}/settings",
    error_text=_oauth_error_text,
    signed_out="signed_out.html",
    signed_out_at_logout=True,
    other_answers=_print_token_answer,
    login_ttl=FLOW_TTL,
)
SignedIn = Annotated[Principal, Depends(site.signed_in)]


@router.get("/static/editor.js")
async def editor_js() -> Response:
    return Response(
        _EDITOR_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=300"}
    )


@router.get("/")
async def home() -> Response:
    return RedirectResponse(f"{PREFIX}/settings", status_code=303)


router.include_router(site.router)


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
        "issuer_words": partial(issuer_words, rt),
        "overlaps": OVERLAPS,
    }


async def _settings_page(
    request: Request,
    rt: DocgenRuntime,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
    error_field: str | None = None,
    overlap: int = 168,
) -> Response:
    context = await run_in_threadpool(_settings_context, rt, principal.tenant_id)
    return site.render(
        request,
        "settings.html",
        status_code,
        principal=principal,
        error=error,
        error_field=error_field,
        overlap=overlap,
        **context,
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
    return site.render(request, "key.html", principal=principal, issued=issued, rotated=False)


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
            request,
            rt,
            principal,
            status_code=400,
            error="Choose how long the current key stays accepted from the list.",
            error_field="overlap_hours",
        )
    try:
        issued = await run_in_threadpool(
            partial(_issue_key, rt, principal, rotate=True, overlap=timedelta(hours=hours))
        )
    except (Conflict, InvalidRequest) as exc:
        return await _settings_page(
            request,
            rt,
            principal,
            status_code=exc.status_code,
            error=exc.description,
            error_field="overlap_hours" if isinstance(exc, InvalidRequest) else None,
            overlap=hours,
        )
    return site.render(request, "key.html", principal=principal, issued=issued, rotated=True)


# -- "Your forms": the tenant's Typst forms (issue 3; the editor of issue 16) --------------------


#: Lines of the source shown on each side of the line the compiler stopped at.
_AROUND = 5


@dataclass(frozen=True)
class Draft:
    """The form in the editor: a new one (`editing` empty), one being edited, or what the
    person sent when it was refused (kept as typed)."""

    name: str = ""
    kind: str = "invoice"
    source: str = ""
    editing: str = ""


@dataclass(frozen=True)
class SourceProblem:
    """Why the form was refused, as the editor shows it beside the source: a sentence, the
    compiler's hints, and the lines around the failing `line` (None: no location)."""

    text: str
    hints: tuple[str, ...] = ()
    line: int | None = None
    column: int | None = None
    lines: tuple[tuple[int, str], ...] = ()


def _problem(exc: InvalidRequest, source: str) -> SourceProblem:
    if not isinstance(exc, forms.FormError):  # too large, too slow, a font we lack…
        text = exc.description
        return SourceProblem(text=text[:1].upper() + text[1:].rstrip(".") + ".")
    hints = tuple(
        line.strip().removeprefix("hint:").strip()
        for line in exc.description.splitlines()
        if line.strip().startswith("hint:")
    )
    message = exc.message[:1].upper() + exc.message[1:]
    if exc.line is None:
        return SourceProblem(text=f"Typst could not compile the form: {message}.", hints=hints)
    where = f"line {exc.line}" + (f", column {exc.column}" if exc.column else "")
    numbered = source.splitlines() or [""]
    first = max(1, exc.line - _AROUND)
    last = min(len(numbered), exc.line + _AROUND)
    return SourceProblem(
        text=f"Typst stopped at {where}: {message}.",
        hints=hints,
        line=exc.line,
        column=exc.column,
        lines=tuple((n, numbered[n - 1]) for n in range(first, last + 1)),
    )


def _forms_context(rt: DocgenRuntime, tenant_id: str, editing: str) -> dict[str, Any]:
    listed = tenant_forms.list_forms(rt.blobs, tenant_id=tenant_id)
    return {
        "forms": listed,
        "form_kinds": forms.BUILTIN_FORMS,
        "preview": bool(editing)
        and tenant_forms.has_preview(rt.blobs, tenant_id=tenant_id, name=editing),
    }


async def _forms_page(
    request: Request,
    rt: DocgenRuntime,
    principal: Principal,
    draft: Draft,
    *,
    status_code: int = 200,
    error: str | None = None,
    error_field: str | None = None,
    problem: SourceProblem | None = None,
    notice: str | None = None,
) -> Response:
    context = await run_in_threadpool(_forms_context, rt, principal.tenant_id, draft.editing)
    return site.render(
        request,
        "forms.html",
        status_code,
        principal=principal,
        draft=draft,
        error=error,
        error_field=error_field,
        problem=problem,
        notice=notice,
        **context,
    )


@router.get("/forms")
async def forms_page(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    deleted: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    notice = f"The form “{deleted}” is deleted." if tenant_forms.NAME.match(deleted) else None
    return await _forms_page(request, rt, principal, Draft(), notice=notice)


@router.get("/forms/{name}")
async def form_page(
    name: str,
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    saved: Annotated[str, Query(max_length=1)] = "",
) -> Response:
    try:
        kept = await run_in_threadpool(
            partial(tenant_forms.get_form, rt.blobs, tenant_id=principal.tenant_id, name=name)
        )
    except NotFound:
        return site.message(
            request,
            404,
            "No such form",
            "Your organisation has no form of this name. It may have been deleted.",
            forms_link=True,
        )
    draft = Draft(name=kept.name, kind=kept.kind, source=kept.source, editing=kept.name)
    notice = (
        "Saved. It compiled with the sample data; its first page is shown below." if saved else None
    )
    return await _forms_page(request, rt, principal, draft, notice=notice)


@router.get("/forms/{name}/preview.png")
async def form_preview(name: str, rt: RuntimeDep, principal: SignedIn) -> Response:
    png = await run_in_threadpool(
        partial(tenant_forms.preview, rt.blobs, tenant_id=principal.tenant_id, name=name)
    )
    if png is None:
        return Response("no preview of this form", status_code=404, media_type="text/plain")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-cache"})


#: The editor's fields; an error about anything else (the sample data, a limit) is the source's.
_FORM_FIELDS = ("name", "kind", "source")


@router.post("/forms")
async def save_form(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    csrf: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=20)] = "",
    source: Annotated[str, Form(max_length=forms.MAX_TEMPLATE_BYTES * 4)] = "",
    editing: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """The tenant's own form (`tenant_forms`), compiled in the sandbox: on success back to
    the form (post/redirect/get); refused, the editor again with the text as typed and the
    compiler's error beside it."""
    name = name.strip()
    draft = Draft(name=name, kind=kind, source=source, editing=editing)
    if not check_csrf(request, csrf):
        return await _forms_page(request, rt, principal, draft, status_code=400, error=_EXPIRED)
    try:
        await run_in_threadpool(
            partial(
                tenant_forms.save_form,
                rt.blobs,
                tenant_id=principal.tenant_id,
                name=name,
                kind=kind,
                source=source,
                actor=actor_of(principal),
            )
        )
    except InvalidRequest as exc:  # FormError included: the compiler's message and line
        field = exc.field if exc.field in _FORM_FIELDS else "source"
        if field == "source":
            return await _forms_page(
                request,
                rt,
                principal,
                draft,
                status_code=400,
                error_field="source",
                problem=_problem(exc, source),
            )
        return await _forms_page(
            request, rt, principal, draft, status_code=400, error=exc.description, error_field=field
        )
    log.info("form saved", extra={"fields": {"tenant": principal.tenant_id, "form": name}})
    response = RedirectResponse(f"{PREFIX}/forms/{quote(name)}?saved=1", status_code=303)
    return site.finish(request, response)


@router.post("/forms/{name}/delete")
async def delete_form(
    name: str,
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not check_csrf(request, csrf):
        return await _forms_page(request, rt, principal, Draft(), status_code=400, error=_EXPIRED)
    try:
        await run_in_threadpool(
            partial(tenant_forms.delete_form, rt.blobs, tenant_id=principal.tenant_id, name=name)
        )
    except (InvalidRequest, NotFound) as exc:
        return await _forms_page(
            request, rt, principal, Draft(), status_code=exc.status_code, error=exc.description
        )
    response = RedirectResponse(f"{PREFIX}/forms?deleted={quote(name)}", status_code=303)
    return site.finish(request, response)


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
    response.headers["Cache-Control"] = "no-store"
    sealed = rt.box.seal(json.dumps(flow))
    site.set_cookie(request, response, FLOW_COOKIE, sealed, max_age=FLOW_TTL)
    return site.finish(request, response)


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
    flow = site.pending(request, FLOW_COOKIE)
    ours = flow is not None and flow.get("purpose") == "crm"
    if flow is None or not ours or not (state and crypto.equal(state, flow["state"])):
        response = site.message(
            request,
            400,
            "The CRM token was not stored",
            "This answer does not belong to a CRM token request made in this browser in the "
            "last ten minutes. Start again from the batch-print settings page.",
            back=True,
        )
        site.delete_cookie(request, response, FLOW_COOKIE)
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
        response = site.message(
            request, status_code, f"The {label} token was not stored", reason, back=True
        )
        site.delete_cookie(request, response, FLOW_COOKIE)
        return response

    if error:
        text = _oauth_error_text(error, error_description)
        where = issuer_words(rt, flow["issuer"])
        return failed(400, f"{where[:1].upper()}{where[1:]} answered: {text}")
    if not code:
        return failed(400, "The sign-in page sent nothing back to store. Try again.")
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
    response = site.render(
        request,
        "token_stored.html",
        kind=kind,
        label=label,
        token=stored,
        issuer_words=partial(issuer_words, rt),
    )
    site.delete_cookie(request, response, FLOW_COOKIE)
    return response
