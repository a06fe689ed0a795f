"""A job after intake, at its owner's or its printer's word (seed 003, SVC001, S109–S110).

These rules need the running service (`runtime.PrintingRuntime`): its database,
blob store and sealing box, and the job's workflows (`pipeline`), which they
tell what happened. The database rules themselves are in `service.py`.

- the owner: `cancel`, `release` (of a held job), `preview_png` (a printed page);
- secure release (issue 11, item 4): `release_refusal`, `release_proof`,
  `refuse_release` (`require_presence`: both), and the API's and the printer's
  ways in: `release_by_owner`, `held_at_printer`, `release_at_printer`;
- the printer (PRT001): `work` (S109, ¶0112: it polls), `store_preview` and
  `report_result` (S110: the result goes to the job's delivery workflow, which
  records it, S111).
"""

from __future__ import annotations

import contextlib
from typing import NoReturn

from sqlalchemy import select, update

from printcloud.core.errors import Forbidden, InvalidRequest, NotFound, Unavailable
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger

from . import identify, pipeline, service
from .models import PrinterRow, PrintJobRow
from .previews import preview_key
from .runtime import PrintingRuntime
from .schemas import DeviceResult, IdentifyItem, WorkItem, WorkList

log = get_logger("printing.jobs")


# -- the owner ----------------------------------------------------------------------------


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


def preview_png(
    rt: PrintingRuntime, *, tenant_id: str, job_id: str, number: int, viewer: str | None = None
) -> bytes:
    with rt.db.sessions() as db:
        job = service.get_job(db, tenant_id=tenant_id, job_id=job_id, viewer=viewer)
        if not 1 <= number <= job.previews:
            raise NotFound("no preview of that page (yet)")
    try:
        return rt.blobs.get(preview_key(job_id, number))
    except FileNotFoundError as exc:
        raise NotFound("no preview of that page (yet)") from exc


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


def require_presence(
    rt: PrintingRuntime, principal: Principal, *, job_id: str | None, printer_id: str | None
) -> None:
    """`refuse_release` unless the token proves its user present (`release_refusal`)."""
    refusal = release_refusal(principal)
    if refusal:
        refuse_release(rt, principal, job_id=job_id, printer_id=printer_id, reason=refusal)


def release_by_owner(rt: PrintingRuntime, principal: Principal, *, job_id: str) -> PrintJobRow:
    """The owner releases a held job from anywhere (the printer does it after a card login).
    A device's token acting for its local user must prove the user as at the printer."""
    if principal.acting_kind == "local_user":
        require_presence(rt, principal, job_id=job_id, printer_id=None)
    return release(
        rt,
        tenant_id=principal.tenant_id,
        job_id=job_id,
        by=principal.acting_user,
        proof=release_proof(principal),
    )


def held_at_printer(
    rt: PrintingRuntime, principal: Principal, *, printer_id: str
) -> list[PrintJobRow]:
    """The held jobs of the user at the printer, for this printer, oldest first: for a
    card login's token or the owner's own token (or any local user, where the tenant
    trusts its devices' local authentication)."""
    require_presence(rt, principal, job_id=None, printer_id=printer_id)
    with rt.db.session() as db:
        service.printer_for_device(
            db, tenant_id=principal.tenant_id, printer_id=printer_id, client_id=principal.client_id
        )
        rows = service.list_jobs(
            db,
            tenant_id=principal.tenant_id,
            owner=principal.acting_user,
            states=("held",),
        )
    # this printer's, and the follow-me ones (released at any printer, issue 14)
    mine = [r for r in rows if r.printer_id == printer_id or r.options.get("follow_me")]
    return list(reversed(mine))


def release_at_printer(
    rt: PrintingRuntime, principal: Principal, *, job_id: str, printer_id: str
) -> PrintJobRow:
    """The user at the printer releases one of their held jobs there (the same proof as
    for the list); the job's history says who, where and by what proof."""
    with rt.db.session() as db:
        service.printer_for_device(
            db, tenant_id=principal.tenant_id, printer_id=printer_id, client_id=principal.client_id
        )
    require_presence(rt, principal, job_id=job_id, printer_id=printer_id)
    return release(
        rt,
        tenant_id=principal.tenant_id,
        job_id=job_id,
        by=principal.acting_user,
        printer_id=printer_id,
        proof=release_proof(principal),
    )


# -- the printer (PRT001) -----------------------------------------------------------------


def work(rt: PrintingRuntime, principal: Principal, *, printer_id: str) -> WorkList:
    """¶0112: the printer's print requests, oldest first, each with its conversion token;
    and its Identify-Printer requests, each handed over once (`identify.take`)."""
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
        pending = identify.take(db, tenant_id=principal.tenant_id, printer_id=printer_id)
        return WorkList(
            jobs=items,
            identify=[
                IdentifyItem(
                    actions=list(p.actions),
                    message=p.message,
                    requested_by=p.requested_by,
                    requested_at=p.requested_at,
                )
                for p in pending
            ],
        )


def store_preview(
    rt: PrintingRuntime, principal: Principal, *, job_id: str, number: int, png: bytes
) -> None:
    """S110: a printed page as the printer rendered it, for the job's page.

    One query checks the job (the caller's tenant) and that the caller is its printer's
    device client, and one conditional update counts the preview: a page's upload is a
    hot path (issue 13). The printer's `last_seen_at` moves with its polls, start and
    result, not with each preview."""
    if len(job_id) > 64:
        raise NotFound("unknown print job", field="job_id")
    with rt.db.session() as db:
        found = db.execute(
            select(PrintJobRow.printer_id, PrintJobRow.page_count, PrinterRow.client_id)
            .outerjoin(
                PrinterRow,
                (PrinterRow.tenant_id == PrintJobRow.tenant_id)
                & (PrinterRow.printer_id == PrintJobRow.printer_id),
            )
            .where(PrintJobRow.job_id == job_id, PrintJobRow.tenant_id == principal.tenant_id)
        ).first()
        if found is None:
            raise NotFound("unknown print job", field="job_id")
        printer_id, pages, client_id = found
        if client_id != principal.client_id:
            raise NotFound(f"unknown printer {printer_id!r}", field="printer_id")
        if not 1 <= number <= (pages or 0):
            raise InvalidRequest(f"the job has no page {number}", field="number")
        rt.blobs.put(preview_key(job_id, number), png)
        db.execute(
            update(PrintJobRow)
            .where(
                PrintJobRow.job_id == job_id,
                PrintJobRow.tenant_id == principal.tenant_id,
                PrintJobRow.previews < number,
            )
            .values(previews=number)
        )


def report_result(
    rt: PrintingRuntime, principal: Principal, *, job_id: str, result: DeviceResult
) -> str:
    """S110: the printer's result goes to the job's workflow (which records it, S111).
    Answers the job's state; a repeated report of an ended job changes nothing."""
    if result.outcome == "cancelled" and not result.reason:
        raise InvalidRequest("a cancelled job needs a reason", field="reason")
    with rt.db.session() as db:
        job = service.job_for_device(
            db,
            tenant_id=principal.tenant_id,
            client_id=principal.client_id,
            job_id=job_id,
            printer_id=result.printer_id,
        )
        state = job.state
        if state in service.FINAL:
            return state
        service.add_event(
            db,
            job,
            step="S110",
            state=state,
            worker=result.printer_id,
            detail=f"the printer reports {result.outcome}"
            + (f": {result.reason}" if result.reason else ""),
        )
    if rt.engine is None:
        raise Unavailable("this replica does not run print workflows")
    rt.engine.send(
        pipeline.deliver_id(job_id),
        {**result.model_dump(), "printer": result.printer_id},
        topic=pipeline.PRINTER_TOPIC,
    )
    return state
