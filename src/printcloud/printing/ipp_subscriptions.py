"""A user's job subscriptions on an IPP Everywhere queue (RFC 3995 Create-Job-Subscriptions,
pulled with `ippget`, RFC 3996), also served at the Infrastructure Printer's URI
(`infra_queue.py`, PWG 5100.18).

As for the output device's printer subscriptions (`infra.py`), events are made when the
subscriber asks for them (`refresh`): the job's IPP state and reasons now are compared
with those at its last event, so nothing in the job pipeline knows that subscriptions
exist. `job-state-changed` on each change, `job-completed` once the job ends
(completed, aborted or canceled); the newest `infra.KEPT_EVENTS` are kept. Only the job's
owner subscribes to it, and only the subscription's owner reads or cancels it. Every
query filters on the tenant and the queue.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from printcloud.core.db import utcnow
from printcloud.core.errors import Conflict, NotFound

from . import infra, ipp_queue
from .ipp_states import ABORTED, CANCELED, COMPLETED
from .models import IppJobSubscriptionRow

#: What a job subscription may ask for, and what it gets without `notify-events`.
EVENTS = ("job-state-changed", "job-completed")
DEFAULT_EVENTS = ("job-completed",)
#: Live job subscriptions per job at most (client-error-too-many-subscriptions beyond).
MAX_PER_JOB = 10
#: How long a job subscription is kept after it was last read (seconds).
LEASE = infra.MAX_LEASE
_ENDED = (COMPLETED, ABORTED, CANCELED)


def subscribe(
    db: Session,
    *,
    tenant_id: str,
    queue: str,
    job_number: int,
    owner: str,
    events: list[str],
) -> IppJobSubscriptionRow:
    """A job subscription of `owner` for the queue's job `job_number` (the caller checked
    the job is theirs), kept `LEASE` seconds after it was last read."""
    now = utcnow()
    alive = db.scalar(
        select(func.count())
        .select_from(IppJobSubscriptionRow)
        .where(
            IppJobSubscriptionRow.tenant_id == tenant_id,
            IppJobSubscriptionRow.queue == queue,
            IppJobSubscriptionRow.job_number == job_number,
            IppJobSubscriptionRow.expires_at > now,
        )
    )
    if (alive or 0) >= MAX_PER_JOB:
        raise Conflict(f"a job has at most {MAX_PER_JOB} subscriptions")
    granted = LEASE
    row = IppJobSubscriptionRow(
        tenant_id=tenant_id,
        queue=queue,
        job_number=job_number,
        owner=owner,
        events=list(events),
        lease_seconds=granted,
        expires_at=now + timedelta(seconds=granted),
        sequence=0,
        last_state=None,
        recent=[],
    )
    db.add(row)
    db.flush()
    return row


def subscription(
    db: Session,
    *,
    tenant_id: str,
    queue: str,
    subscription_id: int,
    owner: str,
    lock: bool = False,
) -> IppJobSubscriptionRow:
    """The queue's live job subscription `subscription_id` of `owner`, or NotFound (another
    user's is not found either: its existence is nobody else's business)."""
    query = select(IppJobSubscriptionRow).where(
        IppJobSubscriptionRow.subscription_id == subscription_id,
        IppJobSubscriptionRow.tenant_id == tenant_id,
        IppJobSubscriptionRow.queue == queue,
        IppJobSubscriptionRow.owner == owner,
    )
    row = db.scalar(query.with_for_update() if lock else query)
    if row is None or row.expires_at <= utcnow():
        raise NotFound(f"no subscription {subscription_id}")
    return row


def refresh(db: Session, row: IppJobSubscriptionRow) -> None:
    """Make the subscription's new events from its job's state now. A new subscription
    hears the job's state at once (`job-state-changed`)."""
    try:
        v = ipp_queue.get_job(
            db, tenant_id=row.tenant_id, queue=row.queue, job_number=row.job_number
        )
    except NotFound:
        return  # the job's history was dropped: nothing more will happen to it
    state, reasons = v.state.state, list(v.state.reasons)
    key = f"{state}:{','.join(reasons)}"
    if key == row.last_state:
        return
    ended_before = row.last_state is not None and int(row.last_state.split(":", 1)[0]) in _ENDED
    row.last_state = key
    events: list[dict[str, Any]] = []
    now = utcnow().isoformat()
    wanted = ["job-state-changed"] if "job-state-changed" in row.events else []
    if state in _ENDED and not ended_before and "job-completed" in row.events:
        wanted.append("job-completed")
    for event in wanted:
        row.sequence += 1
        events.append(
            {
                "sequence": row.sequence,
                "event": event,
                "job_number": row.job_number,
                "job_state": state,
                "reasons": reasons,
                "title": v.row.name,
                "at": now,
            }
        )
    if events:
        row.recent = [*row.recent, *events][-infra.KEPT_EVENTS :]


def renew(row: IppJobSubscriptionRow) -> None:
    """ippget: a Get-Notifications renews the lease (RFC 3996)."""
    row.expires_at = utcnow() + timedelta(seconds=row.lease_seconds)
