"""The operations of printcloud as an IPP Infrastructure Printer (issue 15, PWG 5100.18;
RFC 3995 and RFC 3996 for the subscriptions), one printer of a tenant per URI.

The output device (a printer that fetches its jobs, or a proxy in front of one) is
the printer's own device client at idp-a (`infra_routes.py` authenticates it). Its
conversation, and what each step does in printcloud:

0. Get-Printer-Attributes (RFC 8011 §4.2.5: the operations, `which-jobs-supported`
   `fetchable`, the notifications and formats offered) and Get-Jobs with
   `which-jobs` `fetchable` (PWG 5100.18: what the device may fetch, after a restart say).
1. Update-Output-Device-Attributes: registration with `output-device-uuid`;
   the reported printer attributes are kept on the printer (`infra.register`), and
   Get-Output-Device-Attributes answers them; Deregister-Output-Device
   forgets them and ends the printer's subscriptions.
2. Create-Printer-Subscriptions (RFC 3995, `ippget` only), Get-Notifications
   (RFC 3996: `notify-wait` long-polls at most `WAIT_LIMIT` seconds, woken when a
   job of this process moves, and looking at the database each `_LOOK` seconds for
   the moves of other processes), Cancel-Subscription (RFC 3995):
   `job-fetchable` and `job-state-changed` events (`infra.refresh`).
3. Fetch-Job: the attributes of a job that `infra.fetchable` (converted, or
   downloaded for a printer that takes PDF; not held); client-error-not-fetchable
   otherwise. Acknowledge-Job: the device takes it, the device API's `started`
   (`service.job_started`).
4. Fetch-Document: document 1 in a format of `document-format-accepted`: the
   submitted PDF itself (pass-through: for a printer that registered PDF the job is
   fetchable before its JPEG pages are made, `pipeline.passes_pdf`; a device that
   asks such a job for raster or JPEG waits for them, `_pages_made`); PWG raster
   (`srgb_8`, `cmyk_8`, `sgray_8`, `black_1`) or URF (`SRGB24`/`W8`), in a type the
   printer registered, encoded by a conversion worker from the converted pages as
   they are sent (`raster_stream.py`) and streamed through; or, for a one-page job,
   its converted JPEG page; only while the job's session record lives and its
   conversion token has not timed out (FIG. 10). Acknowledge-Document.
5. Update-Document-Status is taken note of; Update-Job-Status with
   `output-device-job-state` completed, aborted or canceled is the device API's
   result (`jobs.report_result`): the job's workflow records `printed` or
   `printer_cancelled: <reason>` with `job-impressions-completed`, and deletes the
   converted data and the session record (S111–S112).
"""

from __future__ import annotations

import os
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from printcloud.core.errors import Conflict, NotFound, Unauthorized, Unavailable
from printcloud.core.guard import Principal
from printcloud.core.http import error_text
from printcloud.core.logs import get_logger
from printcloud.ipp.encoding import encode
from printcloud.ipp.message import Attribute, Group, GroupTag, IPPError, Message, ValueTag
from printcloud.ipp.model import Operation, Resolution, Status
from printcloud.ipp.operations import Request, requested_names, response, select_attributes

from . import capabilities, changes, infra, jobs, raster_stream, service
from .balancer import Streamed, WorkerLost
from .ipp_printer import MEDIA_SIZES
from .ipp_states import ABORTED, CANCELED, COMPLETED, PROCESSING, PROCESSING_STOPPED
from .ipp_templates import subscription_groups
from .models import ConvertedDataRow
from .runtime import PrintingRuntime
from .schemas import DeviceResult

log = get_logger("printing.infra")
OK = Status.SUCCESSFUL_OK
#: The longest a Get-Notifications with notify-wait is held (seconds), and the
#: notify-get-interval answered when the device should ask again later.
WAIT_LIMIT = 30.0
GET_INTERVAL = 30
_LOOK = 1.0
_SOONEST = 0.2
#: What a device may ask Fetch-Document for (document-format-accepted).
PDF, JPEG = "application/pdf", "image/jpeg"
#: Raster made from the job's converted pages by a conversion worker as it is fetched
#: (`raster_stream.py`), in a type the printer registered (`raster_stream.choose`).
PWG, URF = raster_stream.PWG, raster_stream.URF
IPP = "application/ipp"
_CHUNK = 1024 * 1024

#: PWG 5100.18 output-device-job-state-reasons (and RFC 8011 printer-state-reasons a
#: device passes on) → the device API's fault reasons (`service.PRINTER_FAULTS`).
FAULTS: dict[str, str] = {
    "media-empty": "paper_out",
    "media-needed": "paper_out",
    "media-jam": "engine_error",
    "toner-empty": "toner_out",
    "marker-supply-empty": "toner_out",
    "canceled-at-device": "user_cancel",
}


@dataclass
class InfraCall:
    """One checked request from a printer's output device to its Infrastructure Printer."""

    rt: PrintingRuntime
    request: Request
    tenant_id: str
    printer_id: str
    principal: Principal
    printer_uri: str
    #: Every operation the URI serves (`operations-supported`); empty: `HANDLERS`'.
    operations: frozenset[int] = frozenset()

    @property
    def message(self) -> Message:
        return self.request.message

    def answer(
        self,
        groups: list[Group] | None = None,
        *,
        status: Status = OK,
        message: str | None = None,
        data: bytes = b"",
    ) -> bytes:
        answer = response(self.message, status, groups or [], status_message=message)
        answer.data = data
        return encode(answer)

    def fail(self, status: Status, text: str) -> IPPError:
        return IPPError(
            status, text, request_id=self.message.request_id, version=self.message.version
        )

    def operation_value(self, name: str, tags: tuple[int, ...], *, required: bool) -> Any:
        attribute = self.message.get(GroupTag.OPERATION, name)
        if attribute is None:
            if required:
                raise self.fail(Status.CLIENT_ERROR_BAD_REQUEST, f"{name} is required")
            return None
        if len(attribute.values) != 1 or attribute.tag not in tags:
            raise self.fail(Status.CLIENT_ERROR_BAD_REQUEST, f"{name} must be one value")
        return attribute.value

    async def db(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """`fn(db, tenant_id=…, printer_id=…, **kwargs)` in a unit of work, off the loop."""

        def work() -> Any:
            with self.rt.db.session() as db:
                return fn(db, tenant_id=self.tenant_id, printer_id=self.printer_id, **kwargs)

        return await run_in_threadpool(work)


# -- the Infrastructure Printer -----------------------------------------------------------


async def get_printer_attributes(call: InfraCall) -> bytes:
    """RFC 8011 §4.2.5 for the Infrastructure Printer: what an output device (and
    ippsample's get-jobs-fetchable.test) reads first: its operations, `which-jobs`
    `fetchable`, the notifications it offers, the formats Fetch-Document offers."""

    def read(db: Session, *, tenant_id: str, printer_id: str) -> tuple[Any, int, Any]:
        printer = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
        jobs_now = service.list_jobs(
            db, tenant_id=tenant_id, printer_id=printer_id, states=service.ACTIVE, limit=1000
        )
        state = infra.printer_state(db, tenant_id=tenant_id, printer_id=printer_id)
        return (printer.name, printer.location, printer.color), len(jobs_now), state

    (name, location, color), queued, (state, reasons) = await call.db(read)
    operations = sorted(int(o) for o in (call.operations or HANDLERS))
    attributes = [
        Attribute("printer-uri-supported", ValueTag.URI, call.printer_uri),
        Attribute(
            "uri-security-supported",
            ValueTag.KEYWORD,
            "tls" if call.printer_uri.startswith("ipps:") else "none",
        ),
        Attribute("uri-authentication-supported", ValueTag.KEYWORD, "basic"),
        Attribute("printer-name", ValueTag.NAME, call.printer_id),
        Attribute("printer-info", ValueTag.TEXT, name),
        Attribute("printer-location", ValueTag.TEXT, location),
        Attribute("printer-make-and-model", ValueTag.TEXT, "printcloud Infrastructure Printer"),
        Attribute("printer-uuid", ValueTag.URI, _printer_uuid(call)),
        Attribute("printer-state", ValueTag.ENUM, state),
        Attribute("printer-state-reasons", ValueTag.KEYWORD, reasons),
        Attribute("printer-is-accepting-jobs", ValueTag.BOOLEAN, True),
        Attribute("queued-job-count", ValueTag.INTEGER, queued),
        Attribute("printer-up-time", ValueTag.INTEGER, int(time.time())),
        Attribute("operations-supported", ValueTag.ENUM, operations),
        Attribute("which-jobs-supported", ValueTag.KEYWORD, "fetchable"),
        Attribute("charset-configured", ValueTag.CHARSET, "utf-8"),
        Attribute("charset-supported", ValueTag.CHARSET, ["utf-8", "us-ascii"]),
        Attribute("natural-language-configured", ValueTag.NATURAL_LANGUAGE, "en"),
        Attribute("generated-natural-language-supported", ValueTag.NATURAL_LANGUAGE, "en"),
        Attribute("ipp-versions-supported", ValueTag.KEYWORD, ["1.1", "2.0", "2.1", "2.2"]),
        Attribute("document-format-supported", ValueTag.MIME_MEDIA_TYPE, [PDF, PWG, URF, JPEG]),
        Attribute("color-supported", ValueTag.BOOLEAN, bool(color)),
        Attribute("notify-pull-method-supported", ValueTag.KEYWORD, "ippget"),
        Attribute("notify-events-supported", ValueTag.KEYWORD, list(infra.EVENTS)),
        Attribute("notify-events-default", ValueTag.KEYWORD, list(infra.DEFAULT_EVENTS)),
        Attribute("notify-lease-duration-default", ValueTag.INTEGER, infra.DEFAULT_LEASE),
        Attribute("notify-max-events-supported", ValueTag.INTEGER, len(infra.EVENTS)),
        Attribute("notify-get-interval", ValueTag.INTEGER, GET_INTERVAL),
    ]
    names, _ = select_attributes(
        requested_names(call.message), [a.name for a in attributes], target="printer"
    )
    wanted = set(names)
    return call.answer([Group(GroupTag.PRINTER, [a for a in attributes if a.name in wanted])])


def _printer_uuid(call: InfraCall) -> str:
    key = f"printcloud-infra:{call.tenant_id}/{call.printer_id}"
    return f"urn:uuid:{uuidlib.uuid5(uuidlib.NAMESPACE_URL, key)}"


async def get_jobs(call: InfraCall) -> bytes:
    """RFC 8011 §4.2.6 with PWG 5100.18's `which-jobs` `fetchable` (the only value here:
    an output device lists what it may fetch, e.g. after a restart)."""
    which = call.operation_value("which-jobs", (ValueTag.KEYWORD,), required=False)
    if which is not None and which != "fetchable":
        raise IPPError(
            Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
            f"which-jobs {which!r}: an Infrastructure Printer lists its fetchable jobs",
            request_id=call.message.request_id,
            version=call.message.version,
            unsupported=[Attribute("which-jobs", ValueTag.KEYWORD, str(which))],
        )
    limit = call.operation_value("limit", (ValueTag.INTEGER,), required=False)

    def read(db: Session, *, tenant_id: str, printer_id: str) -> list[dict[str, Any]]:
        printer = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
        device = infra.registered_uuid(printer)
        found = []
        for job in infra.fetchable_jobs(db, tenant_id=tenant_id, printer_id=printer_id):
            number = infra.job_number(
                db, tenant_id=tenant_id, printer_id=printer_id, job_id=job.job_id
            )
            taken = job.state == "printing" and device is not None
            found.append({"number": number, "job": job, "device": device if taken else None})
        return found

    found = await call.db(read)
    if isinstance(limit, int) and limit > 0:
        found = found[:limit]
    groups = []
    for item in found:
        job = item["job"]
        attributes = [
            Attribute("job-id", ValueTag.INTEGER, item["number"]),
            Attribute("job-uuid", ValueTag.URI, _job_uuid(job.job_id)),
            Attribute("job-name", ValueTag.NAME, job.title or "untitled"),
            Attribute("job-originating-user-name", ValueTag.NAME, job.owner),
            Attribute("job-state", ValueTag.ENUM, PROCESSING),
            Attribute("job-state-reasons", ValueTag.KEYWORD, "job-fetchable"),
        ]
        if item["device"]:
            attributes.append(
                Attribute("output-device-uuid-assigned", ValueTag.URI, item["device"])
            )
        names, _ = select_attributes(
            requested_names(call.message, ("job-id", "job-uri")),
            [a.name for a in attributes],
            target="job",
        )
        wanted = set(names)
        groups.append(Group(GroupTag.JOB, [a for a in attributes if a.name in wanted]))
    return call.answer(groups)


# -- the output device ------------------------------------------------------------------


def _device_uuid(call: InfraCall) -> str:
    value = call.operation_value("output-device-uuid", (ValueTag.URI,), required=True)
    text = str(value)
    if not text.lower().startswith("urn:uuid:"):
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "output-device-uuid is a urn:uuid: URI")
    try:
        uuidlib.UUID(text[9:])
    except ValueError as exc:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "output-device-uuid is no UUID") from exc
    return text.lower()


async def _registered(call: InfraCall) -> None:
    """The request's output-device-uuid is the one registered for the printer."""
    wanted = _device_uuid(call)

    def check(db: Session, *, tenant_id: str, printer_id: str) -> str | None:
        printer = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
        return infra.registered_uuid(printer)

    known = await call.db(check)
    if known is None:
        raise call.fail(
            Status.CLIENT_ERROR_NOT_POSSIBLE,
            "the output device is not registered: send Update-Output-Device-Attributes first",
        )
    if known != wanted:
        raise call.fail(
            Status.CLIENT_ERROR_NOT_AUTHORIZED,
            "another output device is registered for this printer",
        )


async def update_output_device_attributes(call: InfraCall) -> bytes:
    uuid = _device_uuid(call)
    reported = [a for g in call.message.groups_of(GroupTag.PRINTER) for a in g]
    try:
        await call.db(capabilities.register, uuid=uuid, attributes=reported)
    except Conflict as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_POSSIBLE, exc.description) from exc
    except capabilities.Refused as exc:
        raise IPPError(
            Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
            exc.text,
            request_id=call.message.request_id,
            version=call.message.version,
            unsupported=[exc.attribute],
        ) from exc
    return call.answer(message=f"{len(reported)} attribute(s) kept")


async def get_output_device_attributes(call: InfraCall) -> bytes:
    await _registered(call)

    def read(db: Session, *, tenant_id: str, printer_id: str) -> list[Attribute]:
        printer = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
        return infra.device_attributes(printer)

    attributes: list[Attribute] = await call.db(read)
    names, _ = select_attributes(
        requested_names(call.message), [a.name for a in attributes], target="printer"
    )
    wanted = set(names)
    return call.answer([Group(GroupTag.PRINTER, [a for a in attributes if a.name in wanted])])


async def deregister_output_device(call: InfraCall) -> bytes:
    await _registered(call)
    await call.db(infra.deregister)
    return call.answer()


# -- subscriptions and notifications (RFC 3995, RFC 3996) ------------------------------


async def create_printer_subscriptions(call: InfraCall) -> bytes:
    templates = call.message.groups_of(GroupTag.SUBSCRIPTION)
    if not templates:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "no subscription template group")

    async def subscribe(events: list[str], template: Group) -> list[Attribute]:
        lease = infra.DEFAULT_LEASE
        lease_attr = template.get("notify-lease-duration")
        if lease_attr is not None and lease_attr.tag == ValueTag.INTEGER:
            lease = int(lease_attr.value)
        try:
            row = await call.db(infra.subscribe, events=events, lease=lease)
        except Conflict as exc:
            raise call.fail(Status.CLIENT_ERROR_TOO_MANY_SUBSCRIPTIONS, exc.description) from exc
        return [
            Attribute("notify-subscription-id", ValueTag.INTEGER, row.subscription_id),
            Attribute("notify-lease-duration", ValueTag.INTEGER, row.lease_seconds),
        ]

    groups, made = await subscription_groups(
        templates, known=infra.EVENTS, default=infra.DEFAULT_EVENTS, subscribe=subscribe
    )
    if not made:
        return call.answer(
            groups,
            status=Status.CLIENT_ERROR_IGNORED_ALL_SUBSCRIPTIONS,
            message="only notify-pull-method ippget, for job-fetchable, job-state-changed "
            "and printer-state-changed",
        )
    return call.answer(groups)


async def cancel_subscription(call: InfraCall) -> bytes:
    number = call.operation_value("notify-subscription-id", (ValueTag.INTEGER,), required=True)
    try:
        await call.db(infra.cancel_subscription, subscription_id=int(number))
    except NotFound as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc
    return call.answer()


def _integers(call: InfraCall, name: str) -> list[int]:
    attribute = call.message.get(GroupTag.OPERATION, name)
    if attribute is None:
        return []
    if attribute.tags != [ValueTag.INTEGER] * len(attribute.values):
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, f"{name} is 1setOf integer")
    return [int(v) for v in attribute.values]


async def get_notifications(call: InfraCall) -> bytes:
    """RFC 3996 Get-Notifications: the events of the given subscriptions from the given
    sequence numbers; with notify-wait, held until there is one (at most `WAIT_LIMIT`
    seconds)."""
    ids = _integers(call, "notify-subscription-ids")
    if not ids:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "notify-subscription-ids is required")
    if len(ids) > infra.MAX_SUBSCRIPTIONS:
        raise call.fail(Status.CLIENT_ERROR_BAD_REQUEST, "too many notify-subscription-ids")
    numbers = _integers(call, "notify-sequence-numbers")
    wait = call.message.value(GroupTag.OPERATION, "notify-wait", False) is True

    def collect(db: Session, *, tenant_id: str, printer_id: str) -> list[dict[str, Any]]:
        found = []
        for index, number in enumerate(ids):
            row = infra.subscription(
                db, tenant_id=tenant_id, printer_id=printer_id, subscription_id=number, lock=True
            )
            infra.refresh(db, row)
            infra.renew(row)
            start = numbers[index] if index < len(numbers) else 1
            found += [{**e, "subscription": number} for e in row.recent if e["sequence"] >= start]
        return found

    async def look() -> list[dict[str, Any]]:
        try:
            return await call.db(collect)
        except NotFound as exc:
            raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc

    events = await changes.until_jobs_move(
        look, wait=wait, limit=WAIT_LIMIT, every=_LOOK, soonest=_SOONEST
    )
    head = response(call.message, OK)
    operation = head.groups[0]
    operation.add(Attribute("printer-up-time", ValueTag.INTEGER, int(time.time())))
    # ask again at once after a long poll; later when the device did not want to wait
    operation.add(Attribute("notify-get-interval", ValueTag.INTEGER, 0 if wait else GET_INTERVAL))
    head.groups.extend(_event_group(call, e) for e in events)
    return encode(head)


def _event_group(call: InfraCall, event: dict[str, Any]) -> Group:
    """RFC 3995: one event notification's attributes."""
    if "job_number" not in event:  # printer-state-changed
        reasons = list(event["reasons"])
        return Group(
            GroupTag.EVENT_NOTIFICATION,
            [
                Attribute("notify-subscription-id", ValueTag.INTEGER, event["subscription"]),
                Attribute("notify-sequence-number", ValueTag.INTEGER, event["sequence"]),
                Attribute("notify-subscribed-event", ValueTag.KEYWORD, event["event"]),
                Attribute("notify-charset", ValueTag.CHARSET, "utf-8"),
                Attribute("notify-natural-language", ValueTag.NATURAL_LANGUAGE, "en"),
                Attribute("notify-text", ValueTag.TEXT, f"printer: {', '.join(reasons)}"),
                Attribute("notify-printer-uri", ValueTag.URI, call.printer_uri),
                Attribute("printer-up-time", ValueTag.INTEGER, int(time.time())),
                Attribute("printer-state", ValueTag.ENUM, event["printer_state"]),
                Attribute("printer-state-reasons", ValueTag.KEYWORD, reasons),
                Attribute("printer-is-accepting-jobs", ValueTag.BOOLEAN, True),
            ],
        )
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
            Attribute("notify-printer-uri", ValueTag.URI, call.printer_uri),
            Attribute("printer-up-time", ValueTag.INTEGER, int(time.time())),
            Attribute("notify-job-id", ValueTag.INTEGER, event["job_number"]),
            Attribute("job-id", ValueTag.INTEGER, event["job_number"]),
            Attribute("job-state", ValueTag.ENUM, event["job_state"]),
            Attribute("job-state-reasons", ValueTag.KEYWORD, list(event["reasons"])),
        ],
    )


# -- jobs and documents --------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    number: int
    job_id: str
    title: str
    owner: str
    state: str
    options: dict[str, Any]
    color: bool
    pages: int
    fetchable: bool
    #: Its JPEG pages are made (S108); a pass-through job may be fetched before.
    converted: bool
    token: str | None
    data_key: str | None
    #: The printer attributes its output device registered (what raster it reads).
    device: list[Attribute]


def _job_number(call: InfraCall) -> int:
    return int(call.operation_value("job-id", (ValueTag.INTEGER,), required=True))


async def _job(call: InfraCall) -> _Job:
    number = _job_number(call)

    def read(db: Session, *, tenant_id: str, printer_id: str) -> _Job:
        job = infra.job_by_number(db, tenant_id=tenant_id, printer_id=printer_id, number=number)
        printer = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
        return _Job(
            number=number,
            job_id=job.job_id,
            title=job.title,
            owner=job.owner,
            state=job.state,
            options=dict(job.options),
            color=bool(job.options.get("color", True)) and printer.color,
            pages=job.page_count or 0,
            fetchable=infra.fetchable(job),
            converted=bool(job.manifest_url),
            token=call.rt.box.open(job.token_sealed) if job.token_sealed else None,
            data_key=job.data_key,
            device=infra.device_attributes(printer),
        )

    try:
        return await call.db(read)
    except NotFound as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc


def _not_fetchable(call: InfraCall, job: _Job) -> IPPError:
    return call.fail(
        Status.CLIENT_ERROR_NOT_FETCHABLE,
        f"job {job.number} is not fetchable ({job.state}): it is fetchable once converted "
        "and released, until it ends",
    )


def _job_uuid(job_id: str) -> str:
    return f"urn:uuid:{uuidlib.uuid5(uuidlib.NAMESPACE_URL, 'printcloud-job:' + job_id)}"


async def fetch_job(call: InfraCall) -> bytes:
    await _registered(call)
    job = await _job(call)
    if not job.fetchable:
        raise _not_fetchable(call, job)
    options = job.options
    media = MEDIA_SIZES.get(str(options.get("media", "A4")), MEDIA_SIZES["A4"])[0]
    dpi = int(options.get("dpi", 300))
    state = PROCESSING
    attributes = [
        Attribute("job-id", ValueTag.INTEGER, job.number),
        Attribute("job-uuid", ValueTag.URI, _job_uuid(job.job_id)),
        Attribute("job-name", ValueTag.NAME, job.title or "untitled"),
        Attribute("job-originating-user-name", ValueTag.NAME, job.owner),
        Attribute("job-state", ValueTag.ENUM, state),
        Attribute("job-state-reasons", ValueTag.KEYWORD, "job-fetchable"),
        Attribute("number-of-documents", ValueTag.INTEGER, 1),
        Attribute("job-impressions", ValueTag.INTEGER, job.pages),
        Attribute("copies", ValueTag.INTEGER, int(options.get("copies", 1))),
        Attribute(
            "sides",
            ValueTag.KEYWORD,
            "two-sided-long-edge" if options.get("duplex") else "one-sided",
        ),
        Attribute("media", ValueTag.KEYWORD, media),
        Attribute("print-color-mode", ValueTag.KEYWORD, "color" if job.color else "monochrome"),
        Attribute("printer-resolution", ValueTag.RESOLUTION, Resolution(dpi, dpi)),
        Attribute("document-format-supplied", ValueTag.MIME_MEDIA_TYPE, PDF),
    ]
    return call.answer([Group(GroupTag.JOB, attributes)])


def _fetch_status(call: InfraCall) -> int | None:
    value = call.operation_value("fetch-status-code", (ValueTag.ENUM,), required=False)
    return None if value is None else int(value)


async def acknowledge_job(call: InfraCall) -> bytes:
    """Acknowledge-Job: the device took the job (the device API's `started`); with an error
    fetch-status-code it did not, and the job stays fetchable."""
    await _registered(call)
    job = await _job(call)
    if not job.fetchable:
        raise _not_fetchable(call, job)
    status = _fetch_status(call)
    if status is not None and status >= 0x0400:
        return call.answer(message=f"job {job.number} stays fetchable")

    def start(db: Session, *, tenant_id: str, printer_id: str) -> str:
        row = service.job_started(
            db,
            tenant_id=tenant_id,
            client_id=call.principal.client_id,
            job_id=job.job_id,
            printer_id=printer_id,
        )
        return row.state

    try:
        await call.db(start)
    except Conflict as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_FETCHABLE, exc.description) from exc
    return call.answer()


def _accepted_formats(call: InfraCall) -> list[str]:
    attribute = call.message.get(GroupTag.OPERATION, "document-format-accepted")
    if attribute is None:
        return [PDF]
    return [str(v).lower() for v in attribute.values if isinstance(v, str)]


def _document_number(call: InfraCall) -> None:
    number = call.operation_value("document-number", (ValueTag.INTEGER,), required=True)
    if number != 1:
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, "a job has one document, number 1")


async def fetch_document(call: InfraCall) -> bytes | Response:
    """Fetch-Document: document 1, in a format the device accepts, while the job's conversion
    token lives (FIG. 10): the submitted PDF, PWG raster or URF made by a conversion
    worker, or a one-page job's JPEG page. The document follows the attributes as it
    is read (a PDF may be as large as `PRINTCLOUD_MAX_PRINT_BYTES`, raster larger: it
    is never held in memory whole)."""
    await _registered(call)
    _document_number(call)
    job = await _job(call)
    if not job.fetchable or job.token is None:
        raise _not_fetchable(call, job)
    accepted = _accepted_formats(call)
    # In printcloud's order of preference, whatever the device's: the submitted PDF
    # (no work here, the printer's own rendering), then raster made from the pages, in
    # a type the printer registered it reads (`raster_stream.choose`), then a one-page
    # job's JPEG page; of a registered printer, only the formats its device takes.
    dpi = int(job.options.get("dpi") or 300)
    choices = {
        fmt: raster_stream.choose(fmt, color=job.color, dpi=dpi, attributes=job.device)
        for fmt in (PWG, URF)
    }
    offered = [PDF] + [f for f in (PWG, URF) if choices[f]] + ([JPEG] if job.pages == 1 else [])
    takes = await call.db(capabilities.device_formats)
    if takes is not None:
        offered = [f for f in offered if f in takes]
    chosen = next((f for f in offered if f in accepted), None)
    if chosen is None:
        raise call.fail(
            Status.CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED,
            f"this job is offered as {', '.join(offered) or 'nothing the device takes'}",
        )
    if chosen != PDF and not job.converted:
        job = await _pages_made(call, job)
    choice = choices.get(chosen)
    document = Group(
        GroupTag.DOCUMENT,
        [
            Attribute("document-number", ValueTag.INTEGER, 1),
            Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, chosen),
            Attribute("compression", ValueTag.KEYWORD, "none"),
            Attribute("document-name", ValueTag.NAME, job.title or "untitled"),
            Attribute("last-document", ValueTag.BOOLEAN, True),
        ],
    )
    if choice is not None:
        streamed = await run_in_threadpool(partial(_open_raster, call, job, choice))
        head = call.answer([document])
        # Page by page as a conversion worker encodes them (one page's pixels in memory
        # there, a chunk here); the length is not known before the last page (chunked).
        return StreamingResponse(
            _relay(head, streamed),
            media_type=IPP,
            headers={"X-Printcloud-Raster-Worker": streamed.worker},
        )
    source, size = await run_in_threadpool(partial(_open_document, call, job, chosen))
    head = call.answer([document])

    def body() -> Iterator[bytes]:
        with source:
            yield head
            while chunk := source.read(_CHUNK):
                yield chunk

    return StreamingResponse(
        body(), media_type=IPP, headers={"Content-Length": str(len(head) + size)}
    )


async def _pages_made(call: InfraCall, job: _Job) -> _Job:
    """A pass-through job (fetchable before its JPEG pages are made, `pipeline.passes_pdf`)
    whose device asks for raster or JPEG after all: its conversion runs beside the
    printing (`pipeline.convert_beside`); wait for it, at most `WAIT_LIMIT` seconds
    (`server-error-busy` after that: ask again), or refuse when it failed."""

    def failure(db: Session, *, tenant_id: str, printer_id: str) -> str | None:
        ended = [
            e.detail
            for e in service.events(db, tenant_id=tenant_id, job_id=job.job_id)
            if e.step == "S108"
        ]
        return ended[-1] if ended else None

    async def look() -> list[_Job]:
        now = await _job(call)
        if now.converted:
            return [now]
        if not now.fetchable:
            raise _not_fetchable(call, now)
        failed = await call.db(failure)
        if failed is not None:
            raise call.fail(
                Status.CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED,
                f"this job's pages could not be made ({failed[:200]}): it is offered as {PDF}",
            )
        return []

    found = await changes.until_jobs_move(
        look, wait=True, limit=WAIT_LIMIT, every=_LOOK, soonest=_SOONEST
    )
    if not found:
        raise call.fail(
            Status.SERVER_ERROR_BUSY,
            f"the pages of job {job.number} are still being converted: ask again shortly",
        )
    return found[0]


def _live_session(call: InfraCall, job: _Job) -> tuple[PrintingRuntime, Any]:
    """The job's session at this printer, its conversion token checked (FIG. 10)."""
    rt = call.rt
    try:
        session = rt.sessions.require(
            tenant_id=call.tenant_id, job_id=job.job_id, printer_id=call.printer_id
        )
        rt.sessions.check_token(session, job.token or "")
    except (NotFound, Unauthorized) as exc:
        raise call.fail(
            Status.CLIENT_ERROR_NOT_FETCHABLE, f"the job's converted data is gone: {exc}"
        ) from exc
    return rt, session


def _open_raster(call: InfraCall, job: _Job, choice: raster_stream.Choice) -> Streamed:
    """Ask a conversion worker (any: the balancer's choice) for the job's raster; its
    answer's head is read here, so a refusal is an IPP answer, not a broken stream."""
    rt, _ = _live_session(call, job)
    assert rt.balancer is not None
    media_key = str(job.options.get("media", "A4"))
    media, width, height = MEDIA_SIZES.get(media_key, MEDIA_SIZES["A4"])
    body = raster_stream.RasterRequest(
        tenant_id=call.tenant_id,
        token=job.token or "",
        format=choice.format,
        type=choice.type,
        dpi=choice.dpi,
        color=job.color,
        media=media,
        media_width=width,
        media_height=height,
        sides="two-sided-long-edge" if job.options.get("duplex") else "one-sided",
        sheet_back=choice.sheet_back,
    )
    path = f"/sessions/{quote(job.job_id, safe='')}/{quote(call.printer_id, safe='')}/raster"
    try:
        streamed = rt.balancer.stream("POST", path, json=body.model_dump())
    except Unavailable as exc:
        raise call.fail(
            Status.SERVER_ERROR_SERVICE_UNAVAILABLE, f"no conversion worker answered: {exc}"
        ) from exc
    status = streamed.response.status_code
    if status == 200:
        return streamed
    try:
        streamed.response.read()
        reason = error_text(streamed.response, limit=300)
    except httpx.HTTPError:
        reason = f"HTTP {status}"
    finally:
        streamed.close(ok=status < 500)
    if status in (401, 404):
        raise call.fail(Status.CLIENT_ERROR_NOT_FETCHABLE, f"the job's converted data: {reason}")
    log.warning(
        "a conversion worker refused a job's raster",
        extra={"fields": {"job": job.job_id, "status": status, "reason": reason}},
    )
    raise call.fail(
        Status.SERVER_ERROR_INTERNAL_ERROR, f"the job's raster could not be made: {reason}"
    )


def _relay(head: bytes, streamed: Streamed) -> Iterator[bytes]:
    """The answer's head, then the worker's document as it comes. A worker lost midway
    raises, so the device's answer ends without its last chunk: the device sees a
    broken transfer (never a short document that looks whole), and the job, untouched,
    stays fetchable."""
    ok = False
    try:
        yield head
        yield from streamed.iter_bytes(_CHUNK)
        ok = True
    except WorkerLost:
        log.warning(
            "a conversion worker was lost while it sent a job's raster",
            extra={"fields": {"worker": streamed.worker}},
        )
        raise
    finally:
        streamed.close(ok=ok)


def _open_document(call: InfraCall, job: _Job, chosen: str) -> tuple[BinaryIO, int]:
    """The document's file, opened (a completion that deletes it meanwhile leaves the
    open file readable to its end), and its size."""
    rt, session = _live_session(call, job)
    key: str | None = job.data_key
    if chosen != PDF:
        with rt.db.sessions() as db:
            converted = db.get(ConvertedDataRow, session.converted_id or "")
            ours = converted is not None and converted.tenant_id == call.tenant_id
            key = f"{converted.blob_prefix}/page-0001.jpg" if ours and converted else None
    try:
        if key is None:
            raise FileNotFoundError(job.job_id)
        source = rt.blobs.path(key).open("rb")
    except FileNotFoundError as exc:
        raise call.fail(
            Status.CLIENT_ERROR_NOT_FETCHABLE, "the job's document is no longer stored"
        ) from exc
    return source, os.fstat(source.fileno()).st_size


async def acknowledge_document(call: InfraCall) -> bytes:
    await _registered(call)
    _document_number(call)
    job = await _job(call)
    if not job.fetchable:
        raise _not_fetchable(call, job)
    return call.answer()


async def update_document_status(call: InfraCall) -> bytes:
    """Update-Document-Status: the document's progress, taken note of; the job's state
    follows Update-Job-Status."""
    await _registered(call)
    _document_number(call)
    await _job(call)
    return call.answer()


def _job_value(call: InfraCall, name: str) -> Attribute | None:
    group = call.message.group(GroupTag.JOB)
    return group.get(name) if group is not None else None


def fault_of(reasons: list[str]) -> str:
    """The device API's fault reason for `output-device-job-state-reasons` (the first
    known one; -error/-warning/-report suffixes ignored), else engine_error."""
    for reason in reasons:
        base = reason.removesuffix("-error").removesuffix("-warning").removesuffix("-report")
        if base in FAULTS:
            return FAULTS[base]
    return "engine_error"


async def update_job_status(call: InfraCall) -> bytes:
    """Update-Job-Status: the device's job state. completed → printed; aborted → printer_cancelled
    with the fault its reasons name; canceled → printer_cancelled: user_cancel (unless
    a reason names another fault); processing → started. Each with
    job-impressions-completed as the pages printed."""
    await _registered(call)
    job = await _job(call)
    state_attr = _job_value(call, "output-device-job-state")
    if state_attr is None or state_attr.tag != ValueTag.ENUM:
        raise call.fail(
            Status.CLIENT_ERROR_BAD_REQUEST, "output-device-job-state (enum) is required"
        )
    state = int(state_attr.value)
    if not 3 <= state <= 9:  # RFC 8011 §5.3.7 job-state values
        raise call.fail(
            Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
            f"output-device-job-state {state} is no job-state",
        )
    reasons_attr = _job_value(call, "output-device-job-state-reasons")
    reasons = [str(v) for v in reasons_attr.values] if reasons_attr is not None else []
    message_attr = _job_value(call, "output-device-job-state-message")
    impressions_attr = _job_value(call, "job-impressions-completed")
    pages = 0
    if impressions_attr is not None and impressions_attr.tag == ValueTag.INTEGER:
        pages = max(0, min(int(impressions_attr.value), 100_000))
    if state in (PROCESSING, PROCESSING_STOPPED):
        if job.state == "waiting_for_printer":
            return await acknowledge_job(call)
        return call.answer()
    if state not in (COMPLETED, ABORTED, CANCELED):
        return call.answer()
    if job.state not in service.PRINTABLE and job.state not in service.FINAL:
        # held, or not yet converted: the device cannot have printed it
        raise call.fail(
            Status.CLIENT_ERROR_NOT_POSSIBLE,
            f"job {job.number} is not at the output device ({job.state})",
        )
    if state == COMPLETED:
        result = DeviceResult(printer_id=call.printer_id, outcome="printed", pages_printed=pages)
    else:
        fault = fault_of(reasons)
        if state == CANCELED and fault == "engine_error":
            fault = "user_cancel"
        text = str(message_attr.value)[:1000] if message_attr is not None else ""
        result = DeviceResult(
            printer_id=call.printer_id,
            outcome="cancelled",
            reason=fault,
            pages_printed=pages,
            message=text or f"{fault} ({', '.join(reasons) or 'no reason given'})",
        )
    report = partial(jobs.report_result, call.rt, call.principal, job_id=job.job_id, result=result)
    await run_in_threadpool(report)
    return call.answer()


HANDLERS: dict[int, Callable[[InfraCall], Awaitable[bytes | Response]]] = {
    Operation.GET_PRINTER_ATTRIBUTES: get_printer_attributes,
    Operation.GET_JOBS: get_jobs,
    Operation.UPDATE_OUTPUT_DEVICE_ATTRIBUTES: update_output_device_attributes,
    Operation.GET_OUTPUT_DEVICE_ATTRIBUTES: get_output_device_attributes,
    Operation.DEREGISTER_OUTPUT_DEVICE: deregister_output_device,
    Operation.CREATE_PRINTER_SUBSCRIPTIONS: create_printer_subscriptions,
    Operation.GET_NOTIFICATIONS: get_notifications,
    Operation.CANCEL_SUBSCRIPTION: cancel_subscription,
    Operation.FETCH_JOB: fetch_job,
    Operation.ACKNOWLEDGE_JOB: acknowledge_job,
    Operation.FETCH_DOCUMENT: fetch_document,
    Operation.ACKNOWLEDGE_DOCUMENT: acknowledge_document,
    Operation.UPDATE_DOCUMENT_STATUS: update_document_status,
    Operation.UPDATE_JOB_STATUS: update_job_status,
}
