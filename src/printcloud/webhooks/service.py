"""A tenant's webhook subscriptions: add, list, change, rotate the secret, test, delete,
and what the delivery log and the audit trail show. Every function takes the tenant
explicitly; another tenant's subscription is "unknown" (404), never "forbidden".

The secret (`whsec_…`, Standard Webhooks) is sealed with the instance secret
(`core.crypto.SecretBox`) and shown once: in the answer to the add or the rotation.
A rotation keeps the previous secret signing beside the new one for an overlap (both
signatures in `webhook-signature`), so a receiver can switch without losing a message.
"""

from __future__ import annotations

import re
import secrets as random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from printcloud.core.crypto import SecretBox
from printcloud.core.db import utcnow
from printcloud.core.egress import EgressPolicy
from printcloud.core.errors import Conflict, InvalidRequest, NotFound

from . import outbox, signing
from .models import AttemptRow, AuditRow, DeliveryRow, MessageRow, SubscriptionRow

MAX_PER_TENANT = 20
#: How `disabled_reason` starts when the platform turned a subscription off (not a person).
TURNED_OFF_BY_PLATFORM = "turned off by the platform"
_SUBSCRIPTION_ID = re.compile(r"^ep_[A-Za-z0-9_-]{1,37}$")


def check_url(url: str, *, egress: EgressPolicy) -> str:
    """A subscriber URL: http(s), no credentials, and a host the egress policy lets the
    platform reach (the push URL's policy, `core/egress.py`). InvalidRequest (400) naming
    `url`. Resolves the host (blocking): call it outside the event loop."""
    url = url.strip()
    if len(url) > 2000 or not re.match(r"^https?://\S+$", url):
        raise InvalidRequest("url must be an http:// or https:// URL", field="url")
    egress.check_url(url, field="url")
    return url


def check_event_types(event_types: list[str]) -> list[str]:
    chosen = list(dict.fromkeys(t.strip() for t in event_types if t.strip()))
    if not chosen:
        raise InvalidRequest("choose at least one event type", field="event_types")
    unknown = [t for t in chosen if t not in outbox.EVENT_TYPES]
    if unknown:
        raise InvalidRequest(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(outbox.EVENT_TYPES)}",
            field="event_types",
        )
    return chosen


def audit(
    db: Session, *, tenant_id: str, subscription_id: str, actor: str, action: str, detail: str = ""
) -> None:
    db.add(
        AuditRow(
            tenant_id=tenant_id,
            subscription_id=subscription_id,
            actor=actor[:200],
            action=action,
            detail=detail[:1000],
        )
    )


def add(
    db: Session,
    *,
    tenant_id: str,
    url: str,
    event_types: list[str],
    box: SecretBox,
    egress: EgressPolicy,
    by: str,
    description: str = "",
) -> tuple[SubscriptionRow, str]:
    """A new subscription, and its secret (shown this once)."""
    url = check_url(url, egress=egress)
    chosen = check_event_types(event_types)
    count = len(list_subscriptions(db, tenant_id=tenant_id))
    if count >= MAX_PER_TENANT:
        raise Conflict(f"a tenant has at most {MAX_PER_TENANT} webhook subscriptions")
    secret = signing.new_secret()
    row = SubscriptionRow(
        subscription_id="ep_" + random.token_urlsafe(12),
        tenant_id=tenant_id,
        url=url,
        description=description.strip()[:200],
        event_types=chosen,
        enabled=True,
        secret_sealed=box.seal(secret),
        created_by=by[:200],
        created_at=utcnow(),
    )
    db.add(row)
    db.flush()
    audit(
        db,
        tenant_id=tenant_id,
        subscription_id=row.subscription_id,
        actor=by,
        action="added",
        detail=url,
    )
    return row, secret


def get(db: Session, *, tenant_id: str, subscription_id: str) -> SubscriptionRow:
    row = None
    if _SUBSCRIPTION_ID.match(subscription_id):
        row = db.scalar(
            select(SubscriptionRow).where(
                SubscriptionRow.tenant_id == tenant_id,
                SubscriptionRow.subscription_id == subscription_id,
            )
        )
    if row is None:
        raise NotFound("unknown webhook subscription", field="subscription_id")
    return row


def list_subscriptions(db: Session, *, tenant_id: str) -> list[SubscriptionRow]:
    return list(
        db.scalars(
            select(SubscriptionRow)
            .where(SubscriptionRow.tenant_id == tenant_id)
            .order_by(SubscriptionRow.created_at, SubscriptionRow.pk)
        )
    )


def update(
    db: Session,
    *,
    tenant_id: str,
    subscription_id: str,
    by: str,
    egress: EgressPolicy,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> SubscriptionRow:
    """Change what is given (None: unchanged). Turning a subscription on again clears its
    failure streak; its failed messages stay failed (the log shows them)."""
    row = get(db, tenant_id=tenant_id, subscription_id=subscription_id)
    changes: list[str] = []
    if url is not None:
        row.url = check_url(url, egress=egress)
        changes.append(f"address {row.url}")
    if event_types is not None:
        row.event_types = check_event_types(event_types)
        changes.append("the events it is sent")
    if description is not None:
        row.description = description.strip()[:200]
    if enabled is not None and enabled != row.enabled:
        row.enabled = enabled
        if enabled:
            row.failing_since, row.disabled_at, row.disabled_reason = None, None, ""
        else:
            row.disabled_at, row.disabled_reason = utcnow(), f"turned off by {by}"
        audit(
            db,
            tenant_id=tenant_id,
            subscription_id=subscription_id,
            actor=by,
            action="enabled" if enabled else "disabled",
        )
    if changes:
        audit(
            db,
            tenant_id=tenant_id,
            subscription_id=subscription_id,
            actor=by,
            action="changed",
            detail="; ".join(changes),
        )
    return row


def rotate(
    db: Session,
    *,
    tenant_id: str,
    subscription_id: str,
    box: SecretBox,
    by: str,
    overlap: timedelta,
    now: datetime | None = None,
) -> tuple[SubscriptionRow, str]:
    """A new secret (shown this once); the current one keeps signing beside it for
    `overlap` (zero: it stops at once)."""
    now = now or utcnow()
    row = get(db, tenant_id=tenant_id, subscription_id=subscription_id)
    secret = signing.new_secret()
    row.previous_secret_sealed = row.secret_sealed if overlap.total_seconds() > 0 else None
    row.previous_until = now + overlap if overlap.total_seconds() > 0 else None
    row.secret_sealed = box.seal(secret)
    audit(
        db,
        tenant_id=tenant_id,
        subscription_id=subscription_id,
        actor=by,
        action="rotated",
        detail=f"the previous secret signs too until {row.previous_until:%Y-%m-%d %H:%M} UTC"
        if row.previous_until
        else "the previous secret no longer signs",
    )
    return row, secret


def send_test(db: Session, *, tenant_id: str, subscription_id: str, by: str) -> str:
    """A `webhook.test` message to the subscription; its ID."""
    row = get(db, tenant_id=tenant_id, subscription_id=subscription_id)
    if not row.enabled:
        raise Conflict("the subscription is turned off: turn it on to send it a test event")
    message_id = outbox.emit_test(db, subscription=row, by=by)
    audit(
        db,
        tenant_id=tenant_id,
        subscription_id=subscription_id,
        actor=by,
        action="tested",
        detail=message_id,
    )
    return message_id


def remove(db: Session, *, tenant_id: str, subscription_id: str, by: str) -> None:
    """Delete the subscription, its deliveries and their log (messages nobody else
    awaits go too)."""
    row = get(db, tenant_id=tenant_id, subscription_id=subscription_id)
    messages = select(DeliveryRow.message_pk).where(DeliveryRow.subscription_pk == row.pk)
    message_pks = set(db.scalars(messages))
    db.execute(delete(AttemptRow).where(AttemptRow.subscription_pk == row.pk))
    db.execute(delete(DeliveryRow).where(DeliveryRow.subscription_pk == row.pk))
    db.delete(row)
    db.flush()
    if message_pks:
        still = set(
            db.scalars(
                select(DeliveryRow.message_pk).where(DeliveryRow.message_pk.in_(message_pks))
            )
        )
        gone = message_pks - still
        if gone:
            db.execute(delete(MessageRow).where(MessageRow.pk.in_(gone)))
    audit(db, tenant_id=tenant_id, subscription_id=subscription_id, actor=by, action="deleted")


def disable_if_failing(
    db: Session, *, subscription_pk: int, failing_for: timedelta, now: datetime | None = None
) -> SubscriptionRow | None:
    """After a delivery used up its retries: turn the subscription off when it has failed
    without a success for `failing_for` or longer, and record why (the administrator reads
    it on the webhooks page and in the audit trail). Answers the subscription turned off."""
    now = now or utcnow()
    row = db.get(SubscriptionRow, subscription_pk)
    if row is None or not row.enabled or row.failing_since is None:
        return None
    if now - row.failing_since < failing_for:
        return None
    since = row.failing_since
    row.enabled = False
    row.disabled_at = now
    row.disabled_reason = (
        f"{TURNED_OFF_BY_PLATFORM}: every delivery failed since {since:%Y-%m-%d %H:%M} UTC"
    )
    audit(
        db,
        tenant_id=row.tenant_id,
        subscription_id=row.subscription_id,
        actor="platform",
        action="auto_disabled",
        detail=row.disabled_reason,
    )
    return row


# -- what the log shows ------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    """One delivery as the log shows it, with its last attempt."""

    message_id: str
    event_type: str
    created_at: datetime
    state: str
    attempts: int
    last: AttemptRow | None


def delivery_log(
    db: Session, *, tenant_id: str, subscription_id: str, limit: int = 50
) -> list[LogEntry]:
    """The subscription's latest deliveries, newest first, each with its last attempt."""
    row = get(db, tenant_id=tenant_id, subscription_id=subscription_id)
    pairs = db.execute(
        select(DeliveryRow, MessageRow)
        .join(MessageRow, MessageRow.pk == DeliveryRow.message_pk)
        .where(DeliveryRow.subscription_pk == row.pk, DeliveryRow.tenant_id == tenant_id)
        .order_by(DeliveryRow.pk.desc())
        .limit(max(1, min(limit, 500)))
    ).all()
    lasts: dict[int, AttemptRow] = {}
    if pairs:
        for attempt in db.scalars(
            select(AttemptRow)
            .where(AttemptRow.delivery_pk.in_([d.pk for d, _ in pairs]))
            .order_by(AttemptRow.pk)
        ):
            lasts[attempt.delivery_pk] = attempt
    return [
        LogEntry(m.message_id, m.event_type, m.created_at, d.state, d.attempts, lasts.get(d.pk))
        for d, m in pairs
    ]


def attempts_of(
    db: Session, *, tenant_id: str, subscription_id: str, message_id: str
) -> list[AttemptRow]:
    """Every attempt to deliver one message to the subscription, in order (NotFound for
    a message it was not sent)."""
    row = get(db, tenant_id=tenant_id, subscription_id=subscription_id)
    sent = db.scalar(
        select(DeliveryRow.pk)
        .join(MessageRow, MessageRow.pk == DeliveryRow.message_pk)
        .where(DeliveryRow.subscription_pk == row.pk, MessageRow.message_id == message_id)
    )
    if sent is None:
        raise NotFound("unknown message for this webhook subscription", field="message_id")
    return list(
        db.scalars(
            select(AttemptRow)
            .join(DeliveryRow, DeliveryRow.pk == AttemptRow.delivery_pk)
            .join(MessageRow, MessageRow.pk == DeliveryRow.message_pk)
            .where(
                AttemptRow.subscription_pk == row.pk,
                AttemptRow.tenant_id == tenant_id,
                MessageRow.message_id == message_id,
            )
            .order_by(AttemptRow.pk)
        )
    )


def audit_trail(db: Session, *, tenant_id: str, limit: int = 50) -> list[AuditRow]:
    return list(
        db.scalars(
            select(AuditRow)
            .where(AuditRow.tenant_id == tenant_id)
            .order_by(AuditRow.at.desc(), AuditRow.pk.desc())
            .limit(limit)
        )
    )
