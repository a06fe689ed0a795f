"""Request and response bodies of the CRM's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from . import service
from .models import BatchJobRow, BatchRunRow, DocgenLinkRow, RecordRow, RecordSetRow

FieldType = Literal["string", "integer", "decimal", "date", "boolean"]
Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "contains"]


# -- record sets and records ------------------------------------------------------------


class FieldSpec(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    type: FieldType = "string"
    required: bool = False


class RecordSetCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    fields: list[FieldSpec] = Field(min_length=1, max_length=service.MAX_FIELDS)


class RecordSetRead(BaseModel):
    name: str
    fields: list[FieldSpec]
    records: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: RecordSetRow, records: int) -> RecordSetRead:
        return cls(
            name=row.name,
            fields=[FieldSpec(**f) for f in row.fields],
            records=records,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class RecordSetList(BaseModel):
    record_sets: list[RecordSetRead]


class RecordCreate(BaseModel):
    """A record's values by field name: decimals as strings ("12.50") or numbers,
    dates as "YYYY-MM-DD"; null or missing for no value."""

    data: dict[str, Any]


class RecordRead(BaseModel):
    id: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: RecordRow) -> RecordRead:
        return cls(
            id=row.record_id,
            data=dict(row.data),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class QueryFilter(BaseModel):
    field: str = Field(min_length=1, max_length=64)
    op: Op = "eq"
    value: Any = None


class RecordQuery(BaseModel):
    """What docgen asks for (S1517): a record set, filters, an order, a page."""

    record_set: str = Field(min_length=1, max_length=64)
    filters: list[QueryFilter] = Field(default_factory=list, max_length=service.MAX_FILTERS)
    order: list[str] = Field(default_factory=list, max_length=service.MAX_ORDER)
    limit: int | None = Field(default=None, ge=1, le=service.MAX_QUERY_LIMIT)
    offset: int = Field(default=0, ge=0)


class RecordPage(BaseModel):
    record_set: str
    fields: list[FieldSpec]
    records: list[RecordRead]
    total: int
    offset: int
    next_offset: int | None

    @classmethod
    def of(cls, result: service.QueryResult) -> RecordPage:
        return cls(
            record_set=result.record_set.name,
            fields=[FieldSpec(**f) for f in result.record_set.fields],
            records=[RecordRead.of(r) for r in result.records],
            total=result.total,
            offset=result.offset,
            next_offset=result.next_offset,
        )


class ImportRead(BaseModel):
    record_set: str
    created: bool
    added_fields: list[str]
    imported: int
    replaced: int
    fields: list[FieldSpec]

    @classmethod
    def of(cls, result: service.ImportResult) -> ImportRead:
        return cls(
            record_set=result.record_set.name,
            created=result.created,
            added_fields=result.added_fields,
            imported=result.imported,
            replaced=result.replaced,
            fields=[FieldSpec(**f) for f in result.record_set.fields],
        )


class ImportProblem(BaseModel):
    line: int
    field: str | None
    message: str


# -- batch jobs (FIG. 6–7) ---------------------------------------------------------------


class PrintParams(BaseModel):
    """FIG. 6, area 604. The printer is one of the docgen tenant's printers."""

    printer_id: str = Field(min_length=1, max_length=128)
    color: bool = True
    copies: int = Field(default=1, ge=1, le=999)
    duplex: bool = False


class JobQuery(BaseModel):
    record_set: str = Field(min_length=1, max_length=64)
    filters: list[QueryFilter] = Field(default_factory=list, max_length=service.MAX_FILTERS)
    order: list[str] = Field(default_factory=list, max_length=service.MAX_ORDER)
    limit: int | None = Field(default=None, ge=1, le=service.MAX_QUERY_LIMIT)


class BatchJobCreate(BaseModel):
    """A batch job. `start_at` without an offset is a local time in `timezone`."""

    name: str = Field(min_length=1, max_length=200)
    start_at: datetime
    recurrence: Literal["once", "daily", "weekly", "cron"] = "once"
    cron: str | None = Field(default=None, max_length=120)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    paused: bool = False
    print: PrintParams
    form: str = Field(min_length=1, max_length=128)
    query: JobQuery

    def spec(self) -> service.JobSpec:
        return service.JobSpec(
            name=self.name,
            start_at=self.start_at,
            recurrence=self.recurrence,
            cron=self.cron,
            timezone=self.timezone,
            paused=self.paused,
            printer_id=self.print.printer_id,
            color=self.print.color,
            copies=self.print.copies,
            duplex=self.print.duplex,
            form=self.form,
            record_set=self.query.record_set,
            filters=[f.model_dump() for f in self.query.filters],
            order=list(self.query.order),
            limit=self.query.limit,
        )


class RunRead(BaseModel):
    run_id: str
    job_id: str
    job_name: str
    scheduled_at: datetime
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    reason: str
    steps: list[dict[str, Any]]

    @classmethod
    def of(cls, run: BatchRunRow, job: BatchJobRow) -> RunRead:
        return cls(
            run_id=run.run_id,
            job_id=job.job_id,
            job_name=job.name,
            scheduled_at=run.scheduled_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            outcome=run.outcome,
            reason=run.reason,
            steps=list(run.steps),
        )


class RunList(BaseModel):
    runs: list[RunRead]


class RunStarted(BaseModel):  # "run now": the job's workflow, started for the current time
    job_id: str
    scheduled_at: datetime
    workflow_id: str


class BatchJobRead(BaseModel):
    job_id: str
    name: str
    start_at: datetime
    recurrence: str
    cron: str | None
    timezone: str
    paused: bool
    print: PrintParams
    form: str
    query: JobQuery
    #: The recurrence as a DBOS schedule takes it (6 fields, seconds first, in `timezone`).
    schedule: str | None
    next_run_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    @classmethod
    def of(cls, row: BatchJobRow) -> BatchJobRead:
        return cls(
            job_id=row.job_id,
            name=row.name,
            start_at=row.start_at,
            recurrence=row.recurrence,
            cron=row.cron,
            timezone=row.timezone,
            paused=row.paused,
            print=PrintParams(
                printer_id=row.printer_id, color=row.color, copies=row.copies, duplex=row.duplex
            ),
            form=row.form,
            query=JobQuery(
                record_set=row.record_set,
                filters=[QueryFilter(**f) for f in row.filters],
                order=list(row.order),
                limit=row.limit,
            ),
            schedule=service.schedule_cron(row),
            next_run_at=service.next_run(row),
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )


class BatchJobList(BaseModel):
    jobs: list[BatchJobRead]


# -- the docgen link (FIG. 9) -----------------------------------------------------------


class DocgenLinkUpdate(BaseModel):
    """S1410: the docgen tenant ID and the secret key docgen showed (S1406)."""

    docgen_tenant_id: str = Field(min_length=1, max_length=64)
    secret_key: str = Field(min_length=1, max_length=256)


class DocgenLinkRead(BaseModel):
    """The key itself is never given back: only that it is set, when and by whom."""

    docgen_tenant_id: str
    secret_key_set: bool
    set_at: datetime
    set_by: str

    @classmethod
    def of(cls, row: DocgenLinkRow) -> DocgenLinkRead:
        return cls(
            docgen_tenant_id=row.docgen_tenant_id,
            secret_key_set=bool(row.secret_sealed),
            set_at=row.set_at,
            set_by=row.set_by,
        )
