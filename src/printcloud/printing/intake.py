"""Intake of print data (seed 003, SVC001): from a print request to a started job.

One intake for every way in (the JSON API's upload or URL, the print page):

- `options_from`: the print settings of a form (color/mono, copies, duplex, media,
  resolution, hold), refused with the field's name when they do not parse;
- `read_upload`: the uploaded PDF, bounded by `PRINTCLOUD_MAX_PRINT_BYTES`;
- `submit`: the printer must be the tenant's, and able to print the settings (the
  capabilities its IPP INFRA output device registered, `capabilities.check`: HTTP 422
  naming the setting; the resolution becomes the nearest it takes); a URL job's data
  is fetched once,
  here, through the egress policy's pinned client (`worker.fetch_print_data`) and
  kept like an upload, so the conversion workers read what was checked here;
  the PDF is inspected (`convert.inspect_pdf`) and its pixels capped
  (`convert.check_job_pixels`) before anything exists; then the blob is stored
  (`sessions.job_data_key`), the job recorded as `accepted` (S105) with its estimate
  reserved (`accounting.charging.reserve`: refused with 402 naming the balance and the
  cost when its owner cannot pay, or held if the tenant prefers), and its
  workflow (`pipeline.process_job`) started right after the answer (`start_soon`):
  the committed job is what makes the request durable; a process that dies before
  the start leaves a job without workflow, which `pipeline.adopt_orphans` starts at
  the next start.

Nothing is created when the data is refused.

`print_again`: a job the printer stopped (or any ended job whose document is still
kept or whose URL can be fetched again) as a new job through `submit`: all of it, or
the pages after those printed (issue 16, "what to do next").
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pypdfium2 as pdfium
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from printcloud.core.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PaymentRequired,
    Unavailable,
)
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger

from . import capabilities, pipeline, service
from .accounting import charging
from .convert import PDFIUM_LOCK, PdfInfo, check_job_pixels, inspect_pdf
from .models import PrinterRow, PrintJobRow
from .runtime import PrintingRuntime
from .sessions import job_data_key
from .worker import fetch_print_data

log = get_logger("printing.intake")


def _bool(value: Any, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "color", "duplex"):
        return True
    if text in ("0", "false", "no", "off", "mono", "simplex"):
        return False
    raise InvalidRequest(f"{name} must be true or false", field=name)


def _int(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise InvalidRequest(f"{name} must be a whole number", field=name) from exc


#: A form's print settings (`options_from`).
OPTION_FIELDS = ("color", "copies", "duplex", "media", "dpi", "hold")


def options_from(fields: dict[str, Any]) -> service.JobOptions:
    return service.JobOptions(
        color=_bool(fields.get("color"), "color", True),
        copies=_int(fields.get("copies"), "copies", 1),
        duplex=_bool(fields.get("duplex"), "duplex", False),
        media=str(fields.get("media") or "A4"),
        dpi=_int(fields.get("dpi"), "dpi", 300),
        hold=_bool(fields.get("hold"), "hold", False),
    )


def refuse_nul(fields: dict[str, str]) -> None:
    """A form's text fields: none may carry a NUL character."""
    for name, value in fields.items():
        if "\x00" in value:
            raise InvalidRequest(f"{name} must not contain a NUL character", field=name)


async def read_upload(upload: Any, *, limit: int) -> bytes:
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("file must be an uploaded PDF file", field="file")
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the file is larger than {limit} bytes")
        chunks.append(chunk)
    if size == 0:
        raise InvalidRequest("the uploaded file is empty (0 bytes)", field="file")
    return b"".join(chunks)


async def submit_form(
    rt: PrintingRuntime,
    principal: Principal,
    *,
    fields: dict[str, str],
    upload: Any | None,
    url: str | None,
) -> PrintJobRow:
    """SVC001 from a form (the API's multipart body or the print page): the uploaded
    file when there is one (its name is the title when none is given), else the URL."""
    options = options_from(fields)
    given = frozenset(k for k in OPTION_FIELDS if fields.get(k))
    printer_id = fields.get("printer_id", "").strip()
    title = fields.get("title", "").strip()[:300]
    if upload is None:
        return await submit(
            rt, principal, printer_id=printer_id, options=options, title=title, url=url, given=given
        )
    data = await read_upload(upload, limit=rt.settings.max_print_bytes)
    if not title and isinstance(upload, UploadFile):
        title = (upload.filename or "")[:300]
    return await submit(
        rt, principal, printer_id=printer_id, options=options, title=title, data=data, given=given
    )


async def submit(
    rt: PrintingRuntime,
    principal: Principal,
    *,
    printer_id: str,
    options: service.JobOptions,
    title: str,
    data: bytes | None = None,
    url: str | None = None,
    also: Callable[[Session, PrintJobRow], None] | None = None,
    given: frozenset[str] | None = None,
    prepare: Callable[[bytes], bytes] | None = None,
    owner: str | None = None,
) -> PrintJobRow:
    """Validate, record and start a job. Nothing is created when the data is refused.

    `also(db, job)` records what a way in keeps beside the job (an IPP queue's job row)
    in the job's own transaction: both exist, or neither. `given`: the settings the
    caller chose (None: all); the others may be the printer's defaults. `prepare(data)`:
    the PDF the intake takes, made from `data` (an IPP document's conversion) before the
    checks, in the same worker-thread trip. `owner`: whose job it is when not the
    caller's (an administrator printing someone's job again).

    Color asked for a printer without color is printed, recorded and shown as black
    and white (`JobOptions.gray_for_mono` says why); a follow-me job is decided where
    it is released."""
    tenant_id = principal.tenant_id
    if not printer_id:
        raise InvalidRequest("printer_id is required", field="printer_id")

    def check_printer(db: Session) -> PrinterRow:
        try:
            return service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
        except NotFound as exc:
            raise InvalidRequest(
                f"unknown printer {printer_id!r} in this tenant", field="printer_id"
            ) from exc

    def fit() -> None:
        """The settings the printer can print (its registered capabilities), or 422."""
        nonlocal options
        with rt.db.sessions() as db:
            printer = check_printer(db)
            options = capabilities.check(printer, options, given=given)
            if options.color and not printer.color and not options.follow_me:
                options = replace(options, color=False, gray_for_mono=True)

    if data is None:
        if not url:
            raise InvalidRequest("send a PDF file or a url", field="file")

        await run_in_threadpool(fit)  # before anything is fetched
        # The one fetch of a URL job (item 6 of issue 11): kept as the job's blob, so
        # the workers read what was checked here and never ask the URL again.
        data = await fetch_print_data(url, settings=rt.settings)
    job_id = service.new_job_id()
    data_key = job_data_key(job_id)
    document = data

    # One trip to the thread pool in all (each trip is two thread wake-ups on a loaded
    # core, bench/README.md): the document's conversion, checks and storage, then the
    # records (one transaction, committed before the answer).
    def keep() -> PdfInfo:
        nonlocal document
        if prepare is not None:
            document = prepare(document)
        if url is None:
            fit()
        info = inspect_pdf(document)
        check_job_pixels(info, dpi=options.dpi, max_megapixels=rt.settings.max_job_megapixels)
        if rt.engine is None:  # after the checks (their answers first), before anything is kept
            raise Unavailable("this replica does not run print workflows")
        rt.blobs.put(data_key, document)
        return info

    def record(info: PdfInfo) -> tuple[PrintJobRow, dict[str, Any] | None]:
        with rt.db.session() as db:
            printer = check_printer(db)  # in the job's transaction: a printer deleted meanwhile
            payer = owner or principal.acting_user
            # Its estimate reserved in the job's own transaction (issue 18): a job its
            # owner cannot pay for is refused (402), or held if the tenant prefers.
            decision = charging.reserve(
                db,
                tenant_id=tenant_id,
                job_id=job_id,
                owner=payer,
                printer_id=printer_id,
                options=options.as_dict(),
                pages=info.page_count,
            )
            job = service.create_job(
                db,
                tenant_id=tenant_id,
                printer_id=printer_id,
                owner=payer,
                client_id=principal.client_id,
                title=title or (url.rsplit("/", 1)[-1] if url else "") or "document.pdf",
                source="url" if url else "upload",
                options=replace(options, hold=True) if decision.held else options,
                job_id=job_id,
                source_url=url,
                data_key=data_key,
                size=len(document),
                page_count=info.page_count,
                asked_by=principal.acting_user,
                printer=printer,
            )
            if decision.held:
                service.add_event(db, job, step="SVC001", state="accepted", detail=decision.message)
            db.flush()
            if also is not None:
                also(db, job)
            # What its workflow would read first, as committed here (a held job's
            # workflow reads it: it waits, and a cancel before its start must be seen).
            facts = (
                None
                if job.options.get("hold")
                else pipeline.facts(job, printer, accounted=decision.reserved)
            )
            db.expunge(job)
        return job, facts

    def keep_and_record() -> tuple[PrintJobRow, dict[str, Any] | None]:
        info = keep()
        try:
            return record(info)
        except (InvalidRequest, PaymentRequired):
            rt.blobs.delete(data_key)  # refused: nothing is kept
            raise

    job, facts = await run_in_threadpool(keep_and_record)
    start_soon(rt, tenant_id, job_id, facts)
    return job


def start_soon(
    rt: PrintingRuntime, tenant_id: str, job_id: str, facts: dict[str, Any] | None = None
) -> None:
    """Start the workflow of a job just committed, on the runtime's starter thread, while
    the caller answers. Starting one (`DBOS.start_workflow`: its row, then the hop to
    DBOS's loop) took most of a Print-Job's time at one connection, and nothing in the
    answer needs it: the job row is the durable record. A start that never happens (the
    process died, or is stopping) is made by `pipeline.adopt_orphans` at the next start;
    a cancel before it is seen at the workflow's first step. `facts`: the job as
    recorded (`pipeline.facts`), handed to the workflow so it does not read it again."""
    try:
        rt.start_later(start_workflow, rt, tenant_id, job_id, facts)
    except RuntimeError:  # the starter is stopped: the process is going down
        log.warning(
            "a job's workflow is left for the next start (the service is stopping)",
            extra={"fields": {"job_id": job_id}},
        )


def start_workflow(
    rt: PrintingRuntime, tenant_id: str, job_id: str, facts: dict[str, Any] | None = None
) -> None:
    """The job's workflow (`pipeline.process_job`, `job-<id>`), from S106 on."""
    engine = rt.engine
    if engine is None:
        log.warning(
            "a job's workflow is left for the next start (no engine)",
            extra={"fields": {"job_id": job_id}},
        )
        return
    try:
        engine.start(pipeline.process_job, workflow_id=pipeline.workflow_id(job_id))(
            tenant_id, job_id, facts
        )
    except Exception:  # its job stays `accepted`; adopted at the next start
        log.exception(
            "starting a job's workflow failed; it is started at the next start",
            extra={"fields": {"job_id": job_id}},
        )


# -- what to do next: print again, or the remaining pages ------------------------------------

#: States after which a job may be printed again (its document still at hand).
ENDED = frozenset({"printed", "printer_cancelled", "cancelled", "failed", "expired"})


def remaining_pages(job: PrintJobRow) -> int:
    """How many pages the printer did not print of a job it stopped (0: none to offer:
    nothing printed yet, all printed, or copies make the count ambiguous)."""
    pages = job.page_count or 0
    copies = int((job.options or {}).get("copies") or 1)
    if job.state != "printer_cancelled" or copies != 1 or not 0 < job.pages_printed < pages:
        return 0
    return pages - job.pages_printed


def may_print_again(rt: PrintingRuntime, job: PrintJobRow) -> bool:
    """Whether the job's document can be printed again: kept, or fetched from its URL."""
    if job.state not in ENDED:
        return False
    if job.data_key and rt.blobs.exists(job.data_key):
        return True
    return job.source == "url" and bool(job.source_url)


def pages_from(data: bytes, first: int) -> bytes:
    """The PDF `data` from its page `first` (0-based) on, as a new PDF."""
    with PDFIUM_LOCK:
        source = pdfium.PdfDocument(data)
        try:
            out = pdfium.PdfDocument.new()
            try:
                out.import_pages(source, list(range(first, len(source))))
                buffer = io.BytesIO()
                out.save(buffer)
            finally:
                out.close()
        finally:
            source.close()
    return buffer.getvalue()


async def print_again(
    rt: PrintingRuntime, principal: Principal, *, job_id: str, remaining: bool
) -> PrintJobRow:
    """A new job of the same document, printer and settings for the job's owner or the
    tenant's administrator: all its pages, or (`remaining`) those the printer did not
    print. The new job belongs to the job's owner, so they see it in their jobs; an
    administrator who asks is recorded in its history."""
    tenant_id = principal.tenant_id

    def load() -> tuple[PrintJobRow, bytes | None]:
        with rt.db.sessions() as db:
            job = service.get_job(db, tenant_id=tenant_id, job_id=job_id)
            db.expunge(job)
        if job.owner != principal.acting_user and not (
            principal.admin and principal.has_scopes("admin")
        ):
            raise Forbidden("only the job's owner or an administrator may print it again")
        if not may_print_again(rt, job):
            raise Conflict("this job's document is no longer kept: print it from the form")
        if remaining and not remaining_pages(job):
            raise Conflict("this job has no remaining pages to print")
        kept = job.data_key if job.data_key and rt.blobs.exists(job.data_key) else None
        data = rt.blobs.get(kept) if kept else None
        if remaining:
            if data is None:
                raise Conflict("this job's document is no longer kept: print it from the form")
            data = pages_from(data, job.pages_printed)
        return job, data

    job, data = await run_in_threadpool(load)
    fields = service.JobOptions.__dataclass_fields__
    options = service.JobOptions(**{k: v for k, v in (job.options or {}).items() if k in fields})
    title = f"{job.title} (remaining pages)" if remaining else job.title
    if data is None:
        return await submit(
            rt,
            principal,
            printer_id=job.printer_id,
            options=options,
            title=title[:300],
            url=job.source_url,
            owner=job.owner,
        )
    return await submit(
        rt,
        principal,
        printer_id=job.printer_id,
        options=options,
        title=title[:300],
        data=data,
        owner=job.owner,
    )
