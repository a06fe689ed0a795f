"""The database side of IPP queues (issue 14): a queue's facts and printer status, and
its IPP jobs (`IppJobRow`) with their print jobs. Every function takes the tenant
explicitly; the IPP handlers (`ipp_operations.py`) call them from a worker thread.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from printcloud.core.db import utcnow
from printcloud.core.errors import NotFound

from . import capabilities, queues, service
from .ipp_jobs import JobView, view
from .ipp_printer import MULTIPLE_OPERATION_TIME_OUT, QueueFacts
from .ipp_states import CANCELED
from .models import IppJobRow, PrinterRow, PrintJobRow, QueueRow

#: `which-jobs` (RFC 8011 §4.2.6.1, PWG 5100.7) → IPP job-state values.
WHICH_JOBS: dict[str, tuple[int, ...]] = {
    "not-completed": (3, 4, 5, 6),
    "completed": (7, 8, 9),
    "all": (3, 4, 5, 6, 7, 8, 9),
    "aborted": (8,),
    "canceled": (7,),
    "pending": (3,),
    "pending-held": (4,),
    "processing": (5,),
    "processing-stopped": (6,),
}


def facts(
    db: Session,
    *,
    tenant_id: str,
    name: str,
    public_url: str,
    ipp_url: str,
    formats: tuple[str, ...],
) -> tuple[QueueRow, QueueFacts]:
    """The queue and what its attributes depend on; NotFound for another tenant's."""
    row = queues.get_queue(db, tenant_id=tenant_id, name=name)
    device: capabilities.Capabilities | None = None
    changed = row.created_at
    if row.printer_id is not None:
        printer = service.get_printer(db, tenant_id=tenant_id, printer_id=row.printer_id)
        color = printer.color
        # what its INFRA output device registered (docs/infra.md): the queue's too
        device = capabilities.of(printer)
        if device is not None:
            changed = max(changed, capabilities.registered_at(printer) or changed)
    else:
        color = bool(
            db.scalar(
                select(func.count())
                .select_from(PrinterRow)
                .where(PrinterRow.tenant_id == tenant_id, PrinterRow.color.is_(True))
            )
        )
    return row, QueueFacts(
        tenant_id=tenant_id,
        name=row.name,
        uuid=row.uuid,
        info=row.info,
        location=row.location,
        printer_id=row.printer_id,
        color=color,
        uri=queues.queue_uri(ipp_url, tenant_id=tenant_id, name=row.name),
        more_info=f"{public_url}/printing",
        formats=formats,
        config_changed=changed,
        device=device,
    )


def busy_jobs(db: Session, *, tenant_id: str, queue: str) -> tuple[int, int]:
    """(jobs of the queue not finished, of them printing now) for printer-state."""
    rows = db.execute(
        select(PrintJobRow.state, func.count())
        .join(IppJobRow, IppJobRow.job_id == PrintJobRow.job_id)
        .where(
            IppJobRow.tenant_id == tenant_id,
            IppJobRow.queue == queue,
            PrintJobRow.tenant_id == tenant_id,
            PrintJobRow.state.in_(service.ACTIVE),
        )
        .group_by(PrintJobRow.state)
    )
    counts = {state: int(n) for state, n in rows}
    return sum(counts.values()), counts.get("printing", 0)


def new_job(
    db: Session,
    *,
    tenant_id: str,
    queue: str,
    owner: str,
    name: str,
    attributes: dict[str, object],
    job_id: str | None = None,
) -> IppJobRow:
    """A job waiting for its document (Create-Job), or with its print job `job_id` at
    once (Print-Job, in the intake's transaction: `intake.submit(also=...)`)."""
    row = IppJobRow(
        tenant_id=tenant_id,
        queue=queue,
        owner=owner,
        name=name[:300],
        uuid=str(uuid.uuid4()),
        attributes=attributes,
        job_id=job_id,
        state="pending_document" if job_id is None else "submitted",
    )
    db.add(row)
    db.flush()
    return row


def _expire(row: IppJobRow) -> None:
    # multiple-operation-time-out-action abort-job (RFC 8011 §5.4.31), seen when read
    limit = row.created_at + timedelta(seconds=MULTIPLE_OPERATION_TIME_OUT)
    if row.state == "pending_document" and utcnow() > limit:
        row.state = "aborted"
        row.reason = "no document came within multiple-operation-time-out"
        row.finished_at = utcnow()


def _print_job(db: Session, row: IppJobRow) -> PrintJobRow | None:
    if row.job_id is None:
        return None
    return db.scalar(
        select(PrintJobRow).where(
            PrintJobRow.tenant_id == row.tenant_id, PrintJobRow.job_id == row.job_id
        )
    )


def get_job(db: Session, *, tenant_id: str, queue: str, job_number: int) -> JobView:
    row = db.scalar(
        select(IppJobRow).where(
            IppJobRow.tenant_id == tenant_id,
            IppJobRow.queue == queue,
            IppJobRow.job_number == job_number,
        )
    )
    if row is None:
        raise NotFound(f"no job {job_number} on this queue")
    _expire(row)
    return view(row, _print_job(db, row))


def submitted(db: Session, *, tenant_id: str, job_number: int, job_id: str) -> None:
    row = db.get(IppJobRow, job_number)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no job {job_number}")
    row.job_id = job_id
    row.state = "submitted"


def end(db: Session, *, tenant_id: str, job_number: int, state: str, reason: str) -> None:
    """A job that never got its print job ends `canceled` or `aborted`, with why."""
    row = db.get(IppJobRow, job_number)
    if row is None or row.tenant_id != tenant_id or row.state != "pending_document":
        return
    row.state = state
    row.reason = reason[:300]
    row.finished_at = utcnow()


def list_jobs(
    db: Session,
    *,
    tenant_id: str,
    queue: str,
    states: tuple[int, ...],
    owner: str | None,
    limit: int,
) -> list[JobView]:
    """The queue's jobs in `states` (IPP job-state values), newest first."""
    query = select(IppJobRow).where(IppJobRow.tenant_id == tenant_id, IppJobRow.queue == queue)
    if owner is not None:
        query = query.where(IppJobRow.owner == owner)
    rows = list(db.scalars(query.order_by(IppJobRow.job_number.desc()).limit(5000)))
    ids = [r.job_id for r in rows if r.job_id]
    jobs = (
        {
            j.job_id: j
            for j in db.scalars(
                select(PrintJobRow).where(
                    PrintJobRow.tenant_id == tenant_id, PrintJobRow.job_id.in_(ids)
                )
            )
        }
        if ids
        else {}
    )
    out: list[JobView] = []
    for row in rows:
        _expire(row)
        v = view(row, jobs.get(row.job_id) if row.job_id else None)
        if v.state.state in states:
            out.append(v)
            if len(out) >= limit:
                break
    return out


def is_terminal(v: JobView) -> bool:
    return v.state.state >= CANCELED
