"""Printers and print jobs of the print service (seed 003, SVC001/SVC002).

Every function takes the tenant explicitly and every query filters on it: a
job or printer of another tenant is "not found", never "forbidden", so IDs
leak nothing across tenants.

Job states (the workflow in `pipeline.py` moves a job through them; each move
is also a history event naming the seed's step and the worker that served it):

    accepted [→ held, until its owner releases it at the printer] → token_issued (S106)
      → downloaded (S107) → converted (S108) → waiting_for_printer (S109)
      → printing → printed (S110–S112)

and the named ends: `download_failed`, `conversion_failed`,
`printer_cancelled` (with the printer's reason: `paper_out`, `toner_out`,
`engine_error`, `user_cancel`), `cancelled` (by the owner), `expired` (the
printer did not take it before its conversion token timed out), `failed` (a
step gave up after its retries; the reason says which).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from printcloud.core.db import utcnow
from printcloud.core.egress import EgressPolicy
from printcloud.core.errors import Conflict, InvalidRequest, NotFound
from printcloud.webhooks import emit

from .accounting import charging
from .changes import CONFIG, JOBS, bump_on_commit
from .models import JobEventRow, PrinterRow, PrintJobRow, QueueRow

ACTIVE = (
    "accepted",
    "held",
    "token_issued",
    "downloaded",
    "converted",
    "waiting_for_printer",
    "printing",
)
FINAL = (
    "printed",
    "download_failed",
    "conversion_failed",
    "printer_cancelled",
    "cancelled",
    "expired",
    "failed",
)
#: States in which the printer may take the job (S109, ¶0112).
PRINTABLE = ("waiting_for_printer", "printing")
PRINTER_FAULTS = ("paper_out", "toner_out", "engine_error", "user_cancel")
MEDIA = ("A4", "A3", "A5", "Letter", "Legal")
_PRINTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class JobOptions:
    """Print settings (SVC001): color/mono, copies, duplex, media, resolution."""

    color: bool = True
    copies: int = 1
    duplex: bool = False
    media: str = "A4"
    dpi: int = 300
    #: Held until its owner releases it at the printer (after a card login, seed 004).
    hold: bool = False
    #: From a follow-me IPP queue (issue 14): held, and released at any printer of the
    #: tenant, which then prints it.
    follow_me: bool = False
    #: Asked in color for a printer without color: printed in black and white
    #: (`color` is then False; the job page says why).
    gray_for_mono: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.copies <= 999:
            raise InvalidRequest("copies must be between 1 and 999", field="copies")
        if self.media not in MEDIA:
            raise InvalidRequest(f"media must be one of {', '.join(MEDIA)}", field="media")
        if self.dpi not in (150, 200, 300, 600):
            raise InvalidRequest("dpi must be 150, 200, 300 or 600", field="dpi")

    def as_dict(self) -> dict[str, Any]:
        return {
            "color": self.color,
            "copies": self.copies,
            "duplex": self.duplex,
            "media": self.media,
            "dpi": self.dpi,
            "hold": self.hold,
            **({"follow_me": True} if self.follow_me else {}),
            **({"gray_for_mono": True} if self.gray_for_mono else {}),
        }


# -- printers -------------------------------------------------------------------------------

#: Global unicast only, no allow-list: what a caller that names no policy gets.
STRICT_EGRESS = EgressPolicy()


def check_push_url(push_url: str, *, egress: EgressPolicy) -> None:
    """A printer's push URL is where the print service will connect for every job of
    the printer (S109): its form, then its host's addresses under the egress policy
    (issue 11, item 1). InvalidRequest (400) naming `push_url` and the reason.

    Resolves the host (blocking): call it outside the event loop."""
    if not re.match(r"^https?://[^\s]+$", push_url):
        raise InvalidRequest("push_url must be an http:// or https:// URL", field="push_url")
    egress.check_url(push_url, field="push_url")


def add_printer(
    db: Session,
    *,
    tenant_id: str,
    printer_id: str,
    name: str,
    color: bool,
    client_id: str,
    push_url: str | None = None,
    location: str = "",
    egress: EgressPolicy = STRICT_EGRESS,
) -> PrinterRow:
    """`egress`: the deployment's policy (`settings.egress_policy`) for the push URL."""
    if not _PRINTER_ID.match(printer_id):
        raise InvalidRequest(
            "printer_id must be 1-128 letters, digits, '.', '_' or '-'", field="printer_id"
        )
    if push_url is not None:
        check_push_url(push_url, egress=egress)
    row = PrinterRow(
        tenant_id=tenant_id,
        printer_id=printer_id,
        name=name.strip() or printer_id,
        color=color,
        client_id=client_id,
        push_url=push_url,
        location=location,
    )
    db.add(row)
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        raise Conflict(f"printer {printer_id!r} already exists", field="printer_id") from exc
    bump_on_commit(db, CONFIG)  # a follow-me queue's color depends on the tenant's printers
    return row


#: Built once (statements are immutable): building the select at every call cost more
#: than running it, and a print job's answer reads its printer twice (bench/README.md).
_PRINTER = select(PrinterRow).where(
    PrinterRow.tenant_id == bindparam("tenant_id"), PrinterRow.printer_id == bindparam("printer_id")
)


def get_printer(db: Session, *, tenant_id: str, printer_id: str) -> PrinterRow:
    row = db.scalar(_PRINTER, {"tenant_id": tenant_id, "printer_id": printer_id})
    if row is None:
        raise NotFound(f"unknown printer {printer_id!r}", field="printer_id")
    return row


def list_printers(db: Session, *, tenant_id: str) -> list[PrinterRow]:
    return list(
        db.scalars(
            select(PrinterRow).where(PrinterRow.tenant_id == tenant_id).order_by(PrinterRow.name)
        )
    )


def update_printer(
    db: Session,
    *,
    tenant_id: str,
    printer_id: str,
    push_url: str | None = None,
    clear_push_url: bool = False,
    name: str | None = None,
    color: bool | None = None,
    location: str | None = None,
    client_id: str | None = None,
    egress: EgressPolicy = STRICT_EGRESS,
) -> PrinterRow:
    """Change what is given (None: unchanged). `egress`: the deployment's policy
    (`settings.egress_policy`) for the push URL. `client_id` must be a device client of
    the tenant: the caller checks it at idp-a (`device_clients.check`; the CLI in the
    issuer's database), as this module cannot."""
    row = get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
    if push_url is not None:
        check_push_url(push_url, egress=egress)
        row.push_url = push_url
    if clear_push_url:
        row.push_url = None
    if name is not None and name.strip():
        row.name = name.strip()[:200]
    if color is not None:
        row.color = color
    if location is not None:
        row.location = location.strip()[:200]
    if client_id is not None:
        if not client_id.strip():
            raise InvalidRequest(
                "client_id must name the printer's device client", field="client_id"
            )
        row.client_id = client_id.strip()
    bump_on_commit(db, CONFIG)  # a follow-me queue's color depends on the tenant's printers
    return row


def delete_printer(db: Session, *, tenant_id: str, printer_id: str) -> None:
    row = get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
    busy = db.scalar(
        select(func.count())
        .select_from(PrintJobRow)
        .where(
            PrintJobRow.tenant_id == tenant_id,
            PrintJobRow.printer_id == printer_id,
            PrintJobRow.state.in_(ACTIVE),
        )
    )
    if busy:
        raise Conflict(f"printer {printer_id!r} still has {busy} unfinished job(s)")
    targeted = db.scalars(
        select(QueueRow.name).where(
            QueueRow.tenant_id == tenant_id, QueueRow.printer_id == printer_id
        )
    ).all()
    if targeted:
        # a queue whose printer is gone would accept jobs nobody can print
        raise Conflict(
            f"printer {printer_id!r} is the target of queue(s) {', '.join(targeted)}: "
            "delete them first"
        )
    db.delete(row)
    bump_on_commit(db, CONFIG)


#: A printer is online while it polls (every `PRINTCLOUD_DEVICE_POLL_INTERVAL`, 5 s
#: by default; an IPP INFRA printer fetches as often): this many missed polls, and at
#: least a minute, make it offline.
OFFLINE_AFTER_POLLS = 12
OFFLINE_AFTER_MIN = timedelta(seconds=60)


@dataclass(frozen=True)
class Presence:
    """Whether a printer is online, from when it last polled or was seen."""

    online: bool
    last_seen: datetime | None


def presence(row: PrinterRow, *, poll_interval: int, now: datetime | None = None) -> Presence:
    """`row` online if it was seen within `OFFLINE_AFTER_POLLS` polls (and a minute)."""
    seen = row.last_seen_at
    if seen is None:
        return Presence(False, None)
    grace = max(OFFLINE_AFTER_MIN, timedelta(seconds=poll_interval * OFFLINE_AFTER_POLLS))
    return Presence((now or utcnow()) - seen <= grace, seen)


def printer_for_device(
    db: Session, *, tenant_id: str, printer_id: str, client_id: str
) -> PrinterRow:
    """The printer a device client may act for: its tenant's, and bound to that client."""
    row = get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
    if row.client_id != client_id:
        raise NotFound(f"unknown printer {printer_id!r}", field="printer_id")
    row.last_seen_at = utcnow()
    return row


def last_used_printer(
    db: Session, *, tenant_id: str, owner: str, not_from: tuple[str, ...] = ()
) -> str | None:
    """The printer of `owner`'s latest job, leaving out jobs sent by the clients
    `not_from` (docgen's batch printing submits as the user whose print token it holds)."""
    query = select(PrintJobRow.printer_id).where(
        PrintJobRow.tenant_id == tenant_id, PrintJobRow.owner == owner
    )
    if not_from:
        query = query.where(PrintJobRow.client_id.not_in(not_from))
    return db.scalar(query.order_by(PrintJobRow.created_at.desc()).limit(1))


def printers_printed_by(db: Session, *, tenant_id: str, clients: tuple[str, ...]) -> set[str]:
    """The printers that jobs of `clients` were sent to (docgen's: the batch printers)."""
    if not clients:
        return set()
    return set(
        db.scalars(
            select(PrintJobRow.printer_id)
            .where(PrintJobRow.tenant_id == tenant_id, PrintJobRow.client_id.in_(clients))
            .distinct()
        )
    )


# -- jobs ----------------------------------------------------------------------------------


def new_job_id() -> str:
    return secrets.token_hex(12)


def create_job(
    db: Session,
    *,
    tenant_id: str,
    printer_id: str,
    owner: str,
    client_id: str,
    title: str,
    source: str,
    options: JobOptions,
    job_id: str,
    source_url: str | None = None,
    data_key: str | None = None,
    size: int = 0,
    page_count: int | None = None,
    asked_by: str | None = None,
    printer: PrinterRow | None = None,
) -> PrintJobRow:
    """SVC001: record an accepted job (the printer must be the tenant's). `asked_by`:
    who asked for it when that is not its owner (an administrator printing someone's
    job again), recorded in its history. `printer`: its row, when the caller read it in
    this transaction (not read again)."""
    if printer is None or (printer.tenant_id, printer.printer_id) != (tenant_id, printer_id):
        get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
    row = PrintJobRow(
        job_id=job_id,
        tenant_id=tenant_id,
        printer_id=printer_id,
        owner=owner,
        client_id=client_id,
        title=title[:300] or "untitled",
        source=source,
        source_url=source_url,
        data_key=data_key,
        bytes=size,
        page_count=page_count,
        options=options.as_dict(),
        state="accepted",
    )
    db.add(row)
    db.flush()
    detail = f"accepted from {source}"
    if asked_by and asked_by != owner:
        detail += f", printed again for {owner} at the request of {asked_by}"
    add_event(db, row, step="S105", state="accepted", detail=detail)
    announce(db, row, "job.accepted")
    bump_on_commit(db, JOBS)
    return row


def get_job(db: Session, *, tenant_id: str, job_id: str, viewer: str | None = None) -> PrintJobRow:
    """The tenant's job; with `viewer`, only when it is theirs (another user's job is
    "unknown" to them, as it would be to another tenant)."""
    row = db.get(PrintJobRow, job_id) if len(job_id) <= 64 else None
    if row is None or row.tenant_id != tenant_id or (viewer is not None and row.owner != viewer):
        raise NotFound("unknown print job", field="job_id")
    return row


def list_jobs(
    db: Session,
    *,
    tenant_id: str,
    owner: str | None = None,
    printer_id: str | None = None,
    states: tuple[str, ...] | None = None,
    limit: int = 100,
) -> list[PrintJobRow]:
    query = select(PrintJobRow).where(PrintJobRow.tenant_id == tenant_id)
    if owner is not None:
        query = query.where(PrintJobRow.owner == owner)
    if printer_id is not None:
        query = query.where(PrintJobRow.printer_id == printer_id)
    if states is not None:
        query = query.where(PrintJobRow.state.in_(states))
    query = query.order_by(PrintJobRow.created_at.desc()).limit(max(1, min(limit, 1000)))
    return list(db.scalars(query))


def events(db: Session, *, tenant_id: str, job_id: str) -> list[JobEventRow]:
    return list(
        db.scalars(
            select(JobEventRow)
            .where(JobEventRow.tenant_id == tenant_id, JobEventRow.job_id == job_id)
            .order_by(JobEventRow.pk)
        )
    )


@dataclass(frozen=True)
class Event:
    """A history event kept for a later transaction (a workflow step that records
    several of the seed's steps at once): what happened, and when."""

    step: str
    state: str
    at: datetime
    worker: str | None = None
    detail: str = ""


def add_event(
    db: Session,
    job: PrintJobRow,
    *,
    step: str,
    state: str,
    worker: str | None = None,
    detail: str = "",
    at: datetime | None = None,
) -> None:
    db.add(
        JobEventRow(
            job_id=job.job_id,
            tenant_id=job.tenant_id,
            step=step,
            state=state,
            worker=worker,
            detail=detail[:1000],
            **({"at": at} if at is not None else {}),
        )
    )


def move(
    db: Session,
    job: PrintJobRow,
    state: str,
    *,
    step: str,
    reason: str | None = None,
    worker: str | None = None,
    detail: str = "",
    expect: tuple[str, ...] | None = None,
    record: dict[str, Any] | None = None,
    earlier: tuple[Event, ...] = (),
) -> bool:
    """Move a job to `state` with a history event; a finished job stays finished.
    `record`: columns set with the move (`pages_printed`), only when the job moved.
    `earlier`: events of steps done before this one, recorded ahead of its own.

    Answers whether the job moved: False when it had already ended (its owner cancelled
    it while a step ran, say), or, with `expect`, when it is no longer in one of those
    states. The move is a compare-and-set on the state this session read, so a move
    made meanwhile by another process (a cancel racing the workflow's next step) is
    never overwritten: the job is read again and the decision made on what it is now."""
    while True:
        seen = job.state
        if seen in FINAL or (expect is not None and seen not in expect):
            return False
        now = utcnow()
        values: dict[str, Any] = {"state": state, "updated_at": now}
        if reason is not None:
            values["reason"] = reason[:1000]
        if state in FINAL:
            values["finished_at"] = now
        done = db.execute(
            update(PrintJobRow)
            .where(PrintJobRow.job_id == job.job_id, PrintJobRow.state == seen)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            for name, value in values.items():
                set_committed_value(job, name, value)
            break
        db.refresh(job, ["state"])  # moved meanwhile: decide again on what it is now
    for name, value in (record or {}).items():
        setattr(job, name, value)
    bump_on_commit(db, JOBS)  # an IPP queue's printer-state (ipp_memo)
    for event in earlier:
        add_event(
            db,
            job,
            step=event.step,
            state=event.state,
            worker=event.worker,
            detail=event.detail,
            at=event.at,
        )
    add_event(db, job, step=step, state=state, worker=worker, detail=detail or (reason or ""))
    # A step re-run after a crash that followed its commit moves the job to the state it
    # is in: its subscribers heard of that move already (under its first `webhook-id`).
    if state in WEBHOOK_EVENTS and seen != state:
        announce(db, job, WEBHOOK_EVENTS[state])
    return True


#: The job states a webhook subscriber hears of (docs/webhooks.md); `accepted` is
#: announced by `create_job` (a released held job moves back to it unannounced).
WEBHOOK_EVENTS = {
    "held": "job.held",
    "printing": "job.printing",
    "printed": "job.printed",
    "cancelled": "job.cancelled",
    "printer_cancelled": "job.cancelled",
    "download_failed": "job.failed",
    "conversion_failed": "job.failed",
    "expired": "job.failed",
    "failed": "job.failed",
}


def announce(db: Session, job: PrintJobRow, event_type: str) -> None:
    """The job's move for the tenant's webhook subscribers, in the caller's transaction
    (an outbox row, sent after the commit; nothing when nobody subscribed)."""
    options = job.options or {}
    emit(
        db,
        tenant_id=job.tenant_id,
        event_type=event_type,
        data={
            "job_id": job.job_id,
            "state": job.state,
            "reason": job.reason,
            "cancelled_by": {"cancelled": "owner", "printer_cancelled": "printer"}.get(job.state),
            "printer_id": job.printer_id,
            "owner": job.owner,
            "title": job.title,
            "pages": job.page_count,
            "pages_printed": job.pages_printed or 0,
            "copies": options.get("copies", 1),
            "color": options.get("color", True),
            "duplex": options.get("duplex", False),
            "media": options.get("media", "A4"),
        },
        ordering_key=f"job:{job.job_id}",
    )


def cancel_job(db: Session, *, tenant_id: str, job_id: str, by: str) -> PrintJobRow:
    """The owner cancels (SVC001). A finished job cannot be cancelled."""
    job = get_job(db, tenant_id=tenant_id, job_id=job_id)
    if job.owner != by:
        raise NotFound("unknown print job", field="job_id")
    if job.state in FINAL:
        raise Conflict(f"the job has already ended ({job.state})", field="job_id")
    if not move(db, job, "cancelled", step="SVC001", reason=f"cancelled by {by}"):
        raise Conflict(f"the job has already ended ({job.state})", field="job_id")
    job.token_sealed = None
    charging.settle(db, tenant_id=tenant_id, job_id=job_id)  # its reservation back, now
    return job


def release_job(
    db: Session,
    *,
    tenant_id: str,
    job_id: str,
    by: str,
    printer_id: str | None = None,
    proof: str = "",
) -> PrintJobRow:
    """The owner releases a held job (at its printer, `printer_id`, or from anywhere);
    `proof`: what showed the owner present, recorded in the job's history."""
    job = get_job(db, tenant_id=tenant_id, job_id=job_id)
    elsewhere = printer_id is not None and job.printer_id != printer_id
    if job.owner != by or (elsewhere and not job.options.get("follow_me")):
        raise NotFound("unknown print job", field="job_id")
    if job.state != "held":
        raise Conflict(f"the job is not held ({job.state})", field="job_id")
    if elsewhere and printer_id is not None:
        # a follow-me job prints where its owner released it (the workflow reads it)
        job.printer_id = get_printer(db, tenant_id=tenant_id, printer_id=printer_id).printer_id
    # A job held for credit reserves now; one its owner still cannot pay stays held (402).
    charging.reserve(
        db,
        tenant_id=tenant_id,
        job_id=job_id,
        owner=job.owner,
        printer_id=job.printer_id,
        options=job.options,
        pages=job.page_count or 0,
        may_hold=False,
    )
    where = f" at printer {printer_id}" if printer_id else ""
    how = f" ({proof})" if proof else ""
    # moved here, in the caller's transaction: a second release finds it no longer held
    if not move(
        db,
        job,
        "accepted",
        step="SVC001",
        worker=printer_id,
        detail=f"released by {by}{where}{how}",
        expect=("held",),
    ):
        raise Conflict(f"the job is not held ({job.state})", field="job_id")
    return job


def job_for_device(
    db: Session, *, tenant_id: str, client_id: str, job_id: str, printer_id: str
) -> PrintJobRow:
    """A job as its printer's device client sees it: on that printer, bound to the client."""
    printer_for_device(db, tenant_id=tenant_id, printer_id=printer_id, client_id=client_id)
    job = get_job(db, tenant_id=tenant_id, job_id=job_id)
    if job.printer_id != printer_id:
        raise NotFound("unknown print job", field="job_id")
    return job


def job_started(
    db: Session, *, tenant_id: str, client_id: str, job_id: str, printer_id: str
) -> PrintJobRow:
    """S110: the printer started the job (again, after a restart: no change)."""
    job = job_for_device(
        db, tenant_id=tenant_id, client_id=client_id, job_id=job_id, printer_id=printer_id
    )
    started = move(
        db,
        job,
        "printing",
        step="S110",
        worker=printer_id,
        detail="the printer started",
        expect=("waiting_for_printer",),
    )
    if not started and job.state != "printing":
        raise Conflict(f"the job is no longer printable ({job.state})", field="job_id")
    return job


def record_release_refusal(
    db: Session, *, tenant_id: str, job_id: str, printer_id: str | None, detail: str
) -> None:
    """A refused release in the job's history (issue 11, item 4), if the job is this
    tenant's (and at `printer_id`, when given); its state does not change."""
    job = db.scalar(
        select(PrintJobRow).where(PrintJobRow.tenant_id == tenant_id, PrintJobRow.job_id == job_id)
    )
    if job is None or (printer_id is not None and job.printer_id != printer_id):
        return
    add_event(db, job, step="SVC001", state=job.state, worker=printer_id, detail=detail)


def summary(db: Session, *, tenant_id: str) -> dict[str, int]:
    rows = db.execute(
        select(PrintJobRow.state, func.count())
        .where(PrintJobRow.tenant_id == tenant_id)
        .group_by(PrintJobRow.state)
    )
    return {state: int(count) for state, count in rows}


def elapsed(job: PrintJobRow) -> float:
    end: datetime = job.finished_at or utcnow()
    return max(0.0, (end - job.created_at).total_seconds())
