"""Tables of the tenants' webhooks. Every row carries its tenant.

A subscription (`webhook_subscriptions`) says where a tenant's events go; `emit` writes a
message (`webhook_messages`: the body every subscriber is sent) and one delivery per
subscriber (`webhook_deliveries`) in the caller's transaction: the outbox. Each attempt
to deliver is a row of `webhook_attempts` (the delivery log), and what administrators
and the platform did to a subscription is in `webhook_audit`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from printcloud.core.db import Base, UTCDateTime, utcnow


class SubscriptionRow(Base):
    """Where a tenant's events go: a URL, the event types chosen, the signing secret
    (sealed with the instance secret) and, during a rotation's overlap, the previous one."""

    __tablename__ = "webhook_subscriptions"
    #: Never reuse a key (SQLite would, after a delete): a delivery workflow names its rows.
    __table_args__ = {"sqlite_autoincrement": True}

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    secret_sealed: Mapped[str] = mapped_column(Text)
    #: The secret before the last rotation, also signed with until `previous_until`.
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    #: The first failed attempt since the last success (None: the last attempt succeeded).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    disabled_reason: Mapped[str] = mapped_column(String(1000), default="")


class MessageRow(Base):
    """One event as its subscribers receive it: `payload` is the JSON body, `message_id`
    the `webhook-id` header (the same on every attempt, for the receiver's de-duplication)."""

    __tablename__ = "webhook_messages"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    ordering_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeliveryRow(Base):
    """One message to one subscription. `lane` is the subscription and the message's
    ordering key: a lane's deliveries are made one at a time, oldest first.

    States: `pending` (in the outbox) → `sending` (its workflow runs) → `delivered`, or
    `failed` (every attempt of the schedule failed), or `skipped` (the subscription was
    turned off or deleted meanwhile). A `sending` delivery whose workflow ended without
    ending it, or was lost, goes back to `pending` with the next `generation` (a workflow
    of its own; `outbox.requeue`)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_lane_state", "lane", "state"),
        {"sqlite_autoincrement": True},  # a workflow names its delivery: never reuse a key
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    subscription_pk: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.pk", ondelete="CASCADE"), index=True
    )
    message_pk: Mapped[int] = mapped_column(
        ForeignKey("webhook_messages.pk", ondelete="CASCADE"), index=True
    )
    lane: Mapped[str] = mapped_column(String(260))
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Which workflow sends it: 0 the first, one more each time it is re-queued after its
    #: workflow was lost; a workflow of an older generation no longer sends it.
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AttemptRow(Base):
    """One try to deliver: the answer's status (None: no answer, `error` says why), the
    start of its body (at most `BODY_EXCERPT` characters) and how long it took."""

    __tablename__ = "webhook_attempts"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    delivery_pk: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.pk", ondelete="CASCADE"), index=True
    )
    subscription_pk: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.pk", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(String(500), default="")
    body_excerpt: Mapped[str] = mapped_column(String(1000), default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class AuditRow(Base):
    """Who did what to a subscription: added, rotated, tested, turned on or off, deleted;
    `platform` as the actor when it turned one off after a long failure."""

    __tablename__ = "webhook_audit"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    subscription_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(1000), default="")
