"""The CRM's batch-job registry and runs (seed 000, FIG. 6–7).

A job: name, start time, recurrence (once, daily, weekly, cron) in an IANA time
zone, print parameters, the form and the query. Runs are recorded one per
scheduled tick with their steps and outcome (FIG. 7, S1501–S1512; the workflow
that fires them is `crm.schedules`).

Every function takes the tenant explicitly; another tenant's job is "not found".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from printcloud.core.db import Database, utcnow
from printcloud.core.errors import Conflict, InvalidRequest, NotFound

from ..models import BatchJobRow, BatchRunRow
from .records import (
    ID_PATTERN,
    MAX_QUERY_LIMIT,
    PUBLIC_ID_PATTERN,
    find_record_set,
    new_id,
    parse_filters,
    parse_order,
)

RECURRENCES = ("once", "daily", "weekly", "cron")
OUTCOMES = ("running", "completed", "suspended", "failed")


# -- batch jobs (FIG. 6–7) -------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    """What FIG. 6's registration screen sets. A naive `start_at` is read in `timezone`."""

    name: str
    start_at: datetime
    printer_id: str
    form: str
    record_set: str
    recurrence: str = "once"
    cron: str | None = None
    timezone: str = "UTC"
    paused: bool = False
    color: bool = True
    copies: int = 1
    duplex: bool = False
    filters: list[dict[str, Any]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    limit: int | None = None


def zone(name: str, *, where: str = "timezone") -> ZoneInfo:
    """An IANA time zone ("Europe/Paris"), or 400 naming the field."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidRequest("timezone must be an IANA time zone like Europe/Paris", field=where)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidRequest(
            f"unknown time zone {name[:64]!r} (use an IANA name like Europe/Paris)", field=where
        ) from exc


def check_cron(text: str | None, *, where: str = "cron") -> str:
    """A cron expression as DBOS schedules take it: 5 fields, or 6 with seconds first."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest("a cron recurrence needs a cron expression", field=where)
    expression = " ".join(text.split())
    if len(expression) > 120 or len(expression.split()) not in (5, 6):
        raise InvalidRequest(
            "a cron expression has 5 fields (minute hour day month weekday), "
            "or 6 with seconds first",
            field=where,
        )
    if not croniter.is_valid(expression, second_at_beginning=True):
        raise InvalidRequest(f"{expression!r} is not a valid cron expression", field=where)
    return expression


def _check_job(
    db: Session,
    *,
    tenant_id: str,
    spec: JobSpec,
    now: datetime,
    previous: BatchJobRow | None,
) -> tuple[JobSpec, datetime, str | None]:
    name = spec.name.strip() if isinstance(spec.name, str) else ""
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise InvalidRequest("name must be 1-200 characters", field="name")
    tz = zone(spec.timezone)
    if spec.recurrence not in RECURRENCES:
        raise InvalidRequest(
            f"recurrence must be one of {', '.join(RECURRENCES)}", field="recurrence"
        )
    cron = check_cron(spec.cron) if spec.recurrence == "cron" else None
    if not isinstance(spec.start_at, datetime):
        raise InvalidRequest("start_at must be a date and time", field="start_at")
    start = spec.start_at
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    start = start.astimezone(UTC)
    changed = previous is None or previous.start_at != start or previous.recurrence != "once"
    if spec.recurrence == "once" and changed and start < now - timedelta(minutes=1):
        raise InvalidRequest(
            "start_at is in the past: a job run once must start later", field="start_at"
        )
    if not isinstance(spec.printer_id, str) or not ID_PATTERN.match(spec.printer_id):
        raise InvalidRequest(
            "printer_id must be 1-128 letters, digits, '.', '_' or '-'", field="print.printer_id"
        )
    if not isinstance(spec.copies, int) or not 1 <= spec.copies <= 999:
        raise InvalidRequest("copies must be between 1 and 999", field="print.copies")
    if not isinstance(spec.form, str) or not ID_PATTERN.match(spec.form):
        raise InvalidRequest("form must be 1-128 letters, digits, '.', '_' or '-'", field="form")
    rs = find_record_set(db, tenant_id=tenant_id, name=spec.record_set)
    if rs is None:
        raise InvalidRequest(
            f"unknown record set {str(spec.record_set)[:64]!r}", field="query.record_set"
        )
    filters = parse_filters(rs, spec.filters, where="query.filters")
    parse_order(rs, spec.order, where="query.order")
    if spec.limit is not None and (
        not isinstance(spec.limit, int) or not 1 <= spec.limit <= MAX_QUERY_LIMIT
    ):
        raise InvalidRequest(f"limit must be between 1 and {MAX_QUERY_LIMIT}", field="query.limit")
    # Stored as given (JSON-safe: decimals and dates are strings after coercion).
    clean_filters = [{"field": f.field, "op": f.op, "value": f.value} for f in filters]
    return (
        dataclasses.replace(spec, name=name, filters=clean_filters),
        start,
        cron,
    )


def _write_spec(row: BatchJobRow, spec: JobSpec, start: datetime, cron: str | None) -> None:
    row.name = spec.name
    row.start_at = start
    row.recurrence = spec.recurrence
    row.cron = cron
    row.timezone = spec.timezone
    row.paused = bool(spec.paused)
    row.printer_id = spec.printer_id
    row.color = bool(spec.color)
    row.copies = spec.copies
    row.duplex = bool(spec.duplex)
    row.form = spec.form
    row.record_set = spec.record_set
    row.filters = list(spec.filters)
    row.order = [str(o) for o in spec.order]
    row.limit = spec.limit


def _name_taken(db: Session, *, tenant_id: str, name: str, but: int | None = None) -> bool:
    query = select(BatchJobRow.pk).where(
        BatchJobRow.tenant_id == tenant_id, BatchJobRow.name == name
    )
    if but is not None:
        query = query.where(BatchJobRow.pk != but)
    return db.scalar(query) is not None


def create_job(
    db: Session, *, tenant_id: str, spec: JobSpec, by: str, now: datetime | None = None
) -> BatchJobRow:
    spec, start, cron = _check_job(
        db, tenant_id=tenant_id, spec=spec, now=now or utcnow(), previous=None
    )
    if _name_taken(db, tenant_id=tenant_id, name=spec.name):
        raise Conflict(f"a batch job named {spec.name!r} already exists", field="name")
    row = BatchJobRow(job_id=new_id(), tenant_id=tenant_id, created_by=by, updated_by=by)
    _write_spec(row, spec, start, cron)
    db.add(row)
    try:
        db.flush()
    except IntegrityError as exc:
        raise Conflict(f"a batch job named {spec.name!r} already exists", field="name") from exc
    return row


def get_job(db: Session, *, tenant_id: str, job_id: str) -> BatchJobRow:
    row = None
    if isinstance(job_id, str) and PUBLIC_ID_PATTERN.match(job_id):
        row = db.scalar(
            select(BatchJobRow).where(
                BatchJobRow.tenant_id == tenant_id, BatchJobRow.job_id == job_id
            )
        )
    if row is None:
        raise NotFound("unknown batch job", field="job_id")
    return row


def list_jobs(db: Session, *, tenant_id: str) -> list[BatchJobRow]:
    return list(
        db.scalars(
            select(BatchJobRow)
            .where(BatchJobRow.tenant_id == tenant_id)
            .order_by(BatchJobRow.name, BatchJobRow.pk)
        )
    )


def list_all_jobs(db: Session) -> list[BatchJobRow]:
    """Every tenant's jobs: for the scheduler alone, which registers them at start."""
    return list(db.scalars(select(BatchJobRow).order_by(BatchJobRow.pk)))


def update_job(
    db: Session,
    *,
    tenant_id: str,
    job_id: str,
    spec: JobSpec,
    by: str,
    now: datetime | None = None,
) -> BatchJobRow:
    row = get_job(db, tenant_id=tenant_id, job_id=job_id)
    spec, start, cron = _check_job(
        db, tenant_id=tenant_id, spec=spec, now=now or utcnow(), previous=row
    )
    if _name_taken(db, tenant_id=tenant_id, name=spec.name, but=row.pk):
        raise Conflict(f"a batch job named {spec.name!r} already exists", field="name")
    _write_spec(row, spec, start, cron)
    row.updated_at = utcnow()
    row.updated_by = by
    return row


def set_paused(db: Session, *, tenant_id: str, job_id: str, paused: bool, by: str) -> BatchJobRow:
    row = get_job(db, tenant_id=tenant_id, job_id=job_id)
    row.paused = paused
    row.updated_at = utcnow()
    row.updated_by = by
    return row


def delete_job(db: Session, *, tenant_id: str, job_id: str) -> None:
    row = get_job(db, tenant_id=tenant_id, job_id=job_id)
    db.execute(
        delete(BatchRunRow).where(BatchRunRow.tenant_id == tenant_id, BatchRunRow.job_pk == row.pk)
    )
    db.delete(row)


def schedule_cron(job: BatchJobRow) -> str | None:
    """The job's recurrence as a 6-field cron expression (seconds first) in its time
    zone, as a DBOS schedule takes it; None for a job run once."""
    if job.recurrence == "cron":
        return job.cron
    if job.recurrence == "once":
        return None
    local = job.start_at.astimezone(zone(job.timezone))
    daily = f"{local.second} {local.minute} {local.hour} * * "
    if job.recurrence == "daily":
        return daily + "*"
    return daily + str((local.weekday() + 1) % 7)  # cron: 0 is Sunday


def next_run(job: BatchJobRow, *, now: datetime | None = None) -> datetime | None:
    """When the job runs next (UTC), for display; None when paused or over."""
    now = now or utcnow()
    if job.paused:
        return None
    if job.recurrence == "once":
        return job.start_at if job.start_at > now else None
    expression = schedule_cron(job)
    tz = zone(job.timezone)
    base = max(now, job.start_at - timedelta(seconds=1)).astimezone(tz)
    upcoming: datetime = croniter(expression, base, second_at_beginning=True).get_next(datetime)
    return upcoming.astimezone(UTC)


def is_tick(job: BatchJobRow, at: datetime) -> bool:
    """Whether `at` is one of the recurring job's ticks as the job is now (one started
    before an edit may no longer be); a job run once is judged by its start alone."""
    expression = schedule_cron(job)
    if expression is None:
        return True
    local = at.astimezone(zone(job.timezone))
    return bool(croniter.match(expression, local, second_at_beginning=True))


# -- changes the scheduler follows ---------------------------------------------------------------

#: Called with (tenant_id, job_id) once a job change is committed: the runtime's
#: `job_changed`, through which the scheduler sets, replaces or deletes the schedule.
JobChanged = Callable[[str, str], object]


def save_job(
    database: Database,
    *,
    tenant_id: str,
    job_id: str | None,
    spec: JobSpec,
    by: str,
    changed: JobChanged,
) -> BatchJobRow:
    """Register a job (`job_id` None) or replace one (FIG. 6), commit, then tell the
    scheduler: what the API and the registration page both do."""
    with database.session() as db:
        if job_id is None:
            row = create_job(db, tenant_id=tenant_id, spec=spec, by=by)
        else:
            row = update_job(db, tenant_id=tenant_id, job_id=job_id, spec=spec, by=by)
    changed(tenant_id, row.job_id)
    return row


def pause_job(
    database: Database,
    *,
    tenant_id: str,
    job_id: str,
    paused: bool,
    by: str,
    changed: JobChanged,
) -> BatchJobRow:
    """Pause or resume a job, commit, then tell the scheduler."""
    with database.session() as db:
        row = set_paused(db, tenant_id=tenant_id, job_id=job_id, paused=paused, by=by)
    changed(tenant_id, job_id)
    return row


def remove_job(database: Database, *, tenant_id: str, job_id: str, changed: JobChanged) -> None:
    """Delete a job and its runs, commit, then tell the scheduler (its schedule goes)."""
    with database.session() as db:
        delete_job(db, tenant_id=tenant_id, job_id=job_id)
    changed(tenant_id, job_id)


# -- runs -------------------------------------------------------------------------------------


def tick(at: datetime) -> datetime:
    """A scheduled tick's one identity: the UTC instant in whole seconds.

    Schedules fire on whole seconds (a cron has no finer field) while a job's start
    time may carry microseconds; every way a tick fires (the schedule, its backfill,
    a run-once job caught up at start) names it by this value, so its run is found
    whichever way fired it first."""
    return at.astimezone(UTC).replace(microsecond=0)


def tick_ran(db: Session, *, job: BatchJobRow, at: datetime) -> bool:
    """Whether the job's tick at `at` has a run (that run is its record, kept with the job)."""
    found = db.scalar(
        select(BatchRunRow.pk).where(
            BatchRunRow.job_pk == job.pk, BatchRunRow.scheduled_at == tick(at)
        )
    )
    return found is not None


def start_run(
    db: Session, *, tenant_id: str, job_id: str, scheduled_at: datetime, manual: bool = False
) -> tuple[BatchRunRow, bool]:
    """The run of the job's tick at `scheduled_at`, created once (True when created).

    A scheduled tick is keyed by `tick(scheduled_at)`, unique per job in the database,
    so a tick that ran is not run again by another replica, a backfill or a restart.
    A manual run ("run now") keeps its exact time: it is a person's request, not a tick."""
    job = get_job(db, tenant_id=tenant_id, job_id=job_id)
    at = scheduled_at.astimezone(UTC) if manual else tick(scheduled_at)
    existing = db.scalar(
        select(BatchRunRow).where(BatchRunRow.job_pk == job.pk, BatchRunRow.scheduled_at == at)
    )
    if existing is not None:
        return existing, False
    run = BatchRunRow(
        run_id=new_id(),
        tenant_id=tenant_id,
        job_pk=job.pk,
        scheduled_at=at,
        outcome="running",
        steps=[],
    )
    db.add(run)
    db.flush()
    return run, True


def add_step(run: BatchRunRow, *, step: str, detail: str = "") -> None:
    run.steps = [*run.steps, {"at": utcnow().isoformat(), "step": step, "detail": detail[:1000]}]


def finish_run(run: BatchRunRow, *, outcome: str, reason: str = "") -> None:
    if outcome not in OUTCOMES or outcome == "running":
        raise ValueError(f"a run ends completed, suspended or failed, not {outcome!r}")
    run.outcome = outcome
    run.reason = reason[:2000]
    run.finished_at = utcnow()


def list_runs(
    db: Session, *, tenant_id: str, job_id: str | None = None, limit: int = 100
) -> list[tuple[BatchRunRow, BatchJobRow]]:
    """The tenant's runs, newest first, with their job."""
    query = (
        select(BatchRunRow, BatchJobRow)
        .join(BatchJobRow, BatchJobRow.pk == BatchRunRow.job_pk)
        .where(BatchRunRow.tenant_id == tenant_id, BatchJobRow.tenant_id == tenant_id)
    )
    if job_id is not None:
        query = query.where(BatchJobRow.pk == get_job(db, tenant_id=tenant_id, job_id=job_id).pk)
    query = query.order_by(BatchRunRow.scheduled_at.desc(), BatchRunRow.pk.desc())
    return [(run, job) for run, job in db.execute(query.limit(max(1, min(limit, 1000))))]
