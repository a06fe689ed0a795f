"""Tables of the print service. Every row carries its tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from printcloud.core.db import Base, UTCDateTime, utcnow


class ConversionSessionRow(Base):
    """Seed 003's session management information (SE001) with the token store (DB004)
    folded in: one record per DB index (job ID + printer ID + a fixed string)."""

    __tablename__ = "printing_sessions"
    __table_args__ = (Index("ix_printing_sessions_created", "created_at"),)

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    job_id: Mapped[str] = mapped_column(String(128))
    printer_id: Mapped[str] = mapped_column(String(128))
    token_digest: Mapped[str] = mapped_column(String(64))
    token_created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The blob key of the job's print data when the intake stored it (an upload, or a
    #: URL job fetched at intake): the worker reads it there instead of downloading.
    data_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    #: S1210: where the downloaded print data was stored (blob key).
    download_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    #: S1312–S1314: the converted data's ID once converted.
    converted_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Which worker served which step (no sticky sessions: they may all differ).
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class ConvertedDataRow(Base):
    """Seed 003's converted-data record (S1312–S1314): ID, storage location, URL and the
    token that guards it (with its creation time, for FIG. 10's timeout)."""

    __tablename__ = "printing_converted"

    converted_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    session_key: Mapped[str] = mapped_column(String(300), index=True)
    job_id: Mapped[str] = mapped_column(String(128))
    printer_id: Mapped[str] = mapped_column(String(128))
    blob_prefix: Mapped[str] = mapped_column(String(300))
    manifest_url: Mapped[str] = mapped_column(String(1000))
    page_count: Mapped[int] = mapped_column(Integer)
    token_digest: Mapped[str] = mapped_column(String(64))
    token_created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class PrinterRow(Base):
    """A printer (seed 003's PRT001) of a tenant, and the device client that drives it."""

    __tablename__ = "printing_printers"
    __table_args__ = (UniqueConstraint("tenant_id", "printer_id", name="uq_printing_printer"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    printer_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    #: A color printer separates to CMYK; a mono one prints gray (¶0107).
    color: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The idp-a client (of the same tenant) the device authenticates as.
    client_id: Mapped[str] = mapped_column(String(128))
    #: Where the print request is pushed (S109); the device polls when unset or unreachable.
    push_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    location: Mapped[str] = mapped_column(String(200), default="")
    #: Its registration as an IPP INFRA output device (PWG 5100.18, `infra.py`): the
    #: `output-device-uuid` and the printer attributes it reported; None: not registered.
    infra: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: What its output device can print (`capabilities.py`), from its registration; kept
    #: after it deregisters (its queued jobs still convert for it). None: never registered.
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PrintJobRow(Base):
    """A print job accepted by the intake (SVC001) and driven by SVC002's workflow."""

    __tablename__ = "printing_jobs"
    __table_args__ = (
        Index("ix_printing_jobs_tenant_created", "tenant_id", "created_at"),
        Index("ix_printing_jobs_printer_state", "tenant_id", "printer_id", "state"),
        # the usage report's pages of a batch run's jobs: by tenant and a list of IDs
        Index("ix_printing_jobs_tenant_job", "tenant_id", "job_id"),
    )

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    printer_id: Mapped[str] = mapped_column(String(128))
    #: Who submitted it (the acting user of seed 001) and through which client.
    owner: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(300))
    #: "upload" (the data is a blob here) or "url" (the workers fetch it).
    source: Mapped[str] = mapped_column(String(16))
    source_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    data_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    page_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    manifest_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    #: The conversion token for the printer, sealed with the instance secret.
    token_sealed: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    pages_printed: Mapped[int] = mapped_column(Integer, default=0)
    previews: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobEventRow(Base):
    """The job's history: each step, its outcome and the worker that served it."""

    __tablename__ = "printing_job_events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    step: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(40))
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[str] = mapped_column(String(1000), default="")


class QueueRow(Base):
    """An IPP Everywhere print queue of a tenant (issue 14): what an operating system adds
    as a printer at `ipp://…/printing/ipp/print/{tenant}/{name}`. It targets one printer
    of the tenant, or none: a follow-me queue, whose jobs are held until their owner logs
    in by card at any printer of the tenant (seeds 003 + 004)."""

    __tablename__ = "printing_queues"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_printing_queue"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    #: The last segment of the queue's URI (and CUPS's default printer name).
    name: Mapped[str] = mapped_column(String(64))
    #: The target printer (a `PrinterRow.printer_id` of the tenant); None: follow-me.
    printer_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: RFC 8011 printer-info / printer-location as clients show them.
    info: Mapped[str] = mapped_column(String(200), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    #: printer-uuid (RFC 4122 URN): stable for the queue's life, so clients know it again.
    uuid: Mapped[str] = mapped_column(String(36))
    #: What another user of the tenant sees of a job (RFC 8011 §5.3.1 job privacy):
    #: "attributes" (state and times, name and owner hidden) or "none" (not listed).
    job_privacy: Mapped[str] = mapped_column(String(16), default="attributes")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IppJobRow(Base):
    """An IPP job of a queue (issue 14): its integer job-id (RFC 8011 §5.3.2) and what the
    print job does not hold. Print-Job makes it with its print job at once; Create-Job
    makes it first (`pending_document`), and Send-Document gives it its print job."""

    __tablename__ = "printing_ipp_jobs"
    __table_args__ = (Index("ix_printing_ipp_jobs_queue", "tenant_id", "queue", "job_number"),)

    #: The job-id: one sequence for every queue (an integer is all IPP can carry).
    job_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    #: The print job (`PrintJobRow.job_id`) once the document is in.
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    owner: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    uuid: Mapped[str] = mapped_column(String(36))
    #: What the job was given (the Job Template attributes as `JobOptions` and the IPP
    #: values to answer with: document-format, job-hold-until, sides, ...).
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Before the print job exists: `pending_document`, or how it ended (`canceled`,
    #: `aborted`); `submitted` once it has one (whose state is then the job's).
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IdentifyRequestRow(Base):
    """An Identify-Printer request (issue 14, PWG 5100.13 §4.1.2) waiting for its printer:
    short-lived (`identify.TTL`), handed to the printer's device once with its work list
    and deleted then. A table rather than the seed 003 session store, whose records are
    conversion sessions its sweeper walks; this one is shared by every process alike."""

    __tablename__ = "printing_identify_requests"
    __table_args__ = (
        Index("ix_printing_identify_requests_printer", "tenant_id", "printer_id", "created_at"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    printer_id: Mapped[str] = mapped_column(String(128))
    #: The requested identify-actions that the printer performs (`display`, `sound`).
    actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The client's `message` operation attribute (text(127)), cleaned for a display.
    message: Mapped[str] = mapped_column(String(200), default="")
    #: The queue it came through and the authenticated user who asked.
    queue: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InfraJobRow(Base):
    """A print job as an IPP INFRA output device knows it (PWG 5100.18): the integer
    job-id it fetches by. Made when the job is first announced to, or fetched by, a
    printer; the job's state stays the print job's and its session record's."""

    __tablename__ = "printing_infra_jobs"
    __table_args__ = (Index("ix_printing_infra_jobs_printer", "tenant_id", "printer_id"),)

    job_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    printer_id: Mapped[str] = mapped_column(String(128))
    #: The print job (`PrintJobRow.job_id`).
    job_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InfraSubscriptionRow(Base):
    """A printer subscription of an INFRA output device (RFC 3995, `ippget` RFC 3996):
    the events it wants, its lease, and the events not yet dropped (`infra.py`)."""

    __tablename__ = "printing_infra_subscriptions"
    __table_args__ = (Index("ix_printing_infra_subscriptions_printer", "tenant_id", "printer_id"),)

    #: notify-subscription-id
    subscription_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    printer_id: Mapped[str] = mapped_column(String(128))
    #: notify-events keywords
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    lease_seconds: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The last notify-sequence-number given.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    #: The state each job had at its last event (print job ID → printcloud state).
    seen: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: The events kept for Get-Notifications (the newest `infra.KEPT_EVENTS`).
    recent: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IppJobSubscriptionRow(Base):
    """A user's job subscription on a queue (RFC 3995 Create-Job-Subscriptions, `ippget`
    RFC 3996): the queue's job it follows, its owner, the events it wants, its lease, the
    job's state at its last event and the events kept (`ipp_subscriptions.py`)."""

    __tablename__ = "printing_ipp_job_subscriptions"
    __table_args__ = (
        Index("ix_printing_ipp_job_subscriptions_job", "tenant_id", "queue", "job_number"),
    )

    #: notify-subscription-id
    subscription_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    #: notify-job-id: the queue's job-id (`IppJobRow.job_number`)
    job_number: Mapped[int] = mapped_column(Integer)
    #: notify-subscriber-user-name: the authenticated user who made it
    owner: Mapped[str] = mapped_column(String(200))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    lease_seconds: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    #: The job's IPP state and reasons at its last event ("state:reason,reason").
    last_state: Mapped[str | None] = mapped_column(String(300), nullable=True)
    recent: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
