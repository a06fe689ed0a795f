"""The operations of an IPP Everywhere queue (issue 14; RFC 8011 §4.2-§4.3, PWG 5100.11
Cancel-My-Jobs / Close-Job, PWG 5100.13 Identify-Printer).

`Call` is one decoded, checked request to one queue, with its caller (None only for
Get-Printer-Attributes, which a client may ask before it has credentials, as
`lpadmin -m everywhere` does). Each handler answers a `Message` (Get-Printer-Attributes
answers bytes: its attributes come from the cache of encodings):

- Get-Printer-Attributes (§4.2.5): `ipp_printer`'s attributes, `requested-attributes`;
- Validate-Job (§4.2.3), Print-Job (§4.2.1), Create-Job (§4.2.4), Send-Document
  (§4.3.1), Close-Job: the job template (`ipp_jobs.job_template`), the document
  format, then today's intake (`intake.submit`) with the document as PDF;
- Get-Job-Attributes (§4.3.4), Get-Jobs (§4.2.6: which-jobs, my-jobs, limit),
  Cancel-Job (§4.3.3), Cancel-My-Jobs;
- Identify-Printer (PWG 5100.13 §4.1.2): a request for the queue's printer, which its
  device receives at its next poll, at once when it listens for pushes (`identify.py`);
- Get-Printer-Supported-Values (RFC 3380): nothing is settable, each `xxx-supported`
  attribute is `not-settable`;
- Create-Job-Subscriptions, Get-Notifications (`ippget`), Cancel-Subscription (RFC 3995,
  RFC 3996): the owner's job subscriptions (`ipp_subscriptions.py`).

Only the job's owner (the authenticated user) cancels it; `requesting-user-name`
is never believed. Another user's job shows only its state and times, or nothing
(the queue's `job_privacy`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from printcloud.core.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PaymentRequired,
)
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger
from printcloud.ipp.encoding import encode, encode_message
from printcloud.ipp.message import (
    Attribute,
    Collection,
    Group,
    GroupTag,
    IPPError,
    Message,
    ValueTag,
)
from printcloud.ipp.model import Operation, PrinterState, Status
from printcloud.ipp.operations import Request, requested_names, response, select_attributes

from . import changes, identify, intake, ipp_queue, ipp_subscriptions, jobs
from .ipp_documents import DocumentError, compression_of, document_format, to_pdf
from .ipp_jobs import JobView, Template, job_attributes, job_template, template_attributes, view
from .ipp_memo import QueueMemo
from .ipp_printer import EXPLICIT_ONLY, AttributeCache, PrinterStatus, QueueFacts
from .ipp_templates import subscription_groups
from .models import IppJobRow, PrintJobRow, QueueRow
from .runtime import PrintingRuntime

log = get_logger("printing.ipp")
OK = Status.SUCCESSFUL_OK
SUBSTITUTED = Status.SUCCESSFUL_OK_IGNORED_OR_SUBSTITUTED_ATTRIBUTES


@dataclass
class Call:
    rt: PrintingRuntime
    request: Request
    queue: QueueRow
    facts: QueueFacts
    principal: Principal | None
    cache: AttributeCache
    #: The process's queue facts and printer status (None: read every time).
    memo: QueueMemo | None = None

    @property
    def message(self) -> Message:
        return self.request.message

    @property
    def user(self) -> str:
        assert self.principal is not None  # every operation but Get-Printer-Attributes
        return self.principal.acting_user

    def answer(
        self,
        status: Status = OK,
        groups: list[Group] | None = None,
        *,
        unsupported: list[Attribute] | None = None,
        message: str | None = None,
    ) -> bytes:
        return encode(
            response(
                self.message,
                status,
                groups or [],
                unsupported_attributes=unsupported or [],
                status_message=message,
            )
        )

    def fail(
        self, status: Status, text: str, unsupported: list[Attribute] | None = None
    ) -> IPPError:
        return IPPError(
            status,
            text,
            request_id=self.message.request_id,
            version=self.message.version,
            unsupported=unsupported or [],
        )

    async def db(self, fn: Any, /, **kwargs: Any) -> Any:
        """`fn(db, tenant_id=…, **kwargs)` in a unit of work, in a worker thread."""

        def work() -> Any:
            with self.rt.db.session() as db:
                return fn(db, tenant_id=self.facts.tenant_id, **kwargs)

        return await run_in_threadpool(work)


# -- the printer -------------------------------------------------------------------------


async def printer_status(call: Call) -> PrinterStatus:
    """The queue's printer now: from the memo (at most `ipp_memo.TTL` old for changes
    made by another process), else from its jobs."""
    if call.memo is not None:
        found = call.memo.status(call.facts)
        if found is not None:
            return found
    generation = changes.generation(changes.JOBS)
    active, printing = await call.db(ipp_queue.busy_jobs, queue=call.facts.name)
    state = PrinterState.PROCESSING if printing else PrinterState.IDLE
    text = f"{active} job(s) in progress" if active else "Ready to print."
    status = PrinterStatus(
        state=state,
        reasons=("none",),
        message=text,
        queued=active,
        changed=call.facts.config_changed,
    )
    if call.memo is not None:
        call.memo.keep_status(call.facts, status, generation=generation)
    return status


async def get_printer_attributes(call: Call, status: PrinterStatus | None = None) -> bytes:
    return printer_attributes(call, status or await printer_status(call))


def printer_attributes(call: Call, status: PrinterStatus) -> bytes:
    """Get-Printer-Attributes' answer for a printer status already known (no await: the
    IPP port's protocol answers it inside `data_received`, `ipp_fastpath`)."""
    attributes = call.cache.get(call.facts)
    names, _ = select_attributes(
        requested_names(call.message),
        attributes.names_in_order,
        target="printer",
        explicit_only=EXPLICIT_ONLY,
    )
    encoded = attributes.encode(frozenset(names), status)
    head = response(call.message, OK)
    return encode_message(
        head.code,
        head.request_id,
        [(g.tag, list(g)) for g in head.groups] + [(GroupTag.PRINTER, encoded)],
        version=head.version,
    )


async def identify_printer(call: Call) -> bytes:
    """PWG 5100.13 §4.1.2: the queue's printer shows itself. The request is recorded for
    the tenant's printer the queue targets and its device is pushed to poll at once
    (`identify.py`); a follow-me queue has no one printer to show."""
    if call.facts.printer_id is None:
        raise call.fail(
            Status.CLIENT_ERROR_NOT_POSSIBLE,
            "a follow-me queue prints at whichever printer its owner badges in at: there is "
            "no one printer to identify; identify a queue of the printer itself",
        )
    actions, unsupported = _identify_actions(call)
    message = _identify_message(call, unsupported)
    printer_id = call.facts.printer_id
    try:
        await call.db(
            identify.record,
            printer_id=printer_id,
            actions=actions,
            message=message,
            queue=call.facts.name,
            requested_by=call.user,
        )
    except NotFound as exc:
        raise call.fail(
            Status.CLIENT_ERROR_NOT_POSSIBLE,
            f"the queue's printer {printer_id!r} no longer exists",
        ) from exc
    pushed = await run_in_threadpool(
        partial(identify.push, call.rt, tenant_id=call.facts.tenant_id, printer_id=printer_id)
    )
    log.info(
        "identify-printer",
        extra={
            "fields": {
                "tenant": call.facts.tenant_id,
                "queue": call.facts.name,
                "printer": printer_id,
                "actions": ",".join(actions),
                "delivery": pushed,
            }
        },
    )
    how = "the printer was told at once" if pushed == "pushed" else "at the printer's next poll"
    return call.answer(
        SUBSTITUTED if unsupported else OK,
        unsupported=unsupported,
        message=f"{' and '.join(actions)} requested; {how}",
    )


def _identify_actions(call: Call) -> tuple[tuple[str, ...], list[Attribute]]:
    """The requested identify-actions the device performs, and the rest to return in the
    unsupported group (RFC 8011 §4.1.7); none left: the default, `display`."""
    attr = call.message.get(GroupTag.OPERATION, "identify-actions")
    if attr is None:
        return ("display",), []
    if attr.out_of_band or any(t != ValueTag.KEYWORD for t in attr.tags):
        return ("display",), [attr]
    wanted = [str(v) for v in attr.values]
    actions = tuple(dict.fromkeys(v for v in wanted if v in identify.ACTIONS))
    others = [v for v in wanted if v not in identify.ACTIONS]
    unsupported = [Attribute("identify-actions", ValueTag.KEYWORD, others)] if others else []
    return actions or ("display",), unsupported


def _identify_message(call: Call, unsupported: list[Attribute]) -> str:
    """The `message` operation attribute (text(127), cut to that by `identify.record`)."""
    attr = call.message.get(GroupTag.OPERATION, "message")
    if attr is None:
        return ""
    if attr.tag not in (ValueTag.TEXT, ValueTag.TEXT_WITH_LANGUAGE):
        unsupported.append(attr)
        return ""
    return str(attr.value)


# -- new jobs ----------------------------------------------------------------------------


def _template(call: Call) -> Template:
    job_group = call.message.group(GroupTag.JOB)
    template = job_template(
        job_group,
        color=call.facts.color,
        follow_me=call.facts.printer_id is None,
        device=call.facts.device,
    )
    fidelity = call.message.value(GroupTag.OPERATION, "ipp-attribute-fidelity", False)
    if template.refused and fidelity is True:
        # the printer cannot print it (its device's capabilities), and the client asked
        # for exactly what it sent
        raise call.fail(
            Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
            "the printer cannot print "
            + ", ".join(f"{a.name} {_shown(a)}" for a in template.refused),
            [*template.refused, *template.unsupported],
        )
    if template.unsupported and fidelity is True:
        raise call.fail(
            Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
            "the queue does not support " + ", ".join(a.name for a in template.unsupported),
            template.unsupported,
        )
    # RFC 8011 §4.1.7: without fidelity, what the printer cannot do is substituted by its
    # default (one-sided, its default media, one copy) and named in the
    # unsupported-attributes group (successful-ok-ignored-or-substituted-attributes)
    template.unsupported = [*template.refused, *template.unsupported]
    return template


def _shown(attribute: Attribute) -> str:
    value = attribute.value
    if isinstance(value, Collection):  # media-col: its size name or key
        for member in ("media-size-name", "media-key"):
            if member in value:
                return str(value[member].value)
        return "(media-col)"
    return str(value)


def _job_name(call: Call) -> str:
    ops = call.request.operation_attributes
    for name in ("job-name", "document-name"):
        attr = ops.get(name)
        if attr is not None and not attr.out_of_band:
            return str(attr.value)[:300]
    return ""


def _job_group(v: JobView, call: Call, *, message: str | None = None) -> Group:
    attrs = [
        Attribute("job-id", ValueTag.INTEGER, v.row.job_number),
        Attribute("job-uri", ValueTag.URI, f"{call.facts.uri}/{v.row.job_number}"),
        Attribute("job-state", ValueTag.ENUM, v.state.state),
        Attribute("job-state-reasons", ValueTag.KEYWORD, list(v.state.reasons)),
        Attribute("job-state-message", ValueTag.TEXT, message or v.message),
    ]
    return Group(GroupTag.JOB, attrs)


async def validate_job(call: Call) -> bytes:
    template = _template(call)
    document_format(call.request, formats=call.facts.formats, fail=call.fail)
    status = SUBSTITUTED if template.unsupported else OK
    return call.answer(status, unsupported=template.unsupported)


async def _create(call: Call, template: Template, fmt: str) -> JobView:
    row = await call.db(
        ipp_queue.new_job,
        queue=call.facts.name,
        owner=call.user,
        name=_job_name(call),
        attributes={"values": template.values, "document-format": fmt},
    )
    return view(row, None)


def _refusal(call: Call, exc: InvalidRequest | PayloadTooLarge) -> IPPError:
    """The IPP error for a document the conversion or the intake refused."""
    if isinstance(exc, DocumentError):
        return call.fail(exc.status, exc.description)
    if isinstance(exc, PayloadTooLarge):
        return call.fail(Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE, exc.description)
    return call.fail(Status.CLIENT_ERROR_DOCUMENT_FORMAT_ERROR, exc.description)


async def _intake(
    call: Call,
    template: Template,
    *,
    title: str,
    fmt: str,
    data: bytes,
    also: Callable[[Session, PrintJobRow], None],
) -> PrintJobRow:
    """Today's intake; `also` records the IPP side in the print job's transaction. The
    document is converted to the PDF the intake takes (DocumentError when it cannot be)
    in the intake's own worker-thread trip, before its checks."""
    printer_id = call.facts.printer_id or await call.db(follow_me_printer)
    assert call.principal is not None
    convert = partial(
        to_pdf,
        fmt=fmt,
        compression=compression_of(call.request),
        settings=call.rt.settings,
        ranges=template.ranges,
    )
    return await intake.submit(
        call.rt,
        call.principal,
        printer_id=printer_id,
        options=template.options,
        title=title or "untitled",
        data=data,
        also=also,
        prepare=convert,
    )


async def _submit(call: Call, v: JobView, template: Template, fmt: str, data: bytes) -> JobView:
    """Send-Document: the document of a job Create-Job made (and told the client of).
    The job ends `aborted` with the reason when the document is refused."""
    number = v.row.job_number
    tenant_id = call.facts.tenant_id

    def attach(db: Session, job: PrintJobRow) -> None:
        ipp_queue.submitted(db, tenant_id=tenant_id, job_number=number, job_id=job.job_id)

    try:
        await _intake(call, template, title=v.row.name, fmt=fmt, data=data, also=attach)
    except (InvalidRequest, PayloadTooLarge) as exc:
        await call.db(ipp_queue.end, job_number=number, state="aborted", reason=exc.description)
        raise _refusal(call, exc) from exc
    except PaymentRequired as exc:  # issue 18: the owner cannot pay for it
        await call.db(ipp_queue.end, job_number=number, state="aborted", reason=exc.description)
        raise call.fail(Status.CLIENT_ERROR_NOT_AUTHORIZED, exc.description) from exc
    except BaseException:
        await call.db(ipp_queue.end, job_number=number, state="aborted", reason="not accepted")
        raise
    return await call.db(ipp_queue.get_job, queue=call.facts.name, job_number=number)


def follow_me_printer(db: Any, *, tenant_id: str) -> str:
    """Where a follow-me job waits until its owner releases it at any printer of the
    tenant (which then prints it): the tenant's first printer, by name."""
    from .service import list_printers

    printers = list_printers(db, tenant_id=tenant_id)
    if not printers:
        raise NotFound("the tenant has no printer for a follow-me job")
    return printers[0].printer_id


async def print_job(call: Call) -> bytes:
    """RFC 8011 §4.2.1: the document is converted and checked before any job exists,
    and the IPP job row is written in the intake's own transaction, so a refused
    Print-Job (an error answer) leaves no job at all (§4.2.1.2)."""
    template = _template(call)
    fmt = document_format(call.request, formats=call.facts.formats, fail=call.fail)
    data = bytes(call.message.data)
    if not data:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "Print-Job without a document")
    made: list[IppJobRow] = []
    name = _job_name(call)
    tenant_id, queue, owner = call.facts.tenant_id, call.facts.name, call.user
    attributes: dict[str, object] = {"values": template.values, "document-format": fmt}

    def record(db: Session, job: PrintJobRow) -> None:
        row = ipp_queue.new_job(
            db,
            tenant_id=tenant_id,
            queue=queue,
            owner=owner,
            name=name,
            attributes=attributes,
            job_id=job.job_id,
        )
        db.expunge(row)
        made.append(row)

    try:
        job = await _intake(call, template, title=name, fmt=fmt, data=data, also=record)
    except (InvalidRequest, PayloadTooLarge) as exc:
        raise _refusal(call, exc) from exc
    except PaymentRequired as exc:  # issue 18: the message names the balance and the cost
        raise call.fail(Status.CLIENT_ERROR_NOT_AUTHORIZED, exc.description) from exc
    v = view(made[0], job)
    status = SUBSTITUTED if template.unsupported else OK
    return call.answer(status, [_job_group(v, call)], unsupported=template.unsupported)


async def create_job(call: Call) -> bytes:
    template = _template(call)
    v = await _create(call, template, "")
    status = SUBSTITUTED if template.unsupported else OK
    return call.answer(status, [_job_group(v, call)], unsupported=template.unsupported)


async def _own_job(call: Call) -> JobView:
    number = _job_number(call)
    try:
        v: JobView = await call.db(ipp_queue.get_job, queue=call.facts.name, job_number=number)
    except NotFound as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc
    if v.row.owner != call.user:
        raise call.fail(Status.CLIENT_ERROR_NOT_AUTHORIZED, "the job belongs to another user")
    return v


def _job_number(call: Call) -> int:
    if call.request.job_id is not None:
        return call.request.job_id
    tail = (call.request.job_uri or "").rstrip("/").rsplit("/", 1)[-1]
    if not tail.isdigit():
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, "job-uri names no job of this queue")
    return int(tail)


async def send_document(call: Call) -> bytes:
    last = call.request.operation_attributes.get("last-document")
    if last is None or last.tag != ValueTag.BOOLEAN:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "last-document is required")
    v = await _own_job(call)
    if v.row.state == "submitted":
        raise call.fail(
            Status.SERVER_ERROR_MULTIPLE_DOCUMENT_JOBS_NOT_SUPPORTED, "the job has its document"
        )
    if ipp_queue.is_terminal(v):
        raise call.fail(Status.CLIENT_ERROR_NOT_POSSIBLE, f"the job is {v.message}")
    fmt = document_format(call.request, formats=call.facts.formats, fail=call.fail)
    data = bytes(call.message.data)
    if not data:
        if last.value is True:
            await call.db(
                ipp_queue.end, job_number=v.row.job_number, state="aborted", reason="no document"
            )
        v = await call.db(ipp_queue.get_job, queue=call.facts.name, job_number=v.row.job_number)
        return call.answer(groups=[_job_group(v, call)])
    stored = v.row.attributes
    template = job_template(
        _stored_group(stored),
        color=call.facts.color,
        follow_me=call.facts.printer_id is None,
        device=call.facts.device,
    )
    v = await _submit(call, v, template, fmt, data)
    return call.answer(groups=[_job_group(v, call)])


def _stored_group(stored: dict[str, Any]) -> Group:
    """Create-Job's accepted template values, as a job group again."""
    values = {"copies": 1, **stored.get("values", {})}
    attrs = template_attributes(values)
    return Group(GroupTag.JOB, attrs)


async def close_job(call: Call) -> bytes:
    v = await _own_job(call)
    if v.row.state == "pending_document":
        await call.db(
            ipp_queue.end,
            job_number=v.row.job_number,
            state="aborted",
            reason="closed without a document",
        )
        v = await call.db(ipp_queue.get_job, queue=call.facts.name, job_number=v.row.job_number)
    return call.answer(groups=[_job_group(v, call)])


# -- existing jobs -----------------------------------------------------------------------


async def _cancel(call: Call, v: JobView) -> None:
    if v.row.job_id is None:
        await call.db(
            ipp_queue.end,
            job_number=v.row.job_number,
            state="canceled",
            reason=f"canceled by {call.user}",
        )
        return
    cancel = partial(
        jobs.cancel, call.rt, tenant_id=call.facts.tenant_id, job_id=v.row.job_id, by=call.user
    )
    try:
        await run_in_threadpool(cancel)
    except Conflict as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_POSSIBLE, exc.description) from exc


async def cancel_job(call: Call) -> bytes:
    v = await _own_job(call)
    if ipp_queue.is_terminal(v):
        raise call.fail(Status.CLIENT_ERROR_NOT_POSSIBLE, f"the job is already {v.message}")
    await _cancel(call, v)
    return call.answer()


async def cancel_my_jobs(call: Call) -> bytes:
    ids = call.request.operation_attributes.get("job-ids")
    views: list[JobView] = await call.db(
        ipp_queue.list_jobs,
        queue=call.facts.name,
        states=(3, 4, 5, 6),
        owner=call.user,
        limit=1000,
    )
    if ids is not None:
        wanted = {int(i) for i in ids.values if isinstance(i, int)}
        views = [v for v in views if v.row.job_number in wanted]
    for v in views:
        with contextlib.suppress(IPPError):  # ended meanwhile: nothing to cancel
            await _cancel(call, v)
    return call.answer()


JOB_DEFAULT = ("job-id", "job-uri")


def _visible(call: Call, v: JobView) -> bool:
    return v.row.owner == call.user


def _job_attrs(call: Call, v: JobView, requested: list[str]) -> Group:
    attrs = job_attributes(v, printer_uri=call.facts.uri, visible=_visible(call, v))
    names, _ = select_attributes(requested, [a.name for a in attrs], target="job")
    chosen = set(names)
    return Group(GroupTag.JOB, [a for a in attrs if a.name in chosen])


async def get_job_attributes(call: Call) -> bytes:
    number = _job_number(call)
    try:
        v: JobView = await call.db(ipp_queue.get_job, queue=call.facts.name, job_number=number)
    except NotFound as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc
    if not _visible(call, v) and call.queue.job_privacy == "none":
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, f"no job {number} on this queue")
    return call.answer(groups=[_job_attrs(call, v, requested_names(call.message))])


async def get_jobs(call: Call) -> bytes:
    ops = call.request.operation_attributes
    which = str(ops["which-jobs"].value) if "which-jobs" in ops else "not-completed"
    if which not in ipp_queue.WHICH_JOBS:
        bad = Attribute("which-jobs", ValueTag.KEYWORD, which)
        raise call.fail(
            Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED, f"which-jobs {which!r}", [bad]
        )
    mine = ops.get("my-jobs") is not None and ops["my-jobs"].value is True
    limit_attr = ops.get("limit")
    limit = (
        limit_attr.value if limit_attr is not None and isinstance(limit_attr.value, int) else 1000
    )
    if limit < 1:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "limit must be at least 1")
    private = call.queue.job_privacy == "none"
    views: list[JobView] = await call.db(
        ipp_queue.list_jobs,
        queue=call.facts.name,
        states=ipp_queue.WHICH_JOBS[which],
        owner=call.user if (mine or private) else None,
        limit=min(limit, 1000),
    )
    requested = requested_names(call.message, JOB_DEFAULT)
    return call.answer(groups=[_job_attrs(call, v, requested) for v in views])


async def get_printer_supported_values(call: Call) -> bytes:
    """RFC 3380 §4.3: the values Set-Printer-Attributes would accept for the queue's
    `xxx-supported` attributes. Nothing of a queue is set over IPP (it is configured through
    printcloud's API; `printer-settable-attributes-supported` is `none`), so each requested
    `xxx-supported` attribute the queue has is answered with the out-of-band value
    `not-settable` (RFC 3380 §8.3); without `requested-attributes` (or with `all`), all of
    them. Names the queue does not have, or that are not `xxx-supported`, are left out,
    as Get-Printer-Attributes leaves out what it does not know."""
    names = call.cache.get(call.facts).names_in_order
    supported = [n for n in names if n.endswith("-supported")]
    chosen, _ = select_attributes(
        requested_names(call.message), supported, target="printer", explicit_only=EXPLICIT_ONLY
    )
    group = Group(GroupTag.PRINTER, [Attribute(n, ValueTag.NOT_SETTABLE) for n in chosen])
    return call.answer(groups=[group])


# -- a user's job subscriptions (RFC 3995 Create-Job-Subscriptions, ippget RFC 3996) ----

#: The longest a Get-Notifications with notify-wait is held (seconds), as on the
#: Infrastructure Printer, and the notify-get-interval answered otherwise.
NOTIFY_WAIT = 30.0
NOTIFY_INTERVAL = 30


def _integers(call: Call, name: str) -> list[int]:
    attribute = call.request.operation_attributes.get(name)
    if attribute is None:
        return []
    if attribute.tags != [ValueTag.INTEGER] * len(attribute.values):
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, f"{name} is 1setOf integer")
    return [int(v) for v in attribute.values]


async def create_job_subscriptions(call: Call) -> bytes:
    """RFC 3995 §11.1.3: subscriptions of the job's owner to the job `notify-job-id`
    (`ippget` only; `job-state-changed`, `job-completed`). A job subscription has no
    lease to ask for (RFC 3995 leases printer subscriptions): it lives while
    it is read (each Get-Notifications renews `ipp_subscriptions.LEASE`)."""
    numbers = _integers(call, "notify-job-id")
    if len(numbers) != 1:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "notify-job-id (integer) is required")
    number = numbers[0]
    try:
        v: JobView = await call.db(ipp_queue.get_job, queue=call.facts.name, job_number=number)
    except NotFound as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc
    if v.row.owner != call.user:
        if call.queue.job_privacy == "none":  # another's job is not even seen
            raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, f"no job {number} on this queue")
        raise call.fail(Status.CLIENT_ERROR_NOT_AUTHORIZED, "the job belongs to another user")
    templates = call.message.groups_of(GroupTag.SUBSCRIPTION)
    if not templates:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "no subscription template group")

    async def subscribe(events: list[str], template: Group) -> list[Attribute]:
        try:
            row = await call.db(
                ipp_subscriptions.subscribe,
                queue=call.facts.name,
                job_number=number,
                owner=call.user,
                events=events,
            )
        except Conflict as exc:
            raise call.fail(Status.CLIENT_ERROR_TOO_MANY_SUBSCRIPTIONS, exc.description) from exc
        return [Attribute("notify-subscription-id", ValueTag.INTEGER, row.subscription_id)]

    groups, made = await subscription_groups(
        templates,
        known=ipp_subscriptions.EVENTS,
        default=ipp_subscriptions.DEFAULT_EVENTS,
        subscribe=subscribe,
    )
    if not made:
        return call.answer(
            Status.CLIENT_ERROR_IGNORED_ALL_SUBSCRIPTIONS,
            groups,
            message="only notify-pull-method ippget, for job-state-changed and job-completed",
        )
    return call.answer(groups=groups)


async def get_notifications(call: Call) -> bytes:
    """RFC 3996 for the user's job subscriptions: the events from the given sequence
    numbers; with notify-wait, held until there is one (at most `NOTIFY_WAIT` seconds)."""
    ids = _integers(call, "notify-subscription-ids")
    if not ids:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "notify-subscription-ids is required")
    if len(ids) > ipp_subscriptions.MAX_PER_JOB:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "too many notify-subscription-ids")
    numbers = _integers(call, "notify-sequence-numbers")
    wait = call.message.value(GroupTag.OPERATION, "notify-wait", False) is True

    def collect(db: Session, *, tenant_id: str) -> list[dict[str, Any]]:
        found = []
        for index, number in enumerate(ids):
            row = ipp_subscriptions.subscription(
                db,
                tenant_id=tenant_id,
                queue=call.facts.name,
                subscription_id=number,
                owner=call.user,
                lock=True,
            )
            ipp_subscriptions.refresh(db, row)
            ipp_subscriptions.renew(row)
            start = numbers[index] if index < len(numbers) else 1
            found += [{**e, "subscription": number} for e in row.recent if e["sequence"] >= start]
        return found

    async def look() -> list[dict[str, Any]]:
        try:
            return await call.db(collect)
        except NotFound as exc:
            raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc

    events = await changes.until_jobs_move(look, wait=wait, limit=NOTIFY_WAIT)
    head = response(call.message, OK)
    head.groups[0].add(Attribute("printer-up-time", ValueTag.INTEGER, int(time.time())))
    interval = 0 if wait else NOTIFY_INTERVAL
    head.groups[0].add(Attribute("notify-get-interval", ValueTag.INTEGER, interval))
    head.groups.extend(_event_group(call, e) for e in events)
    return encode(head)


def _event_group(call: Call, event: dict[str, Any]) -> Group:
    """RFC 3995 §9: one job event notification."""
    text = f"job {event['job_number']} ({event['title']}): {event['event']}"
    return Group(
        GroupTag.EVENT_NOTIFICATION,
        [
            Attribute("notify-subscription-id", ValueTag.INTEGER, event["subscription"]),
            Attribute("notify-sequence-number", ValueTag.INTEGER, event["sequence"]),
            Attribute("notify-subscribed-event", ValueTag.KEYWORD, event["event"]),
            Attribute("notify-charset", ValueTag.CHARSET, "utf-8"),
            Attribute("notify-natural-language", ValueTag.NATURAL_LANGUAGE, "en"),
            Attribute("notify-text", ValueTag.TEXT, text[:255]),
            Attribute("notify-printer-uri", ValueTag.URI, call.facts.uri),
            Attribute("printer-up-time", ValueTag.INTEGER, int(time.time())),
            Attribute("notify-job-id", ValueTag.INTEGER, event["job_number"]),
            Attribute("job-id", ValueTag.INTEGER, event["job_number"]),
            Attribute("job-state", ValueTag.ENUM, event["job_state"]),
            Attribute("job-state-reasons", ValueTag.KEYWORD, list(event["reasons"])),
        ],
    )


async def cancel_subscription(call: Call) -> bytes:
    """RFC 3995 Cancel-Subscription: the user ends their job subscription."""
    ids = _integers(call, "notify-subscription-id")
    if len(ids) != 1:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "notify-subscription-id is required")

    def cancel(db: Session, *, tenant_id: str) -> None:
        db.delete(
            ipp_subscriptions.subscription(
                db,
                tenant_id=tenant_id,
                queue=call.facts.name,
                subscription_id=ids[0],
                owner=call.user,
            )
        )

    try:
        await call.db(cancel)
    except NotFound as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc
    return call.answer()


#: The operations a queue serves, by operation-id.
HANDLERS: dict[int, Callable[[Call], Awaitable[bytes]]] = {
    Operation.GET_PRINTER_ATTRIBUTES: get_printer_attributes,
    Operation.VALIDATE_JOB: validate_job,
    Operation.PRINT_JOB: print_job,
    Operation.CREATE_JOB: create_job,
    Operation.SEND_DOCUMENT: send_document,
    Operation.CLOSE_JOB: close_job,
    Operation.CANCEL_JOB: cancel_job,
    Operation.CANCEL_MY_JOBS: cancel_my_jobs,
    Operation.GET_JOB_ATTRIBUTES: get_job_attributes,
    Operation.GET_JOBS: get_jobs,
    Operation.IDENTIFY_PRINTER: identify_printer,
    Operation.GET_PRINTER_SUPPORTED_VALUES: get_printer_supported_values,
    Operation.CREATE_JOB_SUBSCRIPTIONS: create_job_subscriptions,
    Operation.GET_NOTIFICATIONS: get_notifications,
    Operation.CANCEL_SUBSCRIPTION: cancel_subscription,
}
#: Answered before a client has credentials (RFC 8011 §5.4.2: uri-authentication applies
#: to the operations that make or touch jobs).
ANONYMOUS = frozenset({Operation.GET_PRINTER_ATTRIBUTES})
