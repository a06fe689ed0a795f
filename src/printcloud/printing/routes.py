"""The print service's HTTP API (seed 003).

- `POST /api/jobs` (upload or URL): a user or client of idp-a, scope `print` (SVC001).
- `GET /api/jobs`, `GET /api/jobs/{id}`, `GET …/pages/{n}/preview`: the same tenant;
  `POST /api/jobs/{id}/cancel`: the owner (SVC001).
- `GET /api/printers`: scope `print`; `POST`/`DELETE`: scope `admin` and the issuer's
  `admin` claim (the tenant's administrator now, PRT001 registry).
- `GET /api/device/printers/{p}/work` (S109, ¶0112: the printer polls),
  `POST /api/device/jobs/{id}/started`, `…/result`, `PUT …/pages/{n}/preview` (S110):
  the printer's own device client, scope `device`.
- `GET /converted/{id}/{file}`: a printer, with the conversion token (FIG. 10).

Anything that is not a readable PDF is refused before a job exists; every
query filters on the caller's tenant. A URL job's data is fetched once, at
intake, through the egress policy's pinned client (`core/egress.py`), and
stored like an upload: the conversion workers read both from the blob store
(`sessions.job_data_key`). A printer's push URL passes the same policy when it
is saved (`service.check_push_url`) and when the print service connects to it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from printcloud.core.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger

from . import pipeline, service
from .convert import PdfInfo, check_job_pixels, inspect_pdf
from .models import PrintJobRow
from .runtime import PrintingRuntime
from .schemas import (
    DeviceResult,
    JobByUrl,
    JobList,
    JobRead,
    PrinterCreate,
    PrinterList,
    PrinterRead,
    PushUrl,
    Release,
    Started,
    StateRead,
    WorkItem,
    WorkList,
)
from .sessions import job_data_key
from .worker import fetch_print_data, serve_converted

router = APIRouter()
log = get_logger("printing.routes")
MAX_PREVIEW_BYTES = 2 * 1024 * 1024
_PNG = b"\x89PNG\r\n\x1a\n"


def runtime(request: Request) -> PrintingRuntime:
    rt: PrintingRuntime = request.app.state.printing
    return rt


RuntimeDep = Annotated[PrintingRuntime, Depends(runtime)]


def _scope(*scopes: str, admin: bool = False) -> Any:
    async def dependency(request: Request) -> Principal:
        return await runtime(request).guard.require(*scopes, admin=admin)(request)

    return Depends(dependency)


PrintCaller = Annotated[Principal, _scope("print")]
AdminCaller = Annotated[Principal, _scope("admin", admin=True)]
DeviceCaller = Annotated[Principal, _scope("device")]


@router.get("/healthz", tags=["health"])
def healthz(rt: RuntimeDep) -> dict[str, Any]:
    """Ready once the conversion pool, the balancer and the workflows are up (503 before)."""
    if not rt.started:
        raise Unavailable("the print service is starting")
    return {
        "status": "ok",
        "pid": os.getpid(),
        "workflows": rt.engine is not None,
        "workers": rt.balancer.stats() if rt.balancer is not None else [],
    }


# -- intake (SVC001) --------------------------------------------------------------------


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


def options_from(fields: dict[str, Any]) -> service.JobOptions:
    return service.JobOptions(
        color=_bool(fields.get("color"), "color", True),
        copies=_int(fields.get("copies"), "copies", 1),
        duplex=_bool(fields.get("duplex"), "duplex", False),
        media=str(fields.get("media") or "A4"),
        dpi=_int(fields.get("dpi"), "dpi", 300),
        hold=_bool(fields.get("hold"), "hold", False),
    )


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


async def submit(
    rt: PrintingRuntime,
    principal: Principal,
    *,
    printer_id: str,
    options: service.JobOptions,
    title: str,
    data: bytes | None = None,
    url: str | None = None,
) -> PrintJobRow:
    """Validate, record and start a job. Nothing is created when the data is refused."""
    tenant_id = principal.tenant_id
    if not printer_id:
        raise InvalidRequest("printer_id is required", field="printer_id")

    def check_printer() -> None:
        with rt.db.sessions() as db:
            try:
                service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
            except NotFound as exc:
                raise InvalidRequest(
                    f"unknown printer {printer_id!r} in this tenant", field="printer_id"
                ) from exc

    await run_in_threadpool(check_printer)
    if data is None:
        if not url:
            raise InvalidRequest("send a PDF file or a url", field="file")
        # The one fetch of a URL job (item 6 of issue 11): kept as the job's blob, so
        # the workers read what was checked here and never ask the URL again.
        data = await fetch_print_data(url, settings=rt.settings)
    info: PdfInfo = await run_in_threadpool(inspect_pdf, data)
    check_job_pixels(info, dpi=options.dpi, max_megapixels=rt.settings.max_job_megapixels)
    job_id = service.new_job_id()
    data_key = job_data_key(job_id)
    await run_in_threadpool(rt.blobs.put, data_key, data)

    def record() -> PrintJobRow:
        with rt.db.session() as db:
            job = service.create_job(
                db,
                tenant_id=tenant_id,
                printer_id=printer_id,
                owner=principal.acting_user,
                client_id=principal.client_id,
                title=title or (url.rsplit("/", 1)[-1] if url else "") or "document.pdf",
                source="url" if url else "upload",
                options=options,
                job_id=job_id,
                source_url=url,
                data_key=data_key,
                size=len(data),
                page_count=info.page_count,
            )
            db.flush()
            db.expunge(job)
            return job

    job = await run_in_threadpool(record)
    await run_in_threadpool(start_workflow, rt, tenant_id, job_id)
    return job


def start_workflow(rt: PrintingRuntime, tenant_id: str, job_id: str) -> None:
    if rt.engine is None:
        raise Unavailable("this replica does not run print workflows")
    rt.engine.start(pipeline.process_job, workflow_id=pipeline.workflow_id(job_id))(
        tenant_id, job_id
    )


@router.post("/api/jobs", status_code=202, response_model=JobRead, tags=["jobs"])
async def create_job(request: Request, rt: RuntimeDep, principal: PrintCaller) -> JobRead:
    """SVC001: a PDF upload (multipart `file`) or a URL (JSON or form `url`), a printer
    and print settings. Answers the job at once; the workflow goes on in the background."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = JobByUrl.model_validate_json(await request.body())
        except ValueError as exc:
            raise InvalidRequest(f"invalid JSON body: {str(exc)[:300]}") from exc
        options = service.JobOptions(**body.options.model_dump())
        job = await submit(
            rt,
            principal,
            printer_id=body.printer_id,
            options=options,
            title=body.title,
            url=body.url,
        )
        return JobRead.of(job)
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest(
            "send multipart/form-data with a PDF `file`, or JSON with a `url`", field="file"
        )
    form = await request.form(max_files=1, max_fields=20)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    for name, value in fields.items():
        if "\x00" in value:
            raise InvalidRequest(f"{name} must not contain a NUL character", field=name)
    upload = form.get("file")
    url = fields.get("url") or None
    options = options_from(fields)
    printer_id = fields.get("printer_id", "").strip()
    title = fields.get("title", "").strip()[:300]
    if upload is not None and not (isinstance(upload, str) and upload == ""):
        data = await read_upload(upload, limit=rt.settings.max_print_bytes)
        if not title and isinstance(upload, UploadFile):
            title = (upload.filename or "")[:300]
        job = await submit(
            rt, principal, printer_id=printer_id, options=options, title=title, data=data
        )
    else:
        job = await submit(
            rt, principal, printer_id=printer_id, options=options, title=title, url=url
        )
    return JobRead.of(job)


@router.get("/api/jobs", response_model=JobList, tags=["jobs"])
def list_jobs(
    rt: RuntimeDep,
    principal: PrintCaller,
    mine: bool = False,
    state: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobList:
    with rt.db.sessions() as db:
        rows = service.list_jobs(
            db,
            tenant_id=principal.tenant_id,
            owner=principal.acting_user if mine else None,
            states=(state,) if state else None,
            limit=limit,
        )
        return JobList(jobs=[JobRead.of(r) for r in rows])


@router.get("/api/jobs/{job_id}", response_model=JobRead, tags=["jobs"])
def show_job(job_id: str, rt: RuntimeDep, principal: PrintCaller) -> JobRead:
    with rt.db.sessions() as db:
        job = service.get_job(db, tenant_id=principal.tenant_id, job_id=job_id)
        return JobRead.of(job, service.events(db, tenant_id=principal.tenant_id, job_id=job_id))


def cancel(rt: PrintingRuntime, *, tenant_id: str, job_id: str, by: str) -> PrintJobRow:
    with rt.db.session() as db:
        job = service.get_job(db, tenant_id=tenant_id, job_id=job_id)
        if job.owner != by:
            raise Forbidden("only the job's owner may cancel it")
        job = service.cancel_job(db, tenant_id=tenant_id, job_id=job_id, by=by)
        db.flush()
        db.expunge(job)
    if rt.engine is not None:
        # To whichever of its workflows waits (held: the job's; at the printer: its
        # delivery). One not started yet sees the state at its first step.
        for target in (pipeline.workflow_id(job_id), pipeline.deliver_id(job_id)):
            with contextlib.suppress(NotFound):
                rt.engine.send(
                    target, {"outcome": "owner_cancelled", "by": by}, topic=pipeline.PRINTER_TOPIC
                )
    return job


@router.post("/api/jobs/{job_id}/cancel", response_model=JobRead, tags=["jobs"])
def cancel_job(job_id: str, rt: RuntimeDep, principal: PrintCaller) -> JobRead:
    return JobRead.of(
        cancel(rt, tenant_id=principal.tenant_id, job_id=job_id, by=principal.acting_user)
    )


def release(
    rt: PrintingRuntime,
    *,
    tenant_id: str,
    job_id: str,
    by: str,
    printer_id: str | None = None,
    proof: str = "",
) -> PrintJobRow:
    """The owner releases a held job; its workflow goes on from S106. The job's history
    records who released it, where, and what proved them present (`proof`)."""
    with rt.db.session() as db:
        job = service.release_job(
            db, tenant_id=tenant_id, job_id=job_id, by=by, printer_id=printer_id, proof=proof
        )
        db.flush()
        db.expunge(job)
    if rt.engine is None:
        raise Unavailable("this replica does not run print workflows")
    rt.engine.send(
        pipeline.workflow_id(job_id),
        {"outcome": "released", "by": by, "printer": printer_id},
        topic=pipeline.PRINTER_TOPIC,
    )
    return job


@router.post("/api/jobs/{job_id}/release", response_model=JobRead, tags=["jobs"])
def release_job(job_id: str, rt: RuntimeDep, principal: PrintCaller) -> JobRead:
    """The owner releases a held job from anywhere (the printer does it after a card login).
    A device's token acting for its local user must prove the user as at the printer."""
    if principal.acting_kind == "local_user":
        refusal = release_refusal(principal)
        if refusal:
            refuse_release(rt, principal, job_id=job_id, printer_id=None, reason=refusal)
    return JobRead.of(
        release(
            rt,
            tenant_id=principal.tenant_id,
            job_id=job_id,
            by=principal.acting_user,
            proof=release_proof(principal),
        )
    )


def preview_png(rt: PrintingRuntime, *, tenant_id: str, job_id: str, number: int) -> bytes:
    with rt.db.sessions() as db:
        job = service.get_job(db, tenant_id=tenant_id, job_id=job_id)
        if not 1 <= number <= job.previews:
            raise NotFound("no preview of that page (yet)")
    try:
        return rt.blobs.get(f"previews/{job_id}/page-{number:04d}.png")
    except FileNotFoundError as exc:
        raise NotFound("no preview of that page (yet)") from exc


@router.get("/api/jobs/{job_id}/pages/{number}/preview", tags=["jobs"])
def job_preview(job_id: str, number: int, rt: RuntimeDep, principal: PrintCaller) -> Response:
    data = preview_png(rt, tenant_id=principal.tenant_id, job_id=job_id, number=number)
    return Response(data, media_type="image/png", headers={"Cache-Control": "private"})


# -- printers ---------------------------------------------------------------------------


@router.get("/api/printers", response_model=PrinterList, tags=["printers"])
def list_printers(rt: RuntimeDep, principal: PrintCaller) -> PrinterList:
    with rt.db.sessions() as db:
        rows = service.list_printers(db, tenant_id=principal.tenant_id)
        return PrinterList(printers=[PrinterRead.of(r) for r in rows])


@router.post("/api/printers", status_code=201, response_model=PrinterRead, tags=["printers"])
def add_printer(body: PrinterCreate, rt: RuntimeDep, principal: AdminCaller) -> PrinterRead:
    with rt.db.session() as db:
        row = service.add_printer(
            db,
            tenant_id=principal.tenant_id,
            printer_id=body.printer_id,
            name=body.name,
            color=body.color,
            client_id=body.client_id,
            push_url=body.push_url,
            location=body.location,
            egress=rt.settings.egress_policy,
        )
        return PrinterRead.of(row)


@router.delete("/api/printers/{printer_id}", status_code=204, tags=["printers"])
def delete_printer(printer_id: str, rt: RuntimeDep, principal: AdminCaller) -> Response:
    with rt.db.session() as db:
        service.delete_printer(db, tenant_id=principal.tenant_id, printer_id=printer_id)
    return Response(status_code=204)


# -- the printer's side (PRT001) --------------------------------------------------------


@router.put(
    "/api/device/printers/{printer_id}/push_url", response_model=PrinterRead, tags=["device"]
)
def set_push_url(
    printer_id: str, body: PushUrl, rt: RuntimeDep, principal: DeviceCaller
) -> PrinterRead:
    """A device tells where it listens for print requests (S109 push); null: it polls.

    The URL must pass the egress policy (400 naming `push_url` and the reason)."""
    if body.push_url is not None:  # resolved before the transaction holds any lock
        service.check_push_url(body.push_url, egress=rt.settings.egress_policy)
    with rt.db.session() as db:
        service.printer_for_device(
            db, tenant_id=principal.tenant_id, printer_id=printer_id, client_id=principal.client_id
        )
        row = service.update_printer(
            db,
            tenant_id=principal.tenant_id,
            printer_id=printer_id,
            push_url=body.push_url,
            clear_push_url=body.push_url is None,
            egress=rt.settings.egress_policy,
        )
        return PrinterRead.of(row)


@router.get("/api/device/printers/{printer_id}/work", response_model=WorkList, tags=["device"])
def work(printer_id: str, rt: RuntimeDep, principal: DeviceCaller) -> WorkList:
    """¶0112: the printer polls for its print requests."""
    with rt.db.session() as db:
        printer = service.printer_for_device(
            db, tenant_id=principal.tenant_id, printer_id=printer_id, client_id=principal.client_id
        )
        rows = service.list_jobs(
            db,
            tenant_id=principal.tenant_id,
            printer_id=printer_id,
            states=service.PRINTABLE,
            limit=50,
        )
        items = [
            WorkItem(
                job_id=r.job_id,
                title=r.title,
                state=r.state,
                manifest_url=r.manifest_url or "",
                token=rt.box.open(r.token_sealed),
                pages=r.page_count or 0,
                # a mono printer prints gray whatever was asked (¶0107)
                options={
                    **r.options,
                    "color": bool(r.options.get("color", True)) and printer.color,
                },
            )
            for r in reversed(rows)
            if r.token_sealed and r.manifest_url
        ]
        return WorkList(jobs=items)


# -- secure release (issue 11, item 4) ---------------------------------------------------
#
# A device declares its local user itself in a client-credentials request (seed 001), so
# that alone proves nobody is at the printer. By default (`held_release=card_or_owner`,
# the tenant's setting at idp-a) a user's held jobs are listed and released only for a
# token of the card grant (the issuer marks it `amr: ["card"]`) or the owner's own user
# token; `device_local_auth` also trusts the device's own local authentication.


def release_refusal(principal: Principal) -> str:
    """Why this token does not prove its user present at the printer; empty if it does."""
    kind = principal.acting_kind
    if kind == "user":
        return ""
    if kind != "local_user":
        return (
            "the device's token must act for a user at the printer: log the user in by card, "
            "with the tenant's local authentication cooperation mode on"
        )
    if "card" in principal.amr or principal.held_release == "device_local_auth":
        return ""
    return (
        "the device's token names its local user itself, which proves nobody is at the "
        "printer: log the user in by card (the ID-card grant) or use the owner's own token"
    )


def release_proof(principal: Principal) -> str:
    """What proved the releasing user present, for the job's history."""
    if principal.acting_kind == "user":
        return "the owner's own sign-in"
    if "card" in principal.amr:
        return f"card login at device {principal.client_id}"
    return f"local authentication of device {principal.client_id} (trusted by the tenant)"


def refuse_release(
    rt: PrintingRuntime,
    principal: Principal,
    *,
    job_id: str | None,
    printer_id: str | None,
    reason: str,
) -> NoReturn:
    """Record the refusal (the job's history when there is such a job here, and the log),
    then answer 403. Nothing about the job is revealed to the caller."""
    claimed = str((principal.local_user or {}).get("id", ""))[:200]
    log.warning(
        "held-job release refused",
        extra={
            "fields": {
                "tenant": principal.tenant_id,
                "client_id": principal.client_id,
                "local_user": claimed,
                "printer": printer_id,
                "job_id": job_id,
            }
        },
    )
    if job_id is not None:
        with rt.db.session() as db:
            service.record_release_refusal(
                db,
                tenant_id=principal.tenant_id,
                job_id=job_id,
                printer_id=printer_id,
                detail=f"release refused for {claimed or principal.acting_user!r} "
                f"through device {principal.client_id}: no proof that the user was present",
            )
    raise Forbidden(reason)


@router.get("/api/device/printers/{printer_id}/held", response_model=JobList, tags=["device"])
def held_jobs(printer_id: str, rt: RuntimeDep, principal: DeviceCaller) -> JobList:
    """The held jobs of the user at the printer, for this printer: for a card login's
    token or the owner's own token (or any local user, where the tenant trusts its
    devices' local authentication)."""
    refusal = release_refusal(principal)
    if refusal:
        refuse_release(rt, principal, job_id=None, printer_id=printer_id, reason=refusal)
    user = principal.acting_user
    with rt.db.session() as db:
        service.printer_for_device(
            db, tenant_id=principal.tenant_id, printer_id=printer_id, client_id=principal.client_id
        )
        rows = service.list_jobs(
            db,
            tenant_id=principal.tenant_id,
            owner=user,
            printer_id=printer_id,
            states=("held",),
        )
        return JobList(jobs=[JobRead.of(r) for r in reversed(rows)])


@router.post("/api/device/jobs/{job_id}/release", response_model=JobRead, tags=["device"])
def release_at_printer(
    job_id: str, body: Release, rt: RuntimeDep, principal: DeviceCaller
) -> JobRead:
    """The user at the printer releases one of their held jobs there (the same proof as
    for the list); the job's history says who, where and by what proof."""
    with rt.db.session() as db:
        service.printer_for_device(
            db,
            tenant_id=principal.tenant_id,
            printer_id=body.printer_id,
            client_id=principal.client_id,
        )
    refusal = release_refusal(principal)
    if refusal:
        refuse_release(rt, principal, job_id=job_id, printer_id=body.printer_id, reason=refusal)
    return JobRead.of(
        release(
            rt,
            tenant_id=principal.tenant_id,
            job_id=job_id,
            by=principal.acting_user,
            printer_id=body.printer_id,
            proof=release_proof(principal),
        )
    )


def _device_job(
    db: Any, rt: PrintingRuntime, principal: Principal, job_id: str, printer_id: str
) -> PrintJobRow:
    service.printer_for_device(
        db, tenant_id=principal.tenant_id, printer_id=printer_id, client_id=principal.client_id
    )
    job = service.get_job(db, tenant_id=principal.tenant_id, job_id=job_id)
    if job.printer_id != printer_id:
        raise NotFound("unknown print job", field="job_id")
    return job


@router.post("/api/device/jobs/{job_id}/started", response_model=StateRead, tags=["device"])
def started(job_id: str, body: Started, rt: RuntimeDep, principal: DeviceCaller) -> StateRead:
    with rt.db.session() as db:
        job = _device_job(db, rt, principal, job_id, body.printer_id)
        if job.state == "waiting_for_printer":
            service.move(
                db,
                job,
                "printing",
                step="S110",
                worker=body.printer_id,
                detail="the printer started",
            )
        elif job.state != "printing":
            raise Conflict(f"the job is no longer printable ({job.state})", field="job_id")
        return StateRead(job_id=job_id, state=job.state)


@router.put("/api/device/jobs/{job_id}/pages/{number}/preview", status_code=204, tags=["device"])
async def put_preview(
    job_id: str, number: int, request: Request, rt: RuntimeDep, principal: DeviceCaller
) -> Response:
    body = await request.body()
    if len(body) > MAX_PREVIEW_BYTES:
        raise PayloadTooLarge(f"a preview is at most {MAX_PREVIEW_BYTES} bytes")
    if not body.startswith(_PNG):
        raise InvalidRequest("a preview must be a PNG image", field="body")

    def store() -> None:
        with rt.db.session() as db:
            job = service.get_job(db, tenant_id=principal.tenant_id, job_id=job_id)
            service.printer_for_device(
                db,
                tenant_id=principal.tenant_id,
                printer_id=job.printer_id,
                client_id=principal.client_id,
            )
            if not 1 <= number <= (job.page_count or 0):
                raise InvalidRequest(f"the job has no page {number}", field="number")
            rt.blobs.put(f"previews/{job_id}/page-{number:04d}.png", body)
            job.previews = max(job.previews, number)

    await run_in_threadpool(store)
    return Response(status_code=204)


@router.post("/api/device/jobs/{job_id}/result", response_model=StateRead, tags=["device"])
def result(job_id: str, body: DeviceResult, rt: RuntimeDep, principal: DeviceCaller) -> StateRead:
    """S110: the printer's result goes to the job's workflow (which records it, S111)."""
    if body.outcome == "cancelled" and not body.reason:
        raise InvalidRequest("a cancelled job needs a reason", field="reason")
    with rt.db.session() as db:
        job = _device_job(db, rt, principal, job_id, body.printer_id)
        state = job.state
        if state in service.FINAL:
            return StateRead(job_id=job_id, state=state)  # a repeated report
        service.add_event(
            db,
            job,
            step="S110",
            state=state,
            worker=body.printer_id,
            detail=f"the printer reports {body.outcome}"
            + (f": {body.reason}" if body.reason else ""),
        )
    if rt.engine is None:
        raise Unavailable("this replica does not run print workflows")
    rt.engine.send(
        pipeline.deliver_id(job_id),
        {**body.model_dump(), "printer": body.printer_id},
        topic=pipeline.PRINTER_TOPIC,
    )
    return StateRead(job_id=job_id, state=state)


# -- the converted-data store (SVC004/SVC005) ------------------------------------------


@router.get("/converted/{converted_id}/{name}", tags=["store"])
def converted(converted_id: str, name: str, request: Request, rt: RuntimeDep) -> Response:
    """FIG. 10: the metafile and pages, with the conversion token (SVC004/SVC005)."""
    return serve_converted(
        db=rt.db,
        blobs=rt.blobs,
        sessions=rt.sessions,
        converted_id=converted_id,
        name=name,
        authorization=request.headers.get("authorization", ""),
    )
