"""Tables of document generation (seed 000's server A). Every row carries the
idp-a tenant it belongs to; secrets are sealed with the instance secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from printcloud.core.db import Base, UTCDateTime, utcnow


class BatchSettings(Base):
    """FIG. 10, the batch printing information of one tenant: its secret key
    (S1401–S1406) and the two token sets — the CRM's (server B, from idp-b,
    FIG. 13) and the print service's (server C, from idp-a, FIG. 11).

    The secret key is sealed, not hashed: Digest (RFC 7616) needs the key itself
    to compute HA1. A rotation keeps the previous key valid until
    `previous_key_valid_until`, so the CRM can be updated without a failed night.
    A `*_refresh_lease` marks a refresh in progress (one at a time per token set:
    the issuers rotate refresh tokens and revoke the family on reuse)."""

    __tablename__ = "docgen_batch_settings"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    key_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    key_issued_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    previous_key_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_key_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    #: Server B (the CRM): which issuer, tenant and user the tokens belong to.
    crm_issuer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    crm_tenant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    crm_user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    crm_access_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    crm_refresh_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    crm_scope: Mapped[str | None] = mapped_column(String(500), nullable=True)
    crm_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    crm_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    crm_set_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    crm_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Why the last refresh failed (cleared when a token set is stored).
    crm_problem: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    crm_refresh_lease: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    #: Server C (the print service), at idp-a: the user the tokens act as.
    print_issuer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    print_user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    print_access_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    print_refresh_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    print_scope: Mapped[str | None] = mapped_column(String(500), nullable=True)
    print_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    print_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    print_set_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    print_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    print_problem: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    print_refresh_lease: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BatchRequest(Base):
    """A batch-print request received at the batch-print endpoint (S1503), accepted
    or refused, and what became of it. `steps` is its history: one entry per seed
    step with the state it left and a detail ({at, step, state, detail})."""

    __tablename__ = "docgen_batch_requests"
    __table_args__ = (
        Index("ix_docgen_batch_requests_tenant_received", "tenant_id", "received_at"),
        UniqueConstraint("tenant_id", "run_id", name="uq_docgen_batch_requests_run"),
    )

    request_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: "crm": a scheduled job under system authority (Digest); "user": a user's
    #: print request carrying their session (FIG. 19, second embodiment).
    source: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    #: The caller's ID for this run (the CRM's run), so that a retried call is one request.
    run_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: The scheduled job's name and what the batch flow needs (form, query, print settings).
    job: Mapped[str] = mapped_column(String(200), default="")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    print_job_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
