"""IPP Everywhere print queues of a tenant (issue 14): the registry, and how a queue is
reached and added on a computer.

A queue is what an operating system adds as a printer. It has a name unique in its
tenant (the last segment of its URI, `…/printing/ipp/print/{tenant}/{name}`) and
targets one printer of the tenant, or none: a follow-me queue, whose jobs are held
until their owner logs in by card at any printer of the tenant (seeds 003 + 004).

Every function takes the tenant explicitly; another tenant's queue is "not found", and
another tenant's printer is an unknown printer. The admin API, pages and CLI all add,
change and delete queues through these functions, so they refuse the same input alike.
`queue_uri` and `add_commands` are what the admin API, pages and CLI show.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from printcloud.core.errors import Conflict, InvalidRequest, NotFound

from . import service
from .changes import CONFIG, bump_on_commit
from .models import PrinterRow, QueueRow

#: A queue's name is a URI path segment and a CUPS printer name (no '/', '#', space).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PRIVACY = ("attributes", "none")
#: printer-info and printer-location (the columns' width).
_TEXT_MAX = 200
#: The queues' path in the print service's app: under `/printing` on the main port (the
#: embedded stack and the proxies mount it there), at the root of the IPP listener's port.
IPP_PATH = "/ipp/print"


def add_queue(
    db: Session,
    *,
    tenant_id: str,
    name: str,
    printer_id: str | None,
    info: str = "",
    location: str = "",
    job_privacy: str = "attributes",
) -> QueueRow:
    """A new queue targeting `printer_id` (a printer of the tenant), or follow-me (None).
    An empty `info` or `location` is the printer's (for follow-me: the name, and none)."""
    if not _NAME.match(name):
        raise InvalidRequest(
            "name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="name",
        )
    _check_privacy(job_privacy)
    printer = _target(db, tenant_id=tenant_id, printer_id=printer_id)
    row = QueueRow(
        tenant_id=tenant_id,
        name=name,
        printer_id=printer_id,
        info=_text(info, "info") or _default_info(name, printer),
        location=_text(location, "location") or _default_location(printer),
        uuid=str(uuid.uuid4()),
        job_privacy=job_privacy,
    )
    db.add(row)
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        raise Conflict(f"queue {name!r} already exists", field="name") from exc
    bump_on_commit(db, CONFIG)
    return row


def update_queue(
    db: Session,
    *,
    tenant_id: str,
    name: str,
    printer_id: str | None = None,
    follow_me: bool = False,
    info: str | None = None,
    location: str | None = None,
    job_privacy: str | None = None,
) -> QueueRow:
    """Change a queue's target (`printer_id`, or `follow_me`), `info`, `location` or
    `job_privacy`; None leaves a value as it is. Its name, URI and printer-uuid stay.

    An empty `info` or `location` is the target's default, as when the queue was added;
    one left at the old target's default follows the new target. Jobs already accepted
    keep the printer they were accepted for."""
    if printer_id is not None and follow_me:
        raise InvalidRequest("give a printer or follow-me, not both", field="printer_id")
    if job_privacy is not None:
        _check_privacy(job_privacy)
    row = get_queue(db, tenant_id=tenant_id, name=name)
    before = _target(db, tenant_id=tenant_id, printer_id=row.printer_id, gone_ok=True)
    after = before
    if printer_id is not None or follow_me:
        after = _target(db, tenant_id=tenant_id, printer_id=printer_id)
        if info is None and row.info == _default_info(name, before):
            info = ""
        if location is None and row.location == _default_location(before):
            location = ""
        row.printer_id = printer_id
    if info is not None:
        row.info = _text(info, "info") or _default_info(name, after)
    if location is not None:
        row.location = _text(location, "location") or _default_location(after)
    if job_privacy is not None:
        row.job_privacy = job_privacy
    bump_on_commit(db, CONFIG)
    return row


def _check_privacy(job_privacy: str) -> None:
    if job_privacy not in PRIVACY:
        raise InvalidRequest(
            f"job_privacy must be one of {', '.join(PRIVACY)}", field="job_privacy"
        )


def _target(
    db: Session, *, tenant_id: str, printer_id: str | None, gone_ok: bool = False
) -> PrinterRow | None:
    """The printer a queue prints on: the tenant's (another tenant's is unknown here), or
    None for follow-me. `gone_ok`: a printer that no longer exists is None too."""
    if printer_id is None:
        return None
    try:
        return service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
    except NotFound as exc:
        if gone_ok:
            return None
        raise InvalidRequest(
            f"unknown printer {printer_id!r} in this tenant", field="printer_id"
        ) from exc


def _text(value: str, field: str) -> str:
    """printer-info and printer-location: one line of at most 200 characters."""
    value = value.strip()
    if len(value) > _TEXT_MAX:
        raise InvalidRequest(f"{field} must be at most {_TEXT_MAX} characters", field=field)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidRequest(f"{field} must be one line of text", field=field)
    return value


def _default_info(name: str, printer: PrinterRow | None) -> str:
    return (printer.name if printer else f"{name} (follow-me)")[:_TEXT_MAX]


def _default_location(printer: PrinterRow | None) -> str:
    return (printer.location if printer else "")[:_TEXT_MAX]


def get_queue(db: Session, *, tenant_id: str, name: str) -> QueueRow:
    row = db.scalar(select(QueueRow).where(QueueRow.tenant_id == tenant_id, QueueRow.name == name))
    if row is None:
        raise NotFound(f"unknown queue {name!r}", field="name")
    return row


def list_queues(db: Session, *, tenant_id: str) -> list[QueueRow]:
    return list(
        db.scalars(select(QueueRow).where(QueueRow.tenant_id == tenant_id).order_by(QueueRow.name))
    )


def delete_queue(db: Session, *, tenant_id: str, name: str) -> None:
    """Jobs already accepted through the queue go on: they belong to their printer."""
    db.delete(get_queue(db, tenant_id=tenant_id, name=name))
    bump_on_commit(db, CONFIG)


def queues_of_printer(db: Session, *, tenant_id: str, printer_id: str) -> list[QueueRow]:
    return list(
        db.scalars(
            select(QueueRow).where(
                QueueRow.tenant_id == tenant_id, QueueRow.printer_id == printer_id
            )
        )
    )


# -- how a computer reaches it --------------------------------------------------------------


def queue_uri(ipp_url: str, *, tenant_id: str, name: str) -> str:
    """The queue's ipp:// (plain) or ipps:// (TLS) URI under `ipp_url` (`Settings.ipp_url`:
    the IPP listener's port, or the print service under the public URL).

    The port is always written: IPP's default port is 631, not HTTP's 80 or 443."""
    parts = urlsplit(ipp_url)
    scheme = "ipps" if parts.scheme == "https" else "ipp"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    base = parts.path.rstrip("/")
    return f"{scheme}://{host}:{port}{base}{IPP_PATH}/{quote(tenant_id, safe='')}/{name}"


@dataclass(frozen=True)
class AddCommands:
    """How to add the queue as a printer on each operating system."""

    linux: str
    macos: str
    windows: str


def add_commands(uri: str, *, name: str) -> AddCommands:
    http_url = "http" + uri.removeprefix("ipp") if uri.startswith("ipp") else uri
    return AddCommands(
        linux=f"lpadmin -p {name} -E -v {uri} -m everywhere",
        macos=(
            f"lpadmin -p {name} -E -v {uri} -m everywhere  (or System Settings > Printers & "
            f"Scanners > Add > IP: address and queue of {uri}, protocol IPP)"
        ),
        windows=(
            "Settings > Bluetooth & devices > Printers & scanners > Add device > "
            f'Add manually > "Select a shared printer by name": {http_url}'
        ),
    )
