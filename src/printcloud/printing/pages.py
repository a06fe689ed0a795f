"""The print service's web pages for its users (seed 003, SVC001).

- Sign-in at idp-a with the authorization code flow and PKCE (RFC 6749 §4.1,
  RFC 7636, S256): the print service's own client, registered by the platform's
  bootstrap and exempt from consent (first party). The tokens live in a cookie
  sealed with the instance secret (`pc_print`), refreshed when they expire.
- `/printing/`: the print form (a PDF upload or URL, a printer, print settings),
  the user's jobs and the tenant's IPP queues with the line that adds each;
  `/printing/jobs/{id}`: a job's state, settings, history (seed step, worker) and
  the previews of its printed pages, with Cancel.
- `/printing/queues`: the tenant's administrator adds, changes and deletes IPP
  Everywhere queues (issue 14, "Admin") through `queues.py`, as the admin API does.
  Administrator: the scope `admin` (idp-a grants it to its tenants' administrators
  only) and the issuer's `admin` claim, now; the admin API's `AdminCaller` rule.

The pages work without JavaScript (a `<noscript>` meta refresh while a job is
active); `static/live.js` refreshes only the changing parts when it can. Every
query filters on the signed-in user's tenant.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from printcloud.auth.sign_in import Issuer, SignInPages, oauth_error_text
from printcloud.core import words
from printcloud.core.errors import (
    InvalidRequest,
    NotFound,
    PrintcloudError,
)
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger
from printcloud.core.web import check_csrf, templates

from . import device_clients, intake, jobs, queues, service
from .deps import RuntimeDep, runtime
from .infra import infra_uri
from .models import PrinterRow
from .runtime import PrintingRuntime
from .schemas import JobRead, PrinterRead, QueueRead
from .worker import DownloadFailed

log = get_logger("printing.pages")
router = APIRouter(include_in_schema=False)

PREFIX = "/printing"
#: `admin`: idp-a drops it for users who are not their tenant's administrators, so asking
#: for it costs the others nothing, and the queues page needs it.
SCOPE = "print profile admin"
RESOLUTIONS = (150, 200, 300, 600)
#: The progress of an active job: its step among these.
STEPS = (*service.ACTIVE, "printed")
_JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STATIC = Path(__file__).parent / "static"
_SCRIPTS = {name: (_STATIC / name).read_bytes() for name in ("live.js", "print-form.js")}

pages = templates(Path(__file__).parent / "templates", service="printing")


# -- what the templates show ------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """A job's state as a badge, in plain words (`core.words`): `kind` picks the color,
    `step` the progress; `text` says what the state means, `reason` why it ended."""

    kind: str  # active | printed | failed | ended
    label: str
    text: str
    reason: str
    step: int
    steps: int


def status(job: JobRead) -> Status:
    said = words.job_said(job.state, job.reason)
    if job.state in service.ACTIVE:
        step = STEPS.index(job.state) + 1
        return Status("active", said.label, said.text, "", step, len(STEPS))
    if job.state == "printed":
        return Status("printed", said.label, said.text, "", len(STEPS), len(STEPS))
    kind = "ended" if job.state == "cancelled" else "failed"  # by its owner: not a failure
    return Status(kind, said.label, said.text, said.reason, 0, len(STEPS))


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def _presence(rt: PrintingRuntime, printer: PrinterRow) -> service.Presence:
    return service.presence(printer, poll_interval=rt.settings.device_poll_interval)


def printer_status(rt: PrintingRuntime, printer: PrinterRow) -> str:
    """ "Online", or since when it is offline, in plain words."""
    seen = _presence(rt, printer)
    return words.printer_status(seen.online, _when(seen.last_seen) or None)


def waiting_texts(
    rt: PrintingRuntime, printers: list[PrinterRow], listed: list[JobRead]
) -> dict[str, str]:
    """Why each of `listed` that waits for its printer waits (job ID -> a sentence)."""
    by_id = {p.printer_id: p for p in printers}
    said: dict[str, str] = {}
    for job in listed:
        printer = by_id.get(job.printer_id)
        if job.state != "waiting_for_printer" or printer is None:
            continue
        seen = _presence(rt, printer)
        since = _when(seen.last_seen) or None
        said[job.job_id] = words.waiting_text(printer.name, seen.online, since)
    return said


pages.env.globals["status"] = status
pages.env.filters["when"] = _when

pages.env.globals.update(principal=None, live=False)


# -- the issuer (idp-a) and the sign-in ----------------------------------------------------


def _issuer(request: Request) -> Issuer:
    """idp-a as the print pages use it: the print service's client, over the runtime's
    HTTP client."""
    rt = runtime(request)
    return Issuer.own_client(rt, rt.settings.issuers[0], "printing")


def _may_print(principal: Principal) -> str | None:
    if not principal.has_scopes("print"):
        return "your account may not print (it lacks the scope print)"
    return None


site = SignInPages(
    prefix=PREFIX,
    pages=pages,
    issuer=_issuer,
    scope=SCOPE,
    check=_may_print,
    session_cookie="pc_print",
    login_cookie="pc_print_login",
    error_text=oauth_error_text(
        {
            "access_denied": "The sign-in was declined.",
            "login_required": "You are not signed in at the sign-in service.",
            "invalid_scope": "Your account may not use printing.",
            "temporarily_unavailable": "The sign-in service is busy. Try again shortly.",
            "server_error": "The sign-in service failed. Try again shortly.",
        },
        "The sign-in did not complete.",
    ),
    signed_out="signed_out.html",
)
router.include_router(site.router)
SignedIn = Annotated[Principal, Depends(site.signed_in)]


@router.get("/static/{name}")
async def script(name: str) -> Response:
    """The pages' scripts (the console's CSP allows scripts from our own files only)."""
    data = _SCRIPTS.get(name)
    if data is None:
        raise NotFound("no such file", field="name")
    return Response(
        data, media_type="text/javascript", headers={"Cache-Control": "public, max-age=300"}
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


#: The print form's fields that show their error beside them.
PRINT_FIELDS = ("file", "url", "title", "printer_id", "color", "copies", "media", "dpi")
#: The intake's refusals (worded for API clients) as a person reads them on the form.
_PLAIN_ERRORS = (
    ("not a PDF", "This file is not a PDF. Choose a PDF file."),
    ("did not answer", "The address did not answer. Check it, or download the file and choose it."),
    ("uploaded file is empty", "The file you chose is empty. Choose another file."),
    ("choose a PDF file or a URL, not both", "Choose a file or enter an address, not both."),
    ("choose a PDF file or enter its URL", "Choose a PDF file, or enter the address of one."),
    ("copies must be", "Enter a number of copies from 1 to 999."),
    ("unknown printer", "Choose one of the printers in the list."),
)


def print_error_text(description: str, field: str | None) -> str:
    """A refusal of the print form in plain words (the intake's own words otherwise)."""
    for phrase, plain in _PLAIN_ERRORS:
        if phrase in description:
            return plain
    text = description.removeprefix(f"{field}: ") if field else description
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def manages_queues(principal: Principal) -> bool:
    """The tenant's administrator now (the admin API's rule: the scope and the claim)."""
    return principal.has_scopes("admin") and principal.admin


def _batch_clients(rt: PrintingRuntime) -> tuple[str, ...]:
    """Clients whose jobs are not a person's own choice of printer: docgen's batch
    printing (seed 000) submits with the print token of the tenant's administrator."""
    return (rt.settings.service_client(rt.settings.issuers[0], "docgen")[0],)


def preselected(
    rt: PrintingRuntime, db: Session, principal: Principal, printers: list[PrinterRow]
) -> str:
    """The printer the print form offers first: the person's last-used printer; else the
    first printer that is online and a person's printer (not one docgen's batch printing
    sends to); else the first person's printer; else none (the person chooses)."""
    tenant_id = principal.tenant_id
    batch = _batch_clients(rt)
    ids = {p.printer_id for p in printers}
    last = service.last_used_printer(
        db, tenant_id=tenant_id, owner=principal.acting_user, not_from=batch
    )
    if last in ids:
        return str(last)
    batch_printers = service.printers_printed_by(db, tenant_id=tenant_id, clients=batch)
    people = [p for p in printers if p.printer_id not in batch_printers]
    online = [p for p in people if _presence(rt, p).online]
    chosen = (online or people)[:1]
    return chosen[0].printer_id if chosen else ""


def _print_context(rt: PrintingRuntime, principal: Principal) -> dict[str, Any]:
    with rt.db.sessions() as db:
        printer_rows = service.list_printers(db, tenant_id=principal.tenant_id)
        printers = [PrinterRead.of(p) for p in printer_rows]
        jobs = [
            JobRead.of(j)
            for j in service.list_jobs(
                db, tenant_id=principal.tenant_id, owner=principal.acting_user, limit=50
            )
        ]
        ipp_queues = [
            QueueRead.of(q, ipp_url=rt.settings.ipp_url)
            for q in queues.list_queues(db, tenant_id=principal.tenant_id)
        ]
        waiting = waiting_texts(rt, printer_rows, jobs)
        first = preselected(rt, db, principal, printer_rows)
    return {
        "queues": ipp_queues,
        "waiting": waiting,
        "printers": printers,
        "printer_names": {p.printer_id: p.name for p in printers},
        "preselected": first,
        "jobs": jobs,
        "media": service.MEDIA,
        "resolutions": RESOLUTIONS,
        "manage_queues": manages_queues(principal),
    }


async def _print_page(
    request: Request,
    rt: PrintingRuntime,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
    error_field: str | None = None,
    form: FormValues | None = None,
) -> Response:
    context = await run_in_threadpool(_print_context, rt, principal)
    # Refresh only a page got by GET: reloading a form's answer would post it again.
    live = status_code == 200 and any(j.state in service.ACTIVE for j in context["jobs"])
    if form is None:  # a new form: the preselected printer, in color if it has color
        colors = {p.printer_id: p.color for p in context["printers"]}
        first = context["preselected"]
        form = FormValues(printer_id=first, color=colors.get(first, True))
    return site.render(
        request,
        "print.html",
        status_code,
        principal=principal,
        error=error,
        error_field=error_field if error_field in PRINT_FIELDS else None,
        form=form,
        live=live,
        **context,
    )


@router.get("/")
async def print_page(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    return await _print_page(request, rt, principal)


def _jobs_context(rt: PrintingRuntime, principal: Principal) -> dict[str, Any]:
    with rt.db.sessions() as db:
        printers = service.list_printers(db, tenant_id=principal.tenant_id)
        listed = [
            JobRead.of(j)
            for j in service.list_jobs(
                db, tenant_id=principal.tenant_id, owner=principal.acting_user, limit=200
            )
        ]
        waiting = waiting_texts(rt, printers, listed)
    return {
        "jobs": listed,
        "waiting": waiting,
        "printer_names": {p.printer_id: p.name for p in printers},
    }


@router.get("/jobs")
async def jobs_page(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    """The signed-in user's print jobs (also the address a print form's answer had)."""
    context = await run_in_threadpool(_jobs_context, rt, principal)
    live = any(j.state in service.ACTIVE for j in context["jobs"])
    return site.render(request, "jobs.html", principal=principal, live=live, **context)


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
            field = "url" if isinstance(exc, DownloadFailed) else exc.field
            return await _print_page(
                request,
                rt,
                principal,
                status_code=code,
                error=print_error_text(exc.description, field),
                error_field=field,
                form=values,
            )
    log.info("job submitted from the print page", extra={"fields": {"job": job.job_id}})
    return site.finish(request, RedirectResponse(f"{PREFIX}/jobs/{job.job_id}", status_code=303))


# -- the tenant's IPP queues (issue 14, "Admin") ----------------------------------------------

_FLASH = "pc_print_flash"
_FLASH_TTL = 300
#: The target field: `printer:{printer ID}`, or this.
FOLLOW_ME = "follow-me"
_EXPIRED = "Your form expired. Reload the page and try again."


@dataclass(frozen=True)
class QueueForm:
    """What the queue forms show again after an error: the add form's fields, or those
    of the queue `editing`."""

    name: str = ""
    target: str = ""
    info: str = ""
    editing: str = ""
    #: The add form's field the error sits beside (name, target or info), or none.
    field: str = ""


#: A queue refusal's field (the service's name) -> the add form's field it sits beside.
QUEUE_FIELDS = {"name": "name", "printer_id": "target", "info": "info"}


def _target_of(value: str) -> str | None:
    """The target field as `queues` takes it: a printer ID, or None for follow-me."""
    if value == FOLLOW_ME:
        return None
    printer_id = value.removeprefix("printer:")
    if value.startswith("printer:") and printer_id:
        return printer_id
    raise InvalidRequest("choose the printer the queue prints on, or follow-me", field="printer_id")


def _prints_on(db: Session, *, tenant_id: str, printer_id: str | None) -> str:
    if printer_id is None:
        return "any printer, by card (follow-me)"
    return service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id).name


def _changed(request: Request, principal: Principal, notice: str, what: str) -> Response:
    """Post/redirect/get after an administrator's change on the printers and queues
    page: logged, then back to the page with `notice` shown once."""
    log.info(what, extra={"fields": {"tenant": principal.tenant_id, "by": principal.acting_user}})
    response = RedirectResponse(f"{PREFIX}/queues", status_code=303)
    _set_flash(request, response, principal, notice)
    return site.finish(request, response)


def _set_flash(request: Request, response: Response, principal: Principal, notice: str) -> None:
    """What the change did, for the page the browser is sent to (sealed, for this user)."""
    who = [principal.tenant_id, principal.acting_user]
    payload = {"notice": notice, "at": time.time(), "who": who}
    sealed = site.issuer(request).box.seal(json.dumps(payload))
    site.set_cookie(request, response, _FLASH, sealed, max_age=_FLASH_TTL)


def _take_flash(request: Request, principal: Principal) -> str | None:
    sealed = request.cookies.get(_FLASH)
    if not sealed or len(sealed) > 4096:
        return None
    try:
        payload = json.loads(site.issuer(request).box.open(sealed))
        fresh = time.time() - float(payload["at"]) < _FLASH_TTL
        ours = payload["who"] == [principal.tenant_id, principal.acting_user]
        notice = str(payload["notice"])
    except (ValueError, TypeError, KeyError):
        return None  # sealed under another instance secret, or not ours: show nothing
    return notice if fresh and ours else None


@dataclass(frozen=True)
class PrinterView:
    """A printer as the administrator's page shows it: online or not, how it connects."""

    printer: PrinterRead
    online: bool
    status: str
    #: Where an IPP INFRA proxy or printer fetches its jobs (docs/infra.md).
    infra_uri: str


def _queues_context(rt: PrintingRuntime, principal: Principal) -> dict[str, Any]:
    with rt.db.sessions() as db:
        printer_rows = service.list_printers(db, tenant_id=principal.tenant_id)
        printers = [PrinterRead.of(p) for p in printer_rows]
        views = [
            PrinterView(
                PrinterRead.of(p),
                _presence(rt, p).online,
                printer_status(rt, p),
                infra_uri(
                    rt.settings.public_url, tenant_id=principal.tenant_id, printer_id=p.printer_id
                ),
            )
            for p in printer_rows
        ]
        rows = queues.list_queues(db, tenant_id=principal.tenant_id)
        listed = [QueueRead.of(q, ipp_url=rt.settings.ipp_url) for q in rows]
    try:
        clients = device_clients.list_device_clients(rt, tenant_id=principal.tenant_id)
        clients_error = ""
    except PrintcloudError as exc:  # idp-a away: the page still shows, the pickers say why
        clients, clients_error = [], exc.description[:1].upper() + exc.description[1:] + "."
    return {
        "device_clients": clients,
        "clients_error": clients_error,
        "queues": listed,
        "printer_views": views,
        "printers": printers,
        "printer_names": {p.printer_id: p.name for p in printers},
        "follow_me": FOLLOW_ME,
    }


def _administrators_only(request: Request, principal: Principal) -> Response:
    return site.message(
        request,
        403,
        "Administrators only",
        "Print queues are managed by your organisation's administrators.",
        principal=principal,
        back=True,
    )


async def _queues_page(
    request: Request,
    rt: PrintingRuntime,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: QueueForm | None = None,
    printer_form: PrinterForm | None = None,
) -> Response:
    context = await run_in_threadpool(_queues_context, rt, principal)
    notice = _take_flash(request, principal) if request.method == "GET" else None
    response = site.render(
        request,
        "queues.html",
        status_code,
        principal=principal,
        error=error,
        notice=notice,
        form=form or QueueForm(),
        printer_form=printer_form or PrinterForm(),
        **context,
    )
    if request.cookies.get(_FLASH) and request.method == "GET":
        site.delete_cookie(request, response, _FLASH)
    return response


# -- the tenant's printers (issue 16, "Printers and queues") ---------------------------------


@dataclass(frozen=True)
class PrinterForm:
    """What the printer forms show again after an error: the add form's fields (or the
    fields of the printer `editing`), and the field the error belongs to."""

    printer_id: str = ""
    name: str = ""
    client_id: str = ""
    push_url: str = ""
    location: str = ""
    color: bool = True
    editing: str = ""
    error: str = ""
    field: str = ""
    #: The fields the form sent (a change leaves the others as they are).
    sent: frozenset[str] = frozenset()

    @classmethod
    def of(cls, fields: dict[str, str], *, editing: str = "") -> PrinterForm:
        return cls(
            sent=frozenset(fields),
            printer_id=editing or fields.get("printer_id", "").strip(),
            name=fields.get("name", "").strip(),
            client_id=fields.get("client_id", "").strip(),
            push_url=fields.get("push_url", "").strip(),
            location=fields.get("location", "").strip(),
            color=fields.get("color", "color") != "mono",
            editing=editing,
        )


#: The printer forms' fields that show their error beside them.
PRINTER_FIELDS = ("printer_id", "name", "client_id", "push_url", "location")
_FULL_ADDRESS = "Enter a full http:// or https:// address, or leave it empty."
_PRINTER_ERRORS = (
    ("printer_id must be", "Use 1 to 128 letters, digits, dots, dashes or underscores."),
    ("already exists", "There is already a printer with this ID. Choose another."),
    ("unfinished job", "It still has jobs to print: wait for them, or cancel them first."),
    ("is the target of queue", "Queues print on it: delete them, or point them elsewhere first."),
    ("must not carry a user name", "Leave the user name and password out of the address."),
    ("push_url must be", _FULL_ADDRESS),
    ("push_url is not a valid URL", _FULL_ADDRESS),
    ("is not a device client of this tenant", "Choose one of your device clients in the list."),
    ("choose the printer's device client", "Choose the device client the printer signs in with."),
    (
        "must name the printer's device client",
        "Choose the device client the printer signs in with.",
    ),
    ("unknown printer", "This printer no longer exists. It may have been deleted already."),
    ("push_url: ", "The platform cannot send jobs to this address. Check its host name."),
)


def printer_error_text(description: str) -> str:
    """A refusal of a printer form in plain words (the service's own words otherwise)."""
    for phrase, plain in _PRINTER_ERRORS:
        if phrase in description:
            return plain
    return words.form_error(description)


#: A refusal of a queue form (the service's words) -> the sentence a person reads.
_QUEUE_ERRORS = (
    (
        "name must be",
        "Use 1 to 64 letters, digits, dots, dashes or underscores for the queue name, "
        "starting with a letter or digit.",
    ),
    ("already exists", "A queue with this name already exists. Choose another name."),
    ("unknown printer", "That printer is not one of your printers. Choose one from the list."),
    ("choose the printer the queue", "Choose the printer the queue prints on, or follow-me."),
    ("give a printer or follow-me", "Choose the printer the queue prints on, or follow-me."),
    ("info must be at most", "Keep the description to 200 characters or fewer."),
    ("info must be one line", "Write the description on one line."),
    ("unknown queue", "This queue no longer exists. It may have been deleted already."),
)


def queue_error_text(description: str) -> str:
    """A refusal of a queue form in plain words (the service's own words otherwise)."""
    for phrase, plain in _QUEUE_ERRORS:
        if phrase in description:
            return plain
    return words.form_error(description)


pages.env.globals["printer_form"] = PrinterForm()


async def _change_printer(
    request: Request,
    rt: PrintingRuntime,
    principal: Principal,
    work: Callable[[Session, PrinterForm], str],
    *,
    editing: str = "",
    check: Callable[[PrinterForm], None] | None = None,
) -> Response:
    """One printer form: the administrator, CSRF, `check(form)` (outside the database
    session: it may ask idp-a), `work(db, form)` (its notice), then back to the page
    with the notice (post/redirect/get); refused input shows the page with the error
    beside its field and the input kept."""
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    async with request.form(max_files=0, max_fields=12) as sent:
        fields = {k: v for k, v in sent.items() if isinstance(v, str)}
    form = PrinterForm.of(fields, editing=editing)
    if not check_csrf(request, fields.get("csrf")):
        return await _queues_page(
            request, rt, principal, status_code=400, printer_form=replace(form, error=_EXPIRED)
        )

    def in_session() -> str:
        if check is not None:
            check(form)
        with rt.db.session() as db:
            return work(db, form)

    try:
        notice = await run_in_threadpool(in_session)
    except PrintcloudError as exc:
        # A change form has no printer ID field: an unknown printer is said at the top.
        beside = PRINTER_FIELDS[1:] if editing else PRINTER_FIELDS
        field = exc.field if exc.field and exc.field in beside else ""
        error = printer_error_text(exc.description)
        if editing and not field:
            error = f"Printer {editing}: {error}"
        return await _queues_page(
            request,
            rt,
            principal,
            status_code=exc.status_code,
            printer_form=replace(form, error=error, field=field),
        )
    return _changed(request, principal, notice, "printer changed from the printers page")


@router.post("/printers")
async def add_printer(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    """The same call as the admin API's and `printcloud admin printer add`."""
    tenant_id = principal.tenant_id

    def check(form: PrinterForm) -> None:
        device_clients.check(rt, tenant_id=tenant_id, client_id=form.client_id)

    def work(db: Session, form: PrinterForm) -> str:
        row = service.add_printer(
            db,
            tenant_id=tenant_id,
            printer_id=form.printer_id,
            name=form.name,
            color=form.color,
            client_id=form.client_id,
            push_url=form.push_url or None,
            location=form.location,
            egress=rt.settings.egress_policy,
        )
        return f"Printer {row.name} added. Start its device client to bring it online."

    return await _change_printer(request, rt, principal, work, check=check)


@router.post("/printers/{printer_id}/edit")
async def edit_printer(
    printer_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    """Name, color, location, device client (one of the tenant's) and push address: the
    same call as the admin API's PATCH and `printcloud admin printer set`."""
    tenant_id = principal.tenant_id

    def check(form: PrinterForm) -> None:
        if "client_id" not in form.sent:
            return
        with rt.db.sessions() as db:
            current = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
            unchanged = current.client_id == form.client_id
        if not unchanged:  # before the transaction, as it asks idp-a
            device_clients.check(rt, tenant_id=tenant_id, client_id=form.client_id)

    def work(db: Session, form: PrinterForm) -> str:
        def given(name: str, value: Any) -> Any:
            return value if name in form.sent else None

        row = service.update_printer(
            db,
            tenant_id=tenant_id,
            printer_id=printer_id,
            name=form.name or None,
            color=given("color", form.color),
            location=given("location", form.location),
            client_id=given("client_id", form.client_id),
            push_url=form.push_url or None,
            clear_push_url="push_url" in form.sent and not form.push_url,
            egress=rt.settings.egress_policy,
        )
        return f"Printer {row.name} saved."

    return await _change_printer(request, rt, principal, work, editing=printer_id, check=check)


@router.post("/printers/{printer_id}/delete")
async def delete_printer(
    printer_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    tenant_id = principal.tenant_id

    def work(db: Session, form: PrinterForm) -> str:
        service.delete_printer(db, tenant_id=tenant_id, printer_id=printer_id)
        return f"Printer {printer_id} deleted."

    return await _change_printer(request, rt, principal, work, editing=printer_id)


@router.get("/queues")
async def queues_page(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    return await _queues_page(request, rt, principal)


async def _change_queue(
    request: Request,
    rt: PrintingRuntime,
    principal: Principal,
    work: Callable[[Session, dict[str, str]], str],
    *,
    queue: str = "",
    edits: bool = False,
) -> Response:
    """One queue form (of `queue`, for a change of one): the administrator, CSRF,
    `work(db, fields)` (its notice), then back to the queues page with the notice
    (post/redirect/get); refused input shows the page with the reason and its status."""
    if not manages_queues(principal):
        return _administrators_only(request, principal)
    async with request.form(max_files=0, max_fields=10) as sent:
        fields = {k: v for k, v in sent.items() if isinstance(v, str)}
    form = QueueForm(
        name="" if queue else fields.get("name", "").strip(),
        target=fields.get("target", ""),
        info=fields.get("info", ""),
        editing=queue if edits else "",
    )
    if not check_csrf(request, fields.get("csrf")):
        return await _queues_page(
            request, rt, principal, status_code=400, error=_EXPIRED, form=form
        )

    def in_session() -> str:
        with rt.db.session() as db:
            return work(db, fields)

    try:
        notice = await run_in_threadpool(in_session)
    except PrintcloudError as exc:
        said = queue_error_text(exc.description)
        error = f"Queue {queue}: {said}" if queue else said
        field = "" if queue else QUEUE_FIELDS.get(exc.field or "", "")
        return await _queues_page(
            request,
            rt,
            principal,
            status_code=exc.status_code,
            error=error,
            form=replace(form, field=field),
        )
    return _changed(request, principal, notice, "queue changed from the queues page")


@router.post("/queues")
async def add_queue(request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    tenant_id = principal.tenant_id

    def work(db: Session, fields: dict[str, str]) -> str:
        row = queues.add_queue(
            db,
            tenant_id=tenant_id,
            name=fields.get("name", "").strip(),
            printer_id=_target_of(fields.get("target", "")),
            info=fields.get("info", ""),
        )
        where = _prints_on(db, tenant_id=tenant_id, printer_id=row.printer_id)
        return f"Queue {row.name} added: it prints on {where}."

    return await _change_queue(request, rt, principal, work)


@router.post("/queues/{name}/edit")
async def edit_queue(name: str, request: Request, rt: RuntimeDep, principal: SignedIn) -> Response:
    tenant_id = principal.tenant_id

    def work(db: Session, fields: dict[str, str]) -> str:
        printer_id = _target_of(fields.get("target", ""))
        row = queues.update_queue(
            db,
            tenant_id=tenant_id,
            name=name,
            printer_id=printer_id,
            follow_me=printer_id is None,
            info=fields.get("info", ""),
        )
        where = _prints_on(db, tenant_id=tenant_id, printer_id=row.printer_id)
        return f"Queue {row.name} saved: it prints on {where}."

    return await _change_queue(request, rt, principal, work, queue=name, edits=True)


@router.post("/queues/{name}/delete")
async def delete_queue(
    name: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    tenant_id = principal.tenant_id

    def work(db: Session, fields: dict[str, str]) -> str:
        queues.delete_queue(db, tenant_id=tenant_id, name=name)
        return f"Queue {name} deleted. Computers that added it can no longer print to it."

    return await _change_queue(request, rt, principal, work, queue=name)


# -- a job --------------------------------------------------------------------------------


def _job_context(rt: PrintingRuntime, principal: Principal, job_id: str) -> dict[str, Any]:
    if not _JOB_ID.match(job_id):
        raise NotFound("unknown print job", field="job_id")
    tenant_id = principal.tenant_id
    with rt.db.sessions() as db:
        row = service.get_job(db, tenant_id=tenant_id, job_id=job_id)
        job = JobRead.of(row, service.events(db, tenant_id=tenant_id, job_id=job_id))
        waiting = ""
        printer_state = ""
        try:
            printer = service.get_printer(db, tenant_id=tenant_id, printer_id=row.printer_id)
            printer_name = f"{printer.name} ({'color' if printer.color else 'mono'})"
            printer_state = printer_status(rt, printer)
            waiting = waiting_texts(rt, [printer], [job]).get(job.job_id, "")
        except NotFound:  # removed since
            printer_name = row.printer_id
        mine = job.owner == principal.acting_user or manages_queues(principal)
        again = mine and intake.may_print_again(rt, row)
        remaining = intake.remaining_pages(row) if again else 0
    active = job.state in service.ACTIVE
    return {
        "job": job,
        "printer_name": printer_name,
        "printer_state": printer_state,
        "waiting": waiting,
        "print_again": again,
        "remaining": remaining,
        "active": active,
        "cancellable": active and job.owner == principal.acting_user,
        # Step IDs, state codes and worker names: for the tenant's administrators.
        "details": principal.admin,
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
        return site.message(
            request,
            404,
            "No such print job",
            "There is no print job with this address in your organisation.",
            principal=principal,
            back=True,
        )
    return site.render(
        request,
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
    return site.finish(request, RedirectResponse(f"{PREFIX}/jobs/{job_id}", status_code=303))


async def _print_again(
    job_id: str, request: Request, rt: PrintingRuntime, principal: Principal, *, remaining: bool
) -> Response:
    async with request.form(max_files=0, max_fields=5) as form:
        csrf = form.get("csrf")
    if not check_csrf(request, csrf if isinstance(csrf, str) else None):
        return await _job_page(
            request, rt, principal, job_id, status_code=400, error="Your form expired. Try again."
        )
    if not _JOB_ID.match(job_id):
        return await _job_page(request, rt, principal, job_id)  # the "no such job" page
    try:
        job = await intake.print_again(rt, principal, job_id=job_id, remaining=remaining)
    except NotFound:
        return await _job_page(request, rt, principal, job_id)
    except PrintcloudError as exc:  # not theirs, nothing left to print, or refused by the intake
        return await _job_page(
            request,
            rt,
            principal,
            job_id,
            status_code=exc.status_code,
            error=print_error_text(exc.description, exc.field),
        )
    log.info(
        "job printed again from the job page",
        extra={"fields": {"job": job.job_id, "from": job_id, "remaining": remaining}},
    )
    return site.finish(request, RedirectResponse(f"{PREFIX}/jobs/{job.job_id}", status_code=303))


@router.post("/jobs/{job_id}/again")
async def print_again(
    job_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    """ "Print again": the whole document as a new job (owner or administrator)."""
    return await _print_again(job_id, request, rt, principal, remaining=False)


@router.post("/jobs/{job_id}/remaining")
async def print_remaining(
    job_id: str, request: Request, rt: RuntimeDep, principal: SignedIn
) -> Response:
    """ "Print the remaining pages" of a job the printer stopped, as a new job."""
    return await _print_again(job_id, request, rt, principal, remaining=True)


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
    return site.finish(request, response)
