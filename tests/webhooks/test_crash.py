"""A webhook delivery survives a kill -9 of `printcloud serve` mid-attempt (issue 18).

A real stack on PostgreSQL (`printcloud serve`, its delivery workflows on DBOS), a
loopback receiver that verifies every delivery with `standardwebhooks` and holds the
first request it gets without answering; the test kills the whole stack while that
request is open, starts it again on the same data, and checks that the message arrives,
under the same `webhook-id`, and before the job's later messages. Nothing re-queued it:
DBOS's recovery resumed its workflow at the attempt that had no checkpoint
(`delivery.py`'s docstring says why that is enough for a killed process).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import select

from printcloud.core.crypto import SecretBox
from printcloud.printing import service as printing
from printcloud.webhooks import service
from printcloud.webhooks.models import AttemptRow, DeliveryRow, MessageRow
from tests.helpers.print_stack import PrintStack
from tests.webhooks.receiver import Received, Receiver, receiver

STUCK = 90.0  # seconds: a wait this long means something is stuck
EVENTS = ["job.accepted", "job.printing", "job.printed"]


def _until(receiver_: Receiver, path: str, count: int, said: str) -> list[Received]:
    deadline = time.monotonic() + STUCK
    while len(got := receiver_.at(path)) < count:
        assert time.monotonic() < deadline, f"stuck waiting for {said}: {got}"
        time.sleep(0.05)
    return got


def _job_printed(stack: PrintStack, tenant: str) -> str:
    """A job accepted, printing, then printed, each move in its own transaction as the
    print workflow makes them (through the print service's own functions): three
    messages in the job's lane. It ends printed, so a restart adopts no workflow for it."""
    job_id = printing.new_job_id()
    with stack.db.session() as db:
        printing.add_printer(
            db, tenant_id=tenant, printer_id="p1", name="P1", color=True, client_id="dev"
        )
        printing.create_job(
            db,
            tenant_id=tenant,
            printer_id="p1",
            owner="alice",
            client_id="c",
            title="Payroll",
            source="upload",
            options=printing.JobOptions(),
            job_id=job_id,
            page_count=2,
        )
    for state in ("printing", "printed"):
        with stack.db.session() as db:
            row = printing.get_job(db, tenant_id=tenant, job_id=job_id)
            record = {"pages_printed": 2} if state == "printed" else None
            assert printing.move(db, row, state, step="S110", record=record)
    return job_id


@pytest.mark.peer("postgres")
def test_a_delivery_in_flight_when_the_stack_is_killed_arrives_once_restarted(
    make_print_stack: Any,
) -> None:
    # the held attempt must still be open when the kill comes: a long timeout
    stack: PrintStack = make_print_stack(
        database="postgresql",
        webhook_timeout=60,
        webhook_retry_schedule=[0.5, 1],
        convert_urls=["http://127.0.0.1:9/"],  # no job is converted here: no pool to start
    )
    tenant = stack.tenant()
    with receiver() as live:
        path = "hang-once/crash"
        with stack.db.session() as db:
            row, secret = service.add(
                db,
                tenant_id=tenant,
                url=f"{live.url}/{path}",
                event_types=EVENTS,
                box=SecretBox(stack.settings.instance_secrets),
                egress=stack.settings.egress_policy,
                by="admin",
            )
            subscription_pk = row.pk
        live.secrets[path] = [secret]
        job_id = _job_printed(stack, tenant)

        (held,) = _until(live, path, 1, "the first delivery to be in flight")
        first_id = held.headers["webhook-id"]
        stack.kill_all()  # the attempt is open: no answer, no record, no checkpoint
        live.release.set()
        with stack.db.sessions() as db:
            states = db.scalars(
                select(DeliveryRow.state)
                .where(DeliveryRow.subscription_pk == subscription_pk)
                .order_by(DeliveryRow.pk)
            ).all()
        assert states == ["sending", "pending", "pending"]  # the lane waits for the first

        stack.start()
        got = _until(live, path, 4, "the three messages after the restart")
        time_ordered = [r.headers["webhook-id"] for r in got]
        assert time_ordered[0] == time_ordered[1] == first_id  # the killed attempt, resumed
        assert len(set(time_ordered)) == 3  # and nothing else twice
        bodies = [r.verified[secret] for r in got]  # standardwebhooks verified each one
        assert all(isinstance(b, dict) for b in bodies), bodies
        assert [b["type"] for b in bodies[1:]] == EVENTS  # the job's order
        assert {b["data"]["job_id"] for b in bodies} == {job_id}
        assert json.loads(got[0].body) == bodies[1]  # the same message, signed afresh

        deadline = time.monotonic() + STUCK
        while True:  # the log catches up with the receiver
            with stack.db.sessions() as db:
                rows = db.execute(
                    select(DeliveryRow, MessageRow.message_id)
                    .join(MessageRow, MessageRow.pk == DeliveryRow.message_pk)
                    .where(DeliveryRow.subscription_pk == subscription_pk)
                    .order_by(DeliveryRow.pk)
                ).all()
                if all(d.state == "delivered" for d, _ in rows):
                    tries = db.scalars(
                        select(AttemptRow.status_code)
                        .where(AttemptRow.delivery_pk == rows[0][0].pk)
                        .order_by(AttemptRow.pk)
                    ).all()
                    break
            assert time.monotonic() < deadline, [(d.state, d.attempts) for d, _ in rows]
            time.sleep(0.1)
        assert [m for _, m in rows] == time_ordered[1:]
        # resumed by DBOS's recovery (generation 0), not re-queued; the killed attempt
        # left no record, the resumed one is the first the log shows
        assert [d.generation for d, _ in rows] == [0, 0, 0]
        assert list(tries) == [204]
