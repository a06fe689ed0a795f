"""The CRM's web pages (seed 000, server B), for the users of idp-b's tenants.

- Sign-in at idp-b with the authorization code flow and PKCE (RFC 6749 §4.1,
  RFC 7636, S256) as the CRM's own service client `svc-crm` (first party, no
  consent); the tokens live in a cookie sealed with the instance secret (`pc_crm`).
  The redirect URI is `{public_url}/crm/auth/callback`: the stack mounts the CRM
  at `/crm`.
- `/crm/`: the record sets, a CSV upload; `/crm/sets/{name}`: a set's records with
  a filter and pages, a CSV upload into it.
- `/crm/jobs`: the scheduled jobs (FIG. 7: name, start time, next run), `/crm/jobs/new`
  and `/crm/jobs/{id}`: the registration form (FIG. 6) with the printers and forms
  docgen offers the tenant (asked with the Digest credentials, `DocgenClient.choices`;
  typed IDs when they cannot be listed, saying why), pause, resume, delete;
  `/crm/runs`: the runs and their outcome in plain words (`core.words`), the step IDs
  in a "details" section for administrators.
- `/crm/docgen-link`: the secret-key registration (FIG. 9, S1407–S1412): the docgen
  tenant ID and the key, which is never shown again.

Reading needs the scope crm.read; changing anything, crm.write. The pages work
without JavaScript; every form carries a CSRF token. A refused form comes back (400)
with what was entered and the error beside its field; a saved one redirects
(post/redirect/get).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import available_timezones

import httpx
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from printcloud.auth.sign_in import Issuer, SignInPages
from printcloud.core import words
from printcloud.core.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PrintcloudError,
)
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger
from printcloud.core.web import check_csrf, templates
from printcloud.docgen.client import BatchPrintRefused, DocgenClient, PrinterChoice

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
pages.env.globals.update(prefix=PREFIX, principal=None, error=None, error_field=None)
pages.env.filters["operator"] = words.operator_label
pages.env.filters["repeats"] = words.recurrence_label


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


def record_page(
    rt: CrmRuntime, tenant_id: str, name: str, filters: list[dict[str, Any]], order: str, page: int
) -> RecordPage:
    """Page `page` of a record set, filtered and ordered: the records page's, and the
    selection that "Print these records" prints (print_pages.py)."""
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
            record_page, rt, principal.tenant_id, name, filters, order, page
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
        result = await run_in_threadpool(record_page, rt, principal.tenant_id, name, [], "", 1)
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

#: The time zones most people pick, offered first; the whole IANA list follows.
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Australia/Sydney",
    "Africa/Johannesburg",
)
OTHER_ZONES = [z for z in TIMEZONES if z not in COMMON_ZONES]
#: What the list pages say after a change (post/redirect/get: `?done=…`).
DONE = {
    "saved": "The batch job is saved.",
    "paused": "The batch job is paused: it does not run until you resume it.",
    "resumed": "The batch job is resumed.",
    "deleted": "The batch job is deleted.",
}

#: Why the registration form asks for typed IDs instead of lists.
NO_LINK = (
    "No secret key is registered yet, so document generation cannot be asked for your "
    "printers and forms. Register it on the Secret key page, or enter the IDs."
)
KEY_REFUSED = (
    "Document generation did not accept the registered secret key, so it cannot be asked "
    "for your printers and forms. Register the current key on the Secret key page."
)
DOCGEN_DOWN = (
    "Document generation does not answer right now, so your printers and forms cannot be "
    "listed. Enter their IDs, or reload the page in a moment."
)


@dataclass(frozen=True)
class JobChoices:
    """What the registration form offers: docgen's forms and the tenant's printers (as
    docgen's print token sees them), or why they are not listed (typed IDs then)."""

    builtin_forms: list[str] = field(default_factory=list)
    forms: list[str] = field(default_factory=list)
    printers: list[PrinterChoice] = field(default_factory=list)
    forms_listed: bool = False
    printers_listed: bool = False
    #: Why the printers (and, when `forms_listed` is false, the forms) are not listed.
    problem: str = ""


def _choices(rt: CrmRuntime, tenant_id: str) -> JobChoices:
    """Asked of docgen with the tenant's Digest credentials, as a scheduled run asks."""
    with rt.db.sessions() as db:
        try:
            creds = service.docgen_credentials(db, tenant_id=tenant_id, box=rt.box)
        except NotFound:
            return JobChoices(problem=NO_LINK)
    client = DocgenClient(f"{rt.settings.public_url}/docgen", http=rt.http)
    try:
        got = client.choices(tenant_id=creds.docgen_tenant_id, secret_key=creds.secret_key)
    except BatchPrintRefused as exc:
        log.info(
            "docgen did not list the choices",
            extra={"fields": {"tenant": tenant_id, "status": exc.status, "error": exc.error}},
        )
        return JobChoices(problem=KEY_REFUSED if exc.status == 401 else DOCGEN_DOWN)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.info(
            "docgen unreachable for the choices",
            extra={"fields": {"tenant": tenant_id, "error": exc.__class__.__name__}},
        )
        return JobChoices(problem=DOCGEN_DOWN)
    if got.printers is None:
        problem = f"Your printers cannot be listed: {got.printers_problem}. Enter the printer's ID."
    elif not got.printers:
        problem = "Your organisation has no printers yet. Enter the printer's ID."
    else:
        problem = ""
    return JobChoices(
        builtin_forms=got.builtin_forms,
        forms=got.forms,
        printers=got.printers or [],
        forms_listed=True,
        printers_listed=bool(got.printers),
        problem=problem,
    )


def _jobs(rt: CrmRuntime, tenant_id: str) -> list[BatchJobRead]:
    with rt.db.sessions() as db:
        return [BatchJobRead.of(j) for j in service.list_jobs(db, tenant_id=tenant_id)]


@router.get("/jobs")
async def jobs(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    _may_write(principal)
    listed = await run_in_threadpool(_jobs, rt, principal.tenant_id)
    return site.render(
        request, "jobs.html", principal=principal, jobs=listed, notice=DONE.get(done)
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


#: The registration form's filter rows.
FILTER_ROWS = 3


def _job_values(job: BatchJobRead | None, *, timezone: str = "UTC") -> dict[str, Any]:
    """The registration form's fields (strings), for a job or a new one (in `timezone`)."""
    if job is None:
        return {
            "name": "",
            "start_at": "",
            "timezone": timezone,
            "recurrence": "daily",
            "cron": "",
            "printer_id": "",
            "color": "color",
            "copies": "1",
            "duplex": "",
            "form": "invoice",
            "record_set": "",
            "filters": [{"field": "", "op": "eq", "value": ""}] * FILTER_ROWS,
            "order": "",
            "limit": "",
            "paused": "",
        }
    local = job.start_at.astimezone(service.zone(job.timezone))
    filters = [{"field": f.field, "op": f.op, "value": _text(f.value)} for f in job.query.filters]
    filters += [{"field": "", "op": "eq", "value": ""}] * max(0, FILTER_ROWS - len(filters))
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
        for i in range(FILTER_ROWS)
    ]
    return values


def _filter_rows(values: dict[str, Any]) -> list[int]:
    """The form rows of the filters sent (rows without a field are left out)."""
    return [i for i, f in enumerate(values["filters"]) if f["field"]]


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
            # An empty value compares with "no value" (null), as the API's null does.
            "filters": [
                {**values["filters"][i], "value": values["filters"][i]["value"] or None}
                for i in _filter_rows(values)
            ],
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


#: The registration form's fields that show their error beside them.
JOB_FIELDS = (
    "name",
    "start_at",
    "timezone",
    "recurrence",
    "cron",
    "printer_id",
    "color",
    "copies",
    "form",
    "record_set",
    "order",
    "limit",
    *(f"filter{i}_{part}" for i in range(FILTER_ROWS) for part in ("field", "op", "value")),
)


def job_form_field(where: str | None, rows: list[int]) -> str | None:
    """The form field an API field path names (`print.copies` → `copies`,
    `query.filters.0.value` → the value of the first filter row sent)."""
    parts = (where or "").split(".")
    if parts[0] in ("print", "query"):
        parts = parts[1:] or [""]
    if parts[0] == "filters":
        if len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) < len(rows):
            return f"filter{rows[int(parts[1])]}_{parts[2]}"
        return f"filter{rows[0] if rows else 0}_field"
    return parts[0] if parts[0] in JOB_FIELDS else None


#: What a person reads for a refusal: phrases of the service's (API) messages first.
_JOB_PHRASES = (
    ("is in the past", "This time has passed. A job that runs once needs a time to come."),
    ("unknown time zone", "Choose a time zone from the list, like Europe/Paris."),
    ("needs a cron expression", "Enter a cron expression, or choose another way to repeat."),
    ("a cron expression has", "A cron expression has 5 parts: minute hour day month weekday."),
    ("not a valid cron expression", "This is not a cron expression. Example: 0 2 * * 1-5."),
    ("needs a value", "Enter a value to compare with."),
    ("contains applies to text", "“contains” compares text fields with some text."),
    ("true/false fields", "A yes/no field compares only with “equals” or “is not”."),
    ("op must be one of", "Choose a comparison from the list."),
    ("unknown record set", "Choose one of your record sets."),
)
#: …and otherwise what each field wants.
_JOB_FIELD_TEXT = {
    "name": "Enter a name for the job (up to 200 characters).",
    "start_at": "Enter the date and time of the first run.",
    "timezone": "Choose a time zone from the list.",
    "recurrence": "Choose how often the job runs.",
    "printer_id": "Choose a printer, or enter its ID (letters, digits, '.', '_' or '-').",
    "copies": "Enter a number of copies from 1 to 999.",
    "form": "Choose a form, or enter its name (letters, digits, '.', '_' or '-').",
    "record_set": "Choose a record set. If there is none, import a CSV file on Records first.",
    "limit": f"Enter at most how many records to print (1 to {service.MAX_QUERY_LIMIT}), "
    "or leave it empty for all.",
}
_NO_FIELD = re.compile(r"^(?P<set>.+) has no field '(?P<name>.*)'$")
_FIELD_VALUE = re.compile(r"^field '[^']*': (?P<why>.+)$")


def job_error_text(description: str, field_name: str | None) -> str:
    """A refusal of the registration form in the words of a person, for `field_name`."""
    for phrase, plain in _JOB_PHRASES:
        if phrase in description:
            return plain
    if found := _NO_FIELD.match(description):
        return f"The record set {found['set']} has no field “{found['name']}”."
    if found := _FIELD_VALUE.match(description):
        why = found["why"]
        return why[:1].upper() + why[1:] + "."
    if field_name in _JOB_FIELD_TEXT:
        return _JOB_FIELD_TEXT[field_name]
    text = description.split(": ", 1)[-1] if field_name else description
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


async def _job_form(
    request: Request,
    rt: CrmRuntime,
    principal: Principal,
    *,
    job: BatchJobRead | None,
    values: dict[str, Any],
    status_code: int = 200,
    error: str | None = None,
    error_field: str | None = None,
) -> Response:
    sets = await run_in_threadpool(_sets, rt, principal.tenant_id)
    choices = await run_in_threadpool(_choices, rt, principal.tenant_id)
    return site.render(
        request,
        "job_form.html",
        status_code,
        principal=principal,
        job=job,
        values=values,
        sets=sets,
        field_names=sorted({f["name"] for _, _, fields in sets for f in fields}),
        ops=[(op, words.operator_label(op)) for op in service.OPS],
        recurrences=list(words.RECURRENCES.items()),
        common_zones=COMMON_ZONES,
        other_zones=OTHER_ZONES,
        choices=choices,
        error=error,
        error_field=error_field if error_field in JOB_FIELDS else None,
    )


@router.get("/jobs/new")
async def new_job(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    _may_write(principal)
    listed = await run_in_threadpool(_jobs, rt, principal.tenant_id)
    # The organisation's zone: the one its latest job uses (UTC for its first).
    latest = max(listed, key=lambda j: j.updated_at, default=None)
    zone = latest.timezone if latest else "UTC"
    return await _job_form(
        request, rt, principal, job=None, values=_job_values(None, timezone=zone)
    )


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
    """FIG. 6 from the form: saved → back to the list (post/redirect/get); refused →
    the form again (400) with what was entered and the error beside its field."""
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
        where = job_form_field(exc.field, _filter_rows(values))
        return await _job_form(
            request,
            rt,
            principal,
            job=job,
            values=values,
            status_code=exc.status_code,
            error=job_error_text(exc.description, where),
            error_field=where,
        )
    return _see(request, "/jobs?done=saved")


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
    done = {"delete": "deleted", "pause": "paused", "resume": "resumed"}[action]
    return _see(request, f"/jobs?done={done}")


@dataclass(frozen=True)
class RunView:
    """A run as a person reads it: a badge, what it means and what to do; the steps in
    words. The step IDs and docgen's own words stay in `run` (admins' details)."""

    run: RunRead
    label: str
    text: str
    reason: str
    steps: list[str]


def run_reason(run: RunRead) -> str:
    """What went wrong in a run that did not complete, and what to do."""
    last = run.steps[-1] if run.steps else {}
    step, detail = last.get("step"), str(last.get("detail", ""))
    if run.outcome == "failed" and step == "S1506":
        return (
            "No secret key is registered. Enter document generation's tenant ID and key "
            "on the Secret key page."
        )
    if run.outcome == "failed":
        return (
            "Document generation did not answer, even after several tries. The next run "
            "tries again; ask your administrator if this keeps happening."
        )
    if run.outcome == "suspended" and "(401 " in detail:
        return (
            "Document generation did not accept the secret key. Register the key its "
            "batch-printing settings show now on the Secret key page."
        )
    if run.outcome == "suspended":
        why = detail.rsplit("): ", 1)[-1].strip()
        return f"Document generation refused the batch: {why}." if why else ""
    return ""


def run_view(run: RunRead) -> RunView:
    return RunView(
        run=run,
        label=words.run_label(run.outcome),
        text=words.run_text(run.outcome),
        reason=run_reason(run),
        steps=[words.batch_step_label(str(s.get("step", ""))) for s in run.steps],
    )


def _runs(rt: CrmRuntime, tenant_id: str) -> list[RunView]:
    with rt.db.sessions() as db:
        return [run_view(RunRead.of(r, j)) for r, j in service.list_runs(db, tenant_id=tenant_id)]


@router.get("/runs")
async def runs(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    _may_write(principal)
    listed = await run_in_threadpool(_runs, rt, principal.tenant_id)
    return site.render(
        request, "runs.html", principal=principal, runs=listed, details=principal.admin
    )


# -- the docgen link (FIG. 9, S1407–S1412) --------------------------------------------------

LINK_FIELDS = ("docgen_tenant_id", "secret_key")
_LINK_TEXT = {
    "docgen_tenant_id": "Enter the tenant ID document generation shows on its batch-printing "
    "settings: up to 64 letters, digits, '.', '_' or '-'.",
    "secret_key": "Enter the secret key exactly as document generation showed it: at least "
    "16 characters, without spaces.",
}
_LINK_TAKEN = (
    "This tenant ID is already linked to another organisation's CRM. Check that you copied "
    "your own organisation's ID."
)


def link_error_text(exc: PrintcloudError) -> str:
    if exc.status_code == 409:
        return _LINK_TAKEN
    return _LINK_TEXT.get(exc.field or "", exc.description)


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
    error_field: str | None = None,
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
        error_field=error_field if error_field in LINK_FIELDS else None,
        notice=notice,
    )


@router.get("/docgen-link")
async def docgen_link(
    request: Request,
    rt: RuntimeDep,
    principal: SignedIn,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """S1407–S1409: the secret-key registration screen (FIG. 9)."""
    _may_write(principal)
    notice = "The secret key is registered." if done == "registered" else None
    return await _link_page(request, rt, principal, notice=notice)


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
    Sent by POST, not in a URL: it must not land in any log. Stored → back to the page
    (post/redirect/get); refused → the page again (400), the tenant ID kept, the key
    not (it is never sent back)."""
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
            error=link_error_text(exc),
            error_field=exc.field,
            docgen_tenant_id=docgen_tenant_id,
        )
    log.info(
        "docgen secret key registered",
        extra={"fields": {"tenant": principal.tenant_id, "by": principal.acting_user}},
    )
    return _see(request, "/docgen-link?done=registered")
