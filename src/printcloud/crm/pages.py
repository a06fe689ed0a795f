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

from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from printcloud.auth.sign_in import Issuer, SignInPages
from printcloud.core.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PrintcloudError,
)
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger
from printcloud.core.web import check_csrf, templates

from . import service
from .deps import RuntimeDep, runtime
from .runtime import PREFIX, CrmRuntime
from .schemas import BatchJobCreate, BatchJobRead, DocgenLinkRead, ImportRead, RecordPage, RunRead

log = get_logger("crm.pages")
router = APIRouter(include_in_schema=False)

SCOPE = "crm.read crm.write profile"
PAGE_SIZE = 50
TIMEZONES = sorted(available_timezones())

pages = templates(Path(__file__).parent / "templates", service="crm")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


pages.env.filters["when"] = _when
pages.env.globals.update(prefix=PREFIX, principal=None, error=None)


# -- the issuer (idp-b) and the sign-in --------------------------------------------------------


def _issuer(request: Request) -> Issuer:
    """idp-b as the CRM pages use it: the CRM's service client."""
    rt = runtime(request)
    return Issuer.own_client(rt, rt.issuer, "crm")


def _may_read(principal: Principal) -> str | None:
    if not principal.has_scopes("crm.read"):
        return "your account may not use the CRM (it lacks the scope crm.read)"
    return None


def _signed_out(request: Request, issuer: str) -> Response:
    return site.message(
        request,
        200,
        "Signed out",
        f"You are signed out of the CRM (you may still be signed in at {issuer}).",
    )


site = SignInPages(
    prefix=PREFIX,
    pages=pages,
    issuer=_issuer,
    scope=SCOPE,
    check=_may_read,
    session_cookie="pc_crm",
    login_cookie="pc_crm_login",
    signed_out=_signed_out,
    message_flag="failed",  # `error` is the form error of every CRM page
)
router.include_router(site.router)
SignedIn = Annotated[Principal, Depends(site.signed_in)]


def _may_write(principal: Principal) -> None:
    if not principal.has_scopes("crm.write"):
        raise Forbidden("your account may not change the CRM (it lacks the scope crm.write)")


def _see(request: Request, path: str) -> Response:
    return site.finish(request, RedirectResponse(f"{PREFIX}{path}", status_code=303))


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
    return site.render(
        request,
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
        return site.message(
            request,
            404,
            "No such record set",
            "There is no record set with this name in your organisation.",
            principal=principal,
        )
    except InvalidRequest as exc:
        result = await run_in_threadpool(_set_page, rt, principal.tenant_id, name, [], "", 1)
        error, status_code = exc.description, 400
    return site.render(
        request,
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
    return site.render(request, "jobs.html", principal=principal, jobs=listed)


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


def _job_body(values: dict[str, Any]) -> BatchJobCreate:
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
        return BatchJobCreate.model_validate(raw)
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
    return site.render(
        request,
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
    return site.message(
        request,
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
    return _see(request, "/jobs")


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
        return site.message(
            request, 400, "Your form expired", "Go back and try again.", principal=principal
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
    return _see(request, "/jobs")


def _runs(rt: CrmRuntime, tenant_id: str) -> list[RunRead]:
    with rt.db.sessions() as db:
        return [RunRead.of(r, j) for r, j in service.list_runs(db, tenant_id=tenant_id)]


@router.get("/runs")
async def runs(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    _may_write(principal)
    listed = await run_in_threadpool(_runs, rt, principal.tenant_id)
    return site.render(request, "runs.html", principal=principal, runs=listed)


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
    return site.render(
        request,
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
