"""Scheduled batch-print jobs fire (seed 000, FIG. 6–7, steps S1501–S1509).

One DBOS schedule per active job, named `crm-job-{job_id}` (the public ID, not the
row's key: the delete hook runs after the row is gone), with the job's cron in its
time zone and backfill on: each tick fires once across replicas, and ticks missed
while no executor ran fire once at the next start. A job run once gets a cron for
its start second and a guard that only that tick runs; its schedule is then deleted.
A run-once job whose second passed while nothing ran is fired at the next start, once:
its run, keyed like every tick's, is the record that it ran, and a restart reads it.

DBOS reads the schedules set at run time every 30 s, and starts a new (or changed)
schedule's clock from the moment it reads it: a tick due before that would be lost
(a job saved 20 s before its start never ran). So when a job is saved, or the
server starts, a tick due within `NOTICE` is started at once, under the very workflow
ID the schedule would give it, and `fire` waits durably for its second; the schedule,
finding that workflow, does not start it again.

Each tick runs `fire`, a durable workflow whose steps are recorded on the run:

1. open the run of this tick (`service.start_run`, keyed by `service.tick`: the UTC
   second, whichever way the tick fired): if it already exists, stop;
2. read the tenant's docgen link (S1506): none → the run fails;
3. call docgen's batch-print endpoint under system authority (S1502), answering
   the Digest challenge with the docgen tenant ID and the secret key (S1505–S1509);
   the key is unsealed inside the step, never a step's input or output, because
   DBOS checkpoints those. An unreachable docgen is retried, then the run fails;
4. record docgen's answer: 202 → completed with docgen's request ID; a refusal
   (401 …) → suspended with docgen's reason (S1512).

"Run now" (`run_now`, behind `POST /api/jobs/{id}/run` in `routes.py`) starts the same
workflow for the current time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from printcloud.core import tasks
from printcloud.core.db import utcnow
from printcloud.core.errors import NotFound, Unavailable
from printcloud.core.logs import get_logger
from printcloud.docgen.client import BatchPrintRefused, DocgenClient

from . import service
from .models import BatchJobRow, BatchRunRow
from .runtime import CrmRuntime, current
from .schemas import RunStarted

log = get_logger("crm.schedules")

#: How long a tick may come before the job's start and still count as it (clock jitter).
SLACK = timedelta(seconds=1)
#: Longer than DBOS takes to notice a schedule set at run time (it reads them every 30 s):
#: a tick due sooner than this after a change is started by us, not left to it.
NOTICE = timedelta(seconds=45)


def schedule_name(job_id: str) -> str:
    return f"crm-job-{job_id}"


def tick_workflow_id(job: BatchJobRow, at: datetime) -> str:
    """The workflow that runs the job's tick at `at`: the ID DBOS gives the schedule's
    own firing of that tick (`sched-<schedule>-<tick in the job's zone, ISO 8601>`),
    so a tick started again by hand is the same workflow, not a second one. The run
    row keyed by `service.tick` is what guarantees it runs once; this spares the work."""
    local = service.tick(at).astimezone(service.zone(job.timezone))
    return f"sched-{schedule_name(job.job_id)}-{local.isoformat()}"


def _cron(job: BatchJobRow) -> str:
    """The job's DBOS cron (6 fields, seconds first, in the job's time zone)."""
    expression = service.schedule_cron(job)
    if expression is not None:
        return expression
    local = job.start_at.astimezone(service.zone(job.timezone))
    return f"{local.second} {local.minute} {local.hour} {local.day} {local.month} *"


def _wanted(job: BatchJobRow, now: datetime) -> bool:
    """Whether the job needs a schedule: active, and (run once) not past its start."""
    if job.paused:
        return False
    return job.recurrence != "once" or job.start_at > now - SLACK


def _context(job: BatchJobRow) -> dict[str, Any]:
    return {"tenant_id": job.tenant_id, "job_id": job.job_id}


def _register(engine: tasks.TaskEngine, job: BatchJobRow, now: datetime) -> None:
    name = schedule_name(job.job_id)
    if not _wanted(job, now):
        engine.delete_schedule(name)
        return
    engine.set_schedule(
        name, fire, _cron(job), context=_context(job), timezone=job.timezone, backfill=True
    )


def job_changed(rt: CrmRuntime, tenant_id: str, job_id: str) -> None:
    """The hook after a committed job change: set, replace or delete its schedule."""
    if rt.engine is None:
        log.warning(
            "batch job changed but no workflow engine runs here; it is scheduled at next start",
            extra={"fields": {"tenant": tenant_id, "job": job_id}},
        )
        return
    with rt.db.session() as db:
        try:
            job: BatchJobRow | None = service.get_job(db, tenant_id=tenant_id, job_id=job_id)
        except NotFound:
            job = None
        if job is None:
            rt.engine.delete_schedule(schedule_name(job_id))
            return
        now = utcnow()
        _register(rt.engine, job, now)
        if _missed(db, job, now):
            # Accepted with a start a few seconds past (the API allows a minute), or
            # saved just as its second passed: no schedule would fire it, so run it now.
            run_missed(rt, job)
        else:
            start_imminent(rt, job, now)


def _missed(db: Session, job: BatchJobRow, now: datetime) -> bool:
    """A run-once job whose tick passed without a run."""
    return (
        job.recurrence == "once"
        and not job.paused
        and job.start_at <= now - SLACK
        and not service.tick_ran(db, job=job, at=job.start_at)
    )


def sync(rt: CrmRuntime) -> None:
    """At start: every job's schedule as the job says (re-applying keeps DBOS's
    last-fired time, so missed ticks are still backfilled). One tenant's bad job
    does not keep the others' from being scheduled."""
    if rt.engine is None:
        return
    now = utcnow()
    with rt.db.session() as db:
        jobs = service.list_all_jobs(db)
        for job in jobs:
            try:
                _register(rt.engine, job, now)
            except Exception:
                log.exception(
                    "could not schedule a batch job",
                    extra={"fields": {"tenant": job.tenant_id, "job": job.job_id}},
                )
            if _missed(db, job, now):
                # Its tick passed while nothing ran (a run-once schedule has no last-fired
                # time to backfill from): run it now, once (the run is unique per tick).
                run_missed(rt, job)
            else:
                start_imminent(rt, job, now)


def run_missed(rt: CrmRuntime, job: BatchJobRow) -> None:
    """Fire a run-once job's tick that passed while no executor ran: the same tick, by
    the same identity, as its schedule would have fired."""
    assert rt.engine is not None
    at = service.tick(job.start_at)
    rt.engine.start(fire, workflow_id=tick_workflow_id(job, at))(at, _context(job))


def start_imminent(rt: CrmRuntime, job: BatchJobRow, now: datetime) -> str | None:
    """Start the job's next tick now when it is due within `NOTICE` (DBOS might notice
    the schedule after that second): the tick's own workflow, which waits for its
    second. Returns its workflow ID, or None when the tick is far enough off."""
    assert rt.engine is not None
    upcoming = service.next_run(job, now=now - SLACK)
    if upcoming is None or upcoming - now > NOTICE:
        return None
    at = service.tick(upcoming)
    workflow_id = tick_workflow_id(job, at)
    rt.engine.start(fire, workflow_id=workflow_id)(at, _context(job))
    return workflow_id


def install(rt: CrmRuntime) -> None:
    """Wire the scheduler into the CRM's runtime (the app factory calls this)."""
    rt.on_job_changed.append(lambda tenant_id, job_id: job_changed(rt, tenant_id, job_id))
    rt.on_started.append(lambda: sync(rt))


# -- the workflow -----------------------------------------------------------------------------


@tasks.step(name="printcloud.crm.schedules.open_run")
def open_run(scheduled_at: datetime, tenant_id: str, job_id: str, manual: bool) -> dict[str, Any]:
    """S1501: the run of this tick, created once; `{}` when there is nothing to run."""
    rt = current()
    fields = {"tenant": tenant_id, "job": job_id, "at": scheduled_at.isoformat()}
    with rt.db.session() as db:
        try:
            job = service.get_job(db, tenant_id=tenant_id, job_id=job_id)
        except NotFound:
            log.info("tick of a deleted batch job ignored", extra={"fields": fields})
            return {}
        if not manual:
            if job.paused:
                log.info("tick of a paused batch job ignored", extra={"fields": fields})
                return {}
            if scheduled_at < job.start_at - SLACK or (
                job.recurrence == "once" and abs(scheduled_at - job.start_at) > SLACK
            ):
                return {}
            if not service.is_tick(job, scheduled_at):
                # started ahead of its second (`start_imminent`), then the job was edited
                log.info("tick of a changed batch job ignored", extra={"fields": fields})
                return {}
        run, created = service.start_run(
            db, tenant_id=tenant_id, job_id=job_id, scheduled_at=scheduled_at, manual=manual
        )
        if not created:
            log.info("tick already run", extra={"fields": fields})
            return {}
        how = "run now" if manual else f"scheduled tick {run.scheduled_at.isoformat()}"
        service.add_step(run, step="S1501", detail=f"batch job {job.name!r} started ({how})")
        return {
            "run_id": run.run_id,
            "once": job.recurrence == "once",
            "job": job.name,
            "parameters": {
                "record_set": job.record_set,
                "filters": list(job.filters),
                "order": list(job.order),
                "limit": job.limit,
                "form": job.form,
                "print": {
                    "printer_id": job.printer_id,
                    "color": job.color,
                    "copies": job.copies,
                    "duplex": job.duplex,
                },
                "scheduled_at": run.scheduled_at.isoformat(),
            },
        }


def _record(tenant_id: str, run_id: str, *, step: str, detail: str, outcome: str = "") -> None:
    rt = current()
    with rt.db.session() as db:
        run = db.scalars(
            select(BatchRunRow).where(
                BatchRunRow.tenant_id == tenant_id, BatchRunRow.run_id == run_id
            )
        ).one()
        service.add_step(run, step=step, detail=detail)
        if outcome:
            service.finish_run(run, outcome=outcome, reason=detail)


@tasks.step(name="printcloud.crm.schedules.read_link")
def read_link(tenant_id: str, run_id: str) -> str:
    """S1506: the docgen tenant this CRM tenant is bound to ('' when none, and the run fails)."""
    rt = current()
    with rt.db.session() as db:
        try:
            link = service.get_docgen_link(db, tenant_id=tenant_id)
            docgen_tenant_id = link.docgen_tenant_id
        except NotFound:
            docgen_tenant_id = ""
    if not docgen_tenant_id:
        _record(
            tenant_id,
            run_id,
            step="S1506",
            detail="no docgen link registered: enter docgen's tenant ID and secret key",
            outcome="failed",
        )
    else:
        _record(tenant_id, run_id, step="S1506", detail=f"docgen tenant {docgen_tenant_id}")
    return docgen_tenant_id


class DocgenUnreachable(Exception):
    """docgen did not answer, or answered with a server error: worth retrying."""


@tasks.step(name="printcloud.crm.schedules.call_docgen", retries=3, retry_interval=2.0)
def call_docgen(
    tenant_id: str, run_id: str, job: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    """S1502–S1509: the batch-print request, Digest-signed with the key unsealed here.
    docgen knows the request by `run_id`, so a retried call is the same request."""
    rt = current()
    with rt.db.session() as db:
        # The link's own tenant only: `tenant_id` is this job's (S1412, one-to-one).
        creds = service.docgen_credentials(db, tenant_id=tenant_id, box=rt.box)
    client = DocgenClient(f"{rt.settings.public_url}/docgen", http=rt.http)
    try:
        accepted = client.batch_print(
            tenant_id=creds.docgen_tenant_id,
            secret_key=creds.secret_key,
            run_id=run_id,
            job=job,
            parameters=parameters,
        )
    except BatchPrintRefused as exc:
        if exc.status >= 500:
            raise DocgenUnreachable(str(exc)) from exc
        return {"status": exc.status, "error": exc.error, "reason": exc.description}
    except (httpx.HTTPError, ValueError) as exc:
        raise DocgenUnreachable(f"docgen did not answer: {exc}") from exc
    return {"status": 202, "request_id": accepted.request_id, "state": accepted.state}


@tasks.step(name="printcloud.crm.schedules.record_answer")
def record_answer(tenant_id: str, run_id: str, answer: dict[str, Any]) -> str:
    if answer.get("status") == 202:
        detail = f"docgen accepted the batch: request {answer['request_id']}"
        _record(tenant_id, run_id, step="S1509", detail=detail, outcome="completed")
        return "completed"
    reason = answer.get("reason") or answer.get("error") or "refused"
    detail = f"docgen refused the batch ({answer.get('status')} {answer.get('error')}): {reason}"
    _record(tenant_id, run_id, step="S1512", detail=detail, outcome="suspended")
    return "suspended"


@tasks.step(name="printcloud.crm.schedules.record_failure")
def record_failure(tenant_id: str, run_id: str, reason: str) -> str:
    _record(tenant_id, run_id, step="S1502", detail=reason, outcome="failed")
    return "failed"


@tasks.workflow(name="printcloud.crm.schedules.fire")
def fire(scheduled_at: datetime, context: Any) -> None:
    """One tick of a batch job (`context`: {tenant_id, job_id[, manual]})."""
    tenant_id = str(context["tenant_id"])
    job_id = str(context["job_id"])
    manual = bool(context.get("manual"))
    if not manual:
        # A tick started ahead of its second (`start_imminent`) waits for it, durably.
        # Always a sleep, of at least a millisecond, so that a replay takes the same steps.
        tasks.sleep(max(0.001, (scheduled_at - utcnow()).total_seconds()))
    opened = open_run(scheduled_at, tenant_id, job_id, manual)
    if opened.get("once") and not manual:
        engine = current().engine
        if engine is not None:
            engine.delete_schedule(schedule_name(job_id))
    if not opened:
        return
    run_id = str(opened["run_id"])
    if not read_link(tenant_id, run_id):
        return
    try:
        answer = call_docgen(tenant_id, run_id, str(opened["job"]), dict(opened["parameters"]))
    except Exception as exc:  # retries exhausted: recorded, the run failed
        record_failure(tenant_id, run_id, f"docgen unreachable: {exc}")
        return
    record_answer(tenant_id, run_id, answer)


# -- "run now" --------------------------------------------------------------------------------


def run_now(rt: CrmRuntime, *, tenant_id: str, job_id: str) -> RunStarted:
    """Start the job's workflow for the current time (paused or not: a person asked)."""
    with rt.db.session() as db:
        service.get_job(db, tenant_id=tenant_id, job_id=job_id)  # 404 for another tenant's
    if rt.engine is None:
        raise Unavailable("batch jobs do not run in this process")
    at = utcnow()
    workflow_id = f"crm-run-{job_id}-{at.isoformat()}"
    context = {"tenant_id": tenant_id, "job_id": job_id, "manual": True}
    rt.engine.start(fire, workflow_id=workflow_id)(at, context)
    return RunStarted(job_id=job_id, scheduled_at=at, workflow_id=workflow_id)
