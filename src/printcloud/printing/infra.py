"""A tenant's printers as IPP INFRA output devices (issue 15, PWG 5100.18): the database
rules behind the Infrastructure Printer's operations (`infra_operations.py`).

- registration (Update-Output-Device-Attributes, Deregister-Output-Device):
  the printer's `output-device-uuid` and the printer attributes its device reported,
  kept on the printer (`PrinterRow.infra`) as their IPP encoding, so every syntax
  (collections, resolutions, ranges) comes back as it was sent;
- job-ids (Fetch-Job): a print job gets an integer job-id for INFRA the first
  time a printer hears of it (`job_number`); its state stays the print job's, moved
  by the same service functions the device API calls;
- printer subscriptions (RFC 3995, Create-Printer-Subscriptions) with the
  `ippget` pull method (RFC 3996): `job-fetchable` and `job-state-changed` events are
  made when the device asks for them (`refresh`), by comparing each of the printer's
  jobs with the state it had at its last event: nothing in the job pipeline has to
  know that subscriptions exist. `printer-state-changed` compares the printer's
  `printer-state-reasons` (`printer_state`: `identify-printer-requested` while an
  Identify-Printer request waits) the same way. The newest `KEPT_EVENTS` events are kept per
  subscription, for a device that asks again from an earlier sequence number.

A job is fetchable (`fetchable`) in the states in which the device API hands it to
its printer (`service.PRINTABLE`), once converted, or once downloaded when its printer
takes the PDF as it is (PDF pass-through): held or not yet converted jobs are not.
Every query filters on the tenant and the printer.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from printcloud.core.db import utcnow
from printcloud.core.errors import Conflict, NotFound
from printcloud.ipp.encoding import decode, encode
from printcloud.ipp.message import Attribute, Group, GroupTag, Message, ValueTag

from . import identify, service
from .ipp_states import ipp_state
from .models import InfraJobRow, InfraSubscriptionRow, PrinterRow, PrintJobRow

#: RFC 3995 notify-lease-duration: the default and the most granted (seconds).
DEFAULT_LEASE = 3600
MAX_LEASE = 86400
#: The events of a subscription kept for Get-Notifications, newest last.
KEPT_EVENTS = 100
#: Subscriptions per printer at most (client-error-too-many-subscriptions beyond).
MAX_SUBSCRIPTIONS = 20
EVENTS = ("job-fetchable", "job-state-changed", "printer-state-changed")
#: What a subscription without `notify-events` gets (`notify-events-default`).
DEFAULT_EVENTS = ("job-fetchable", "job-state-changed")
#: `seen`'s key for the printer's state reasons at its last printer-state-changed event.
PRINTER_SEEN = "printer:"
#: The printer's attributes a device reports, at most (encoded octets).
MAX_ATTRIBUTE_BYTES = 256 * 1024
#: Where each printer's Infrastructure Printer is (`infra_routes.py`).
INFRA_PATH = "/printing/ipp/infra"


def infra_uri(public_url: str, *, tenant_id: str, printer_id: str) -> str:
    """The printer's Infrastructure Printer URI (ipp://, or ipps:// behind TLS) under the
    deployment's public URL; the port is always written (IPP's default is 631)."""
    parts = urlsplit(public_url)
    scheme = "ipps" if parts.scheme == "https" else "ipp"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    base = parts.path.rstrip("/")
    tail = f"{quote(tenant_id, safe='')}/{quote(printer_id, safe='')}"
    return f"{scheme}://{host}:{port}{base}{INFRA_PATH}/{tail}"


def fetchable_jobs(db: Session, *, tenant_id: str, printer_id: str) -> list[PrintJobRow]:
    """The printer's fetchable jobs, oldest first (Get-Jobs which-jobs=fetchable)."""
    rows = db.scalars(
        select(PrintJobRow)
        .where(
            PrintJobRow.tenant_id == tenant_id,
            PrintJobRow.printer_id == printer_id,
            PrintJobRow.state.in_(service.PRINTABLE),
        )
        .order_by(PrintJobRow.created_at)
        .limit(500)
    ).all()
    return [r for r in rows if fetchable(r)]


def fetchable(job: PrintJobRow) -> bool:
    """A job its printer may fetch: with its conversion token, and waiting for the
    printer or printing (fetched again after a restart). A job gets there by its print
    request (S109), which follows its conversion (S108), or for a printer that takes the
    PDF as it is, its download (S107: PDF pass-through, `pipeline.passes_pdf`)."""
    return job.state in service.PRINTABLE and job.token_sealed is not None


# -- registration -------------------------------------------------------------------------


def registered_uuid(printer: PrinterRow) -> str | None:
    return str(printer.infra["uuid"]) if printer.infra else None


def device_attributes(printer: PrinterRow) -> list[Attribute]:
    """The printer attributes the device reported, in the order they were set."""
    if not printer.infra or not printer.infra.get("attributes"):
        return []
    group = decode(base64.b64decode(printer.infra["attributes"])).group(GroupTag.PRINTER)
    return list(group) if group is not None else []


def register(
    db: Session,
    *,
    tenant_id: str,
    printer_id: str,
    uuid: str,
    attributes: list[Attribute],
) -> PrinterRow:
    """Update-Output-Device-Attributes: the device with `uuid` is the printer's; its
    reported attributes replace the ones of the same name (`delete-attribute` removes
    one). Another device already registered for the printer: Conflict (it deregisters
    first)."""
    printer = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
    known = registered_uuid(printer)
    if known is not None and known != uuid:
        raise Conflict(
            f"printer {printer_id!r} is registered to output device {known}; "
            "deregister it first (Deregister-Output-Device)"
        )
    kept = {a.name: a for a in device_attributes(printer) if known == uuid}
    for attribute in attributes:
        if attribute.tag == ValueTag.DELETE_ATTRIBUTE:
            kept.pop(attribute.name, None)
        else:
            kept[attribute.name] = attribute
    encoded = encode(Message(0, 1, [Group(GroupTag.PRINTER, list(kept.values()))]))
    if len(encoded) > MAX_ATTRIBUTE_BYTES:
        raise Conflict(f"the output device's attributes exceed {MAX_ATTRIBUTE_BYTES} octets")
    printer.infra = {
        "uuid": uuid,
        "attributes": base64.b64encode(encoded).decode("ascii"),
        "updated_at": utcnow().isoformat(),
    }
    printer.last_seen_at = utcnow()
    return printer


def deregister(db: Session, *, tenant_id: str, printer_id: str) -> None:
    """Deregister-Output-Device: forget the device's registration and end its subscriptions."""
    printer = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
    printer.infra = None
    for row in _subscriptions(db, tenant_id=tenant_id, printer_id=printer_id):
        db.delete(row)


# -- job-ids ------------------------------------------------------------------------------


def job_number(db: Session, *, tenant_id: str, printer_id: str, job_id: str) -> int:
    """The job's INFRA job-id, made the first time its printer hears of it."""
    found = db.scalar(select(InfraJobRow.job_number).where(InfraJobRow.job_id == job_id))
    if found is not None:
        return int(found)
    row = InfraJobRow(tenant_id=tenant_id, printer_id=printer_id, job_id=job_id)
    try:
        with db.begin_nested():
            db.add(row)
    except IntegrityError:  # another request made it meanwhile
        made = db.scalar(select(InfraJobRow.job_number).where(InfraJobRow.job_id == job_id))
        if made is None:
            raise
        return int(made)
    return row.job_number


def job_by_number(db: Session, *, tenant_id: str, printer_id: str, number: int) -> PrintJobRow:
    """The print job with INFRA job-id `number`, if it is this printer's (of this tenant)."""
    row = db.get(InfraJobRow, number) if 0 < number <= 0x7FFFFFFF else None
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no job {number} for this printer")
    job = db.get(PrintJobRow, row.job_id)
    if job is None or job.tenant_id != tenant_id or job.printer_id != printer_id:
        # a follow-me job released at another printer is that printer's now
        raise NotFound(f"no job {number} for this printer")
    return job


# -- subscriptions (RFC 3995, ippget RFC 3996) -------------------------------------------


def _subscriptions(db: Session, *, tenant_id: str, printer_id: str) -> list[InfraSubscriptionRow]:
    return list(
        db.scalars(
            select(InfraSubscriptionRow).where(
                InfraSubscriptionRow.tenant_id == tenant_id,
                InfraSubscriptionRow.printer_id == printer_id,
            )
        )
    )


def subscribe(
    db: Session, *, tenant_id: str, printer_id: str, events: list[str], lease: int
) -> InfraSubscriptionRow:
    """A printer subscription for `events` (of `EVENTS`), leased for `lease` seconds
    (0: the longest granted). Expired subscriptions of the printer go first."""
    service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
    now = utcnow()
    alive = []
    for row in _subscriptions(db, tenant_id=tenant_id, printer_id=printer_id):
        if row.expires_at <= now:
            db.delete(row)
        else:
            alive.append(row)
    if len(alive) >= MAX_SUBSCRIPTIONS:
        raise Conflict(f"a printer has at most {MAX_SUBSCRIPTIONS} subscriptions")
    granted = MAX_LEASE if lease <= 0 else min(lease, MAX_LEASE)
    row = InfraSubscriptionRow(
        tenant_id=tenant_id,
        printer_id=printer_id,
        events=list(events),
        lease_seconds=granted,
        expires_at=now + timedelta(seconds=granted),
        sequence=0,
        seen={},
        recent=[],
    )
    db.add(row)
    db.flush()
    return row


def subscription(
    db: Session, *, tenant_id: str, printer_id: str, subscription_id: int, lock: bool = False
) -> InfraSubscriptionRow:
    """The printer's live subscription `subscription_id`, or NotFound."""
    query = select(InfraSubscriptionRow).where(
        InfraSubscriptionRow.subscription_id == subscription_id,
        InfraSubscriptionRow.tenant_id == tenant_id,
        InfraSubscriptionRow.printer_id == printer_id,
    )
    row = db.scalar(query.with_for_update() if lock else query)
    if row is None or row.expires_at <= utcnow():
        raise NotFound(f"no subscription {subscription_id}")
    return row


def cancel_subscription(
    db: Session, *, tenant_id: str, printer_id: str, subscription_id: int
) -> None:
    db.delete(
        subscription(
            db, tenant_id=tenant_id, printer_id=printer_id, subscription_id=subscription_id
        )
    )


def refresh(db: Session, row: InfraSubscriptionRow) -> None:
    """Make the subscription's new events: each job of its printer whose state moved since
    its last event (`job-state-changed`), and that became fetchable (`job-fetchable`).
    A new subscription hears of the jobs fetchable now, and of the state of each job
    made since it was."""
    seen = dict(row.seen)
    jobs = db.scalars(
        select(PrintJobRow)
        .where(
            PrintJobRow.tenant_id == row.tenant_id,
            PrintJobRow.printer_id == row.printer_id,
            or_(PrintJobRow.state.in_(service.ACTIVE), PrintJobRow.job_id.in_(list(seen))),
        )
        .order_by(PrintJobRow.created_at)
        .limit(500)
    ).all()
    # a job no longer there (its history dropped) is forgotten with it
    seen = {k: v for k, v in seen.items() if k in {j.job_id for j in jobs} or k == PRINTER_SEEN}
    events: list[dict[str, Any]] = []
    now = utcnow().isoformat()
    for job in jobs:
        before = seen.get(job.job_id)
        if before == job.state:
            continue
        seen[job.job_id] = job.state
        if job.state in service.FINAL:
            seen.pop(job.job_id)  # nothing more will happen to it
        wanted = []
        # a job made since the subscription: its first state is a change too
        changed = before is not None or job.created_at >= row.created_at
        if changed and "job-state-changed" in row.events:
            wanted.append("job-state-changed")
        if fetchable(job) and job.state == "waiting_for_printer" and "job-fetchable" in row.events:
            wanted.append("job-fetchable")
        if not wanted:
            continue
        number = job_number(
            db, tenant_id=row.tenant_id, printer_id=row.printer_id, job_id=job.job_id
        )
        state = ipp_state(job.state, job.reason)
        for event in wanted:
            row.sequence += 1
            events.append(
                {
                    "sequence": row.sequence,
                    "event": event,
                    "job_number": number,
                    "job_state": state.state,
                    "reasons": list(state.reasons),
                    "title": job.title,
                    "at": now,
                }
            )
    if "printer-state-changed" in row.events:
        printer_now, reasons = printer_state(db, tenant_id=row.tenant_id, printer_id=row.printer_id)
        # a new subscription hears of the printer only when it has something to say
        if ",".join(reasons) != seen.get(PRINTER_SEEN, "none"):
            seen[PRINTER_SEEN] = ",".join(reasons)
            row.sequence += 1
            events.append(
                {
                    "sequence": row.sequence,
                    "event": "printer-state-changed",
                    "printer_state": printer_now,
                    "reasons": reasons,
                    "at": now,
                }
            )
    row.seen = seen
    if events:
        row.recent = [*row.recent, *events][-KEPT_EVENTS:]


def printer_state(db: Session, *, tenant_id: str, printer_id: str) -> tuple[int, list[str]]:
    """The Infrastructure Printer's `printer-state` (idle 3, processing 4) and
    `printer-state-reasons`: `identify-printer-requested` while an Identify-Printer
    request waits for the output device's Acknowledge-Identify-Printer, else `none`."""
    printing = db.scalar(
        select(PrintJobRow.job_id)
        .where(
            PrintJobRow.tenant_id == tenant_id,
            PrintJobRow.printer_id == printer_id,
            PrintJobRow.state == "printing",
        )
        .limit(1)
    )
    waiting = identify.waiting(db, tenant_id=tenant_id, printer_id=printer_id)
    return (4 if printing else 3), (["identify-printer-requested"] if waiting else ["none"])


def renew(row: InfraSubscriptionRow) -> None:
    """ippget: a Get-Notifications renews the lease (RFC 3996)."""
    row.expires_at = utcnow() + timedelta(seconds=row.lease_seconds)
