"""The print service's web pages for its users (seed 003, SVC001).

- Sign-in at idp-a with the authorization code flow and PKCE (RFC 6749 §4.1,
  RFC 7636, S256): the print service's own client, registered by the platform's
  bootstrap and exempt from consent (first party). The tokens live in a cookie
  sealed with the instance secret (`pc_print`), refreshed when they expire.
- `/printing/`: the print form (a PDF upload or URL, a printer, print settings)
  and the user's jobs; `/printing/jobs/{id}`: a job's state, settings, history
  (seed step, worker) and the previews of its printed pages, with Cancel.

The pages work without JavaScript (a `<noscript>` meta refresh while a job is
active); `static/live.js` refreshes only the changing parts when it can. Every
query filters on the signed-in user's tenant.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from printcloud.auth.client import AuthClient, OAuthError, RefreshOnce, WebSession, pkce_challenge
from printcloud.auth.client import safe_next as client_safe_next
from printcloud.core import crypto
from printcloud.core.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PrintcloudError,
    Unauthorized,
    Unavailable,
)
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger
from printcloud.core.web import check_csrf, csrf_token, set_csrf_cookie, templates

from . import intake, jobs, service
from .deps import RuntimeDep, runtime
from .runtime import PrintingRuntime
from .schemas import JobRead, PrinterRead
from .worker import DownloadFailed

log = get_logger("printing.pages")
router = APIRouter(include_in_schema=False)

PREFIX = "/printing"
SESSION_COOKIE = "pc_print"
LOGIN_COOKIE = "pc_print_login"
#: How long a sign-in may take at the issuer (the state and PKCE verifier live this long).
LOGIN_TTL = 600
#: Refresh the access token this many seconds before it expires.
REFRESH_MARGIN = 30
SCOPE = "print profile"
RESOLUTIONS = (150, 200, 300, 600)
#: The progress of an active job: its step among these.
STEPS = (*service.ACTIVE, "printed")
_JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STATIC = Path(__file__).parent / "static"
_LIVE_JS = (_STATIC / "live.js").read_bytes()

pages = templates(Path(__file__).parent / "templates")


# -- what the templates show ------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """A job's state as a badge: `kind` picks the color, `step` the progress."""

    kind: str  # active | printed | failed | ended
    label: str
    reason: str
    step: int
    steps: int


def status(job: JobRead) -> Status:
    reason = job.reason or ""
    if job.state in service.ACTIVE:
        return Status("active", job.state, "", STEPS.index(job.state) + 1, len(STEPS))
    if job.state == "printed":
        return Status("printed", "printed", "", len(STEPS), len(STEPS))
    if job.state == "cancelled":  # by its owner: an end, not a failure
        return Status("ended", "cancelled", reason, 0, len(STEPS))
    short = reason if len(reason) <= 60 else reason[:57] + "…"
    return Status("failed", f"{job.state}: {short}" if short else job.state, reason, 0, len(STEPS))


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


pages.env.globals["status"] = status
pages.env.filters["when"] = _when


def _secure(rt: PrintingRuntime) -> bool:
    return rt.settings.public_url.startswith("https://")


def _finish(request: Request, rt: PrintingRuntime, response: Response) -> Response:
    """Every answer of these pages: the CSRF cookie, and the session when it was refreshed."""
    set_csrf_cookie(request, response, secure=_secure(rt))
    sealed = getattr(request.state, "print_session", None)
    if sealed:
        _set_cookie(rt, response, SESSION_COOKIE, sealed)
    return response


def _render(
    request: Request, rt: PrintingRuntime, name: str, status_code: int = 200, **context: Any
) -> Response:
    context["csrf"] = csrf_token(request)
    context.setdefault("principal", None)
    context.setdefault("live", False)
    response: HTMLResponse = pages.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return _finish(request, rt, response)


def _message(
    request: Request,
    rt: PrintingRuntime,
    status_code: int,
    title: str,
    message: str,
    **context: Any,
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


def _set_cookie(
    rt: PrintingRuntime, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=_secure(rt),
    )


def _delete_cookie(rt: PrintingRuntime, response: Response, name: str) -> None:
    response.delete_cookie(name, path=PREFIX, httponly=True, samesite="lax", secure=_secure(rt))


def safe_next(target: str | None) -> str:
    """Only a path of the print pages: no open redirects."""
    return client_safe_next(target, prefix=PREFIX)


# -- the issuer (idp-a) --------------------------------------------------------------------


class SignInClient:
    """idp-a as the print pages use it: the print service's client, over the runtime's
    HTTP client (sync: call it in a thread)."""

    def __init__(self, rt: PrintingRuntime) -> None:
        issuer = rt.settings.issuers[0]
        client_id, secret = rt.settings.service_client(issuer, "printing")
        self.issuer = issuer
        self.redirect_uri = f"{rt.base_url}/auth/callback"
        self.client = AuthClient(
            rt.settings.issuer_url(issuer), client_id=client_id, client_secret=secret, http=rt.http
        )
        #: once per refresh token: see `RefreshOnce`
        self.refresh = RefreshOnce(self.client.refresh)


def sign_in_client(request: Request) -> SignInClient:
    client: SignInClient | None = getattr(request.app.state, "print_sign_in", None)
    if client is None:
        client = SignInClient(runtime(request))
        request.app.state.print_sign_in = client
    return client


SignInDep = Annotated[SignInClient, Depends(sign_in_client)]


# -- the session cookie ---------------------------------------------------------------------


#: The sealed session cookie's content.
Tokens = WebSession


async def _refresh(
    request: Request, rt: PrintingRuntime, issuer: SignInClient, tokens: Tokens
) -> Tokens | None:
    if not tokens.refresh_token:
        return None
    try:
        issued = await run_in_threadpool(issuer.refresh, tokens.refresh_token)
    except OAuthError as exc:
        log.info("refresh refused", extra={"fields": {"error": exc.error}})
        return None
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise Unavailable(f"the sign-in service {issuer.issuer} is unreachable") from exc
    fresh = Tokens.issued(issued, previous=tokens)
    request.state.print_session = fresh.seal(rt.box)
    return fresh


def _sign_in_first(request: Request) -> StarletteHTTPException:
    """A redirect to the sign-in, back here afterwards (after a POST: to the print page).
    Raised, as a dependency cannot answer; the error handler keeps its Location."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        here = f"{PREFIX}/"
    location = f"{PREFIX}/auth/login?{urlencode({'next': safe_next(here)})}"
    return StarletteHTTPException(303, "sign in first", headers={"Location": location})


async def signed_in(request: Request, rt: RuntimeDep, issuer: SignInDep) -> Principal:
    """The signed-in user, the access token refreshed when due; else a redirect to sign in."""
    tokens = Tokens.unseal(rt.box, request.cookies.get(SESSION_COOKIE))
    refreshed = False
    if tokens is not None and tokens.expires_at - REFRESH_MARGIN <= time.time():
        tokens, refreshed = await _refresh(request, rt, issuer, tokens), True
    while tokens is not None:
        try:
            principal = await rt.guard.verify(tokens.access_token)
        except Unauthorized:  # revoked, or expired early: one refresh
            if refreshed:
                break
            tokens, refreshed = await _refresh(request, rt, issuer, tokens), True
            continue
        if not principal.has_scopes("print"):
            raise Forbidden("your account may not print (it lacks the scope print)")
        request.state.principal = principal
        return principal
    raise _sign_in_first(request)


SignedIn = Annotated[Principal, Depends(signed_in)]


# -- sign-in: RFC 6749 §4.1 with RFC 7636 ---------------------------------------------------


@router.get("/auth/login")
async def login(
    request: Request,
    rt: RuntimeDep,
    issuer: SignInDep,
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    try:
        meta = await run_in_threadpool(issuer.client.metadata)
        endpoint = str(meta["authorization_endpoint"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        log.warning("issuer metadata unavailable: %r", exc)
        return _message(
            request,
            rt,
            503,
            "Sign-in is unavailable",
            f"The sign-in service {issuer.issuer} does not answer. Try again shortly.",
        )
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": issuer.client.client_id,
        "redirect_uri": issuer.redirect_uri,
        "scope": SCOPE,
        "state": state,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    pending = {
        "state": state,
        "verifier": verifier,
        "next": safe_next(next),
        "until": time.time() + LOGIN_TTL,
    }
    response = RedirectResponse(f"{endpoint}?{urlencode(query)}", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    _set_cookie(rt, response, LOGIN_COOKIE, rt.box.seal(json.dumps(pending)), max_age=LOGIN_TTL)
    return response


def _pending(rt: PrintingRuntime, request: Request) -> dict[str, Any] | None:
    sealed = request.cookies.get(LOGIN_COOKIE)
    if not sealed or len(sealed) > 4000:
        return None
    try:
        data = json.loads(rt.box.open(sealed))
        if float(data["until"]) < time.time():
            return None
        return {k: str(data[k]) for k in ("state", "verifier", "next")}
    except (ValueError, KeyError, TypeError):
        return None


_OAUTH_ERRORS = {
    "access_denied": "The sign-in was declined.",
    "login_required": "You are not signed in at the sign-in service.",
    "invalid_scope": "Your account may not use printing.",
    "temporarily_unavailable": "The sign-in service is busy. Try again shortly.",
    "server_error": "The sign-in service failed. Try again shortly.",
}


@router.get("/auth/callback")
async def callback(
    request: Request,
    rt: RuntimeDep,
    issuer: SignInDep,
    code: Annotated[str, Query(max_length=512)] = "",
    state: Annotated[str, Query(max_length=512)] = "",
    error: Annotated[str, Query(max_length=100)] = "",
    error_description: Annotated[str, Query(max_length=1000)] = "",
) -> Response:
    pending = _pending(rt, request)
    retry = f"{PREFIX}/auth/login?{urlencode({'next': pending['next'] if pending else ''})}"

    def failed(status_code: int, message: str) -> Response:
        response = _message(request, rt, status_code, "You are not signed in", message, retry=retry)
        _delete_cookie(rt, response, LOGIN_COOKIE)
        return response

    if error:
        text = _OAUTH_ERRORS.get(error, "The sign-in did not complete.")
        detail = f" ({error}{': ' + error_description if error_description else ''})"
        return failed(400, text + detail)
    if pending is None:
        return failed(400, "The sign-in took too long or began in another browser.")
    if not (code and state and crypto.equal(state, pending["state"])):
        return failed(400, "The sign-in answer does not belong to this browser's sign-in.")
    try:
        issued = await run_in_threadpool(
            partial(
                issuer.client.exchange_code,
                code,
                redirect_uri=issuer.redirect_uri,
                code_verifier=pending["verifier"],
            )
        )
    except OAuthError as exc:
        return failed(400, f"The sign-in service refused the sign-in ({exc}).")
    except (httpx.HTTPError, ValueError, KeyError):
        return failed(503, f"The sign-in service {issuer.issuer} does not answer.")
    tokens = Tokens.issued(issued)
    try:
        principal = await rt.guard.verify(tokens.access_token)
    except Unauthorized:
        return failed(400, "The sign-in service issued a token that is not valid.")
    except Unavailable:
        return failed(503, f"The sign-in service {issuer.issuer} does not answer.")
    if not principal.has_scopes("print"):
        return failed(403, "Your account may not print (it lacks the scope print).")
    log.info(
        "signed in",
        extra={"fields": {"tenant": principal.tenant_id, "user": principal.acting_user}},
    )
    response = RedirectResponse(pending["next"], status_code=303)
    response.headers["Cache-Control"] = "no-store"
    _set_cookie(rt, response, SESSION_COOKIE, tokens.seal(rt.box))
    _delete_cookie(rt, response, LOGIN_COOKIE)
    return response


def _revoke(issuer: SignInClient, tokens: Tokens) -> None:
    for token in (tokens.refresh_token, tokens.access_token):
        if token:
            try:
                issuer.client.revoke(token)
            except (OAuthError, httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("token not revoked at sign-out: %r", exc)


@router.post("/auth/logout")
async def logout(
    request: Request,
    rt: RuntimeDep,
    issuer: SignInDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not check_csrf(request, csrf):
        return _message(request, rt, 400, "Your form expired", "Go back and sign out again.")
    tokens = Tokens.unseal(rt.box, request.cookies.get(SESSION_COOKIE))
    if tokens is not None:
        rt.guard.forget(tokens.access_token)
        await run_in_threadpool(_revoke, issuer, tokens)
    response = RedirectResponse(f"{PREFIX}/auth/signed-out", status_code=303)
    _delete_cookie(rt, response, SESSION_COOKIE)
    return _finish(request, rt, response)


@router.get("/auth/signed-out")
async def signed_out(request: Request, rt: RuntimeDep, issuer: SignInDep) -> Response:
    return _render(request, rt, "signed_out.html", issuer=issuer.issuer)


@router.get("/static/live.js")
async def live_js() -> Response:
    return Response(
        _LIVE_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=300"}
    )


# -- the print page -------------------------------------------------------------------------


@dataclass(frozen=True)
class FormValues:
    """What the print form shows (again, after an error)."""

    printer_id: str = ""
    url: str = ""
    title: str = ""
    color: bool = True
    copies: str = "1"
    duplex: bool = False
    media: str = "A4"
    dpi: str = "300"

    @classmethod
    def of(cls, fields: dict[str, str]) -> FormValues:
        return cls(
            printer_id=fields.get("printer_id", ""),
            url=fields.get("url", ""),
            title=fields.get("title", ""),
            color=fields.get("color", "color") != "mono",
            copies=fields.get("copies", "1"),
            duplex=bool(fields.get("duplex")),
            media=fields.get("media", "A4"),
            dpi=fields.get("dpi", "300"),
        )


def _print_context(rt: PrintingRuntime, principal: Principal) -> dict[str, Any]:
    with rt.db.sessions() as db:
        printers = [
            PrinterRead.of(p) for p in service.list_printers(db, tenant_id=principal.tenant_id)
        ]
        jobs = [
            JobRead.of(j)
            for j in service.list_jobs(
                db, tenant_id=principal.tenant_id, owner=principal.acting_user, limit=50
            )
        ]
    return {
        "printers": printers,
        "printer_names": {p.printer_id: p.name for p in printers},
        "jobs": jobs,
        "media": service.MEDIA,
        "resolutions": RESOLUTIONS,
    }


async def _print_page(
    request: Request,
    rt: PrintingRuntime,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: FormValues | None = None,
) -> Response:
    context = await run_in_threadpool(_print_context, rt, principal)
    # Refresh only a page got by GET: reloading a form's answer would post it again.
    live = status_code == 200 and any(j.state in service.ACTIVE for j in context["jobs"])
    return _render(
        request,
        rt,
        "print.html",
        status_code,
        principal=principal,
        error=error,
        form=form or FormValues(),
        live=live,
        **context,
    )


@router.get("/")
async def print_page(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    return await _print_page(request, rt, principal)


def _chosen(upload: object) -> UploadFile | None:
    """The uploaded file, if one was chosen (a form with none sends an empty nameless part)."""
    if isinstance(upload, UploadFile) and (upload.filename or upload.size):
        return upload
    return None


@router.post("/jobs")
async def submit(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    """SVC001 from the print form: a PDF file or a URL. Refused input shows the form again."""
    async with request.form(max_files=1, max_fields=20) as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        values = FormValues.of(fields)
        if not check_csrf(request, fields.get("csrf")):
            return await _print_page(
                request,
                rt,
                principal,
                status_code=400,
                error="Your form expired. Please choose the file and submit it again.",
                form=values,
            )
        try:
            intake.refuse_nul(fields)
            upload = _chosen(form.get("file"))
            url = fields.get("url", "").strip()
            if upload is not None and url:
                raise InvalidRequest("choose a PDF file or a URL, not both", field="file")
            if upload is None and not url:
                raise InvalidRequest("choose a PDF file or enter its URL", field="file")
            job = await intake.submit_form(rt, principal, fields=fields, upload=upload, url=url)
        except PrintcloudError as exc:
            # The user's URL not delivering is bad input here, not a gateway error.
            code = 400 if isinstance(exc, DownloadFailed) else exc.status_code
            return await _print_page(
                request, rt, principal, status_code=code, error=exc.description, form=values
            )
    log.info("job submitted from the print page", extra={"fields": {"job": job.job_id}})
    return _finish(request, rt, RedirectResponse(f"{PREFIX}/jobs/{job.job_id}", status_code=303))


# -- a job --------------------------------------------------------------------------------


def _job_context(rt: PrintingRuntime, principal: Principal, job_id: str) -> dict[str, Any]:
    if not _JOB_ID.match(job_id):
        raise NotFound("unknown print job", field="job_id")
    tenant_id = principal.tenant_id
    with rt.db.sessions() as db:
        row = service.get_job(db, tenant_id=tenant_id, job_id=job_id)
        job = JobRead.of(row, service.events(db, tenant_id=tenant_id, job_id=job_id))
        try:
            printer = service.get_printer(db, tenant_id=tenant_id, printer_id=row.printer_id)
            printer_name = f"{printer.name} ({'color' if printer.color else 'mono'})"
        except NotFound:  # removed since
            printer_name = row.printer_id
    active = job.state in service.ACTIVE
    return {
        "job": job,
        "printer_name": printer_name,
        "active": active,
        "cancellable": active and job.owner == principal.acting_user,
    }


async def _job_page(
    request: Request,
    rt: PrintingRuntime,
    principal: Principal,
    job_id: str,
    *,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    try:
        context = await run_in_threadpool(_job_context, rt, principal, job_id)
    except NotFound:
        return _message(
            request,
            rt,
            404,
            "No such print job",
            "There is no print job with this address in your organisation.",
            principal=principal,
            back=True,
        )
    return _render(
        request,
        rt,
        "job.html",
        status_code,
        principal=principal,
        error=error,
        live=status_code == 200 and context["active"],
        **context,
    )


@router.get("/jobs/{job_id}")
async def job_page(job_id: str, request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    return await _job_page(request, rt, principal, job_id)


@router.post("/jobs/{job_id}/cancel")
async def cancel(
    job_id: str,
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not check_csrf(request, csrf):
        return await _job_page(
            request, rt, principal, job_id, status_code=400, error="Your form expired. Try again."
        )
    if not _JOB_ID.match(job_id):
        return await _job_page(request, rt, principal, job_id)  # the "no such job" page
    try:
        await run_in_threadpool(
            partial(
                jobs.cancel,
                rt,
                tenant_id=principal.tenant_id,
                job_id=job_id,
                by=principal.acting_user,
            )
        )
    except NotFound:
        return await _job_page(request, rt, principal, job_id)
    except PrintcloudError as exc:  # not the owner, or the job has ended meanwhile
        return await _job_page(
            request, rt, principal, job_id, status_code=exc.status_code, error=exc.description
        )
    return _finish(request, rt, RedirectResponse(f"{PREFIX}/jobs/{job_id}", status_code=303))


@router.get("/jobs/{job_id}/pages/{number}/preview.png")
async def preview(
    job_id: str, number: int, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    """A printed page as the printer rendered it (uploaded by the device, S110)."""
    if not _JOB_ID.match(job_id):
        raise NotFound("unknown print job", field="job_id")
    data = await run_in_threadpool(
        partial(jobs.preview_png, rt, tenant_id=principal.tenant_id, job_id=job_id, number=number)
    )
    response = Response(
        data, media_type="image/png", headers={"Cache-Control": "private, max-age=60"}
    )
    return _finish(request, rt, response)
