"""docgen's HTTP API (seed 000, server A).

- `POST /api/batch-print?tenant_ID=…`: the CRM's scheduled job under system
  authority (S1502), authenticated by Digest (RFC 7616, SHA-256, S1503–S1512)
  with username = `tenant_ID` and password = the tenant's secret key; during a
  key rotation's overlap both keys are accepted. Accepted: 202 with the request
  ID, without waiting for the batch (S1525). Refused: 401 with a fresh
  challenge and the reason, and the refusal is recorded for the tenant as a
  `suspended` request (S1512) when docgen knows the tenant.
  The same endpoint serves a signed-in user's print request (FIG. 19): S1901
  tells them apart by the `Authorization` scheme — `Bearer <the user's idp-a
  access token, scope print>` is a user's session, and the user's idp-b access
  token rides in `X-CRM-Token`; the flow then acts with these two tokens, not
  the tenant's stored ones (docs/batch-printing.md).
- `/api/settings…`: the tenant's batch-print settings (FIG. 8, FIG. 10) for a
  bearer token of idp-a with the scopes `docgen` and `admin` and the issuer's
  `admin` claim (the tenant's administrator now): the secret key (issued once,
  rotated with an overlap, S1401–S1406), the print token by RFC 8693 exchange
  of the admin's idp-a session (FIG. 11, S1103–S1108), removal of a token set.
- `GET /api/batch-print/choices?tenant_ID=…`: the forms and printers a batch job of
  the tenant may use (`choices`), for the CRM's registration form; same Digest.
- `/api/batch-requests`: the tenant's batch-print requests and their history.
- `/api/print-requests/{id}`: a signed-in user's own print request (FIG. 19) and its
  print jobs, asked at the print service with the user's token (scope `print`).
- `GET /api/batch-runs?start=…&end=…` and `POST /api/usage-report` (issue 18): the CRM's
  batch runs of a period, and the usage report typeset as a PDF, for the tenant's
  administrator signed in at any platform page (scope `admin` and the `admin` claim):
  the print service's report page asks them.
- `/api/forms`: the tenant's own Typst forms (`tenant_forms`), for its admin.

Every query filters on the caller's tenant; another tenant's request is 404.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from printcloud.core.errors import InvalidRequest, NotFound
from printcloud.core.guard import Principal

from . import batch, choices, intake, service, tenant_forms, tokens, usage_report
from .deps import AdminCaller, BatchCaller, ReportCaller, RuntimeDep, UserCaller, actor_of
from .runtime import DocgenRuntime
from .schemas import (
    BatchAccepted,
    BatchChoices,
    BatchRequestCreate,
    BatchRequestList,
    BatchRequestRead,
    BatchRunList,
    BatchRunRead,
    BatchSettingsRead,
    FormCreate,
    FormList,
    FormRead,
    PrintTokenCreate,
    SecretKeyIssued,
    SecretKeyRead,
    SecretKeyRotate,
    TokenRead,
    UsageReportCreate,
    UserPrintRequestRead,
)

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


# -- the batch-print endpoint (S1501–S1512, S1525) -----------------------------------------


async def _batch_body(request: Request) -> BatchRequestCreate:
    raw = await request.body()
    if not raw.strip():
        return BatchRequestCreate()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise InvalidRequest("the body must be JSON (Content-Type: application/json)", field="body")
    try:
        return BatchRequestCreate.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidRequest(f"{where}: {first.get('msg', 'invalid')}", field=where) from exc


@router.post(
    "/api/batch-print",
    status_code=202,
    response_model=BatchAccepted,
    tags=["batch"],
    summary="Request printing: the CRM's scheduled job (HTTP Digest, SHA-256) or a "
    "signed-in user's request (idp-a bearer + X-CRM-Token)",
    responses={
        401: {"description": "Digest challenge, or the credentials were refused (with why)"},
        400: {"description": "tenant_ID missing or repeated, or a body that is not valid"},
        403: {"description": "the user's token is another tenant's, or a client's"},
    },
)
async def batch_print(
    request: Request,
    rt: RuntimeDep,
    caller: BatchCaller,
    tenant_param: Annotated[
        str, Query(alias="tenant_ID", max_length=64, description="docgen's tenant ID (S1509)")
    ],
) -> BatchAccepted:
    """S1503–S1512 then S1525: the request is recorded and answered at once; the
    batch flow runs on its own (verify the print token, fetch, render, send)."""
    return await intake.receive(rt, caller, await _batch_body(request))


@router.get(
    "/api/batch-print/choices",
    response_model=BatchChoices,
    tags=["batch"],
    summary="What a batch job may use: the forms and the printers (HTTP Digest, SHA-256)",
    responses={401: {"description": "Digest challenge, or the credentials were refused"}},
)
async def batch_print_choices(
    request: Request,
    rt: RuntimeDep,
    tenant_param: Annotated[
        str, Query(alias="tenant_ID", max_length=64, description="docgen's tenant ID (S1509)")
    ],
) -> BatchChoices:
    """FIG. 6, area 604, for the CRM's registration form: the forms docgen renders for
    the tenant and the printers its print token sees. Authenticated like a batch-print
    request; a refusal is not recorded (it starts no batch)."""
    tenant_id = await run_in_threadpool(partial(intake.batch_guard, request, rt, record=False))
    return await run_in_threadpool(partial(choices.batch_choices, rt, tenant_id=tenant_id))


# -- the tenant's settings (FIG. 8) -----------------------------------------------------------


def _settings_read(rt: DocgenRuntime, tenant_id: str) -> BatchSettingsRead:
    with rt.db.session() as db:
        key = service.key_state(db, tenant_id=tenant_id)
        states = service.token_states(db, tenant_id=tenant_id)
    return BatchSettingsRead(
        tenant_id=tenant_id,
        secret_key=SecretKeyRead.of(key),
        crm_token=TokenRead.of(states["crm"]),
        print_token=TokenRead.of(states["print"]),
    )


@router.get("/api/settings", response_model=BatchSettingsRead, tags=["settings"])
async def get_settings(rt: RuntimeDep, caller: AdminCaller) -> BatchSettingsRead:
    """The tenant's batch-print settings: whether a key exists, the two token sets' state."""
    return await run_in_threadpool(_settings_read, rt, caller.tenant_id)


def _issue_key(
    rt: DocgenRuntime,
    caller: Principal,
    *,
    rotate: bool = False,
    overlap: timedelta = service.DEFAULT_OVERLAP,
) -> SecretKeyIssued:
    with rt.db.session() as db:
        issued = service.issue_key(
            db,
            tenant_id=caller.tenant_id,
            box=rt.box,
            actor=actor_of(caller),
            rotate=rotate,
            overlap=overlap,
        )
    return SecretKeyIssued(**asdict(issued))


@router.post(
    "/api/settings/secret-key",
    status_code=201,
    response_model=SecretKeyIssued,
    tags=["settings"],
    responses={409: {"description": "a key was already issued: rotate it instead"}},
)
async def post_secret_key(
    response: Response, rt: RuntimeDep, caller: AdminCaller
) -> SecretKeyIssued:
    """S1401–S1405: issue the tenant's secret key, shown this once."""
    response.headers.update(NO_STORE)
    return await run_in_threadpool(_issue_key, rt, caller)


@router.post(
    "/api/settings/secret-key/rotate",
    response_model=SecretKeyIssued,
    tags=["settings"],
    responses={409: {"description": "no key was issued yet"}},
)
async def rotate_secret_key(
    response: Response, rt: RuntimeDep, caller: AdminCaller, body: SecretKeyRotate | None = None
) -> SecretKeyIssued:
    """A new key; the current one stays accepted for `overlap_hours` (default 7 days)."""
    response.headers.update(NO_STORE)
    overlap = timedelta(hours=(body or SecretKeyRotate()).overlap_hours)
    return await run_in_threadpool(partial(_issue_key, rt, caller, rotate=True, overlap=overlap))


@router.delete("/api/settings/secret-key/previous", status_code=204, tags=["settings"])
async def end_overlap(rt: RuntimeDep, caller: AdminCaller) -> Response:
    """Stop accepting the rotated-out key now (the CRM has the new one)."""

    def work() -> None:
        with rt.db.session() as db:
            service.end_key_overlap(db, tenant_id=caller.tenant_id)

    await run_in_threadpool(work)
    return Response(status_code=204)


@router.post(
    "/api/settings/print-token",
    response_model=TokenRead,
    tags=["settings"],
    responses={400: {"description": "idp-a refused the exchange (FIG. 12), with the reason"}},
)
async def post_print_token(
    body: PrintTokenCreate, rt: RuntimeDep, caller: AdminCaller
) -> TokenRead:
    """FIG. 11 (S1103–S1108): exchange the admin's idp-a session (AUTH_ID) for the print
    token set (RFC 8693) and store it. The session must be of the caller's tenant."""
    state = await run_in_threadpool(
        partial(
            tokens.exchange_print_token,
            rt,
            tenant_id=caller.tenant_id,
            session_id=body.auth_id,
            actor=actor_of(caller),
        )
    )
    return TokenRead.of(state)


@router.delete("/api/settings/{kind}-token", status_code=204, tags=["settings"])
async def delete_token(
    kind: Literal["crm", "print"], rt: RuntimeDep, caller: AdminCaller
) -> Response:
    """Revoke a stored token set at its issuer and remove it."""
    await run_in_threadpool(partial(tokens.forget, rt, tenant_id=caller.tenant_id, kind=kind))
    return Response(status_code=204)


# -- batch-print requests ------------------------------------------------------------------


@router.get("/api/batch-requests", response_model=BatchRequestList, tags=["batch"])
async def list_requests(
    rt: RuntimeDep,
    caller: AdminCaller,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> BatchRequestList:
    def work() -> BatchRequestList:
        with rt.db.session() as db:
            rows = service.list_requests(db, tenant_id=caller.tenant_id, limit=limit)
            return BatchRequestList(requests=[BatchRequestRead.of(r) for r in rows])

    return await run_in_threadpool(work)


@router.get("/api/batch-requests/{request_id}", response_model=BatchRequestRead, tags=["batch"])
async def get_request(request_id: str, rt: RuntimeDep, caller: AdminCaller) -> BatchRequestRead:
    if len(request_id) > 40:
        raise NotFound("no such batch-print request", field="request_id")

    def work() -> BatchRequestRead:
        with rt.db.session() as db:
            row = service.get_request(db, tenant_id=caller.tenant_id, request_id=request_id)
            return BatchRequestRead.of(row)

    return await run_in_threadpool(work)


@router.get("/api/batch-requests/{request_id}/print-jobs", tags=["batch"])
async def get_print_jobs(
    request_id: str, rt: RuntimeDep, caller: AdminCaller
) -> dict[str, list[dict[str, Any]]]:
    """S1525: the request's print jobs as the print service sees them now (the request
    completed when they were handed over; the paper follows there)."""
    if len(request_id) > 40:
        raise NotFound("no such batch-print request", field="request_id")
    jobs = await run_in_threadpool(
        partial(batch.print_job_states, rt, tenant_id=caller.tenant_id, request_id=request_id)
    )
    return {"print_jobs": jobs}


def _day(text: str, field: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidRequest(f"{field} must be a date like 2026-12-01", field=field) from exc


@router.get("/api/batch-runs", response_model=BatchRunList, tags=["reports"])
async def get_batch_runs(
    rt: RuntimeDep,
    caller: ReportCaller,
    start: Annotated[str, Query(max_length=10)],
    end: Annotated[str, Query(max_length=10)],
) -> BatchRunList:
    """The CRM's batch runs received from `start` (included) to `end` (excluded), UTC
    days: their documents (print jobs), state and, when suspended, why (issue 18)."""
    begin, until = _day(start, "start"), _day(end, "end")

    def work() -> BatchRunList:
        with rt.db.session() as db:
            rows = service.batch_runs(db, tenant_id=caller.tenant_id, start=begin, end=until)
            return BatchRunList(
                runs=[BatchRunRead.of(r) for r in rows], truncated=len(rows) >= service.MAX_RUNS
            )

    return await run_in_threadpool(work)


@router.post(
    "/api/usage-report",
    tags=["reports"],
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def post_usage_report(body: UsageReportCreate, caller: ReportCaller) -> Response:
    """The usage report given in the body, typeset as a PDF (docgen's Typst compiler)."""
    pdf = await run_in_threadpool(usage_report.render_pdf, body)
    return Response(pdf, media_type="application/pdf", headers=NO_STORE)


@router.get("/api/print-requests/{request_id}", response_model=UserPrintRequestRead, tags=["batch"])
async def get_own_print_request(
    request_id: str, request: Request, rt: RuntimeDep, caller: UserCaller
) -> UserPrintRequestRead:
    """FIG. 19: a signed-in user's own print request, and its print jobs asked at the print
    service with the user's token (the bearer of this call): the user sees their own jobs.
    Another user's request, or the CRM's, answers 404 like an unknown one."""
    if len(request_id) > 40:
        raise NotFound("no such print request", field="request_id")
    _, _, bearer = request.headers["authorization"].partition(" ")

    def work() -> BatchRequestRead:
        with rt.db.session() as db:
            row = service.get_request(db, tenant_id=caller.tenant_id, request_id=request_id)
            mine = (row.parameters or {}).get(batch.REQUESTER_KEY) == caller.acting_user
            if row.source != "user" or not mine:
                raise NotFound("no such print request", field="request_id")
            return BatchRequestRead.of(row)

    found = await run_in_threadpool(work)
    jobs = await run_in_threadpool(
        partial(
            batch.print_job_states,
            rt,
            tenant_id=caller.tenant_id,
            request_id=request_id,
            token=bearer.strip(),
        )
    )
    return UserPrintRequestRead(request=found, print_jobs=jobs)


# -- the tenant's forms ----------------------------------------------------------------------


def _form_read(form: tenant_forms.TenantForm) -> FormRead:
    return FormRead(
        name=form.name,
        kind=form.kind,
        uploaded_at=form.uploaded_at,
        uploaded_by=form.uploaded_by,
        size=len(form.source.encode()),
    )


async def _form_body(request: Request) -> FormCreate:
    """JSON {name, kind, source}, or a multipart form with `name`, `kind` and the
    template as the file `source` (or a text field of that name)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if ctype == "multipart/form-data":
            sent = await request.form()
            source = sent.get("source")
            if source is not None and not isinstance(source, str):
                raw = await source.read()
                try:
                    source = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidRequest("the form must be UTF-8 text", field="source") from exc
            return FormCreate(
                name=str(sent.get("name") or ""),
                kind=str(sent.get("kind") or ""),
                source=source or "",
            )
        return FormCreate.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidRequest(f"{where}: {first.get('msg', 'invalid')}", field=where) from exc


@router.post(
    "/api/forms",
    status_code=201,
    response_model=FormRead,
    tags=["forms"],
    responses={400: {"description": "the form does not compile (the compiler's message)"}},
)
async def post_form(request: Request, rt: RuntimeDep, caller: AdminCaller) -> FormRead:
    """Upload (or replace) a tenant form; compiled with its kind's sample data first."""
    body = await _form_body(request)
    kept = await run_in_threadpool(
        partial(
            tenant_forms.save_form,
            rt.blobs,
            tenant_id=caller.tenant_id,
            name=body.name,
            kind=body.kind,
            source=body.source,
            actor=actor_of(caller),
        )
    )
    return _form_read(kept)


@router.get("/api/forms", response_model=FormList, tags=["forms"])
async def get_forms(rt: RuntimeDep, caller: AdminCaller) -> FormList:
    found = await run_in_threadpool(
        partial(tenant_forms.list_forms, rt.blobs, tenant_id=caller.tenant_id)
    )
    return FormList(builtin=list(batch.BATCH_FORMS), forms=[_form_read(f) for f in found])


@router.delete("/api/forms/{name}", status_code=204, tags=["forms"])
async def delete_form(name: str, rt: RuntimeDep, caller: AdminCaller) -> Response:
    await run_in_threadpool(
        partial(tenant_forms.delete_form, rt.blobs, tenant_id=caller.tenant_id, name=name)
    )
    return Response(status_code=204)
