"""Webhook deliveries, refereed by the Standard Webhooks reference implementation.

One workflow engine (DBOS) and one sender run in this process for the module, on
SQLite, with a retry schedule of fractions of a second; a receiver on loopback
(`receiver.py`) verifies every delivery with `standardwebhooks`. Events come from the
print service's and docgen's own service functions, in their own transactions, as in
production. Waiting is polling for what the test waits for.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, update
from standardwebhooks import Webhook, WebhookVerificationError

from printcloud import __version__
from printcloud.core import tasks
from printcloud.core.crypto import SecretBox
from printcloud.core.db import Database, migrate, utcnow
from printcloud.core.egress import EgressPolicy, EgressRefused
from printcloud.core.errors import Conflict, InvalidRequest, NotFound
from printcloud.core.executors import ExecutorLease
from printcloud.core.settings import Settings
from printcloud.docgen import service as docgen
from printcloud.printing import service as printing
from printcloud.webhooks import delivery, emit, outbox, service, signing
from printcloud.webhooks.models import DeliveryRow, MessageRow, SubscriptionRow
from tests.conftest import LOOPBACK
from tests.helpers.cli import run_cli
from tests.helpers.print_stack import drop_databases, new_pg_database
from tests.webhooks.receiver import Receiver, receiver

T = TypeVar("T")
STUCK = 60.0  # seconds: a wait this long means something is stuck


def wait_for(what: Callable[[], T | None], *, said: str) -> T:
    deadline = time.monotonic() + STUCK
    while True:
        found = what()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"stuck waiting for {said}")
        time.sleep(0.05)


@dataclass
class World:
    settings: Settings
    db: Database
    box: SecretBox
    sender: delivery.Sender
    receiver: Receiver

    def subscribe(self, path: str, events: list[str], tenant: str | None = None) -> tuple[str, str]:
        """A new tenant's (or `tenant`'s) subscription at the receiver's `path`: (tenant, id)."""
        tenant = tenant or "t" + secrets.token_hex(5)
        with self.db.session() as db:
            row, secret = service.add(
                db,
                tenant_id=tenant,
                url=f"{self.receiver.url}/{path}",
                event_types=events,
                box=self.box,
                egress=self.settings.egress_policy,
                by="admin",
            )
            subscription_id = row.subscription_id
        self.receiver.secrets.setdefault(path, []).append(secret)
        return tenant, subscription_id

    def job(
        self, tenant: str, *states: str, reason: str | None = None, pages_printed: int = 0
    ) -> str:
        """A job of `tenant`, accepted then moved through `states`, each in its own
        transaction (as the workflow moves it; the last with `pages_printed`)."""
        job_id = printing.new_job_id()
        with self.db.session() as db:
            if not printing.list_printers(db, tenant_id=tenant):
                printing.add_printer(
                    db, tenant_id=tenant, printer_id="p1", name="P1", color=True, client_id="dev"
                )
            printing.create_job(
                db,
                tenant_id=tenant,
                printer_id="p1",
                owner="alice",
                client_id="c",
                title="Quarterly report",
                source="upload",
                options=printing.JobOptions(),
                job_id=job_id,
                page_count=3,
            )
        for state in states:
            with self.db.session() as db:
                row = printing.get_job(db, tenant_id=tenant, job_id=job_id)
                last = state == states[-1]
                printed = {"pages_printed": pages_printed} if last and pages_printed else None
                printing.move(db, row, state, step="S110", reason=reason, record=printed)
        return job_id

    def subscription(self, tenant: str, subscription_id: str) -> SubscriptionRow:
        with self.db.sessions() as db:
            return service.get(db, tenant_id=tenant, subscription_id=subscription_id)

    def log(self, tenant: str, subscription_id: str) -> list[service.LogEntry]:
        with self.db.sessions() as db:
            return service.delivery_log(db, tenant_id=tenant, subscription_id=subscription_id)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The sender on SQLite (the embedded default), then on a PostgreSQL database of its
    own (DBOS's tables in a schema there), as the distributed run has it."""
    data_dir: Path = tmp_path_factory.mktemp("webhooks")
    created: list[str] = []
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'printcloud.sqlite3'}"
    else:
        url = new_pg_database(created)
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key=secrets.token_urlsafe(32),
        egress_allow=LOOPBACK,
        webhook_retry_schedule=[0.2, 0.2, 0.2],
        webhook_timeout=1.0,
        webhook_disable_after=0,
        webhook_poll_interval=0.2,
        log_level="WARNING",
    )
    db = Database(settings.effective_database_url)
    migrate(db, "printcloud:migrations")
    box = SecretBox(settings.instance_secrets)
    sender = delivery.Sender(settings=settings, db=db, box=box)
    with receiver() as live:
        sender.attach()
        engine = tasks.TaskEngine(settings)
        engine.launch()
        sender.dispatch(engine)
        try:
            yield World(settings, db, box, sender, live)
        finally:
            sender.stop()
            engine.shutdown()
            sender.close()
            db.dispose()
            drop_databases(created)


def _types(received: list[Any]) -> list[str]:
    return [json.loads(r.body)["type"] for r in received]


def test_every_delivery_verifies_and_a_tampered_or_old_one_does_not(world: World) -> None:
    tenant, _ = world.subscribe("ok/a", ["job.accepted", "job.printing", "job.printed"])
    job_id = world.job(tenant, "printing", "printed")
    got = wait_for(
        lambda: len(world.receiver.at("ok/a")) == 3 and world.receiver.at("ok/a"),
        said="three deliveries",
    )
    assert _types(got) == ["job.accepted", "job.printing", "job.printed"]
    (secret,) = world.receiver.secrets["ok/a"]
    for delivered in got:
        body = delivered.verified[secret]  # what standardwebhooks verified and parsed
        assert isinstance(body, dict), body
        assert body["data"]["job_id"] == job_id and body["data"]["owner"] == "alice"
        assert delivered.headers["webhook-id"].startswith("msg_")
        assert delivered.headers["webhook-signature"].startswith("v1,")
    assert json.loads(got[2].body)["data"]["state"] == "printed"

    referee = Webhook(secret)
    first = got[0]
    tampered = first.body.replace(b"alice", b"mallory")
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        referee.verify(tampered, first.headers)
    # the same message signed correctly, but ten minutes ago: a replay, refused
    old = int(time.time()) - 600
    replayed = signing.headers(
        [secret], message_id=first.headers["webhook-id"], timestamp=old, body=first.body
    )
    with pytest.raises(WebhookVerificationError, match="too old"):
        referee.verify(first.body, replayed)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(first.body, first.headers)


def test_retries_after_a_500_and_after_a_timeout(world: World) -> None:
    tenant, flaky = world.subscribe("fail-first/b", ["job.printed"])
    _, slow = world.subscribe("hang-first/b", ["job.printed"], tenant=tenant)
    world.job(tenant, "printed")
    for path in ("fail-first/b", "hang-first/b"):
        got = wait_for(
            lambda p=path: len(world.receiver.at(p)) >= 2 and world.receiver.at(p),
            said=f"a second attempt at {path}",
        )
        (secret,) = world.receiver.secrets[path]
        assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
        assert all(isinstance(r.verified[secret], dict) for r in got)
    world.receiver.release.set()
    entries = wait_for(
        lambda: (e := world.log(tenant, flaky)) and e[0].state == "delivered" and e,
        said="the flaky delivery delivered",
    )
    with world.db.sessions() as db:
        tries = service.attempts_of(
            db, tenant_id=tenant, subscription_id=flaky, message_id=entries[0].message_id
        )
    assert [t.status_code for t in tries] == [500, 204]
    assert tries[0].body_excerpt.startswith("receiver is down")
    assert len(tries[0].body_excerpt) == 1000  # bounded
    entries = wait_for(
        lambda: (e := world.log(tenant, slow)) and e[0].state == "delivered" and e,
        said="the slow delivery delivered",
    )
    with world.db.sessions() as db:
        tries = service.attempts_of(
            db, tenant_id=tenant, subscription_id=slow, message_id=entries[0].message_id
        )
    assert [(t.status_code, t.error) for t in tries] == [(None, "no answer in time"), (204, "")]
    assert world.subscription(tenant, flaky).failing_since is None  # a success ends the streak


def test_a_jobs_events_arrive_in_order_while_one_is_retried(world: World) -> None:
    events = ["job.accepted", "job.printing", "job.printed", "job.cancelled"]
    tenant, _ = world.subscribe("fail-first/c", events)
    first = world.job(tenant, "printing", "printed")
    second = world.job(tenant, "printing", "printer_cancelled", reason="paper_out", pages_printed=2)
    # each message fails once, then succeeds: six messages, twelve attempts
    got = wait_for(
        lambda: len(world.receiver.at("fail-first/c")) == 12 and world.receiver.at("fail-first/c"),
        said="twelve attempts",
    )
    for job_id, end in ((first, "printed"), (second, "printer_cancelled")):
        # every attempt of this job's messages, in the order they reached the receiver:
        # a message is retried until it succeeds before the job's next one is sent
        mine = [r for r in got if json.loads(r.body)["data"]["job_id"] == job_id]
        ids = [r.headers["webhook-id"] for r in mine]
        assert ids == [ids[0], ids[0], ids[2], ids[2], ids[4], ids[4]], ids
        assert len(set(ids)) == 3
        states = [json.loads(r.body)["data"]["state"] for r in mine[1::2]]
        assert states == ["accepted", "printing", end]
    cancelled = [json.loads(r.body) for r in got if json.loads(r.body)["type"] == "job.cancelled"]
    assert cancelled[0]["data"]["reason"] == "paper_out"
    assert cancelled[0]["data"]["cancelled_by"] == "printer"
    assert (cancelled[0]["data"]["pages"], cancelled[0]["data"]["pages_printed"]) == (3, 2)


def test_a_rotated_secret_overlaps_the_new_one(world: World) -> None:
    tenant, subscription_id = world.subscribe("ok/d", ["job.printed"])
    (old,) = world.receiver.secrets["ok/d"]
    with world.db.session() as db:
        _, new = service.rotate(
            db,
            tenant_id=tenant,
            subscription_id=subscription_id,
            box=world.box,
            by="admin",
            overlap=timedelta(hours=1),
        )
    world.receiver.secrets["ok/d"].append(new)
    world.job(tenant, "printed")
    (got,) = wait_for(lambda: world.receiver.at("ok/d"), said="a delivery during the overlap")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert isinstance(got.verified[old], dict) and isinstance(got.verified[new], dict)

    with world.db.session() as db:  # no overlap: the old secret stops at once
        _, newest = service.rotate(
            db,
            tenant_id=tenant,
            subscription_id=subscription_id,
            box=world.box,
            by="admin",
            overlap=timedelta(0),
        )
    world.receiver.secrets["ok/d"].append(newest)
    world.job(tenant, "printed")
    got = wait_for(
        lambda: len(world.receiver.at("ok/d")) == 2 and world.receiver.at("ok/d")[1],
        said="a delivery after the overlap",
    )
    assert isinstance(got.verified[newest], dict)
    assert isinstance(got.verified[new], WebhookVerificationError)
    assert isinstance(got.verified[old], WebhookVerificationError)


def test_a_subscription_that_keeps_failing_is_turned_off_and_the_admin_told(
    world: World,
) -> None:
    tenant, subscription_id = world.subscribe("down/e", ["job.printed"])
    world.job(tenant, "printed")
    row = wait_for(
        lambda: (r := world.subscription(tenant, subscription_id)) and not r.enabled and r,
        said="the subscription turned off",
    )
    assert row.disabled_reason.startswith("turned off by the platform")
    (entry,) = world.log(tenant, subscription_id)
    assert (entry.state, entry.attempts) == ("failed", 4)  # the first and three retries
    with world.db.sessions() as db:
        trail = service.audit_trail(db, tenant_id=tenant)
        assert trail[0].action == "auto_disabled" and trail[0].actor == "platform"
        assert emit(db, tenant_id=tenant, event_type="job.printed", data={}) is None
        with pytest.raises(Conflict, match="turned off"):
            service.send_test(db, tenant_id=tenant, subscription_id=subscription_id, by="a")
    with world.db.session() as db:  # the administrator turns it on again, and tests it
        service.update(
            db,
            tenant_id=tenant,
            subscription_id=subscription_id,
            by="admin",
            egress=world.settings.egress_policy,
            enabled=True,
        )
    assert world.subscription(tenant, subscription_id).failing_since is None


def test_test_batch_and_account_events_and_tenant_isolation(world: World) -> None:
    events = ["batch.suspended", "batch.completed", "account.low_balance"]
    tenant, subscription_id = world.subscribe("ok/f", events)
    with world.db.session() as db:
        message_id = service.send_test(
            db, tenant_id=tenant, subscription_id=subscription_id, by="admin"
        )
        docgen.record_request(
            db,
            tenant_id=tenant,
            source="crm",
            state="suspended",
            step="S1512",
            reason="the Digest response did not match",
        )
        received, _ = docgen.record_request(db, tenant_id=tenant, source="crm", job="Invoices")
        request_id = received.request_id
    with world.db.session() as db:  # the batch flow's last step (S1525)
        docgen.advance_request(
            db, tenant_id=tenant, request_id=request_id, state="completed", step="S1525"
        )
        # what the accounting service emits when a balance crosses its warning level
        low = emit(
            db,
            tenant_id=tenant,
            event_type="account.low_balance",
            data={"account_id": "a1", "owner": "alice", "balance": 120, "threshold": 500,
                  "currency": "EUR"},
            ordering_key="account:a1",
        )  # fmt: skip
    got = wait_for(
        lambda: len(world.receiver.at("ok/f")) == 4 and world.receiver.at("ok/f"),
        said="the test event, two batch events and the account event",
    )
    (secret,) = world.receiver.secrets["ok/f"]
    assert all(isinstance(r.verified[secret], dict) for r in got)
    by_type = {json.loads(r.body)["type"]: r for r in got}
    assert by_type["webhook.test"].headers["webhook-id"] == message_id
    suspended = json.loads(by_type["batch.suspended"].body)["data"]
    assert suspended["reason"] == "the Digest response did not match"
    completed = json.loads(by_type["batch.completed"].body)["data"]
    assert (completed["request_id"], completed["job"]) == (request_id, "Invoices")
    assert by_type["account.low_balance"].headers["webhook-id"] == low
    assert json.loads(by_type["account.low_balance"].body)["data"]["balance"] == 120
    other = "t" + secrets.token_hex(5)
    with world.db.sessions() as db, pytest.raises(NotFound):
        service.get(db, tenant_id=other, subscription_id=subscription_id)
    with world.db.sessions() as db, pytest.raises(NotFound, match="unknown message"):
        service.attempts_of(
            db, tenant_id=tenant, subscription_id=subscription_id, message_id="msg_nothing"
        )
    with pytest.raises(InvalidRequest, match="unknown event type"):
        service.check_event_types(["job.exploded"])
    with world.db.sessions() as db, pytest.raises(ValueError, match="unknown webhook event"):
        emit(db, tenant_id=tenant, event_type="job.exploded", data={})


def test_a_deleted_subscriptions_successor_is_delivered_to(world: World) -> None:
    """A delivery's workflow is named after its message and subscription, never after a
    row key a delete may hand out again (SQLite reuses the largest one)."""
    for path in ("ok/h1", "ok/h2"):
        tenant, subscription_id = world.subscribe(path, ["job.printed"])
        with world.db.session() as db:
            service.send_test(db, tenant_id=tenant, subscription_id=subscription_id, by="a")
        wait_for(
            lambda t=tenant, s=subscription_id: (
                (e := world.log(t, s)) and e[0].state == "delivered"
            ),
            said=f"the test event to {path} delivered",
        )
        with world.db.session() as db:
            service.remove(db, tenant_id=tenant, subscription_id=subscription_id, by="a")
    assert len(world.receiver.at("ok/h2")) == 1


def test_the_log_forgets_what_ended_long_ago(world: World) -> None:
    tenant, subscription_id = world.subscribe("ok/i", ["job.printed"])
    world.job(tenant, "printed")
    wait_for(
        lambda: (e := world.log(tenant, subscription_id)) and e[0].state == "delivered",
        said="a delivery",
    )
    with world.db.session() as db:
        assert outbox.prune(db, before=utcnow() - timedelta(days=1)) == 0
    assert len(world.log(tenant, subscription_id)) == 1
    with world.db.session() as db:
        assert outbox.prune(db, before=utcnow() + timedelta(seconds=1)) >= 1
        assert db.scalar(select(func.count()).select_from(MessageRow)) == db.scalar(
            select(func.count(func.distinct(DeliveryRow.message_pk)))
        )
    assert world.log(tenant, subscription_id) == []


def _delivery(world: World, message_id: str) -> DeliveryRow:
    with world.db.sessions() as db:
        row = db.scalar(
            select(DeliveryRow)
            .join(MessageRow, MessageRow.pk == DeliveryRow.message_pk)
            .where(MessageRow.message_id == message_id)
        )
    assert row is not None
    return row


def test_a_delivery_whose_workflow_ended_or_was_lost_is_sent_again_in_its_place(
    world: World,
) -> None:
    """The sweeper (`Sender.requeue_lost`) re-queues a delivery left `sending` by a
    workflow that ended or is gone, with the same `webhook-id` and before its lane's
    later messages; it leaves alone one whose workflow still runs (mid-attempt here, or
    waiting for its retry)."""
    # lost: started and marked sending, then its workflow gone (a system database reset)
    lost_tenant, lost_subscription = world.subscribe("ok/s2", ["job.printed"])
    job = {"event_type": "job.printed", "ordering_key": "job:s2"}
    with world.db.session() as db:
        lost = emit(db, tenant_id=lost_tenant, data={"n": 1}, **job)
        assert lost is not None
        db.flush()
        message_pk = select(MessageRow.pk).where(MessageRow.message_id == lost)
        db.execute(
            update(DeliveryRow)
            .where(DeliveryRow.message_pk == message_pk.scalar_subquery())
            .values(state="sending")
        )
    with world.db.session() as db:  # the job's next message waits in the lane behind it
        later = emit(db, tenant_id=lost_tenant, data={"n": 2}, **job)
    # ended: its workflow succeeded, yet the delivery is `sending` again
    tenant, _ = world.subscribe("ok/s3", ["job.printed"])
    world.job(tenant, "printed")
    (done,) = wait_for(lambda: world.receiver.at("ok/s3"), said="a delivery")
    ended = done.headers["webhook-id"]
    wait_for(lambda: _delivery(world, ended).state == "delivered", said="its log")
    with world.db.session() as db:
        pk = _delivery(world, ended).pk
        db.execute(update(DeliveryRow).where(DeliveryRow.pk == pk).values(state="sending"))
    # running: its first attempt is held open by the receiver (until its timeout)
    world.receiver.release.clear()  # an earlier test let every held request go
    tenant, _ = world.subscribe("hang-first/s1", ["job.printed"])
    world.job(tenant, "printed")
    (running,) = wait_for(lambda: world.receiver.at("hang-first/s1"), said="an open attempt")

    # later than now by more than a timeout: the ended workflow has surely stopped sending
    world.sender.requeue_lost(now=utcnow() + timedelta(minutes=1))
    got = wait_for(
        lambda: len(world.receiver.at("ok/s2")) == 2 and world.receiver.at("ok/s2"),
        said="the lost message and the next one",
    )
    assert [r.headers["webhook-id"] for r in got] == [lost, later]  # same ID, lane order
    assert all(isinstance(r.verified[world.receiver.secrets["ok/s2"][0]], dict) for r in got)
    again = wait_for(
        lambda: len(world.receiver.at("ok/s3")) == 2 and world.receiver.at("ok/s3"),
        said="the ended one sent again",
    )
    assert again[1].headers["webhook-id"] == ended
    world.receiver.release.set()
    running_id = running.headers["webhook-id"]
    wait_for(lambda: _delivery(world, running_id).state == "delivered", said="the open one")
    assert len(world.receiver.at("hang-first/s1")) == 2  # its timeout and its retry, no more
    assert _delivery(world, running_id).generation == 0  # never re-queued
    last = outbox.MAX_GENERATIONS - 1
    for message_id in (lost, ended):
        wait_for(lambda m=message_id: _delivery(world, m).state == "delivered", said="the log")
        row = _delivery(world, message_id)
        assert row.generation == 1
        with world.db.session() as db:
            # a workflow of the generation before stops rather than send it again
            assert outbox.prepare(db, delivery_pk=row.pk, generation=0) is None
            # a delivery whose workflows keep getting lost ends, and frees its lane
            stuck = update(DeliveryRow).where(DeliveryRow.pk == row.pk)
            db.execute(stuck.values(state="sending", generation=last))
            assert outbox.requeue(db, delivery_pk=row.pk, generation=last, why="lost") == "failed"
            # a compare-and-set: another sweeper's try changes nothing
            assert outbox.requeue(db, delivery_pk=row.pk, generation=last, why="lost") is None
    with world.db.sessions() as db:  # the log says what happened
        notes = service.attempts_of(
            db, tenant_id=lost_tenant, subscription_id=lost_subscription, message_id=lost
        )
    assert [n.error for n in notes] == [
        "its delivery workflow was lost: sent again",
        "",  # the 204
        f"lost, {outbox.MAX_GENERATIONS} times: given up",
    ]


def test_which_workflows_are_given_up_on_and_which_are_left_to_dbos() -> None:
    now = utcnow()

    def status(state: str, version: str = "2.0", ended: float = 600) -> tasks.TaskStatus:
        at = now - timedelta(seconds=ended)
        return tasks.TaskStatus("w", state, "webhooks.deliver", None, "x", version, at, at, None)

    def why(found: tasks.TaskStatus | None, live: tuple[str, ...] = ("2.0",)) -> str | None:
        settled = now - timedelta(seconds=20)
        return delivery.why_lost(found, settled=settled, version="2.0", live=set(live))

    assert why(None) == "its delivery workflow was lost"
    for ended in ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "SUCCESS"):
        assert (
            why(status(ended)) == f"its delivery workflow ended ({ended}) before the delivery did"
        )
        assert why(status(ended, ended=5)) is None  # it may still be mid-POST: not yet
    for running in ("PENDING", "ENQUEUED"):
        assert why(status(running, ended=86400)) is None  # a day-long wait for a retry is fine
        assert why(status(running, version="1.9"), live=("1.9", "2.0")) is None  # rolling upgrade
        assert (
            why(status(running, version="1.9")) == "its delivery workflow was left by release 1.9"
        )


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)  # the leases are the same on both
def test_the_releases_live_executors_run_are_read_from_their_leases(world: World) -> None:
    lease = ExecutorLease(
        world.db,
        scope="printing",
        executor_id="printing-" + secrets.token_hex(4),
        lease_seconds=30,
        recover=lambda dead: [],
        on_lost=lambda: None,
    )
    lease.register()
    now = utcnow()
    assert delivery.live_versions(world.db, scope="printing", lease=30, now=now) == {__version__}
    assert delivery.live_versions(world.db, scope="crm", lease=30, now=now) == set()
    later = now + timedelta(seconds=31)  # its lease expired: dead, whatever it runs
    assert delivery.live_versions(world.db, scope="printing", lease=30, now=later) == set()
    lease.stop()
    assert delivery.live_versions(world.db, scope="printing", lease=30, now=now) == set()


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)  # the service is the same on both
def test_a_move_repeated_by_a_step_run_again_is_not_announced_twice(world: World) -> None:
    """A step re-run after a crash that followed its commit (`printing.hold`, say) moves
    the job to the state it is in: one message, one `webhook-id`, not two."""
    tenant, _ = world.subscribe("ok/r", ["job.held"])
    job_id = world.job(tenant, "held", "held")
    with world.db.sessions() as db:
        held = db.scalars(
            select(MessageRow.message_id).where(
                MessageRow.tenant_id == tenant, MessageRow.event_type == "job.held"
            )
        ).all()
    assert len(held) == 1, held
    (got,) = wait_for(lambda: world.receiver.at("ok/r"), said="the held job's message")
    assert got.headers["webhook-id"] == held[0]
    assert json.loads(got.body)["data"]["job_id"] == job_id


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)  # the CLI is the same on both
def test_the_cli_queues_what_the_running_sender_delivers(world: World) -> None:
    """`printcloud admin webhook` works in the database, beside a running print service:
    its test event is found by the sender's poll and delivered, verified."""
    env = world.settings.as_environment()
    tenant = "t" + secrets.token_hex(5)

    def cli(*args: str) -> Any:
        done = run_cli(env, "admin", "--json", "webhook", *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return json.loads(done.stdout)

    url = f"{world.receiver.url}/ok/cli"
    added = cli("add", url, "--tenant", tenant, "--event", "job.printed", "--event", "job.held")
    world.receiver.secrets["ok/cli"] = [added["secret"]]
    subscription_id = added["subscription_id"]
    assert [w["subscription_id"] for w in cli("list", "--tenant", tenant)] == [subscription_id]
    message_id = cli("test", subscription_id, "--tenant", tenant)["message_id"]
    (got,) = wait_for(lambda: world.receiver.at("ok/cli"), said="the CLI's test event")
    assert got.headers["webhook-id"] == message_id
    assert json.loads(got.body)["type"] == "webhook.test"
    assert isinstance(got.verified[added["secret"]], dict)
    wait_for(
        lambda: (e := world.log(tenant, subscription_id)) and e[0].state == "delivered",
        said="the log to show it delivered",
    )
    logged = cli("log", subscription_id, "--tenant", tenant)
    assert (logged[0]["message_id"], logged[0]["status_code"]) == (message_id, 204)
    assert cli("enable", subscription_id, "--tenant", tenant, "--off")["enabled"] is False
    assert "account.low_balance" in {t["type"] for t in cli("event-types")}
    refused = run_cli(env, "admin", "--json", "webhook", "add", url, "--tenant", tenant,
                      "--event", "job.exploded")  # fmt: skip
    assert refused.returncode == 2 and json.loads(refused.stdout)["field"] == "event_types"
    assert cli("delete", subscription_id, "--tenant", tenant) == {"deleted": subscription_id}
    with world.db.sessions() as db:
        assert service.list_subscriptions(db, tenant_id=tenant) == []


def test_the_egress_policy_decides_at_save_and_at_send(world: World) -> None:
    strict = EgressPolicy()  # global unicast only: what a deployment has by default
    for url in (
        f"{world.receiver.url}/ok/g",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hook",
    ):
        with pytest.raises(EgressRefused) as refused:
            service.check_url(url, egress=strict)
        assert refused.value.field == "url"
    with pytest.raises(InvalidRequest, match="url must be"):
        service.check_url("ftp://example.com/x", egress=strict)
    assert service.check_url(f"{world.receiver.url}/ok/g", egress=EgressPolicy.loopback())

    # a sender under the strict policy refuses the loopback receiver without connecting
    strict_settings = Settings(
        data_dir=world.settings.data_dir,
        database_url=world.settings.database_url,
        secret_key=world.settings.secret_key,
        egress_allow=[],
    )
    guarded = delivery.Sender(settings=strict_settings, db=world.db, box=world.box)
    try:
        answer = guarded.post(f"{world.receiver.url}/ok/g", {}, b"{}")
    finally:
        guarded.http.close()
    assert answer.status_code is None and answer.error.startswith("refused by the egress policy")
    assert world.receiver.at("ok/g") == []
