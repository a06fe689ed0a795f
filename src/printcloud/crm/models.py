"""Tables of the CRM (seed 000's service provider server B). Every row carries the
tenant of idp-b it belongs to; every query filters on it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from printcloud.core.db import Base, UTCDateTime, utcnow


class RecordSetRow(Base):
    """A tenant's typed table of business data ("customers", "invoices"…)."""

    __tablename__ = "crm_record_sets"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_crm_record_sets_name"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    #: `[{"name": …, "type": string|integer|decimal|date|boolean, "required": bool}]`
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RecordRow(Base):
    """One record of a record set: its values, checked against the set's fields."""

    __tablename__ = "crm_records"
    __table_args__ = (
        # Every query is "this tenant's records of this set, in insertion order".
        Index("ix_crm_records_tenant_set", "tenant_id", "record_set_pk", "pk"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The record's public ID (random: IDs say nothing about other tenants' volumes).
    record_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    record_set_pk: Mapped[int] = mapped_column(ForeignKey("crm_record_sets.pk", ondelete="CASCADE"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BatchJobRow(Base):
    """A scheduled batch-print job (FIG. 6): name, start time and recurrence, print
    parameters, the form, and the query that selects the data."""

    __tablename__ = "crm_batch_jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_crm_batch_jobs_name"),
        Index("ix_crm_batch_jobs_tenant", "tenant_id", "pk"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    #: The first run (UTC); daily and weekly runs keep its local time in `timezone`.
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recurrence: Mapped[str] = mapped_column(String(8))  # once | daily | weekly | cron
    cron: Mapped[str | None] = mapped_column(String(120), nullable=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Print parameters (FIG. 6, area 604).
    printer_id: Mapped[str] = mapped_column(String(128))
    color: Mapped[bool] = mapped_column(Boolean, default=True)
    copies: Mapped[int] = mapped_column(Integer, default=1)
    duplex: Mapped[bool] = mapped_column(Boolean, default=False)
    form: Mapped[str] = mapped_column(String(128))
    #: The query that selects the data: a record set, filters, order and limit.
    record_set: Mapped[str] = mapped_column(String(64))
    filters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    order: Mapped[list[str]] = mapped_column(JSON, default=list)
    limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")


class BatchRunRow(Base):
    """One run of a batch job (S1501–S1509 and docgen's answer), with its outcome.
    One row per job and scheduled tick: a tick runs once however many replicas see it."""

    __tablename__ = "crm_batch_runs"
    __table_args__ = (
        UniqueConstraint("job_pk", "scheduled_at", name="uq_crm_batch_runs_tick"),
        Index("ix_crm_batch_runs_tenant", "tenant_id", "scheduled_at"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    job_pk: Mapped[int] = mapped_column(ForeignKey("crm_batch_jobs.pk", ondelete="CASCADE"))
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    reason: Mapped[str] = mapped_column(String(2000), default="")
    #: `[{"at": iso, "step": "S1502", "detail": …}]`
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class DocgenLinkRow(Base):
    """S1412: the docgen tenant this CRM tenant is bound to (one-to-one) and the secret
    key docgen issued for it, sealed with the instance secret."""

    __tablename__ = "crm_docgen_links"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), unique=True)
    docgen_tenant_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_sealed: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    set_by: Mapped[str] = mapped_column(String(200), default="")
