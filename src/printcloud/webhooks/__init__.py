"""Signed webhooks per tenant (issue 18): subscriptions to job, batch-request and account
events, signed by the Standard Webhooks specification and delivered by durable
workflows with retries over about a day, in order per job (docs/webhooks.md).

Like `core` and `ipp`, this package imports no service: the services call `emit` where
something happens (in their own transaction), and the print service runs the delivery
(`delivery.Sender`) and hosts the admin API and pages.

- `outbox.emit(db, *, tenant_id, event_type, data, ordering_key=None)`: the one call.
- `service`: subscriptions, rotation, test events, the delivery log, the audit trail.
- `signing`: the Standard Webhooks headers.
- `delivery`: the dispatcher and the workflow.
"""

from printcloud.webhooks.outbox import EVENT_TYPES, TEST_EVENT, emit

__all__ = ["EVENT_TYPES", "TEST_EVENT", "emit"]
