"""Job acceptance (seed 003, SVC002, FIG. 3–5 and FIG. 11) as durable workflows.

Three nested workflows per job:

- `job-<id>` (`process_job`, started at intake): holding until release, then
  the job's turn on its printer's queue;
- `deliver-<id>` (`deliver`, on `PRINTER_QUEUE`, at most
  `PRINTCLOUD_PRINTER_CONCURRENCY` per printer): S106 to S112 — it receives the
  printer's result;
- `prepare-<id>` (`prepare`, on `TENANT_QUEUE`, at most
  `PRINTCLOUD_TENANT_CONCURRENCY` per tenant across every executor): the
  conversion part, S106–S108, so one tenant's flood never starves another.

The first two spend most of their life waiting (for a release, their turn, the
conversion, the printer's result), so they are async workflows: a waiting job holds
no thread, only a coroutine on DBOS's event loop (`core.tasks`, "waking what waits").
`prepare` works rather than waits and stays a plain workflow on a thread.

Each seed step is an event of the job's history, but a checkpoint (a DBOS step: its
look-up and its record) only separates what must not be repeated together (issue 13,
the platform's cost per job). The seed's steps and the workflow's steps:

- S105 (intake, `intake.py`): the job recorded, `accepted`; the intake hands the job's
  workflow what it recorded (`facts`), so a job that is not held has no `load` step
  (`load` reads it once for a held job, a job adopted at start, and a workflow begun
  before); `deliver` is handed what was read.
- `prepare_pages` — one checkpoint for three worker calls, each idempotent and each
  free to go to another worker (LB001):
  - S106 (FIG. 6): token request with the session ID (job ID + printer ID) and the
    blob key of the job's print data; a session left by a crashed try (S1111, 409)
    is closed and asked again;
  - S107 (FIG. 7): a worker reads the print data from the shared blob store (a URL
    job's too: the intake fetched it once) → `download_failed`; S106 and S107 are
    recorded in one transaction, each event at its own time;
  - S108 (FIG. 8): PDF → JPEG pages + metafile → `conversion_failed`.
  The step reads the job once first: a job cancelled while it waited for its turn
  stops there, and a try cut short (a crash, a lost worker) goes on after what it
  recorded, so each seed step is done and recorded once. Each record is the cancel
  check too: a job its owner cancelled meanwhile does not move (`service.move` is a
  compare-and-set), and the step stops there.
- `print_request` (S109, ¶0112): the job becomes the printer's work (the move and the
  printer's push URL in one transaction); pushed when the printer has a push URL
  (through the egress policy's pinned client: a push it refuses is recorded as such
  and the printer polls), else the printer polls.
- wait (S110): the printer's result, a message on topic `printer`; `expired`
  when the conversion token times out first.
- `conclude`: S111, the intake records `printed` or `printer_cancelled: <reason>`
  (first: a completion that keeps failing cannot hide a printed job), then S112
  (FIG. 11), print completion deletes the converted data and the session record.
  `complete` alone (S112) ends a job that did not reach its printer.
- `charge` (issue 18): the job pays for the impressions printed and the rest of its
  reservation is released (`accounting.charging.settle`), once: the ledger
  transaction's key is the job ID. Every end passes here (`_finish`, and after
  `conclude`), so a job that failed or was cancelled before printing has its
  reservation back and pays nothing. A job with nothing reserved (its tenant has no
  accounting) skips the step (`load_job` says so).

PDF pass-through (issue 15, `_pass_through`): a job whose printer's IPP INFRA device
registered that it takes PDF (`passes_pdf`, decided when the job is loaded) is served
the submitted PDF by Fetch-Document, so its printer need not wait for S108. After
`open_document` (S106 and S107, one checkpoint) comes `print_request` (S109) at once;
`convert_pages` (on `TENANT_QUEUE`, `convert_beside`) then makes the JPEG pages beside
the printing, for a device that asks for raster after all and for the job's page
previews, and records S108 when it ends, the job's state unchanged (a failure there is
recorded and does not end the job). S111 is recorded when the printer reports (`result_of`),
the charge follows, and S112 waits for the conversion's end. Every other printer's job
(the JSON device API, a device that takes only raster or JPEG) goes through S106–S112
as above.

A step whose worker dies mid-call is retried on another worker (`balancer.py`):
the workers' steps are idempotent. A killed workflow process resumes after
its last finished step. Expected failures come back as values and end the
job in a named state with its reason; only transient errors raise (and are
retried by DBOS, for about ten minutes: a database or session-store outage
shorter than that delays jobs and fails none).

The owner may cancel at any time (`service.cancel_job`): the workflow notices
at its next step or while it waits, and cleans up.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from printcloud.core import tasks
from printcloud.core.db import utcnow
from printcloud.core.egress import EgressRefused
from printcloud.core.errors import Unavailable
from printcloud.core.http import error_text
from printcloud.core.logs import get_logger

from . import service
from .accounting import charging, ledger
from .changes import JOBS, bump_on_commit
from .models import PrintJobRow
from .runtime import PrintingRuntime, current

log = get_logger("printing.pipeline")
PRINTER_TOPIC = "printer"
#: What ends each wait: a held job's release (or cancel); the printer's result (or cancel).
RELEASE_OUTCOMES = ("released", "owner_cancelled")
RESULT_OUTCOMES = ("printed", "cancelled", "owner_cancelled")
#: A waiting job costs nothing until its message comes (`core.tasks`, "waking what
#: waits"); each slice's end is a checkpoint and a few writes, so slices are long.
_WAIT_SLICE = 6 * 3600.0
#: How often the job's workflow looks for its delivery's end when another replica ran it.
_TURN_POLL = 30.0


def workflow_id(job_id: str) -> str:
    return f"job-{job_id}"


def _record(
    job_id: str,
    tenant_id: str,
    state: str,
    *,
    step: str,
    worker: str | None = None,
    reason: str | None = None,
    detail: str = "",
    earlier: tuple[service.Event, ...] = (),
    **fields: Any,
) -> bool:
    rt = current()
    with rt.db.session() as db:
        job = db.get(PrintJobRow, job_id)
        if job is None or job.tenant_id != tenant_id:
            return False
        # ended meanwhile: False, and its fields stay as the cancel left them
        return service.move(
            db,
            job,
            state,
            step=step,
            reason=reason,
            worker=worker,
            detail=detail,
            record=fields,
            earlier=earlier,
        )


# -- steps ---------------------------------------------------------------------------------


@tasks.step(name="printing.load", retries=30, retry_interval=0.5, backoff=1.2)
def load_job(tenant_id: str, job_id: str) -> dict[str, Any]:
    rt = current()
    with rt.db.sessions() as db:
        job = db.get(PrintJobRow, job_id)
        if job is None or job.tenant_id != tenant_id:
            return {"state": "missing"}
        printer = service.get_printer(db, tenant_id=tenant_id, printer_id=job.printer_id)
        # Charged at its end (`charge`) when it has a reservation (its tenant counts):
        # no extra step for a job of a tenant without accounting.
        accounted = ledger.has_key(db, tenant_id=tenant_id, key=charging.reserve_key(job_id))
        return facts(job, printer, accounted=accounted)


def facts(job: PrintJobRow, printer: Any, *, accounted: bool) -> dict[str, Any]:
    """What the workflows need of a job (`load_job`'s answer), from its row and its
    printer's. The intake hands this to the job's workflow from the transaction that
    recorded the job, so a new job's workflow does not read it again (`process_job`)."""
    # A URL job's data is in the blob store since intake; only a job accepted before
    # that was so has none, and a worker fetches its URL.
    url = job.source_url if job.source == "url" and not job.data_key else None
    return {
        "accounted": accounted,
        "passthrough": passes_pdf(printer) and bool(job.data_key) and url is None,
        "state": job.state,
        "printer_id": job.printer_id,
        "url": url,
        "data_key": job.data_key,
        "options": dict(job.options),
        "color": bool(job.options.get("color", True)) and printer.color,
    }


def passes_pdf(printer: Any) -> bool:
    """Whether the printer's jobs skip the wait for their JPEG pages (PDF pass-through,
    issue 15): its IPP INFRA output device registered that it takes PDF
    (`document-format-supported`), so Fetch-Document serves it the submitted PDF and the
    seed's S108 conversion is not on its way. Known before any conversion: a printer of
    the JSON device API (no registration) or whose device takes only raster or JPEG
    waits for its pages as in the seed."""
    from .capabilities import PDF, of  # capabilities → infra → identify → pipeline

    caps = of(printer)
    return caps is not None and PDF in caps.formats


# S106–S108 are one step, one checkpoint (issue 13): each of its three worker calls is
# idempotent and may still go to another worker (LB001), and a retry goes on after what
# the cut-short try recorded. The history gets S106 and S107 in one transaction, S108 in
# a second, each event at the time its call answered.


def _open_session(
    rt: PrintingRuntime, tenant_id: str, job_id: str, printer_id: str, data_key: str | None
) -> tuple[service.Event, str]:
    """S106 (FIG. 6): a session record and a conversion token for job + printer: the
    step's event, and the token sealed for the job's row (recorded with S107)."""
    assert rt.balancer is not None
    body = {"tenant_id": tenant_id, "job_id": job_id, "printer_id": printer_id}
    if data_key:  # the worker reads the data from the shared blob store (FIG. 7)
        body["data_key"] = data_key
    sent = rt.balancer.call("POST", "/sessions", json=body)
    if sent.response.status_code == 409:
        # S1111: a record exists. Only an earlier try of this very step can have made it
        # (it crashed before its checkpoint, taking the token with it): close and ask again.
        rt.balancer.call(
            "DELETE", f"/sessions/{job_id}/{printer_id}", params={"tenant_id": tenant_id}
        )
        sent = rt.balancer.call("POST", "/sessions", json=body)
    if sent.response.status_code != 201:
        raise Unavailable(f"token request refused: {error_text(sent.response)}")
    issued = service.Event(
        step="S106",
        state="token_issued",
        at=utcnow(),
        worker=sent.worker,
        detail="token request (session = job ID + printer ID)",
    )
    return issued, rt.box.seal(sent.response.json()["token"])


@tasks.step(name="printing.prepare_pages", retries=30, retry_interval=0.5, backoff=1.2)
def prepare_pages(
    tenant_id: str,
    job_id: str,
    printer_id: str,
    url: str | None,
    data_key: str | None,
    dpi: int,
    color: bool,
) -> dict[str, Any]:
    """S106 token (FIG. 6), S107 download (FIG. 7), S108 conversion to JPEG pages and a
    metafile (FIG. 8). Answers `{"ok": True}`, or the outcome that ended the job:
    `cancelled` (its owner cancelled it meanwhile), `download_failed`,
    `conversion_failed` (recorded with the worker's reason)."""
    rt = current()
    assert rt.balancer is not None
    with rt.db.sessions() as db:
        job = db.get(PrintJobRow, job_id)
        if job is None or job.tenant_id != tenant_id or job.state not in service.ACTIVE:
            return {"ok": False, "outcome": "cancelled"}  # while it waited for its turn
        state, has_token = job.state, job.token_sealed is not None
    # A try that a crash or a lost worker cut short (this step is one checkpoint) goes on
    # after what it recorded, so each seed step is done and recorded once.
    if state == "converted" and has_token:
        return {"ok": True}
    if state != "downloaded" or not has_token:
        failed = _token_and_download(rt, tenant_id, job_id, printer_id, url, data_key)
        if failed is not None:
            return failed
    sent = rt.balancer.call(
        "POST",
        f"/sessions/{job_id}/{printer_id}/convert",
        json={"tenant_id": tenant_id, "dpi": dpi, "color": color},
    )
    status = sent.response.status_code
    if status in (400, 404, 409, 413, 422):
        reason = error_text(sent.response)
        if not _record(
            job_id, tenant_id, "conversion_failed", step="S108", worker=sent.worker, reason=reason
        ):
            return {"ok": False, "outcome": "cancelled"}
        return {"ok": False, "outcome": "conversion_failed"}
    if status != 200:
        raise Unavailable(f"conversion answered HTTP {status}: {error_text(sent.response)}")
    answer = sent.response.json()
    if not _record(
        job_id,
        tenant_id,
        "converted",
        step="S108",
        worker=sent.worker,
        detail=f"{answer['pages']} JPEG page(s) at {dpi} dpi, {'color' if color else 'gray'}",
        manifest_url=answer["manifest_url"],
        page_count=int(answer["pages"]),
    ):
        return {"ok": False, "outcome": "cancelled"}
    return {"ok": True}


@tasks.step(name="printing.open_document", retries=30, retry_interval=0.5, backoff=1.2)
def open_document(
    tenant_id: str, job_id: str, printer_id: str, data_key: str | None
) -> dict[str, Any]:
    """S106 token (FIG. 6) and S107 download (FIG. 7) of a pass-through job (`passes_pdf`):
    `prepare_pages` without its conversion, which runs beside the printing
    (`convert_beside`). Answers as `prepare_pages` does."""
    rt = current()
    with rt.db.sessions() as db:
        job = db.get(PrintJobRow, job_id)
        if job is None or job.tenant_id != tenant_id or job.state not in service.ACTIVE:
            return {"ok": False, "outcome": "cancelled"}
        state, has_token = job.state, job.token_sealed is not None
    if state == "downloaded" and has_token:  # a try cut short after its record
        return {"ok": True}
    failed = _token_and_download(rt, tenant_id, job_id, printer_id, None, data_key)
    return failed or {"ok": True}


def _note(
    job_id: str, tenant_id: str, *, step: str, worker: str | None, detail: str, **fields: Any
) -> None:
    """A step's event in the job's history without moving the job (the printer may have
    taken it or printed it meanwhile), with `fields` set on its row."""
    with current().db.session() as db:
        job = db.get(PrintJobRow, job_id)
        if job is None or job.tenant_id != tenant_id:
            return
        for name, value in fields.items():
            setattr(job, name, value)
        service.add_event(db, job, step=step, state=job.state, worker=worker, detail=detail)
        bump_on_commit(db, JOBS)  # a Fetch-Document waiting for the pages looks again


#: Ended before its pages were made: nobody will see them (`convert_beside`).
_UNSEEN = ("cancelled", "expired", "failed")


@tasks.step(name="printing.convert_beside", retries=30, retry_interval=0.5, backoff=1.2)
def convert_beside(tenant_id: str, job_id: str, printer_id: str, dpi: int, color: bool) -> str:
    """S108 (FIG. 8) of a pass-through job, beside its printing: the JPEG pages and
    metafile (from which a device that asks for PWG raster, URF or JPEG is served) and
    the job's page previews (`previews.py`). Recorded in the history when it ends,
    the job's state unchanged; a failure does not end the job (its printer takes the
    PDF), it is recorded with its reason. Answers `converted`, `failed` or `skipped`."""
    rt = current()
    assert rt.balancer is not None
    with rt.db.sessions() as db:
        job = db.get(PrintJobRow, job_id)
        if job is None or job.tenant_id != tenant_id:
            return "skipped"
        if job.manifest_url:  # a repeated try
            return "converted"
        state = job.state
    if state in _UNSEEN:
        _note(job_id, tenant_id, step="S108", worker=None, detail=f"not converted: {state} first")
        return "skipped"
    sent = rt.balancer.call(
        "POST",
        f"/sessions/{job_id}/{printer_id}/convert",
        json={"tenant_id": tenant_id, "dpi": dpi, "color": color, "previews": True},
    )
    status = sent.response.status_code
    if status in (400, 404, 409, 413, 422):
        reason = error_text(sent.response)
        _note(
            job_id,
            tenant_id,
            step="S108",
            worker=sent.worker,
            detail=f"JPEG conversion failed: {reason} (the printer takes the PDF; "
            "no page previews, no raster)",
        )
        return "failed"
    if status != 200:
        raise Unavailable(f"conversion answered HTTP {status}: {error_text(sent.response)}")
    answer = sent.response.json()
    _note(
        job_id,
        tenant_id,
        step="S108",
        worker=sent.worker,
        detail=f"{answer['pages']} JPEG page(s) at {dpi} dpi, {'color' if color else 'gray'}, "
        "beside the printing (page previews; raster on request)",
        manifest_url=answer["manifest_url"],
        previews=int(answer.get("previews") or 0),
    )
    return "converted"


def _token_and_download(
    rt: PrintingRuntime,
    tenant_id: str,
    job_id: str,
    printer_id: str,
    url: str | None,
    data_key: str | None,
) -> dict[str, Any] | None:
    """S106 and S107, recorded together: None when the job is downloaded, else the
    outcome that ended it (`prepare_pages`)."""
    assert rt.balancer is not None
    issued, sealed = _open_session(rt, tenant_id, job_id, printer_id, data_key)
    body: dict[str, Any] = {"tenant_id": tenant_id}
    if url:
        body["url"] = url
    else:  # also names the blob to a session opened before the token request did
        body["data_key"] = data_key
    sent = rt.balancer.call("POST", f"/sessions/{job_id}/{printer_id}/download", json=body)
    status = sent.response.status_code
    if status in (400, 404, 413, 415, 422, 502):
        reason = error_text(sent.response)
        if not _record(
            job_id,
            tenant_id,
            "download_failed",
            step="S107",
            worker=sent.worker,
            reason=reason,
            earlier=(issued,),
            token_sealed=sealed,
        ):
            return {"ok": False, "outcome": "cancelled"}
        return {"ok": False, "outcome": "download_failed"}
    if status != 200:
        raise Unavailable(f"download answered HTTP {status}: {error_text(sent.response)}")
    pages = int(sent.response.json()["pages"])
    if not _record(
        job_id,
        tenant_id,
        "downloaded",
        step="S107",
        worker=sent.worker,
        detail=f"{pages} page(s) downloaded",
        earlier=(issued,),
        token_sealed=sealed,
        page_count=pages,
    ):
        return {"ok": False, "outcome": "cancelled"}  # its owner cancelled it meanwhile
    return None


@tasks.step(name="printing.print_request", retries=30, retry_interval=0.5, backoff=1.2)
def print_request(tenant_id: str, job_id: str, printer_id: str, passthrough: bool = False) -> str:
    """S109: the job becomes the printer's work; pushed if the printer listens."""
    rt = current()
    detail = "waiting for the printer"
    if passthrough:
        detail += " (it takes the PDF as it is: fetchable before its JPEG pages are made)"
    with rt.db.session() as db:  # the move and the printer's push URL: one transaction
        job = db.get(PrintJobRow, job_id)
        if job is None or job.tenant_id != tenant_id:
            return "ended"
        if not service.move(db, job, "waiting_for_printer", step="S109", detail=detail):
            return "ended"
        push_url = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id).push_url
    if not push_url:
        return "poll"  # the printer polls
    body = {"event": "print_request", "job_id": job_id, "printer_id": printer_id}
    outcome, detail = push_to(rt, push_url, body)
    with rt.db.session() as db:
        job = db.get(PrintJobRow, job_id)
        if job is not None:  # in the state it is in now: the printer may have taken it
            service.add_event(db, job, step="S109", state=job.state, detail=detail)
    return "pushed" if outcome == "pushed" else "poll"


def push(
    rt: PrintingRuntime, *, tenant_id: str, printer_id: str, body: dict[str, Any]
) -> tuple[str, str]:
    """Tell the printer's device to poll now (a print request, S109, or an
    Identify-Printer request): `("pushed" | "poll" | "refused" | "none", detail)`, where
    `none` means the printer gives no push URL (it polls) and `refused` that the egress
    policy does not connect there (nothing was sent)."""
    with rt.db.sessions() as db:
        push_url = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id).push_url
    if not push_url:
        return "none", "the printer polls"
    return push_to(rt, push_url, body)


def push_to(rt: PrintingRuntime, push_url: str, body: dict[str, Any]) -> tuple[str, str]:
    """`push` to a printer's known push URL: `("pushed" | "poll" | "refused", detail)`."""
    try:
        # Pinned: the address the policy checks now is the one connected to. The URL
        # passed when it was saved, but its name may answer otherwise today.
        answer = rt.push_http.post(push_url, json=body)
    except EgressRefused as exc:
        # Nothing was sent: say so, and not whether anything listens there.
        return "refused", (
            f"push refused by the egress policy ({exc.description}); the printer will poll"
        )
    except httpx.HTTPError:
        return "poll", "push failed; the printer will poll"
    if answer.status_code < 300:
        return "pushed", f"{str(body.get('event', 'request')).replace('_', ' ')} pushed"
    return "poll", "push failed; the printer will poll"


def record_result(tenant_id: str, job_id: str, result: dict[str, Any]) -> str:
    """S111: the intake learns the outcome."""
    outcome = result.get("outcome")
    pages = int(result.get("pages_printed") or 0)
    if outcome == "printed":
        _record(
            job_id,
            tenant_id,
            "printed",
            step="S111",
            worker=result.get("printer"),
            detail=f"{pages} page(s) printed",
            pages_printed=pages,
            token_sealed=None,
        )
        return "printed"
    if outcome == "cancelled":
        reason = str(result.get("reason") or "cancelled at the printer")
        _record(
            job_id,
            tenant_id,
            "printer_cancelled",
            step="S111",
            worker=result.get("printer"),
            reason=reason,
            detail=str(result.get("message") or reason),
            pages_printed=pages,
            token_sealed=None,
        )
        return "printer_cancelled"
    return "cancelled"  # the owner cancelled: the intake already knows


@tasks.step(name="printing.conclude", retries=30, retry_interval=0.5, backoff=1.2)
def conclude(tenant_id: str, job_id: str, printer_id: str, result: dict[str, Any]) -> str:
    """S111 and S112 as one checkpoint: the intake learns the printer's result (first,
    so a completion that keeps failing cannot hide a printed job), then completion."""
    outcome = record_result(tenant_id, job_id, result)
    _complete(tenant_id, job_id, printer_id)
    return outcome


@tasks.step(name="printing.result", retries=30, retry_interval=0.5, backoff=1.2)
def result_of(tenant_id: str, job_id: str, result: dict[str, Any]) -> str:
    """S111 alone, for a pass-through job: its S112 waits for the conversion beside."""
    return record_result(tenant_id, job_id, result)


@tasks.step(name="printing.charge", retries=30, retry_interval=0.5, backoff=1.2)
def charge(tenant_id: str, job_id: str) -> int | None:
    """Issue 18: charge the ended job for what printed and release the rest of its
    reservation; once (the ledger transaction's key is the job ID, unique), so a retry
    or a takeover after the charge committed changes nothing."""
    with current().db.session() as db:
        return charging.settle(db, tenant_id=tenant_id, job_id=job_id)


@tasks.step(name="printing.fail", retries=30, retry_interval=0.5, backoff=1.2)
def fail(tenant_id: str, job_id: str, state: str, step: str, reason: str, worker: str) -> None:
    _record(job_id, tenant_id, state, step=step, reason=reason, worker=worker or None)


@tasks.step(name="printing.complete", retries=30, retry_interval=0.5, backoff=1.2)
def complete(tenant_id: str, job_id: str, printer_id: str) -> str:
    """S112 (FIG. 11): delete the converted data and the session record."""
    return _complete(tenant_id, job_id, printer_id)


def _complete(tenant_id: str, job_id: str, printer_id: str) -> str:
    rt = current()
    assert rt.balancer is not None
    sent = rt.balancer.call(
        "DELETE", f"/sessions/{job_id}/{printer_id}", params={"tenant_id": tenant_id}
    )
    if sent.response.status_code != 204:
        raise Unavailable(f"completion answered HTTP {sent.response.status_code}")
    with rt.db.session() as db:
        job = db.get(PrintJobRow, job_id)
        if job is not None:
            # A job the printer stopped keeps its document, so that its owner can
            # print the remaining pages or print it again (issue 16); the sweep
            # drops it with the previews (`drop_old_documents`).
            data_key = job.data_key if job.state != "printer_cancelled" else None
            job.token_sealed = None
            service.add_event(
                db,
                job,
                step="S112",
                state=job.state,
                worker=sent.worker,
                detail="converted data and session record deleted",
            )
        else:
            data_key = None
    if data_key:
        rt.blobs.delete(data_key)
    return sent.worker


# -- the workflow ------------------------------------------------------------------------


#: Per-tenant fairness: a job's conversion (S106–S108) waits here for one of its
#: tenant's slots (`PRINTCLOUD_TENANT_CONCURRENCY`), so one tenant's flood of jobs
#: takes its own slots and never the others'.
TENANT_QUEUE = tasks.queue("printing.tenants", per_key_concurrency=2, poll_interval=0.1)
#: Per-printer cap: a job from its token request (S106) to its end holds one of its
#: printer's slots (`PRINTCLOUD_PRINTER_CONCURRENCY`); later jobs for that printer
#: wait before asking for their token, so it does not time out while the printer is
#: busy with the ones before.
PRINTER_QUEUE = tasks.queue("printing.printers", per_key_concurrency=2, poll_interval=0.1)


def deliver_id(job_id: str) -> str:
    """The workflow that takes the job from its printer slot to its end (it receives
    the printer's result)."""
    return f"deliver-{job_id}"


def prepare_id(job_id: str) -> str:
    return f"prepare-{job_id}"


def printer_key(tenant_id: str, printer_id: str) -> str:
    return f"{tenant_id}/{printer_id}"


def tune(engine: tasks.TaskEngine, settings: Any) -> None:
    """The queues' limits from the settings (before the engine launches)."""
    engine.tune(TENANT_QUEUE, per_key_concurrency=settings.tenant_concurrency)
    engine.tune(PRINTER_QUEUE, per_key_concurrency=settings.printer_concurrency)


async def _guarded(tenant_id: str, job_id: str, body: Any) -> str:
    try:
        return str(await body(tenant_id, job_id))
    except Exception as exc:  # a step gave up after its retries: name it, never drop the job
        reason = f"{type(exc).__name__}: {exc}"[:900]
        log.error("print job failed", extra={"fields": {"job": job_id, "reason": reason}})
        await tasks.call(fail, tenant_id, job_id, "failed", "SVC002", reason, "")
        try:
            job = await tasks.call(load_job, tenant_id, job_id)
            if job.get("accounted"):  # its reservation back: it failed before printing
                await tasks.call(charge, tenant_id, job_id)
            await tasks.call(complete, tenant_id, job_id, str(job.get("printer_id")))
        except Exception as cleanup:  # the sweeper removes what is left
            log.warning(
                "cleanup after a failed job did not finish",
                extra={"fields": {"job": job_id, "error": str(cleanup)[:300]}},
            )
        return "failed"


# The two workflows that wait (for a release, for the printer's result, for their turn
# or their conversion) are async: a waiting job holds no thread (`core.tasks`, `loop`).
# Their steps are called with `await tasks.call(...)`, in the order the sync workflows
# called them, so a workflow resumes after its last step whichever version began it.


@tasks.workflow(name="printing.process_job")
async def process_job(tenant_id: str, job_id: str, job: dict[str, Any] | None = None) -> str:
    """The job's own workflow (`job-<id>`): holding, then its turn at the printer.
    `job`: the job's `facts` as the intake recorded them (a job not held), so its first
    step (`load_job`, a read and a checkpoint) is skipped; None (a job adopted at start,
    a workflow begun before this argument existed): read by `load_job`. A cancel before
    the start is seen by the delivery's first step, as for a job cancelled in its turn."""

    async def body(tenant_id: str, job_id: str) -> str:
        return await _admit(tenant_id, job_id, job)

    return await _guarded(tenant_id, job_id, body)


@tasks.workflow(name="printing.deliver")
async def deliver(tenant_id: str, job_id: str, job: dict[str, Any] | None = None) -> str:
    """On the printer's queue: the seed's flow from S106 to S112. `job`: what the job's
    own workflow loaded (`load_job`), so it is not read again; a cancel since then is
    seen by the first record of `prepare_pages`."""

    async def body(tenant_id: str, job_id: str) -> str:
        return await _deliver(tenant_id, job_id, job)

    return await _guarded(tenant_id, job_id, body)


@tasks.workflow(name="printing.prepare")
def prepare(
    tenant_id: str,
    job_id: str,
    printer_id: str,
    url: str | None,
    data_key: str | None,
    dpi: int,
    color: bool,
) -> dict[str, Any]:
    """On the tenant's queue: S106 token, S107 download, S108 conversion (one step)."""
    return prepare_pages(tenant_id, job_id, printer_id, url, data_key, dpi, color)


@tasks.workflow(name="printing.convert_pages")
def convert_pages(tenant_id: str, job_id: str, printer_id: str, dpi: int, color: bool) -> str:
    """On the tenant's queue: S108 of a pass-through job, beside its printing."""
    return convert_beside(tenant_id, job_id, printer_id, dpi, color)


def _engine() -> tasks.TaskEngine:
    engine = current().engine
    if engine is None:
        raise RuntimeError("the print service's workflow engine is not running")
    return engine


async def _admit(tenant_id: str, job_id: str, known: dict[str, Any] | None = None) -> str:
    job = known if known is not None else await tasks.call(load_job, tenant_id, job_id)
    if job["state"] not in service.ACTIVE:
        return str(job["state"])
    printer_id = str(job["printer_id"])
    if job["options"].get("hold"):
        # Held until its owner releases it at the printer: the seed's flow starts then,
        # so the conversion token is fresh when the printer fetches the pages.
        await tasks.call(hold, tenant_id, job_id)
        message = await _wait(float(current().settings.held_job_ttl), RELEASE_OUTCOMES)
        if message is None:
            await tasks.call(
                fail, tenant_id, job_id, "expired", "SVC001", "not released in time", ""
            )
            return await _finish(tenant_id, job_id, printer_id, "expired", job)
        if message.get("outcome") != "released":  # the owner cancelled it
            return await _finish(tenant_id, job_id, printer_id, "cancelled", job)
        job = await tasks.call(load_job, tenant_id, job_id)  # released at another printer?
        printer_id = str(job["printer_id"])
    turn = await _engine().enqueue_async(
        PRINTER_QUEUE,
        deliver,
        key=printer_key(tenant_id, printer_id),
        workflow_id=deliver_id(job_id),
    )(tenant_id, job_id, job)
    # Its delivery ends in this process, which wakes this wait at once; the look for an
    # end in another replica (distributed run) only decides when this workflow ends.
    return str(await turn.result(poll_interval=_TURN_POLL))


async def _deliver(tenant_id: str, job_id: str, job: dict[str, Any] | None) -> str:
    if job is None:  # enqueued without what its job's workflow loaded
        job = await tasks.call(load_job, tenant_id, job_id)
        if job["state"] not in service.ACTIVE:  # cancelled while it waited for its turn
            printer_id = str(job.get("printer_id"))
            return await _finish(tenant_id, job_id, printer_id, str(job["state"]), job)
    if job.get("passthrough"):
        return await _pass_through(tenant_id, job_id, job)
    printer_id = str(job["printer_id"])
    options = job["options"]
    conversion = await _engine().enqueue_async(
        TENANT_QUEUE, prepare, key=tenant_id, workflow_id=prepare_id(job_id)
    )(
        tenant_id,
        job_id,
        printer_id,
        job["url"],
        job.get("data_key"),
        int(options.get("dpi", 300)),
        job["color"],
    )
    prepared = await conversion.result()
    if not prepared["ok"]:
        return await _finish(tenant_id, job_id, printer_id, str(prepared["outcome"]), job)
    if await tasks.call(print_request, tenant_id, job_id, printer_id) == "ended":
        return await _finish(tenant_id, job_id, printer_id, "cancelled", job)
    # S110: wait for the printer until the conversion token times out.
    timeout = float(current().settings.conversion_token_timeout) + 60.0
    result = await _wait(timeout, RESULT_OUTCOMES)
    if result is None:
        await tasks.call(
            fail,
            tenant_id,
            job_id,
            "expired",
            "S110",
            "the printer did not print the job before its conversion token timed out",
            "",
        )
        return await _finish(tenant_id, job_id, printer_id, "expired", job)
    outcome = str(await tasks.call(conclude, tenant_id, job_id, printer_id, result))
    if job.get("accounted"):
        await tasks.call(charge, tenant_id, job_id)
    return outcome


async def _pass_through(tenant_id: str, job_id: str, job: dict[str, Any]) -> str:
    """S106–S112 for a printer that takes the PDF as it is (`passes_pdf`): S106 and S107,
    then S109 at once, so the job is fetchable while its S108 conversion runs beside on
    the tenant's queue (`convert_beside`); S111 as soon as the printer reports, its
    charge, and S112 once the conversion has ended (completion deletes what it made)."""
    printer_id = str(job["printer_id"])
    opened = await tasks.call(open_document, tenant_id, job_id, printer_id, job.get("data_key"))
    if not opened["ok"]:
        return await _finish(tenant_id, job_id, printer_id, str(opened["outcome"]), job)
    if await tasks.call(print_request, tenant_id, job_id, printer_id, True) == "ended":
        return await _finish(tenant_id, job_id, printer_id, "cancelled", job)
    conversion = await _engine().enqueue_async(
        TENANT_QUEUE, convert_pages, key=tenant_id, workflow_id=prepare_id(job_id)
    )(tenant_id, job_id, printer_id, int(job["options"].get("dpi", 300)), job["color"])
    timeout = float(current().settings.conversion_token_timeout) + 60.0
    result = await _wait(timeout, RESULT_OUTCOMES)
    if result is None:
        await tasks.call(
            fail,
            tenant_id,
            job_id,
            "expired",
            "S110",
            "the printer did not print the job before its conversion token timed out",
            "",
        )
        outcome = "expired"
    else:
        outcome = str(await tasks.call(result_of, tenant_id, job_id, result))
    if job.get("accounted"):
        await tasks.call(charge, tenant_id, job_id)
    try:
        await conversion.result()
    except Exception as exc:  # its steps gave up: the job itself is not hurt by that
        log.warning(
            "a pass-through job's conversion failed",
            extra={"fields": {"job": job_id, "reason": f"{type(exc).__name__}: {exc}"[:300]}},
        )
    await tasks.call(complete, tenant_id, job_id, printer_id)
    return outcome


def adopt_orphans() -> int:
    """Start the workflow of every unfinished job that has none: the process may have
    died between recording a job and starting it. Starting is idempotent (the
    workflow ID is the job's), so a job whose workflow exists is left alone."""
    rt = current()
    assert rt.engine is not None
    with rt.db.sessions() as db:
        rows = db.execute(
            select(PrintJobRow.tenant_id, PrintJobRow.job_id).where(
                PrintJobRow.state.in_(service.ACTIVE)
            )
        ).all()
    adopted = 0
    for tenant_id, job_id in rows:
        if rt.engine.get_status(workflow_id(job_id)) is None:
            rt.engine.start(process_job, workflow_id=workflow_id(job_id))(tenant_id, job_id)
            adopted += 1
    if adopted:
        log.warning(
            "started the workflows of jobs that had none", extra={"fields": {"jobs": adopted}}
        )
    return adopted


async def _wait(limit: float, outcomes: tuple[str, ...]) -> dict[str, Any] | None:
    """The next message to the job with one of `outcomes` (the printer's result, a
    release, the owner's cancel), waited for in slices, each a checkpoint; None after
    `limit` seconds. Other messages (a late duplicate, say) are dropped. The wait is a
    coroutine: it holds no thread."""
    waited = 0.0
    while waited < limit:
        slice_ = min(_WAIT_SLICE, limit - waited)
        message = await tasks.recv_async(topic=PRINTER_TOPIC, timeout=slice_)
        if message is None:
            waited += slice_
        elif dict(message).get("outcome") in outcomes:
            return dict(message)
    return None


@tasks.step(name="printing.hold", retries=30, retry_interval=0.5, backoff=1.2)
def hold(tenant_id: str, job_id: str) -> None:
    _record(job_id, tenant_id, "held", step="SVC001", detail="held until its owner releases it")


async def _finish(
    tenant_id: str, job_id: str, printer_id: str, outcome: str, job: dict[str, Any]
) -> str:
    """Every end of a job that did not reach `conclude`: its charge (when it has a
    reservation, `load_job`), then S112."""
    if job.get("accounted"):
        await tasks.call(charge, tenant_id, job_id)
    await tasks.call(complete, tenant_id, job_id, printer_id)
    return outcome


@tasks.scheduled("*/5 * * * *", name="printing.sweep")
def sweep_stale(scheduled_at: Any, context: Any) -> None:
    """Remove converted data and session records of jobs that never completed."""
    sweep_step()


@tasks.step(name="printing.sweep_step")
def sweep_step() -> int:
    from .worker import sweep_stores

    try:
        rt = current()
    except RuntimeError:  # an engine without the print service (a test's, say)
        return 0
    older = timedelta(seconds=rt.settings.conversion_token_timeout + 3600)
    swept = sweep_stores(db=rt.db, blobs=rt.blobs, sessions=rt.sessions, older_than=older)
    retention = timedelta(days=rt.settings.preview_retention_days)
    dropped = drop_old_previews(rt, older_than=retention)
    dropped += drop_old_documents(rt, older_than=retention)
    if swept or dropped:
        log.info(
            "swept stale conversion sessions and old previews",
            extra={"fields": {"sessions": swept, "previews": dropped}},
        )
    return swept


def drop_old_previews(
    rt: PrintingRuntime, *, older_than: timedelta, now: datetime | None = None
) -> int:
    """Delete the printed-page previews of jobs that ended longer ago than `older_than`."""
    cutoff = (now or utcnow()) - older_than
    with rt.db.session() as db:
        jobs = list(
            db.scalars(
                select(PrintJobRow).where(
                    PrintJobRow.previews > 0, PrintJobRow.finished_at < cutoff
                )
            )
        )
        for job in jobs:
            rt.blobs.delete_prefix(f"previews/{job.job_id}")
            job.previews = 0
    return len(jobs)


def drop_old_documents(
    rt: PrintingRuntime, *, older_than: timedelta, now: datetime | None = None
) -> int:
    """Delete the documents kept for jobs the printer stopped (to print them again)
    that ended longer ago than `older_than`."""
    cutoff = (now or utcnow()) - older_than
    with rt.db.session() as db:
        jobs = list(
            db.scalars(
                select(PrintJobRow).where(
                    PrintJobRow.state == "printer_cancelled",
                    PrintJobRow.data_key.is_not(None),
                    PrintJobRow.finished_at < cutoff,
                )
            )
        )
        for job in jobs:
            if job.data_key:
                rt.blobs.delete(job.data_key)
            job.data_key = None
    return len(jobs)
