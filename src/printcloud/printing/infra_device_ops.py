"""More of the Infrastructure Printer's operations (issue 15, PWG 5100.18; RFC 3995 for
the subscriptions), beside `infra_operations.py`, for the printer's output device:

- Update-Active-Jobs (PWG 5100.18): the device lists the jobs it has active
  (`job-ids`) with their `output-device-job-states`. The answer names, in the
  operation group, the jobs whose state here differs and that the device should
  follow (`job-ids` and `output-device-job-states`, printcloud's state): a listed job
  that ended here (a user cancelled it meanwhile), and a job the device took
  (Acknowledge-Job: `printing`) but did not list (it dropped it; it is fetchable
  again); and, in the unsupported-attributes group, the listed `job-ids` this printer
  does not know (never the device's, or forgotten): the device drops those. Nothing
  changes in printcloud: a job's outcome is Update-Job-Status's;
- Acknowledge-Identify-Printer (PWG 5100.18): the device takes the Identify-Printer
  requests that wait for its printer (`identify.take`: Identify-Printer to one of its
  queues, or to the Infrastructure Printer's URI, records them; `printer-state-reasons` says
  `identify-printer-requested` meanwhile, with a `printer-state-changed` event) and
  learns what to do: `identify-actions` (all the requests' actions) and `message`
  (the newest request's);
- Get-Subscription-Attributes, Get-Subscriptions and Renew-Subscription (RFC 3995
  §11.2.4-§11.2.6) for the printer's subscriptions.

`HANDLERS` is `infra_operations.HANDLERS` with these, and what `infra_routes.py` serves
to the device; `infra_queue.py` adds the queue operations users send to the same URI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from printcloud.core.db import utcnow
from printcloud.core.errors import NotFound
from printcloud.ipp.encoding import encode
from printcloud.ipp.message import Attribute, Group, GroupTag, ValueTag
from printcloud.ipp.model import Operation, Status
from printcloud.ipp.operations import requested_names, response

from . import identify, infra, infra_operations, service
from .infra_operations import InfraCall, _integers, _registered
from .ipp_states import PENDING, PROCESSING_STOPPED, ipp_state
from .models import InfraJobRow, InfraSubscriptionRow, PrintJobRow

OK = Status.SUCCESSFUL_OK
#: job-ids one Update-Active-Jobs lists at most.
MAX_ACTIVE = 1000


# -- Update-Active-Jobs --------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveJobs:
    """Update-Active-Jobs' answer: (job-id, printcloud's job-state) of the jobs whose
    state differs, and the job-ids this printer does not know."""

    different: list[tuple[int, int]]
    unknown: list[int]


def compare_active_jobs(
    db: Session, *, tenant_id: str, printer_id: str, listed: list[tuple[int, int]]
) -> ActiveJobs:
    """The device's active jobs (job-id, its output-device-job-state) against the
    printer's: which ended here in another state, which the device took but did not
    list, which are unknown here."""
    different: list[tuple[int, int]] = []
    unknown: list[int] = []
    numbers = {number for number, _ in listed}
    for number, device_state in listed:
        try:
            job = infra.job_by_number(db, tenant_id=tenant_id, printer_id=printer_id, number=number)
        except NotFound:
            unknown.append(number)
            continue
        if job.state not in service.PRINTABLE and job.state not in service.FINAL:
            unknown.append(number)  # held or not yet converted: never the device's
            continue
        ours = ipp_state(job.state, job.reason).state
        if ours >= PROCESSING_STOPPED and ours != device_state:
            different.append((number, ours))
    taken = db.execute(
        select(InfraJobRow.job_number, PrintJobRow.state, PrintJobRow.reason)
        .join(PrintJobRow, PrintJobRow.job_id == InfraJobRow.job_id)
        .where(
            InfraJobRow.tenant_id == tenant_id,
            PrintJobRow.tenant_id == tenant_id,
            PrintJobRow.printer_id == printer_id,
            PrintJobRow.state == "printing",
        )
        .order_by(InfraJobRow.job_number)
        .limit(MAX_ACTIVE)
    ).all()
    for number, state, reason in taken:
        if number not in numbers:
            different.append((int(number), ipp_state(state, reason).state))
    return ActiveJobs(different=different, unknown=unknown)


async def update_active_jobs(call: InfraCall) -> bytes:
    await _registered(call)
    numbers = _integers(call, "job-ids")
    states_attr = call.message.get(GroupTag.OPERATION, "output-device-job-states")
    states: list[int] = []
    if states_attr is not None:
        if states_attr.tags != [ValueTag.ENUM] * len(states_attr.values):
            raise call.fail(
                Status.CLIENT_ERROR_BAD_REQUEST, "output-device-job-states is 1setOf enum"
            )
        states = [int(v) for v in states_attr.values]
    if (call.message.get(GroupTag.OPERATION, "job-ids") is None) != (states_attr is None):
        raise call.fail(
            Status.CLIENT_ERROR_BAD_REQUEST,
            "job-ids and output-device-job-states go together (neither: no active jobs)",
        )
    if len(numbers) != len(states):
        raise call.fail(
            Status.CLIENT_ERROR_BAD_REQUEST,
            "job-ids and output-device-job-states must have as many values",
        )
    if len(numbers) > MAX_ACTIVE:
        raise call.fail(
            Status.CLIENT_ERROR_BAD_REQUEST, f"at most {MAX_ACTIVE} job-ids in one request"
        )
    bad = [s for s in states if not PENDING <= s <= 9]  # RFC 8011 §5.3.7 job-state values
    if bad:
        raise call.fail(
            Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
            f"output-device-job-states {bad[0]} is no job-state",
        )
    listed = list(zip(numbers, states, strict=True))
    found: ActiveJobs = await call.db(compare_active_jobs, listed=listed)
    answer = response(call.message, OK)
    operation = answer.groups[0]
    if found.different:
        operation.add(
            Attribute("job-ids", ValueTag.INTEGER, [number for number, _ in found.different])
        )
        operation.add(
            Attribute(
                "output-device-job-states",
                ValueTag.ENUM,
                [state for _, state in found.different],
            )
        )
    if found.unknown:
        answer.groups.append(
            Group(GroupTag.UNSUPPORTED, [Attribute("job-ids", ValueTag.INTEGER, found.unknown)])
        )
    return encode(answer)


# -- Acknowledge-Identify-Printer ------------------------------------------------------


async def acknowledge_identify_printer(call: InfraCall) -> bytes:
    await _registered(call)
    taken: list[identify.Pending] = await call.db(identify.take)
    if not taken:
        raise call.fail(
            Status.CLIENT_ERROR_NOT_POSSIBLE, "no Identify-Printer request waits for this printer"
        )
    actions = list(dict.fromkeys(a for request in taken for a in request.actions))
    message = next((r.message for r in reversed(taken) if r.message), "")
    answer = response(call.message, OK)
    operation = answer.groups[0]
    operation.add(Attribute("identify-actions", ValueTag.KEYWORD, actions or ["display"]))
    if message:
        operation.add(Attribute("message", ValueTag.TEXT, message))
    return encode(answer)


# -- subscriptions (RFC 3995) ----------------------------------------------------------


def _subscription_group(call: InfraCall, row: InfraSubscriptionRow, requested: list[str]) -> Group:
    attributes = [
        Attribute("notify-subscription-id", ValueTag.INTEGER, row.subscription_id),
        Attribute("notify-printer-uri", ValueTag.URI, call.printer_uri),
        Attribute("notify-subscriber-user-name", ValueTag.NAME, call.principal.client_id),
        Attribute("notify-events", ValueTag.KEYWORD, list(row.events)),
        Attribute("notify-pull-method", ValueTag.KEYWORD, "ippget"),
        Attribute("notify-lease-duration", ValueTag.INTEGER, row.lease_seconds),
        # in printer-up-time's units (seconds since the epoch here)
        Attribute(
            "notify-lease-expiration-time", ValueTag.INTEGER, int(row.expires_at.timestamp())
        ),
        Attribute("notify-charset", ValueTag.CHARSET, "utf-8"),
        Attribute("notify-natural-language", ValueTag.NATURAL_LANGUAGE, "en"),
        Attribute("notify-sequence-number", ValueTag.INTEGER, row.sequence),
    ]
    if requested and "all" not in requested and "subscription-description" not in requested:
        wanted = set(requested) | {"notify-subscription-id"}
        attributes = [a for a in attributes if a.name in wanted]
    return Group(GroupTag.SUBSCRIPTION, attributes)


def _subscription_id(call: InfraCall) -> int:
    value = call.operation_value("notify-subscription-id", (ValueTag.INTEGER,), required=True)
    return int(value)


async def get_subscription_attributes(call: InfraCall) -> bytes:
    number = _subscription_id(call)
    try:
        row = await call.db(infra.subscription, subscription_id=number)
    except NotFound as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc
    group = _subscription_group(call, row, requested_names(call.message))
    return call.answer([group])


async def get_subscriptions(call: InfraCall) -> bytes:
    """The printer's live subscriptions; `notify-job-id`: none (they are printer
    subscriptions); `limit`; `my-subscriptions` changes nothing (they are all the
    device client's)."""
    if call.message.get(GroupTag.OPERATION, "notify-job-id") is not None:
        return call.answer()
    limit = call.operation_value("limit", (ValueTag.INTEGER,), required=False)

    def read(db: Session, *, tenant_id: str, printer_id: str) -> list[InfraSubscriptionRow]:
        rows = db.scalars(
            select(InfraSubscriptionRow)
            .where(
                InfraSubscriptionRow.tenant_id == tenant_id,
                InfraSubscriptionRow.printer_id == printer_id,
                InfraSubscriptionRow.expires_at > utcnow(),
            )
            .order_by(InfraSubscriptionRow.subscription_id)
        ).all()
        return list(rows)

    rows: list[InfraSubscriptionRow] = await call.db(read)
    if isinstance(limit, int) and limit > 0:
        rows = rows[:limit]
    requested = requested_names(call.message)
    return call.answer([_subscription_group(call, row, requested) for row in rows])


def renew(
    db: Session, *, tenant_id: str, printer_id: str, subscription_id: int, lease: int | None
) -> int:
    """Renew-Subscription: the lease runs again from now (`lease` seconds, 0 the longest,
    None the subscription's own); the lease granted."""
    row = infra.subscription(
        db, tenant_id=tenant_id, printer_id=printer_id, subscription_id=subscription_id
    )
    if lease is not None:
        row.lease_seconds = infra.MAX_LEASE if lease <= 0 else min(lease, infra.MAX_LEASE)
    row.expires_at = utcnow() + timedelta(seconds=row.lease_seconds)
    return row.lease_seconds


async def renew_subscription(call: InfraCall) -> bytes:
    number = _subscription_id(call)
    lease: int | None = None
    # RFC 3995 §11.2.6 sends it in a subscription template group; some clients in the
    # operation group
    for group in [*call.message.groups_of(GroupTag.SUBSCRIPTION), call.message.groups[0]]:
        found = group.get("notify-lease-duration")
        if found is not None:
            if found.tag != ValueTag.INTEGER or len(found.values) != 1:
                raise call.fail(
                    Status.CLIENT_ERROR_BAD_REQUEST, "notify-lease-duration is one integer"
                )
            lease = int(found.value)
            break
    try:
        granted = await call.db(renew, subscription_id=number, lease=lease)
    except NotFound as exc:
        raise call.fail(Status.CLIENT_ERROR_NOT_FOUND, exc.description) from exc
    return call.answer(
        [
            Group(
                GroupTag.SUBSCRIPTION,
                [Attribute("notify-lease-duration", ValueTag.INTEGER, granted)],
            )
        ]
    )


HANDLERS: dict[int, Callable[[InfraCall], Awaitable[bytes | Response]]] = {
    **infra_operations.HANDLERS,
    Operation.UPDATE_ACTIVE_JOBS: update_active_jobs,
    Operation.ACKNOWLEDGE_IDENTIFY_PRINTER: acknowledge_identify_printer,
    Operation.GET_SUBSCRIPTION_ATTRIBUTES: get_subscription_attributes,
    Operation.GET_SUBSCRIPTIONS: get_subscriptions,
    Operation.RENEW_SUBSCRIPTION: renew_subscription,
}

__all__ = ["HANDLERS", "ActiveJobs", "compare_active_jobs", "renew"]
