"""The print service's HTTP API (seed 003).

- `POST /api/jobs` (upload or URL): a user or client of idp-a, scope `print` (SVC001).
- `GET /api/jobs`, `GET /api/jobs/{id}`, `GET …/pages/{n}/preview`: a user's own jobs;
  every job of the tenant for its administrator and a service's own token;
  `POST /api/jobs/{id}/cancel`: the owner (SVC001).
- `GET /api/printers`: scope `print`; `POST`, `PATCH /api/printers/{id}` (name, color,
  location, device client, push URL) and `DELETE`: scope `admin` and the issuer's
  `admin` claim (the tenant's administrator now, PRT001 registry); the device client
  must be one of the tenant's (`device_clients.check`, 400 naming `client_id`).
- `GET /api/queues`: scope `print`; `POST /api/queues`, `PATCH`/`DELETE
  /api/queues/{name}`: the tenant's administrator (IPP Everywhere queues, issue 14;
  the IPP endpoint is `ipp_routes.py`).
- `GET /api/device/printers/{p}/work` (S109, ¶0112: the printer polls; with its
  Identify-Printer requests, each answered once),
  `POST /api/device/jobs/{id}/started`, `…/result`, `PUT …/pages/{n}/preview` (S110):
  the printer's own device client, scope `device`.
- `GET /converted/{id}/{file}`: a printer, with the conversion token (FIG. 10).

Anything that is not a readable PDF is refused before a job exists; every
query filters on the caller's tenant. A URL job's data is fetched once, at
intake, through the egress policy's pinned client (`core/egress.py`), and
stored like an upload: the conversion workers read both from the blob store
(`sessions.job_data_key`). A printer's push URL passes the same policy when it
is saved (`service.check_push_url`) and when the print service connects to it.

The handlers are thin: the rules are in `intake.py` (a new job), `jobs.py` (what
its owner and its printer do to it) and `service.py`; the callers in `deps.py`.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from printcloud.core.errors import InvalidRequest, PayloadTooLarge, Unavailable
from printcloud.core.guard import Principal

from . import device_clients, intake, jobs, queues, service
from .converted import answer_converted
from .deps import AdminCaller, DeviceCaller, PrintCaller, RuntimeDep
from .schemas import (
    DeviceResult,
    JobCreate,
    JobList,
    JobRead,
    JobRelease,
    PrinterCreate,
    PrinterList,
    PrinterPushUpdate,
    PrinterRead,
    PrinterUpdate,
    QueueCreate,
    QueueList,
    QueueRead,
    QueueUpdate,
    Started,
    StateRead,
    WorkList,
)

router = APIRouter()
MAX_PREVIEW_BYTES = 2 * 1024 * 1024
_PNG = b"\x89PNG\r\n\x1a\n"


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


# -- jobs (SVC001) ------------------------------------------------------------------------


@router.post("/api/jobs", status_code=202, response_model=JobRead, tags=["jobs"])
async def create_job(request: Request, rt: RuntimeDep, principal: PrintCaller) -> JobRead:
    """SVC001: a PDF upload (multipart `file`) or a URL (JSON or form `url`), a printer
    and print settings. Answers the job at once; the workflow goes on in the background."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = JobCreate.model_validate_json(await request.body())
        except ValueError as exc:
            raise InvalidRequest(f"invalid JSON body: {str(exc)[:300]}") from exc
        options = service.JobOptions(**body.options.model_dump())
        job = await intake.submit(
            rt,
            principal,
            printer_id=body.printer_id,
            options=options,
            title=body.title,
            url=body.url,
            given=frozenset(body.options.model_fields_set),
        )
        return JobRead.of(job)
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest(
            "send multipart/form-data with a PDF `file`, or JSON with a `url`", field="file"
        )
    form = await request.form(max_files=1, max_fields=20)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    intake.refuse_nul(fields)
    upload = form.get("file")
    if isinstance(upload, str) and upload == "":  # an empty part: no file
        upload = None
    job = await intake.submit_form(
        rt, principal, fields=fields, upload=upload, url=fields.get("url") or None
    )
    return JobRead.of(job)


def _viewer(principal: Principal) -> str | None:
    """Whose jobs the caller may read: a user, their own (CUPS's and PaperCut's default
    privacy: another user's job titles are theirs); None, every job of the tenant, for
    the tenant's administrator and for a service's own token (seed 000's nightly batch
    submits and watches the tenant's jobs as a client)."""
    if principal.admin or principal.acting_kind == "client":
        return None
    return principal.acting_user


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
            owner=principal.acting_user if mine else _viewer(principal),
            states=(state,) if state else None,
            limit=limit,
        )
        return JobList(jobs=[JobRead.of(r) for r in rows])


@router.get("/api/jobs/{job_id}", response_model=JobRead, tags=["jobs"])
def show_job(job_id: str, rt: RuntimeDep, principal: PrintCaller) -> JobRead:
    with rt.db.sessions() as db:
        job = service.get_job(
            db, tenant_id=principal.tenant_id, job_id=job_id, viewer=_viewer(principal)
        )
        return JobRead.of(job, service.events(db, tenant_id=principal.tenant_id, job_id=job_id))


@router.post("/api/jobs/{job_id}/cancel", response_model=JobRead, tags=["jobs"])
def cancel_job(job_id: str, rt: RuntimeDep, principal: PrintCaller) -> JobRead:
    return JobRead.of(
        jobs.cancel(rt, tenant_id=principal.tenant_id, job_id=job_id, by=principal.acting_user)
    )


@router.post("/api/jobs/{job_id}/release", response_model=JobRead, tags=["jobs"])
def release_job(job_id: str, rt: RuntimeDep, principal: PrintCaller) -> JobRead:
    """The owner releases a held job from anywhere (the printer does it after a card login).
    A device's token acting for its local user must prove the user as at the printer."""
    return JobRead.of(jobs.release_by_owner(rt, principal, job_id=job_id))


@router.get("/api/jobs/{job_id}/pages/{number}/preview", tags=["jobs"])
def job_preview(job_id: str, number: int, rt: RuntimeDep, principal: PrintCaller) -> Response:
    data = jobs.preview_png(
        rt, tenant_id=principal.tenant_id, job_id=job_id, number=number, viewer=_viewer(principal)
    )
    return Response(data, media_type="image/png", headers={"Cache-Control": "private"})


# -- printers ---------------------------------------------------------------------------


@router.get("/api/printers", response_model=PrinterList, tags=["printers"])
def list_printers(rt: RuntimeDep, principal: PrintCaller) -> PrinterList:
    with rt.db.sessions() as db:
        rows = service.list_printers(db, tenant_id=principal.tenant_id)
        return PrinterList(printers=[PrinterRead.of(r) for r in rows])


@router.post("/api/printers", status_code=201, response_model=PrinterRead, tags=["printers"])
def add_printer(body: PrinterCreate, rt: RuntimeDep, principal: AdminCaller) -> PrinterRead:
    device_clients.check(rt, tenant_id=principal.tenant_id, client_id=body.client_id)
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


@router.patch("/api/printers/{printer_id}", response_model=PrinterRead, tags=["printers"])
def update_printer(
    printer_id: str, body: PrinterUpdate, rt: RuntimeDep, principal: AdminCaller
) -> PrinterRead:
    """Change a printer's name, color, location, device client or push URL (what is
    sent; `push_url` null: it polls). Another tenant's printer answers 404."""
    tenant_id = principal.tenant_id
    with rt.db.sessions() as db:
        current = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id).client_id
    sent = body.model_fields_set
    if body.client_id is not None and body.client_id != current:
        device_clients.check(rt, tenant_id=tenant_id, client_id=body.client_id)
    if body.push_url is not None:  # resolved before the transaction holds any lock
        service.check_push_url(body.push_url, egress=rt.settings.egress_policy)
    with rt.db.session() as db:
        row = service.update_printer(
            db,
            tenant_id=tenant_id,
            printer_id=printer_id,
            name=body.name,
            color=body.color,
            location=body.location,
            client_id=body.client_id,
            push_url=body.push_url,
            clear_push_url="push_url" in sent and body.push_url is None,
            egress=rt.settings.egress_policy,
        )
        return PrinterRead.of(row)


@router.delete("/api/printers/{printer_id}", status_code=204, tags=["printers"])
def delete_printer(printer_id: str, rt: RuntimeDep, principal: AdminCaller) -> Response:
    with rt.db.session() as db:
        service.delete_printer(db, tenant_id=principal.tenant_id, printer_id=printer_id)
    return Response(status_code=204)


# -- IPP Everywhere queues (issue 14) ------------------------------------------------------


@router.get("/api/queues", response_model=QueueList, tags=["queues"])
def list_queues(rt: RuntimeDep, principal: PrintCaller) -> QueueList:
    with rt.db.sessions() as db:
        rows = queues.list_queues(db, tenant_id=principal.tenant_id)
        return QueueList(queues=[QueueRead.of(r, ipp_url=rt.settings.ipp_url) for r in rows])


@router.post("/api/queues", status_code=201, response_model=QueueRead, tags=["queues"])
def add_queue(body: QueueCreate, rt: RuntimeDep, principal: AdminCaller) -> QueueRead:
    with rt.db.session() as db:
        row = queues.add_queue(
            db,
            tenant_id=principal.tenant_id,
            name=body.name,
            printer_id=body.printer_id,
            info=body.info,
            location=body.location,
            job_privacy=body.job_privacy,
        )
        return QueueRead.of(row, ipp_url=rt.settings.ipp_url)


@router.patch("/api/queues/{name}", response_model=QueueRead, tags=["queues"])
def update_queue(name: str, body: QueueUpdate, rt: RuntimeDep, principal: AdminCaller) -> QueueRead:
    with rt.db.session() as db:
        row = queues.update_queue(
            db,
            tenant_id=principal.tenant_id,
            name=name,
            printer_id=body.printer_id,
            follow_me=body.follow_me,
            info=body.info,
            location=body.location,
            job_privacy=body.job_privacy,
        )
        return QueueRead.of(row, ipp_url=rt.settings.ipp_url)


@router.delete("/api/queues/{name}", status_code=204, tags=["queues"])
def delete_queue(name: str, rt: RuntimeDep, principal: AdminCaller) -> Response:
    with rt.db.session() as db:
        queues.delete_queue(db, tenant_id=principal.tenant_id, name=name)
    return Response(status_code=204)


# -- the printer's side (PRT001) --------------------------------------------------------


@router.put(
    "/api/device/printers/{printer_id}/push_url", response_model=PrinterRead, tags=["device"]
)
def set_push_url(
    printer_id: str, body: PrinterPushUpdate, rt: RuntimeDep, principal: DeviceCaller
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
    """¶0112: the printer polls for its print requests, and its Identify-Printer requests
    (issue 14), each of those answered once."""
    return jobs.work(rt, principal, printer_id=printer_id)


@router.get("/api/device/printers/{printer_id}/held", response_model=JobList, tags=["device"])
def held_jobs(printer_id: str, rt: RuntimeDep, principal: DeviceCaller) -> JobList:
    """The held jobs of the user at the printer, for this printer: for a card login's
    token or the owner's own token (or any local user, where the tenant trusts its
    devices' local authentication)."""
    rows = jobs.held_at_printer(rt, principal, printer_id=printer_id)
    return JobList(jobs=[JobRead.of(r) for r in rows])


@router.post("/api/device/jobs/{job_id}/release", response_model=JobRead, tags=["device"])
def release_at_printer(
    job_id: str, body: JobRelease, rt: RuntimeDep, principal: DeviceCaller
) -> JobRead:
    """The user at the printer releases one of their held jobs there (the same proof as
    for the list); the job's history says who, where and by what proof."""
    job = jobs.release_at_printer(rt, principal, job_id=job_id, printer_id=body.printer_id)
    return JobRead.of(job)


@router.post("/api/device/jobs/{job_id}/started", response_model=StateRead, tags=["device"])
def started(job_id: str, body: Started, rt: RuntimeDep, principal: DeviceCaller) -> StateRead:
    with rt.db.session() as db:
        job = service.job_started(
            db,
            tenant_id=principal.tenant_id,
            client_id=principal.client_id,
            job_id=job_id,
            printer_id=body.printer_id,
        )
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
    await run_in_threadpool(
        partial(jobs.store_preview, rt, principal, job_id=job_id, number=number, png=body)
    )
    return Response(status_code=204)


@router.post("/api/device/jobs/{job_id}/result", response_model=StateRead, tags=["device"])
def result(job_id: str, body: DeviceResult, rt: RuntimeDep, principal: DeviceCaller) -> StateRead:
    """S110: the printer's result goes to the job's workflow (which records it, S111)."""
    state = jobs.report_result(rt, principal, job_id=job_id, result=body)
    return StateRead(job_id=job_id, state=state)


# -- the converted-data store (SVC004/SVC005) ------------------------------------------


@router.get("/converted/{converted_id}/{name}", tags=["store"])
async def converted(converted_id: str, name: str, request: Request, rt: RuntimeDep) -> Response:
    """FIG. 10: the metafile and pages, with the conversion token (SVC004/SVC005); the
    bytes go out zero-copy (`converted.py`: sendfile here, or nginx's X-Accel-Redirect)."""
    return await answer_converted(
        db=rt.db,
        blobs=rt.blobs,
        sessions=rt.sessions,
        converted_id=converted_id,
        name=name,
        authorization=request.headers.get("authorization", ""),
        index=rt.index,
        accel=rt.settings.converted_accel,
    )
