"""Identify-Printer's way to the device (issue 14; PWG 5100.13 §4.1.2, `identify-actions`
§5.2.5, `message` §4.1.2.1).

The IPP queue answers the client; the printer itself is a device agent elsewhere that
only talks to the print service through the device API. So a request is a record,
and the device is told the way it is told of a new job:

- `record`: the queue's printer (the tenant's, the one the queue targets) gets an
  identify request with the actions it performs (`ACTIONS`) and the client's message,
  cleaned (`clean_message`), in `printing_identify_requests`, which every print-service
  process sees (SQLite in the embedded run, PostgreSQL in the distributed one);
- `push`: the printer's push URL, when it has one, is told
  `{"event": "identify_request"}` through the egress policy's pinned client, as S109
  does for a job, so the device polls at once; else it finds the request at its next poll;
- `waiting`: an INFRA printer (docs/infra.md) shows a request as its printer-state-reason
  `identify-printer-requested` (a `printer-state-changed` event), and its output device
  takes it with Acknowledge-Identify-Printer (`take`, as below);
- `take`: the device's poll (`jobs.work`) receives the printer's requests younger than
  `TTL`, each exactly once: they are deleted as they are handed over. Older ones are
  deleted unseen: a printer that shows itself ten minutes late identifies nothing.

Every query is keyed by tenant and printer: another tenant's printer of the same name
never sees a request.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from printcloud.core.db import utcnow
from printcloud.core.logs import get_logger

from . import pipeline, service
from .ipp_printer import IDENTIFY_ACTIONS
from .models import IdentifyRequestRow
from .runtime import PrintingRuntime

__all__ = [
    "ACTIONS",
    "MAX_MESSAGE",
    "TTL",
    "Pending",
    "clean_message",
    "push",
    "record",
    "take",
    "waiting",
]

log = get_logger("printing.identify")

#: The identify-actions the device performs, as `identify-actions-supported` says.
ACTIONS = IDENTIFY_ACTIONS
#: How long a request waits for its printer.
TTL = timedelta(minutes=5)
#: `message` is text(127): at most 127 octets (RFC 8011 §5.1.2).
MAX_MESSAGE = 127
#: At most this many requests wait per printer; more push out the oldest.
MAX_PENDING = 20


@dataclass(frozen=True)
class Pending:
    """An identify request as the device receives it."""

    actions: tuple[str, ...]
    message: str
    requested_by: str
    requested_at: datetime


def clean_message(text: str) -> str:
    """`message` for a display and a log line: control characters (a newline that forges
    a log line, a bell, escapes) become spaces, and at most `MAX_MESSAGE` octets of
    UTF-8 are kept, never cutting a character in two."""
    shown = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    shown = " ".join(shown.split())
    data = shown.encode()[:MAX_MESSAGE]
    return data.decode(errors="ignore")


def record(
    db: Session,
    *,
    tenant_id: str,
    printer_id: str,
    actions: tuple[str, ...],
    message: str,
    queue: str,
    requested_by: str,
) -> IdentifyRequestRow:
    """A request for the tenant's printer `printer_id` (NotFound when it has none such)."""
    service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
    waiting = list(
        db.scalars(
            select(IdentifyRequestRow.pk)
            .where(
                IdentifyRequestRow.tenant_id == tenant_id,
                IdentifyRequestRow.printer_id == printer_id,
            )
            .order_by(IdentifyRequestRow.pk.desc())
            .offset(MAX_PENDING - 1)
        )
    )
    if waiting:  # a client that asks in a loop keeps one printer's list short
        db.execute(delete(IdentifyRequestRow).where(IdentifyRequestRow.pk.in_(waiting)))
    db.execute(  # and a printer that never polls keeps none for long
        delete(IdentifyRequestRow).where(
            IdentifyRequestRow.tenant_id == tenant_id,
            IdentifyRequestRow.printer_id == printer_id,
            IdentifyRequestRow.created_at < utcnow() - TTL,
        )
    )
    row = IdentifyRequestRow(
        tenant_id=tenant_id,
        printer_id=printer_id,
        actions=list(actions),
        message=clean_message(message),
        queue=queue,
        requested_by=requested_by[:200],
        created_at=utcnow(),
    )
    db.add(row)
    db.flush()
    return row


def take(db: Session, *, tenant_id: str, printer_id: str) -> list[Pending]:
    """The printer's waiting requests, oldest first, each handed over once: deleted here,
    and only the rows this call deleted are answered (two polls at once share nothing)."""
    rows = list(
        db.scalars(
            select(IdentifyRequestRow).where(
                IdentifyRequestRow.tenant_id == tenant_id,
                IdentifyRequestRow.printer_id == printer_id,
            )
        )
    )
    if not rows:
        return []
    mine = set(
        db.scalars(
            delete(IdentifyRequestRow)
            .where(IdentifyRequestRow.pk.in_([r.pk for r in rows]))
            .returning(IdentifyRequestRow.pk)
        )
    )
    oldest = utcnow() - TTL
    return [
        Pending(
            actions=tuple(r.actions),
            message=r.message,
            requested_by=r.requested_by,
            requested_at=r.created_at,
        )
        for r in sorted(rows, key=lambda r: r.pk)
        if r.pk in mine and r.created_at >= oldest
    ]


def waiting(db: Session, *, tenant_id: str, printer_id: str) -> bool:
    """Whether a request younger than `TTL` waits for the printer (an INFRA printer's
    `identify-printer-requested`, until its device acknowledges: `take`)."""
    found = db.scalar(
        select(IdentifyRequestRow.pk)
        .where(
            IdentifyRequestRow.tenant_id == tenant_id,
            IdentifyRequestRow.printer_id == printer_id,
            IdentifyRequestRow.created_at >= utcnow() - TTL,
        )
        .limit(1)
    )
    return found is not None


def push(rt: PrintingRuntime, *, tenant_id: str, printer_id: str) -> str:
    """Tell the printer's device to poll now; what happened, for the log and the answer:
    `pushed`, `poll` (no push URL, or the push failed: the device finds it at its next
    poll) or `refused` (the egress policy does not connect there)."""
    body = {"event": "identify_request", "printer_id": printer_id}
    outcome, detail = pipeline.push(rt, tenant_id=tenant_id, printer_id=printer_id, body=body)
    if outcome in ("refused", "poll"):
        log.info(
            "identify request not pushed: %s",
            detail,
            extra={"fields": {"tenant": tenant_id, "printer": printer_id}},
        )
    return "poll" if outcome == "none" else outcome
