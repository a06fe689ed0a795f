"""The Infrastructure Printer is also a print queue (PWG 5100.18 §4: an Infrastructure
Printer accepts jobs as any IPP Printer does; ippsample's `pwg5100.18.test` asks for
Print-Job and the rest on the same URI).

A user's request to `/printing/ipp/infra/{tenant}/{printer}` for a queue operation
(`QUEUE_OPERATIONS`) is served by the IPP Everywhere queue code
(`ipp_operations.HANDLERS`) on the printer's queue: the tenant's first queue that
targets this printer (`printer_queue`). The caller authenticates as a user, exactly as
on the queue (`ipp_auth.QueueAuthenticator`: bearer token, or Basic user:password),
never as the device; the answer is the queue's (its job-uri and job-printer-uri name the
queue). A printer without a queue answers client-error-not-possible. Get-Documents,
Get-Document-Attributes and Validate-Document (PWG 5100.5, 5100.13) are served here for the
queue's jobs: each has one document once it has its data.

The output device's operations (Get-Printer-Attributes, Get-Jobs, which lists the
fetchable jobs, the subscriptions, Fetch-Job, …) stay the device's (`infra_routes.py`):
a user lists their jobs on the queue's own URI.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from printcloud.core.errors import NotFound
from printcloud.ipp.message import Attribute, Group, GroupTag, IPPError, ValueTag
from printcloud.ipp.model import Operation, Status
from printcloud.ipp.operations import Request as IppRequest
from printcloud.ipp.operations import requested_names

from . import ipp_operations, ipp_queue, service
from .ipp_documents import document_format
from .ipp_jobs import JobView
from .ipp_operations import Call
from .ipp_routes import IppQueues
from .models import QueueRow
from .runtime import PrintingRuntime

#: The IPP Everywhere operations a user sends to the Infrastructure Printer's URI.
QUEUE_OPERATIONS = frozenset(
    {
        Operation.PRINT_JOB,
        Operation.VALIDATE_JOB,
        Operation.CREATE_JOB,
        Operation.SEND_DOCUMENT,
        Operation.CLOSE_JOB,
        Operation.CANCEL_JOB,
        Operation.CANCEL_MY_JOBS,
        Operation.GET_JOB_ATTRIBUTES,
        Operation.IDENTIFY_PRINTER,
        Operation.GET_DOCUMENTS,
        Operation.GET_DOCUMENT_ATTRIBUTES,
        Operation.VALIDATE_DOCUMENT,
        Operation.GET_PRINTER_SUPPORTED_VALUES,
        Operation.CREATE_JOB_SUBSCRIPTIONS,
    }
)


def for_queue(request: IppRequest) -> bool:
    """Whether a request to the Infrastructure Printer is a user's queue operation."""
    return request.operation in QUEUE_OPERATIONS


def printer_queue(db: Session, *, tenant_id: str, printer_id: str) -> str | None:
    """The name of the tenant's first queue (the oldest) that targets the printer."""
    return db.scalar(
        select(QueueRow.name)
        .where(QueueRow.tenant_id == tenant_id, QueueRow.printer_id == printer_id)
        .order_by(QueueRow.pk)
        .limit(1)
    )


async def serve(
    request: Request,
    checked: IppRequest,
    rt: PrintingRuntime,
    *,
    tenant_id: str,
    printer_id: str,
) -> bytes:
    """A user's queue operation at the Infrastructure Printer: the queue's answer."""
    state: IppQueues = request.app.state.ipp_queues
    principal = await state.authenticator.principal(
        request.headers.get("authorization", ""), tenant_id=tenant_id
    )

    def find() -> str | None:
        with rt.db.sessions() as db:
            service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)  # NotFound
            return printer_queue(db, tenant_id=tenant_id, printer_id=printer_id)

    name = await run_in_threadpool(find)
    if name is None:
        message = checked.message
        raise IPPError(
            Status.CLIENT_ERROR_NOT_POSSIBLE,
            f"printer {printer_id!r} has no print queue: add one to print to it",
            request_id=message.request_id,
            version=message.version,
        )
    row, facts = await state.facts(rt, tenant_id=tenant_id, queue=name)
    call = Call(
        rt=rt,
        request=checked,
        queue=row,
        facts=facts,
        principal=principal,
        cache=state.cache,
        memo=state.memo,
    )
    return await HANDLERS[checked.operation](call)


# -- the job's document (PWG 5100.5 Get-Documents, Get-Document-Attributes; PWG 5100.13
# Validate-Document), for the queue's jobs: each has one document once it has its data


async def _job_view(call: Call) -> JobView:
    number = ipp_operations._job_number(call)
    try:
        v: JobView = await call.db(ipp_queue.get_job, queue=call.facts.name, job_number=number)
    except NotFound as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc
    if not ipp_operations._visible(call, v) and call.queue.job_privacy == "none":
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, f"no job {number} on this queue")
    return v


def _document(call: Call, v: JobView) -> list[Attribute]:
    """Document 1 of a job that has its data: its state is the job's (one document)."""
    row, job = v.row, v.job
    job_uri = f"{call.facts.uri}/{row.job_number}"
    attributes = [
        Attribute("document-number", ValueTag.INTEGER, 1),
        Attribute("document-job-id", ValueTag.INTEGER, row.job_number),
        Attribute("document-job-uri", ValueTag.URI, job_uri),
        Attribute("document-printer-uri", ValueTag.URI, call.facts.uri),
        Attribute("document-uuid", ValueTag.URI, f"urn:uuid:{uuidlib.uuid5(_DOCUMENTS, row.uuid)}"),
        Attribute("document-state", ValueTag.ENUM, v.state.state),
        Attribute("document-state-reasons", ValueTag.KEYWORD, "none"),
        Attribute("document-state-message", ValueTag.TEXT, v.message),
        Attribute("last-document", ValueTag.BOOLEAN, True),
        Attribute("printer-up-time", ValueTag.INTEGER, int(time.time())),
        Attribute("time-at-creation", ValueTag.INTEGER, int(row.created_at.timestamp())),
    ]
    if job is not None and job.page_count is not None:
        attributes.append(Attribute("impressions", ValueTag.INTEGER, job.page_count))
    if ipp_operations._visible(call, v):
        attributes.append(Attribute("document-name", ValueTag.NAME, row.name or "untitled"))
        fmt = row.attributes.get("document-format")
        if fmt:
            attributes.append(Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, fmt))
    return attributes


def _chosen(call: Call, attributes: list[Attribute]) -> Group:
    requested = requested_names(call.message)
    if "all" in requested or "document-description" in requested:
        return Group(GroupTag.DOCUMENT, attributes)
    wanted = set(requested) | {"document-number"}
    return Group(GroupTag.DOCUMENT, [a for a in attributes if a.name in wanted])


async def get_documents(call: Call) -> bytes:
    v = await _job_view(call)
    groups = [_chosen(call, _document(call, v))] if v.job is not None else []
    return call.answer(groups=groups)


async def get_document_attributes(call: Call) -> bytes:
    number = call.request.operation_attributes.get("document-number")
    if number is None or number.tag != ValueTag.INTEGER or len(number.values) != 1:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "document-number (integer) is required")
    v = await _job_view(call)
    if number.value != 1 or v.job is None:
        raise call.fail(
            Status.CLIENT_ERROR_NOT_FOUND, f"job {v.row.job_number} has no such document"
        )
    return call.answer(groups=[_chosen(call, _document(call, v))])


async def validate_document(call: Call) -> bytes:
    """Whether Send-Document with these operation attributes would be taken by the job:
    the owner's job, still waiting for its document, in a format the queue takes."""
    v = await ipp_operations._own_job(call)
    if v.row.state != "pending_document":
        raise call.fail(
            Status.CLIENT_ERROR_NOT_POSSIBLE,
            f"job {v.row.job_number} takes no more documents ({v.message})",
        )
    document_format(call.request, formats=call.facts.formats, fail=call.fail)
    return call.answer()


HANDLERS: dict[int, Callable[[Call], Awaitable[bytes]]] = {
    **{op: ipp_operations.HANDLERS[op] for op in QUEUE_OPERATIONS if op in ipp_operations.HANDLERS},
    Operation.GET_DOCUMENTS: get_documents,
    Operation.GET_DOCUMENT_ATTRIBUTES: get_document_attributes,
    Operation.VALIDATE_DOCUMENT: validate_document,
}
_DOCUMENTS = uuidlib.UUID("5a8d5d4e-8f57-4b7e-9d0b-2f4c1c7e0d15")

__all__ = ["HANDLERS", "QUEUE_OPERATIONS", "for_queue", "printer_queue", "serve"]
