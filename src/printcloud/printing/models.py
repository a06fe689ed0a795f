"""Tables of the print service. Every row carries its tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
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
