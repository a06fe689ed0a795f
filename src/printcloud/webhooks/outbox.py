"""The outbox: `emit` writes an event for a tenant's subscribers in the caller's
transaction, and the delivery workflow (`delivery.py`) takes it from there.

`emit` is the one call a service makes where something happens (a job moves, a batch
request ends, an account runs low). It costs one indexed read of the tenant's
subscriptions and, when someone listens, one row per message and one per subscriber:
no HTTP in the caller's request, and nothing sent for a transaction that rolls back.

Ordering. A message's `ordering_key` (a job's, a batch request's, an account's) and
its subscription make its *lane*; a lane's deliveries are made one at a time, oldest
first (`next_deliveries`), so a subscriber sees a job's events in the order they
happened, even across retries. Messages of different lanes do not wait for each other.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, event, func, select, update
from sqlalchemy.orm import Session

from printcloud.core import tasks
from printcloud.core.db import utcnow

from .models import AttemptRow, DeliveryRow, MessageRow, SubscriptionRow

#: The event types a tenant may subscribe to, each with what it means.
EVENT_TYPES: dict[str, str] = {
    "job.accepted": "a print job was accepted",
    "job.held": "a print job is held until its owner releases it at a printer",
    "job.printing": "the printer started a print job",
    "job.printed": "a print job was printed",
    "job.cancelled": "a print job was cancelled, by its owner or at the printer (with why)",
    "job.failed": "a print job ended without printing: its document could not be fetched "
    "or prepared, or it expired (with why)",
    "batch.completed": "a nightly batch-print request handed its documents to the printers",
    "batch.suspended": "a nightly batch-print request was suspended (with why)",
    "account.low_balance": "a printing account's balance fell below its warning level",
}
#: Sent to one subscription when its administrator asks ("Send a test event").
TEST_EVENT = "webhook.test"
#: Delivery states whose lane is busy (a later message of the lane waits for them).
UNFINISHED = ("pending", "sending")
BODY_EXCERPT = 1000

#: Set when this process wrote a message (after its commit) or finished a delivery:
#: the dispatcher (`delivery.Sender`) looks at once instead of at its next poll. On
#: PostgreSQL a message written by another process sets it too (the bell `BELL`).
wake = threading.Event()
#: The bell (`tasks.ring`) a message's transaction rings for the dispatchers of every process.
BELL = "webhooks"


def _woken(_session: Session) -> None:
    wake.set()


#: A tenant's enabled subscriptions (`emit`, at every job move): built once, since
#: building the select cost more than running it.
_ENABLED = select(SubscriptionRow).where(
    SubscriptionRow.tenant_id == bindparam("tenant_id"), SubscriptionRow.enabled.is_(True)
)


def emit(
    db: Session,
    *,
    tenant_id: str,
    event_type: str,
    data: Mapping[str, Any],
    ordering_key: str | None = None,
) -> str | None:
    """Queue the event `event_type` (one of `EVENT_TYPES`) for `tenant_id`'s enabled
    subscriptions to it, in `db`'s transaction (sent once it commits, never if it rolls
    back). Answers the message's ID (the `webhook-id` its subscribers receive), or None
    when no subscription wants it.

    `data` is the payload's `data` object (JSON-serialisable). `ordering_key` puts the
    message in a lane: messages with the same key reach each subscriber in the order they
    were emitted (`job:<id>`, `batch:<id>`, `account:<id>`); without one, the message is
    ordered with no other.

    Example (the accounting service, when a balance crosses its warning level)::

        emit(db, tenant_id=t, event_type="account.low_balance",
             data={"account_id": a, "owner": "alice", "balance": 120, "currency": "EUR",
                   "threshold": 500},
             ordering_key=f"account:{a}")
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    subscriptions = db.scalars(_ENABLED, {"tenant_id": tenant_id}).all()
    targets = [s for s in subscriptions if event_type in s.event_types]
    if not targets:
        return None
    return _queue(
        db,
        tenant_id=tenant_id,
        event_type=event_type,
        data=data,
        ordering_key=ordering_key,
        targets=targets,
    )


def emit_test(db: Session, *, subscription: SubscriptionRow, by: str) -> str:
    """A `webhook.test` message to `subscription` only (whatever its event types)."""
    return _queue(
        db,
        tenant_id=subscription.tenant_id,
        event_type=TEST_EVENT,
        data={"subscription_id": subscription.subscription_id, "sent_by": by},
        ordering_key=None,
        targets=[subscription],
    )


def _queue(
    db: Session,
    *,
    tenant_id: str,
    event_type: str,
    data: Mapping[str, Any],
    ordering_key: str | None,
    targets: list[SubscriptionRow],
) -> str:
    now = utcnow()
    message_id = "msg_" + secrets.token_urlsafe(18)
    payload = {"type": event_type, "timestamp": _iso(now), "data": dict(data)}
    message = MessageRow(
        message_id=message_id,
        tenant_id=tenant_id,
        event_type=event_type,
        ordering_key=(ordering_key or message_id)[:200],
        payload=payload,
        created_at=now,
    )
    db.add(message)
    db.flush()
    for subscription in targets:
        db.add(
            DeliveryRow(
                tenant_id=tenant_id,
                subscription_pk=subscription.pk,
                message_pk=message.pk,
                lane=f"{subscription.subscription_id}:{message.ordering_key}",
                state="pending",
                created_at=now,
            )
        )
    if not event.contains(db, "after_commit", _woken):
        event.listen(db, "after_commit", _woken)
    tasks.ring(db, BELL)  # the dispatchers of other processes (PostgreSQL)
    return message_id


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the delivery workflow's side ------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """A delivery to start: its workflow's ID, which generation that is, and how many
    attempts earlier generations made (a re-queued delivery goes on with the schedule's
    rest, not from its start)."""

    delivery_pk: int
    workflow_id: str
    generation: int
    attempts: int


def workflow_id(*, message_id: str, subscription_id: str, generation: int) -> str:
    """The workflow that sends one message to one subscription, forever: named after
    them, never after a row key a delete may hand out again; a re-queued delivery's
    generation (1, 2, …) is a new workflow, the first keeps the plain name."""
    name = f"webhook-{message_id}-{subscription_id}"
    return name if generation == 0 else f"{name}-{generation}"


def next_deliveries(db: Session, *, limit: int = 100) -> list[Due]:
    """The deliveries whose turn has come: each lane's oldest unfinished one, if it is
    still pending (one being sent holds its lane back)."""
    heads = (
        select(func.min(DeliveryRow.pk))
        .where(DeliveryRow.state.in_(UNFINISHED))
        .group_by(DeliveryRow.lane)
    )
    return _dues(db, DeliveryRow.pk.in_(heads), DeliveryRow.state == "pending", limit=limit)


def mark_sending(db: Session, *, delivery_pk: int, generation: int = 0) -> None:
    """Pending → sending (the workflow of `generation` is started); any other state, or
    a delivery re-queued meanwhile under a later generation, stays."""
    db.execute(
        update(DeliveryRow)
        .where(
            DeliveryRow.pk == delivery_pk,
            DeliveryRow.state == "pending",
            DeliveryRow.generation == generation,
        )
        .values(state="sending")
    )


def sending(db: Session, *, after: int = 0, limit: int = 500) -> list[Due]:
    """The deliveries being sent, oldest first from the one after `after` (a row key), with
    the workflow that should be sending each (`Sender.requeue_lost` asks the engine
    whether it still is)."""
    return _dues(db, DeliveryRow.state == "sending", DeliveryRow.pk > after, limit=limit)


def _dues(db: Session, *where: ColumnElement[bool], limit: int) -> list[Due]:
    rows = db.execute(
        select(
            DeliveryRow.pk,
            DeliveryRow.generation,
            DeliveryRow.attempts,
            MessageRow.message_id,
            SubscriptionRow.subscription_id,
        )
        .join(MessageRow, MessageRow.pk == DeliveryRow.message_pk)
        .join(SubscriptionRow, SubscriptionRow.pk == DeliveryRow.subscription_pk)
        .where(*where)
        .order_by(DeliveryRow.pk)
        .limit(limit)
    )
    return [
        Due(pk, workflow_id(message_id=m, subscription_id=s, generation=g), g, attempts)
        for pk, g, attempts, m, s in rows
    ]


#: A delivery whose workflows were lost this many times fails: something kills every
#: one of them (the log says so), and its lane must not wait for ever.
MAX_GENERATIONS = 5


def requeue(
    db: Session, *, delivery_pk: int, generation: int, why: str, now: datetime | None = None
) -> str | None:
    """The workflow of `generation` ended without ending the delivery, or is gone: back to
    `pending` under the next generation, in its lane's place (its lane's later messages
    still wait for it), with the same message and so the same `webhook-id`. After
    `MAX_GENERATIONS`, `failed` instead. A compare-and-set on (`sending`, `generation`):
    answers `pending`, `failed`, or None when the delivery moved meanwhile (it ended, or
    another sweeper re-queued it first). `why` goes in the delivery log."""
    now = now or utcnow()
    delivery = db.get(DeliveryRow, delivery_pk)
    if delivery is None:
        return None
    state = "pending" if generation + 1 < MAX_GENERATIONS else "failed"
    done = db.execute(
        update(DeliveryRow)
        .where(
            DeliveryRow.pk == delivery_pk,
            DeliveryRow.state == "sending",
            DeliveryRow.generation == generation,
        )
        .values(
            state=state,
            generation=generation + 1,
            finished_at=now if state == "failed" else None,
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    db.add(
        AttemptRow(
            tenant_id=delivery.tenant_id,
            delivery_pk=delivery.pk,
            subscription_pk=delivery.subscription_pk,
            number=delivery.attempts,
            at=now,
            status_code=None,
            error=(
                f"{why}: sent again"
                if state == "pending"
                else f"{why}, {MAX_GENERATIONS} times: given up"
            )[:500],
            body_excerpt="",
            duration_ms=0,
        )
    )
    if not event.contains(db, "after_commit", _woken):
        event.listen(db, "after_commit", _woken)
    return state


@dataclass(frozen=True)
class Prepared:
    """What one attempt sends: where, the message's ID and body, and the live secrets."""

    url: str
    message_id: str
    body: bytes
    sealed_secrets: list[str]


def prepare(
    db: Session, *, delivery_pk: int, generation: int = 0, now: datetime | None = None
) -> Prepared | None:
    """The attempt to make for `delivery_pk` by the workflow of `generation`, or None when
    it is no longer wanted (its subscription was turned off or deleted: then it is
    `skipped`), it already ended, or a later generation sends it now."""
    now = now or utcnow()
    delivery = db.get(DeliveryRow, delivery_pk)
    if delivery is None or delivery.state not in UNFINISHED or delivery.generation != generation:
        return None
    subscription = db.get(SubscriptionRow, delivery.subscription_pk)
    message = db.get(MessageRow, delivery.message_pk)
    if subscription is None or message is None or not subscription.enabled:
        delivery.state, delivery.finished_at = "skipped", now
        return None
    delivery.state = "sending"
    sealed = [subscription.secret_sealed]
    if (
        subscription.previous_secret_sealed
        and subscription.previous_until is not None
        and subscription.previous_until > now
    ):
        sealed.append(subscription.previous_secret_sealed)
    body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Prepared(subscription.url, message.message_id, body, sealed)


@dataclass(frozen=True)
class Answer:
    """What one attempt got: a status (None: no answer, `error` says why), the start of
    the body and how long it took."""

    status_code: int | None
    error: str
    body_excerpt: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def record_attempt(
    db: Session, *, delivery_pk: int, number: int, answer: Answer, now: datetime | None = None
) -> None:
    """One attempt in the delivery log; a success ends the delivery and the subscription's
    failure streak, a failure starts one (if none ran)."""
    now = now or utcnow()
    delivery = db.get(DeliveryRow, delivery_pk)
    if delivery is None:
        return
    subscription = db.get(SubscriptionRow, delivery.subscription_pk)
    db.add(
        AttemptRow(
            tenant_id=delivery.tenant_id,
            delivery_pk=delivery.pk,
            subscription_pk=delivery.subscription_pk,
            number=number,
            at=now,
            status_code=answer.status_code,
            error=answer.error[:500],
            body_excerpt=answer.body_excerpt[:BODY_EXCERPT],
            duration_ms=answer.duration_ms,
        )
    )
    delivery.attempts = max(delivery.attempts, number)
    if answer.ok:
        delivery.state, delivery.finished_at = "delivered", now
        if subscription is not None:
            subscription.failing_since = None
            subscription.last_success_at = now
    elif subscription is not None and subscription.failing_since is None:
        subscription.failing_since = now


def give_up(
    db: Session, *, delivery_pk: int, generation: int = 0, now: datetime | None = None
) -> DeliveryRow | None:
    """Every attempt of the workflow of `generation` failed: the delivery is `failed`
    (the caller decides on the subscription, `service.disable_if_failing`)."""
    now = now or utcnow()
    delivery = db.get(DeliveryRow, delivery_pk)
    if delivery is None or delivery.state not in UNFINISHED or delivery.generation != generation:
        return None
    delivery.state, delivery.finished_at = "failed", now
    return delivery


def prune(db: Session, *, before: datetime, limit: int = 5000) -> int:
    """Forget deliveries that ended before `before` (their attempts, and messages left
    with no delivery): the log keeps `PRINTCLOUD_WEBHOOK_LOG_DAYS`. How many went."""
    ended = list(
        db.scalars(
            select(DeliveryRow.pk)
            .where(DeliveryRow.state.not_in(UNFINISHED), DeliveryRow.finished_at < before)
            .order_by(DeliveryRow.pk)
            .limit(limit)
        )
    )
    if not ended:
        return 0
    messages = set(db.scalars(select(DeliveryRow.message_pk).where(DeliveryRow.pk.in_(ended))))
    db.execute(delete(AttemptRow).where(AttemptRow.delivery_pk.in_(ended)))
    db.execute(delete(DeliveryRow).where(DeliveryRow.pk.in_(ended)))
    kept = set(
        db.scalars(select(DeliveryRow.message_pk).where(DeliveryRow.message_pk.in_(messages)))
    )
    if messages - kept:
        db.execute(delete(MessageRow).where(MessageRow.pk.in_(messages - kept)))
    return len(ended)
