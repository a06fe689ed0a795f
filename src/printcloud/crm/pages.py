"""The CRM's web pages (seed 000, server B), for the users of idp-b's tenants.

- Sign-in at idp-b with the authorization code flow and PKCE (RFC 6749 §4.1,
  RFC 7636, S256) as the CRM's own service client `svc-crm` (first party, no
  consent); the tokens live in a cookie sealed with the instance secret (`pc_crm`).
  The redirect URI is `{public_url}/crm/auth/callback`: the stack mounts the CRM
  at `/crm`.
- `/crm/`: the record sets, a CSV upload; `/crm/sets/{name}`: a set's records with
  a filter and pages, a CSV upload into it.
- `/crm/jobs`: the scheduled jobs (FIG. 7: name, start time, next run), `/crm/jobs/new`
  and `/crm/jobs/{id}`: the registration form (FIG. 6), pause, resume, delete;
  `/crm/runs`: the runs and their outcome.
- `/crm/docgen-link`: the secret-key registration (FIG. 9, S1407–S1412): the docgen
  tenant ID and the key, which is never shown again.

Reading needs the scope crm.read; changing anything, crm.write. The pages work
without JavaScript; every form carries a CSRF token.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import available_timezones

import httpx
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
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

from . import service
from .deps import RuntimeDep, runtime
from .runtime import PREFIX, CrmRuntime
from .schemas import BatchJobIn, BatchJobRead, DocgenLinkRead, ImportRead, RecordPage, RunRead

log = get_logger("crm.pages")
router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "pc_crm"
LOGIN_COOKIE = "pc_crm_login"
LOGIN_TTL = 600
REFRESH_MARGIN = 30
SCOPE = "crm.read crm.write profile"
PAGE_SIZE = 50
TIMEZONES = sorted(available_timezones())

pages = templates(Path(__file__).parent / "templates")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


pages.env.filters["when"] = _when
pages.env.globals["prefix"] = PREFIX


def _secure(rt: CrmRuntime) -> bool:
    return rt.settings.public_url.startswith("https://")


def _finish(request: Request, rt: CrmRuntime, response: Response) -> Response:
    set_csrf_cookie(request, response, secure=_secure(rt))
    sealed = getattr(request.state, "crm_session", None)
    if sealed:
        _set_cookie(rt, response, SESSION_COOKIE, sealed)
    return response


def _render(
    request: Request, rt: CrmRuntime, name: str, status_code: int = 200, **context: Any
) -> Response:
    context["csrf"] = csrf_token(request)
    context.setdefault("principal", None)
    context.setdefault("error", None)
    response: HTMLResponse = pages.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return _finish(request, rt, response)


def _message(
    request: Request, rt: CrmRuntime, status_code: int, title: str, message: str, **context: Any
) -> Response:
    return _render(
        request,
        rt,
        "message.html",
        status_code,
        title=title,
        message=message,
        failed=status_code >= 400,
        **context,
    )


def _set_cookie(
    rt: CrmRuntime, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=PREFIX, httponly=True, samesite="lax", secure=_secure(rt)
    )


def _delete_cookie(rt: CrmRuntime, response: Response, name: str) -> None:
    response.delete_cookie(name, path=PREFIX, httponly=True, samesite="lax", secure=_secure(rt))


def safe_next(target: str | None) -> str:
    """Only a path of the CRM pages: no open redirects."""
    return client_safe_next(target, prefix=PREFIX)


def _see(request: Request, rt: CrmRuntime, path: str) -> Response:
    return _finish(request, rt, RedirectResponse(f"{PREFIX}{path}", status_code=303))


# -- the issuer (idp-b) and the session cookie ---------------------------------------------


class SignInClient:
    """idp-b as the CRM pages use it: the CRM's service client (sync: call it in a thread)."""

    def __init__(self, rt: CrmRuntime) -> None:
        client_id, secret = rt.settings.service_client(rt.issuer, "crm")
        self.issuer = rt.issuer
        self.redirect_uri = f"{rt.base_url}/auth/callback"
        self.client = AuthClient(
            rt.settings.issuer_url(rt.issuer),
            client_id=client_id,
            client_secret=secret,
            http=rt.http,
        )
        #: once per refresh token: see `RefreshOnce`
        self.refresh = RefreshOnce(self.client.refresh)


def sign_in_client(request: Request) -> SignInClient:
    client: SignInClient | None = getattr(request.app.state, "crm_sign_in", None)
    if client is None:
        client = SignInClient(runtime(request))
        request.app.state.crm_sign_in = client
    return client


SignInDep = Annotated[SignInClient, Depends(sign_in_client)]


#: The sealed session cookie's content.
Tokens = WebSession


async def _refresh(
    request: Request, rt: CrmRuntime, issuer: SignInClient, tokens: Tokens
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
    request.state.crm_session = fresh.seal(rt.box)
    return fresh


def _sign_in_first(request: Request) -> StarletteHTTPException:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        here = f"{PREFIX}/"
    location = f"{PREFIX}/auth/login?{urlencode({'next': safe_next(here)})}"
    return StarletteHTTPException(303, "sign in first", headers={"Location": location})


async def signed_in(request: Request, rt: RuntimeDep, issuer: SignInDep) -> Principal:
    """The signed-in user (crm.read), the token refreshed when due; else to the sign-in."""
    tokens = Tokens.unseal(rt.box, request.cookies.get(SESSION_COOKIE))
    refreshed = False
    if tokens is not None and tokens.expires_at - REFRESH_MARGIN <= time.time():
        tokens, refreshed = await _refresh(request, rt, issuer, tokens), True
    while tokens is not None:
        try:
            principal = await rt.guard.verify(tokens.access_token)
        except Unauthorized:
            if refreshed:
                break
            tokens, refreshed = await _refresh(request, rt, issuer, tokens), True
            continue
        if not principal.has_scopes("crm.read"):
            raise Forbidden("your account may not use the CRM (it lacks the scope crm.read)")
        request.state.principal = principal
        return principal
    raise _sign_in_first(request)


SignedIn = Annotated[Principal, Depends(signed_in)]


def _may_write(principal: Principal) -> None:
    if not principal.has_scopes("crm.write"):
        raise Forbidden("your account may not change the CRM (it lacks the scope crm.write)")


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


def _pending(rt: CrmRuntime, request: Request) -> dict[str, str] | None:
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
        detail = f"{error}{': ' + error_description if error_description else ''}"
        return failed(400, f"The sign-in did not complete ({detail}).")
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
    if not principal.has_scopes("crm.read"):
        return failed(403, "Your account may not use the CRM (it lacks the scope crm.read).")
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
    return _message(
        request,
        rt,
        200,
        "Signed out",
        f"You are signed out of the CRM (you may still be signed in at {issuer.issuer}).",
    )


# -- record sets and records ----------------------------------------------------------------


def _sets(rt: CrmRuntime, tenant_id: str) -> list[tuple[str, int, list[dict[str, Any]]]]:
    with rt.db.sessions() as db:
        return [
            (rs.name, n, list(rs.fields))
            for rs, n in service.list_record_sets(db, tenant_id=tenant_id)
        ]


async def _home(
    request: Request,
    rt: CrmRuntime,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    sets = await run_in_threadpool(_sets, rt, principal.tenant_id)
    return _render(
        request,
        rt,
        "home.html",
        status_code,
        principal=principal,
        sets=sets,
        error=error,
        notice=notice,
    )


@router.get("/")
async def home(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    return await _home(request, rt, principal)


def _import_message(result: ImportRead) -> str:
    added = f"; new fields: {', '.join(result.added_fields)}" if result.added_fields else ""
    replaced = f" (replacing {result.replaced})" if result.replaced else ""
    return f"Imported {result.imported} record(s) into {result.record_set}{replaced}{added}."


async def _upload(
    request: Request, rt: CrmRuntime, principal: Principal, record_set: str | None
) -> tuple[str | None, str | None, str]:
    """CSV from a form: (notice, error, the set's name)."""
    async with request.form(max_files=1, max_fields=10) as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        name = record_set or fields.get("record_set", "").strip()
        if not check_csrf(request, fields.get("csrf")):
            return None, "Your form expired. Choose the file and upload it again.", name
        try:
            _may_write(principal)
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not (upload.filename or upload.size):
                raise InvalidRequest("choose a CSV file", field="file")
            text = service.decode(await service.read_upload(upload))
            result = await run_in_threadpool(
                partial(
                    service.import_text,
                    rt.db,
                    tenant_id=principal.tenant_id,
                    record_set=name,
                    text=text,
                    create_fields=True,
                    replace=fields.get("replace") == "yes",
                )
            )
        except service.ImportRejected as exc:
            lines = "; ".join(str(e) for e in exc.errors[:20])
            more = f" (and {exc.total - 20} more)" if exc.total > 20 else ""
            return None, f"Nothing was imported. {exc.total} problem(s): {lines}{more}", name
        except PrintcloudError as exc:
            return None, exc.description, name
    return _import_message(ImportRead.of(result)), None, name


@router.post("/import")
async def import_new(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    notice, error, _ = await _upload(request, rt, principal, None)
    return await _home(
        request, rt, principal, status_code=400 if error else 200, error=error, notice=notice
    )


def _set_page(
    rt: CrmRuntime, tenant_id: str, name: str, filters: list[dict[str, Any]], order: str, page: int
) -> RecordPage:
    with rt.db.sessions() as db:
        result = service.query_records(
            db,
            tenant_id=tenant_id,
            record_set=name,
            filters=filters,
            order=order,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        return RecordPage.of(result)


async def _records(
    request: Request,
    rt: CrmRuntime,
    principal: Principal,
    name: str,
    *,
    field: str = "",
    op: str = "eq",
    value: str = "",
    order: str = "",
    page: int = 1,
    status_code: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    filters = [{"field": field, "op": op, "value": value}] if field else []
    try:
        result = await run_in_threadpool(
            _set_page, rt, principal.tenant_id, name, filters, order, page
        )
    except NotFound:
        return _message(
            request,
            rt,
            404,
            "No such record set",
            "There is no record set with this name in your organisation.",
            principal=principal,
        )
    except InvalidRequest as exc:
        result = await run_in_threadpool(_set_page, rt, principal.tenant_id, name, [], "", 1)
        error, status_code = exc.description, 400
    return _render(
        request,
        rt,
        "records.html",
        status_code,
        principal=principal,
        page=result,
        number=page,
        pages=max(1, -(-result.total // PAGE_SIZE)),
        query={"field": field, "op": op, "value": value, "order": order},
        ops=service.OPS,
        error=error,
        notice=notice,
    )


@router.get("/sets/{name}")
async def records(
    name: str,
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    field: Annotated[str, Query(max_length=64)] = "",
    op: Annotated[str, Query(max_length=10)] = "eq",
    value: Annotated[str, Query(max_length=1000)] = "",
    order: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    return await _records(
        request, rt, principal, name, field=field, op=op, value=value, order=order, page=page
    )


@router.post("/sets/{name}/import")
async def import_into(name: str, request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    notice, error, _ = await _upload(request, rt, principal, name)
    return await _records(
        request,
        rt,
        principal,
        name,
        status_code=400 if error else 200,
        error=error,
        notice=notice,
    )


# -- batch jobs (FIG. 6–7) and runs ---------------------------------------------------------


def _jobs(rt: CrmRuntime, tenant_id: str) -> list[BatchJobRead]:
    with rt.db.sessions() as db:
        return [BatchJobRead.of(j) for j in service.list_jobs(db, tenant_id=tenant_id)]


@router.get("/jobs")
async def jobs(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    _may_write(principal)
    listed = await run_in_threadpool(_jobs, rt, principal.tenant_id)
    return _render(request, rt, "jobs.html", principal=principal, jobs=listed)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _job_values(job: BatchJobRead | None) -> dict[str, Any]:
    """The registration form's fields (strings), for a job or a new one."""
    if job is None:
        return {
            "name": "",
            "start_at": "",
            "timezone": "UTC",
            "recurrence": "daily",
            "cron": "",
            "printer_id": "",
            "color": "color",
            "copies": "1",
            "duplex": "",
            "form": "invoice",
            "record_set": "",
            "filters": [{"field": "", "op": "eq", "value": ""}] * 3,
            "order": "",
            "limit": "",
            "paused": "",
        }
    local = job.start_at.astimezone(service.zone(job.timezone))
    filters = [{"field": f.field, "op": f.op, "value": _text(f.value)} for f in job.query.filters]
    filters += [{"field": "", "op": "eq", "value": ""}] * max(0, 3 - len(filters))
    return {
        "name": job.name,
        "start_at": local.strftime("%Y-%m-%dT%H:%M"),
        "timezone": job.timezone,
        "recurrence": job.recurrence,
        "cron": job.cron or "",
        "printer_id": job.print.printer_id,
        "color": "color" if job.print.color else "mono",
        "copies": str(job.print.copies),
        "duplex": "yes" if job.print.duplex else "",
        "form": job.form,
        "record_set": job.query.record_set,
        "filters": filters,
        "order": ", ".join(job.query.order),
        "limit": "" if job.query.limit is None else str(job.query.limit),
        "paused": "yes" if job.paused else "",
    }


def _form_values(fields: dict[str, str]) -> dict[str, Any]:
    values = _job_values(None)
    for key in values:
        if key != "filters":
            values[key] = fields.get(key, "").strip()
    values["filters"] = [
        {
            "field": fields.get(f"filter{i}_field", "").strip(),
            "op": fields.get(f"filter{i}_op", "eq"),
            "value": fields.get(f"filter{i}_value", "").strip(),
        }
        for i in range(3)
    ]
    return values


def _job_body(values: dict[str, Any]) -> BatchJobIn:
    """The form as the API's body; pydantic's complaint as a 400 naming the field."""
    raw = {
        "name": values["name"],
        "start_at": values["start_at"],
        "timezone": values["timezone"],
        "recurrence": values["recurrence"],
        "cron": values["cron"] or None,
        "paused": values["paused"] == "yes",
        "print": {
            "printer_id": values["printer_id"],
            "color": values["color"] != "mono",
            "copies": values["copies"] or "1",
            "duplex": values["duplex"] == "yes",
        },
        "form": values["form"],
        "query": {
            "record_set": values["record_set"],
            "filters": [f for f in values["filters"] if f["field"]],
            "order": [o.strip() for o in values["order"].split(",") if o.strip()],
            "limit": values["limit"] or None,
        },
    }
    try:
        return BatchJobIn.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise InvalidRequest(f"{where}: {err.get('msg', 'invalid')}", field=where) from exc


async def _job_form(
    request: Request,
    rt: CrmRuntime,
    principal: Principal,
    *,
    job: BatchJobRead | None,
    values: dict[str, Any],
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    sets = await run_in_threadpool(_sets, rt, principal.tenant_id)
    return _render(
        request,
        rt,
        "job_form.html",
        status_code,
        principal=principal,
        job=job,
        values=values,
        sets=sets,
        ops=service.OPS,
        timezones=TIMEZONES,
        error=error,
    )


@router.get("/jobs/new")
async def new_job(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    _may_write(principal)
    return await _job_form(request, rt, principal, job=None, values=_job_values(None))


def _load_job(rt: CrmRuntime, tenant_id: str, job_id: str) -> BatchJobRead:
    with rt.db.sessions() as db:
        return BatchJobRead.of(service.get_job(db, tenant_id=tenant_id, job_id=job_id))


def _no_job(request: Request, rt: CrmRuntime, principal: Principal) -> Response:
    return _message(
        request,
        rt,
        404,
        "No such batch job",
        "There is no batch job with this address in your organisation.",
        principal=principal,
    )


@router.get("/jobs/{job_id}")
async def edit_job(job_id: str, request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    _may_write(principal)
    try:
        job = await run_in_threadpool(_load_job, rt, principal.tenant_id, job_id)
    except NotFound:
        return _no_job(request, rt, principal)
    return await _job_form(request, rt, principal, job=job, values=_job_values(job))


@router.post("/jobs")
async def save_new_job(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    return await _save(request, rt, principal, None)


@router.post("/jobs/{job_id}")
async def save_job(job_id: str, request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    return await _save(request, rt, principal, job_id)


async def _save(
    request: Request, rt: CrmRuntime, principal: Principal, job_id: str | None
) -> Response:
    _may_write(principal)
    async with request.form(max_fields=40) as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    values = _form_values(fields)
    job = None
    if job_id is not None:
        try:
            job = await run_in_threadpool(_load_job, rt, principal.tenant_id, job_id)
        except NotFound:
            return _no_job(request, rt, principal)
    if not check_csrf(request, fields.get("csrf")):
        return await _job_form(
            request,
            rt,
            principal,
            job=job,
            values=values,
            status_code=400,
            error="Your form expired. Please submit it again.",
        )
    try:
        body = _job_body(values)
        await run_in_threadpool(
            partial(
                service.save_job,
                rt.db,
                tenant_id=principal.tenant_id,
                job_id=job_id,
                spec=body.spec(),
                by=principal.acting_user,
                changed=rt.job_changed,
            )
        )
    except PrintcloudError as exc:
        return await _job_form(
            request,
            rt,
            principal,
            job=job,
            values=values,
            status_code=exc.status_code,
            error=exc.description,
        )
    return _see(request, rt, "/jobs")


@router.post("/jobs/{job_id}/{action}")
async def job_action(
    job_id: str,
    action: str,
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    _may_write(principal)
    if action not in ("pause", "resume", "delete"):
        return _no_job(request, rt, principal)
    if not check_csrf(request, csrf):
        return _message(
            request, rt, 400, "Your form expired", "Go back and try again.", principal=principal
        )
    try:
        if action == "delete":
            await run_in_threadpool(
                partial(
                    service.remove_job,
                    rt.db,
                    tenant_id=principal.tenant_id,
                    job_id=job_id,
                    changed=rt.job_changed,
                )
            )
        else:
            await run_in_threadpool(
                partial(
                    service.pause_job,
                    rt.db,
                    tenant_id=principal.tenant_id,
                    job_id=job_id,
                    paused=action == "pause",
                    by=principal.acting_user,
                    changed=rt.job_changed,
                )
            )
    except NotFound:
        return _no_job(request, rt, principal)
    return _see(request, rt, "/jobs")


def _runs(rt: CrmRuntime, tenant_id: str) -> list[RunRead]:
    with rt.db.sessions() as db:
        return [RunRead.of(r, j) for r, j in service.list_runs(db, tenant_id=tenant_id)]


@router.get("/runs")
async def runs(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    _may_write(principal)
    listed = await run_in_threadpool(_runs, rt, principal.tenant_id)
    return _render(request, rt, "runs.html", principal=principal, runs=listed)


# -- the docgen link (FIG. 9, S1407–S1412) --------------------------------------------------


def _link(rt: CrmRuntime, tenant_id: str) -> DocgenLinkRead | None:
    with rt.db.sessions() as db:
        try:
            return DocgenLinkRead.of(service.get_docgen_link(db, tenant_id=tenant_id))
        except NotFound:
            return None


async def _link_page(
    request: Request,
    rt: CrmRuntime,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
    notice: str | None = None,
    docgen_tenant_id: str | None = None,
) -> Response:
    link = await run_in_threadpool(_link, rt, principal.tenant_id)
    return _render(
        request,
        rt,
        "docgen_link.html",
        status_code,
        principal=principal,
        link=link,
        docgen_tenant_id=docgen_tenant_id
        if docgen_tenant_id is not None
        else (link.docgen_tenant_id if link else ""),
        error=error,
        notice=notice,
    )


@router.get("/docgen-link")
async def docgen_link(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    """S1407–S1409: the secret-key registration screen (FIG. 9)."""
    _may_write(principal)
    return await _link_page(request, rt, principal)


@router.post("/docgen-link")
async def register_key(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    docgen_tenant_id: Annotated[str, Form(max_length=64)] = "",
    secret_key: Annotated[str, Form(max_length=256)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """S1410–S1412: store the key (sealed) with the docgen tenant ID it belongs to.
    Sent by POST, not in a URL: it must not land in any log."""
    _may_write(principal)
    if not check_csrf(request, csrf):
        return await _link_page(
            request,
            rt,
            principal,
            status_code=400,
            error="Your form expired. Enter the key again.",
            docgen_tenant_id=docgen_tenant_id,
        )

    def store() -> None:
        with rt.db.session() as db:
            service.set_docgen_link(
                db,
                tenant_id=principal.tenant_id,
                docgen_tenant_id=docgen_tenant_id,
                secret_key=secret_key,
                by=principal.acting_user,
                box=rt.box,
            )

    try:
        await run_in_threadpool(store)
    except PrintcloudError as exc:
        return await _link_page(
            request,
            rt,
            principal,
            status_code=exc.status_code,
            error=exc.description,
            docgen_tenant_id=docgen_tenant_id,
        )
    log.info(
        "docgen secret key registered",
        extra={"fields": {"tenant": principal.tenant_id, "by": principal.acting_user}},
    )
    return await _link_page(request, rt, principal, notice="The secret key is registered.")
