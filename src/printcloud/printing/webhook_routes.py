"""The webhook admin API (issue 18), for the tenant's administrator (scope `admin` and
the issuer's `admin` claim, the printers' rule): `/printing/api/webhooks`.

- `GET /api/webhooks/event-types`: what may be subscribed to;
- `GET`, `POST /api/webhooks` (the answer carries the secret, shown this once);
  `GET`, `PATCH`, `DELETE /api/webhooks/{id}`;
- `POST /api/webhooks/{id}/rotate` (a new secret; the old one signs too for an overlap);
- `POST /api/webhooks/{id}/test` (a `webhook.test` message, 202);
- `GET /api/webhooks/{id}/deliveries` (the delivery log, newest first, each with its
  last answer) and `…/deliveries/{message_id}` (every attempt of one message);
- `GET /api/webhooks/audit`: who added, changed, rotated, tested, turned off or deleted
  which subscription (the platform, when it turned one off after a long failure).

The rules are in `printcloud.webhooks.service`; the subscriber URL passes the egress
policy (`core/egress.py`) as a printer's push URL does (400 naming `url`).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Query, Response

from printcloud.webhooks import outbox
from printcloud.webhooks import service as webhooks
from printcloud.webhooks.schemas import (
    AttemptList,
    AttemptRead,
    AuditList,
    AuditRead,
    DeliveryList,
    DeliveryRead,
    EventType,
    EventTypeList,
    Rotated,
    RotateRequest,
    TestSent,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookRead,
    WebhookUpdate,
)

from .deps import AdminCaller, RuntimeDep

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.get("/event-types", response_model=EventTypeList)
def event_types(principal: AdminCaller) -> EventTypeList:
    return EventTypeList(
        event_types=[EventType(type=t, description=d) for t, d in outbox.EVENT_TYPES.items()]
    )


@router.get("", response_model=WebhookList)
def list_webhooks(rt: RuntimeDep, principal: AdminCaller) -> WebhookList:
    with rt.db.sessions() as db:
        rows = webhooks.list_subscriptions(db, tenant_id=principal.tenant_id)
        return WebhookList(webhooks=[WebhookRead.of(r) for r in rows])


@router.post("", status_code=201, response_model=WebhookCreated)
def add_webhook(
    body: WebhookCreate, rt: RuntimeDep, principal: AdminCaller, response: Response
) -> WebhookCreated:
    """A subscription; the answer's `secret` is shown this once (keep it in the receiver)."""
    response.headers["Cache-Control"] = "no-store"  # it carries a secret (as RFC 6749 §5.1)
    with rt.db.session() as db:
        row, secret = webhooks.add(
            db,
            tenant_id=principal.tenant_id,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            box=rt.box,
            egress=rt.settings.egress_policy,
            by=principal.acting_user,
        )
        return WebhookCreated(**WebhookRead.of(row).model_dump(), secret=secret)


@router.get("/audit", response_model=AuditList)
def audit(
    rt: RuntimeDep, principal: AdminCaller, limit: int = Query(default=50, ge=1, le=500)
) -> AuditList:
    with rt.db.sessions() as db:
        rows = webhooks.audit_trail(db, tenant_id=principal.tenant_id, limit=limit)
        return AuditList(events=[AuditRead.model_validate(r) for r in rows])


@router.get("/{subscription_id}", response_model=WebhookRead)
def show_webhook(subscription_id: str, rt: RuntimeDep, principal: AdminCaller) -> WebhookRead:
    with rt.db.sessions() as db:
        row = webhooks.get(db, tenant_id=principal.tenant_id, subscription_id=subscription_id)
        return WebhookRead.of(row)


@router.patch("/{subscription_id}", response_model=WebhookRead)
def update_webhook(
    subscription_id: str, body: WebhookUpdate, rt: RuntimeDep, principal: AdminCaller
) -> WebhookRead:
    with rt.db.session() as db:
        row = webhooks.update(
            db,
            tenant_id=principal.tenant_id,
            subscription_id=subscription_id,
            by=principal.acting_user,
            egress=rt.settings.egress_policy,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            enabled=body.enabled,
        )
        return WebhookRead.of(row)


@router.delete("/{subscription_id}", status_code=204)
def delete_webhook(subscription_id: str, rt: RuntimeDep, principal: AdminCaller) -> Response:
    with rt.db.session() as db:
        webhooks.remove(
            db,
            tenant_id=principal.tenant_id,
            subscription_id=subscription_id,
            by=principal.acting_user,
        )
    return Response(status_code=204)


@router.post("/{subscription_id}/rotate", response_model=Rotated)
def rotate_secret(
    subscription_id: str,
    rt: RuntimeDep,
    principal: AdminCaller,
    response: Response,
    body: RotateRequest | None = None,
) -> Rotated:
    """A new secret, shown this once; the current one signs too for `overlap_seconds`."""
    response.headers["Cache-Control"] = "no-store"
    overlap = rt.settings.webhook_rotation_overlap
    if body is not None and body.overlap_seconds is not None:
        overlap = body.overlap_seconds
    with rt.db.session() as db:
        row, secret = webhooks.rotate(
            db,
            tenant_id=principal.tenant_id,
            subscription_id=subscription_id,
            box=rt.box,
            by=principal.acting_user,
            overlap=timedelta(seconds=overlap),
        )
        return Rotated(
            subscription_id=row.subscription_id,
            secret=secret,
            previous_secret_until=row.previous_until,
        )


@router.post("/{subscription_id}/test", status_code=202, response_model=TestSent)
def send_test(subscription_id: str, rt: RuntimeDep, principal: AdminCaller) -> TestSent:
    with rt.db.session() as db:
        message_id = webhooks.send_test(
            db,
            tenant_id=principal.tenant_id,
            subscription_id=subscription_id,
            by=principal.acting_user,
        )
    return TestSent(message_id=message_id)


@router.get("/{subscription_id}/deliveries", response_model=DeliveryList)
def deliveries(
    subscription_id: str,
    rt: RuntimeDep,
    principal: AdminCaller,
    limit: int = Query(default=50, ge=1, le=500),
) -> DeliveryList:
    with rt.db.sessions() as db:
        entries = webhooks.delivery_log(
            db, tenant_id=principal.tenant_id, subscription_id=subscription_id, limit=limit
        )
        return DeliveryList(deliveries=[DeliveryRead.of(e) for e in entries])


@router.get("/{subscription_id}/deliveries/{message_id}", response_model=AttemptList)
def attempts(
    subscription_id: str, message_id: str, rt: RuntimeDep, principal: AdminCaller
) -> AttemptList:
    with rt.db.sessions() as db:
        rows = webhooks.attempts_of(
            db,
            tenant_id=principal.tenant_id,
            subscription_id=subscription_id,
            message_id=message_id[:64],
        )
        return AttemptList(attempts=[AttemptRead.of(r) for r in rows])
