"""Request and response bodies of the webhook admin API (`/printing/api/webhooks`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .models import AttemptRow, SubscriptionRow
from .service import LogEntry


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    event_types: list[str] = Field(min_length=1, max_length=20)
    description: str = Field(default="", max_length=200)


class WebhookUpdate(BaseModel):
    """Only the fields sent change; `enabled: true` turns a subscription on again."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=20)
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None


class WebhookRead(BaseModel):
    subscription_id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    created_by: str
    #: Until when the secret before the last rotation still signs (null: it does not).
    previous_secret_until: datetime | None
    failing_since: datetime | None
    last_success_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str

    @classmethod
    def of(cls, row: SubscriptionRow) -> WebhookRead:
        return cls(
            subscription_id=row.subscription_id,
            url=row.url,
            description=row.description,
            event_types=list(row.event_types),
            enabled=row.enabled,
            created_at=row.created_at,
            created_by=row.created_by,
            previous_secret_until=row.previous_until if row.previous_secret_sealed else None,
            failing_since=row.failing_since,
            last_success_at=row.last_success_at,
            disabled_at=row.disabled_at,
            disabled_reason=row.disabled_reason,
        )


class WebhookCreated(WebhookRead):
    """The new subscription and its signing secret, shown this once."""

    secret: str


class WebhookList(BaseModel):
    webhooks: list[WebhookRead]


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: How long the current secret keeps signing beside the new one (default: the
    #: platform's `PRINTCLOUD_WEBHOOK_ROTATION_OVERLAP`, a day).
    overlap_seconds: int | None = Field(default=None, ge=0, le=30 * 24 * 3600)


class Rotated(BaseModel):
    subscription_id: str
    secret: str
    previous_secret_until: datetime | None


class TestSent(BaseModel):
    message_id: str


class EventType(BaseModel):
    type: str
    description: str


class EventTypeList(BaseModel):
    event_types: list[EventType]


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    at: datetime
    #: The subscriber's answer (null: none; `error` says why).
    status_code: int | None
    error: str
    #: The start of the answer's body (at most 1,000 characters).
    body_excerpt: str
    duration_ms: int

    @classmethod
    def of(cls, row: AttemptRow) -> AttemptRead:
        return cls.model_validate(row)


class DeliveryRead(BaseModel):
    message_id: str
    event_type: str
    created_at: datetime
    #: pending, sending, delivered, failed (every attempt failed) or skipped (turned off).
    state: str
    attempts: int
    last_attempt: AttemptRead | None

    @classmethod
    def of(cls, entry: LogEntry) -> DeliveryRead:
        return cls(
            message_id=entry.message_id,
            event_type=entry.event_type,
            created_at=entry.created_at,
            state=entry.state,
            attempts=entry.attempts,
            last_attempt=AttemptRead.of(entry.last) if entry.last is not None else None,
        )


class DeliveryList(BaseModel):
    deliveries: list[DeliveryRead]


class AttemptList(BaseModel):
    attempts: list[AttemptRead]


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    subscription_id: str
    at: datetime
    actor: str
    action: str
    detail: str


class AuditList(BaseModel):
    events: list[AuditRead]
