"""Request and response bodies of the print service's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .models import JobEventRow, PrinterRow, PrintJobRow, QueueRow
from .queues import add_commands, queue_uri


class JobOptions(BaseModel):
    color: bool = True
    copies: int = Field(default=1, ge=1, le=999)
    duplex: bool = False
    media: Literal["A4", "A3", "A5", "Letter", "Legal"] = "A4"
    dpi: Literal[150, 200, 300, 600] = 300
    hold: bool = False


class JobCreate(BaseModel):
    """SVC001 by URL: the workers download the print data from `url`."""

    printer_id: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=1, max_length=2000)
    title: str = Field(default="", max_length=300)
    options: JobOptions = Field(default_factory=JobOptions)


class EventRead(BaseModel):
    at: datetime
    step: str
    state: str
    worker: str | None
    detail: str

    @classmethod
    def of(cls, row: JobEventRow) -> EventRead:
        return cls(at=row.at, step=row.step, state=row.state, worker=row.worker, detail=row.detail)


class JobRead(BaseModel):
    job_id: str
    printer_id: str
    owner: str
    title: str
    source: str
    state: str
    reason: str | None
    page_count: int | None
    pages_printed: int
    previews: int
    options: dict[str, object]
    bytes: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    history: list[EventRead] | None = None

    @classmethod
    def of(cls, row: PrintJobRow, history: list[JobEventRow] | None = None) -> JobRead:
        return cls(
            job_id=row.job_id,
            printer_id=row.printer_id,
            owner=row.owner,
            title=row.title,
            source=row.source,
            state=row.state,
            reason=row.reason,
            page_count=row.page_count,
            pages_printed=row.pages_printed,
            previews=row.previews,
            options=dict(row.options),
            bytes=row.bytes,
            created_at=row.created_at,
            updated_at=row.updated_at,
            finished_at=row.finished_at,
            history=None if history is None else [EventRead.of(e) for e in history],
        )


class JobList(BaseModel):
    jobs: list[JobRead]


class PrinterCreate(BaseModel):
    printer_id: str = Field(min_length=1, max_length=128)
    name: str = Field(default="", max_length=200)
    color: bool = True
    client_id: str = Field(min_length=1, max_length=128)
    push_url: str | None = Field(default=None, max_length=1000)
    location: str = Field(default="", max_length=200)


class PrinterUpdate(BaseModel):
    """A printer's changes (PATCH): only the fields sent change; `push_url` null: it
    polls. `client_id` must be a device client of the tenant (400 naming it otherwise)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    color: bool | None = None
    location: str | None = Field(default=None, max_length=200)
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    push_url: str | None = Field(default=None, max_length=1000)


class PrinterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    printer_id: str
    name: str
    color: bool
    client_id: str
    push_url: str | None
    location: str
    last_seen_at: datetime | None
    #: What its IPP INFRA output device registered it can print (docs/infra.md), within
    #: what printcloud can do; null: never registered (`color` as configured, and all
    #: of printcloud's media, sides and resolutions).
    capabilities: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: PrinterRow) -> PrinterRead:
        return cls.model_validate(row)


class PrinterList(BaseModel):
    printers: list[PrinterRead]


class PrinterPushUpdate(BaseModel):
    push_url: str | None = Field(default=None, max_length=1000)


class WorkItem(BaseModel):
    """S109: what the printer needs to print a job."""

    job_id: str
    title: str
    state: str
    manifest_url: str
    token: str
    pages: int
    options: dict[str, object]


class IdentifyItem(BaseModel):
    """An Identify-Printer request for the printer (PWG 5100.13 §4.1.2): what to do
    (`display`, `sound`) and the client's message; handed over once."""

    actions: list[str]
    message: str
    requested_by: str
    requested_at: datetime


class WorkList(BaseModel):
    jobs: list[WorkItem]
    #: Identify-Printer requests waiting for the printer (issue 14), each sent once.
    identify: list[IdentifyItem] = Field(default_factory=list)


class Started(BaseModel):
    printer_id: str = Field(min_length=1, max_length=128)


class DeviceResult(BaseModel):
    """S110: the printer's result."""

    printer_id: str = Field(min_length=1, max_length=128)
    outcome: Literal["printed", "cancelled"]
    reason: str | None = Field(default=None, max_length=200)
    pages_printed: int = Field(default=0, ge=0, le=100_000)
    message: str = Field(default="", max_length=1000)


class StateRead(BaseModel):
    job_id: str
    state: str


class JobRelease(BaseModel):
    printer_id: str = Field(min_length=1, max_length=128)


class QueueCreate(BaseModel):
    """An IPP Everywhere queue: `printer_id` of the tenant, or null for follow-me."""

    name: str = Field(min_length=1, max_length=64)
    printer_id: str | None = Field(default=None, min_length=1, max_length=128)
    info: str = Field(default="", max_length=200)
    location: str = Field(default="", max_length=200)
    job_privacy: Literal["attributes", "none"] = "attributes"


class QueueUpdate(BaseModel):
    """A change to a queue; a field left out stays as it is. `printer_id`: another printer
    of the tenant, or null to make it a follow-me queue. An empty `info` or `location`
    is the target's default."""

    printer_id: str | None = Field(default=None, min_length=1, max_length=128)
    info: str | None = Field(default=None, max_length=200)
    location: str | None = Field(default=None, max_length=200)
    job_privacy: Literal["attributes", "none"] | None = None

    @property
    def follow_me(self) -> bool:
        """`printer_id` sent as null."""
        return "printer_id" in self.model_fields_set and self.printer_id is None


class QueueRead(BaseModel):
    name: str
    printer_id: str | None
    follow_me: bool
    info: str
    location: str
    uuid: str
    job_privacy: str
    uri: str
    #: One line per operating system to add the queue as a printer.
    add_linux: str
    add_macos: str
    add_windows: str

    @classmethod
    def of(cls, row: QueueRow, *, ipp_url: str) -> QueueRead:
        uri = queue_uri(ipp_url, tenant_id=row.tenant_id, name=row.name)
        commands = add_commands(uri, name=row.name)
        return cls(
            name=row.name,
            printer_id=row.printer_id,
            follow_me=row.printer_id is None,
            info=row.info,
            location=row.location,
            uuid=row.uuid,
            job_privacy=row.job_privacy,
            uri=uri,
            add_linux=commands.linux,
            add_macos=commands.macos,
            add_windows=commands.windows,
        )


class QueueList(BaseModel):
    queues: list[QueueRead]
