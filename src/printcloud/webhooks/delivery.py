"""Sending: a durable workflow per delivery, started by a dispatcher in each process
that runs the print service's workflows.

- the dispatcher (`Sender`'s thread): each lane's next delivery
  (`outbox.next_deliveries`) gets its workflow, `webhook-<message>-<subscription>`;
  starting one twice (two executors, a restart) runs it once. It looks when this
  process wrote a message or ended a delivery (`outbox.wake`), on PostgreSQL when
  another process wrote one (its transaction rings `outbox.BELL`, heard through DBOS's
  LISTEN connection), else every `SWEEP_EVERY` seconds; on SQLite, which has no
  NOTIFY, every `PRINTCLOUD_WEBHOOK_POLL_INTERVAL` seconds.
- `deliver` (an async workflow: it waits between attempts as a coroutine, holding no
  thread): attempt, then after each pause of `PRINTCLOUD_WEBHOOK_RETRY_SCHEDULE` again,
  until the subscriber answers 2xx. A killed process resumes it where it stopped.
- `attempt` (a step): signs (Standard Webhooks, `signing.py`) with a timestamp of its
  own, POSTs through the egress policy's pinned client (`core/egress.py`, the push
  URL's), and writes the answer in the delivery log. Any 2xx is a success; anything
  else, no answer within `PRINTCLOUD_WEBHOOK_TIMEOUT`, or an address the policy refuses
  is a failure, retried.
- `finish` (a step): a delivery whose every attempt failed is `failed`, and its
  subscription is turned off when it has failed for `PRINTCLOUD_WEBHOOK_DISABLE_AFTER`
  seconds without a success (the administrator is told on the webhooks page, in the
  audit trail and in the log).

A delivery runs at least once per attempt (a crash after the POST and before its
record sends it again): receivers de-duplicate on `webhook-id`.

Nothing stays `sending` for ever. A killed process's deliveries are DBOS's to resume:
the executor recovers its own pending workflows when it starts again, and a live one
takes over a dead executor's when its lease expires (`core.executors`); the resumed
workflow repeats the attempt that had no checkpoint, with the same `webhook-id`
(tests/webhooks/test_crash.py kills `printcloud serve` mid-attempt). What DBOS does not
resume is a workflow that *ended* without ending its delivery (it failed: a database
outage longer than a step's retries, say; or it was cancelled, or exceeded its recovery
attempts), one that is gone (a system database restored or reset), and one left pending
by an older release (executors recover only their own release's workflows: without this,
an upgrade would strand every delivery waiting for a retry). The dispatcher looks for
those every `SWEEP_EVERY` seconds (`requeue_lost`, `why_lost`): such a delivery goes back
to `pending` under a new generation, a new workflow with the same `webhook-id`, in its
lane's place. It is only re-queued once its workflow has ended, never existed, or is
cancelled with no live executor of its release to run it, and a workflow of an older
generation stops before sending (`outbox.prepare`), so a message is never sent by two
workflows at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from printcloud.core import egress, tasks
from printcloud.core.crypto import SecretBox
from printcloud.core.db import Database, utcnow
from printcloud.core.executors import ALIVE, ExecutorLease
from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings
from printcloud.core.tasks.running import Running

from . import outbox, service, signing

log = get_logger("webhooks")
#: Seconds between two prunings of the delivery log by one dispatcher.
PRUNE_EVERY = 3600.0
#: Seconds between two looks for deliveries whose workflow ended or was lost.
SWEEP_EVERY = 60.0
_running: Running[Sender] = Running("the webhook sender")


@dataclass
class Sender:
    """What the delivery workflows use: the database, the sealing box, the guarded HTTP
    client; and the dispatcher thread. `attach` before the engine launches (recovered
    deliveries need it), `dispatch(engine)` after, `stop` before the engine stops."""

    settings: Settings
    db: Database
    box: SecretBox
    http: httpx.Client = field(init=False)
    _engine: tasks.TaskEngine | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    #: Whether messages other processes write ring this one's dispatcher (`tasks.listen`).
    _heard: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.http = egress.client(
            self.settings.egress_policy, timeout=self.settings.webhook_timeout
        )

    def attach(self) -> None:
        """Make this the sender the process's delivery workflows use."""
        _running.set(self)

    def dispatch(self, engine: tasks.TaskEngine) -> None:
        """Start the dispatcher on the launched `engine`."""
        self._engine = engine
        self._stop.clear()
        self._heard = tasks.listen(outbox.BELL, outbox.wake)
        self._thread = threading.Thread(target=self._run, name="webhook-dispatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._heard:
            tasks.unlisten(outbox.BELL, outbox.wake)
            self._heard = False
        outbox.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._engine = None

    def close(self) -> None:
        self.stop()
        self.http.close()
        _running.clear(self)

    # -- the dispatcher -----------------------------------------------------------------

    def _run(self) -> None:
        next_prune = 0.0
        next_sweep = time.monotonic() + SWEEP_EVERY  # what launch recovered runs first
        while not self._stop.is_set():
            outbox.wake.clear()
            try:
                self.dispatch_once()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_EVERY
                    self.requeue_lost()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY
                    self.prune_log()
            except Exception:  # a database outage: logged, and tried again at the next poll
                log.exception("webhook dispatch failed; trying again")
            # Woken by the bell on PostgreSQL: a slow look behind it, for a notification
            # lost while DBOS's listener reconnected.
            outbox.wake.wait(SWEEP_EVERY if self._heard else self.settings.webhook_poll_interval)

    def prune_log(self) -> int:
        """Forget what ended more than `PRINTCLOUD_WEBHOOK_LOG_DAYS` ago; how many."""
        before = utcnow() - timedelta(days=self.settings.webhook_log_days)
        with self.db.session() as db:
            return outbox.prune(db, before=before)

    def dispatch_once(self) -> int:
        """Start the workflows of the deliveries whose turn has come; how many."""
        engine = self._engine
        if engine is None:
            return 0
        with self.db.sessions() as db:
            due = outbox.next_deliveries(db)
        schedule = list(self.settings.webhook_retry_schedule)
        for one in due:
            if self._stop.is_set():
                break
            if one.generation == 0:
                engine.start(deliver, workflow_id=one.workflow_id)(one.delivery_pk, schedule)
            else:  # at once, then the pauses its lost workflow had not waited yet
                engine.start(deliver, workflow_id=one.workflow_id)(
                    one.delivery_pk,
                    schedule[one.attempts :],
                    generation=one.generation,
                    first=one.attempts + 1,
                )
            with self.db.session() as db:
                outbox.mark_sending(db, delivery_pk=one.delivery_pk, generation=one.generation)
        return len(due)

    def requeue_lost(self, *, now: datetime | None = None) -> int:
        """Re-queue the deliveries still `sending` whose workflow will not end them
        (`why_lost`, `outbox.requeue`); how many. A workflow left by an older release
        that no live executor runs is cancelled first."""
        engine = self._engine
        if engine is None:
            return 0
        now = now or utcnow()
        live = live_versions(
            self.db, scope=engine.scope, lease=self.settings.executor_lease, now=now
        )
        requeued, after = 0, 0
        while not self._stop.is_set():
            with self.db.sessions() as db:
                batch = outbox.sending(db, after=after)
            if not batch:
                break
            after = batch[-1].delivery_pk
            requeued += self._requeue_batch(engine, batch, now=now, live=live)
        return requeued

    def _requeue_batch(
        self, engine: tasks.TaskEngine, batch: list[outbox.Due], *, now: datetime, live: set[str]
    ) -> int:
        statuses = engine.get_statuses([c.workflow_id for c in batch])
        requeued = 0
        for one in batch:
            status = statuses.get(one.workflow_id)
            why = why_lost(
                status,
                settled=now - timedelta(seconds=self.settings.webhook_timeout + 5),
                version=engine.app_version,
                live=live,
            )
            if why is None:
                continue
            if status is not None and not status.done:
                engine.cancel(one.workflow_id)  # should its release come back: not this one
            with self.db.session() as db:
                state = outbox.requeue(
                    db, delivery_pk=one.delivery_pk, generation=one.generation, why=why
                )
            if state is not None:
                requeued += 1
                log.warning(
                    "webhook delivery re-queued"
                    if state == "pending"
                    else "webhook delivery failed",
                    extra={"fields": {"delivery": one.delivery_pk, "why": why}},
                )
        return requeued

    # -- one attempt --------------------------------------------------------------------

    def post(self, url: str, headers: dict[str, str], body: bytes) -> outbox.Answer:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            with self.http.stream("POST", url, headers=headers, content=body) as response:
                excerpt = b""
                for chunk in response.iter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= outbox.BODY_EXCERPT:
                        break
                text = excerpt[: outbox.BODY_EXCERPT].decode("utf-8", "replace")
                return outbox.Answer(response.status_code, "", text, took())
        except egress.EgressRefused as exc:
            return outbox.Answer(
                None, f"refused by the egress policy: {exc.description}", "", took()
            )
        except httpx.TimeoutException:
            return outbox.Answer(None, "no answer in time", "", took())
        except httpx.ConnectError:
            return outbox.Answer(None, "could not connect", "", took())
        except httpx.HTTPError:
            return outbox.Answer(None, "the connection failed", "", took())


def current() -> Sender:
    return _running.current()


def why_lost(
    status: tasks.TaskStatus | None, *, settled: datetime, version: str, live: set[str]
) -> str | None:
    """Why the workflow (`status`, None: there is none) of a delivery still `sending`
    will never end it, or None when it may yet (it is DBOS's to resume then).

    - gone: the system database lost it (restored or reset);
    - ended before `settled` (a failure, a cancel, too many recoveries; or a success that
      did not end it): one cancelled mid-POST may still be sending until its timeout,
      hence `settled`;
    - pending under an older release that no live executor (`live`: their versions)
      runs: executors recover only their own release's workflows, so after an upgrade
      the deliveries waiting for a retry would otherwise wait for ever.

    One pending or enqueued under a running release is left alone, whatever its age: it
    may wait hours for its next attempt, and its executor, or the one that takes over
    from it when its lease expires (`core.executors`), resumes it."""
    if status is None:
        return "its delivery workflow was lost"
    if status.done:
        if status.updated_at is not None and status.updated_at >= settled:
            return None
        return f"its delivery workflow ended ({status.state}) before the delivery did"
    if status.app_version not in (None, version) and status.app_version not in live:
        return f"its delivery workflow was left by release {status.app_version}"
    return None


def live_versions(db: Database, *, scope: str, lease: float, now: datetime) -> set[str]:
    """The releases that live executors of `scope` (the ones that run deliveries: this
    engine's) run, by their lease renewed within `lease` seconds."""
    fresh = now - timedelta(seconds=lease)
    return {
        state.app_version
        for state in ExecutorLease.leases(db, scope=scope)
        if state.state == ALIVE and state.heartbeat_at >= fresh
    }


@tasks.step(name="webhooks.attempt", retries=20, retry_interval=0.5, backoff=1.5)
def attempt(delivery_pk: int, number: int, generation: int = 0) -> str:
    """One attempt: `delivered`, `retry` (it failed) or `stop` (no longer wanted, or
    sent by a later generation's workflow now)."""
    sender = current()
    with sender.db.session() as db:
        prepared = outbox.prepare(db, delivery_pk=delivery_pk, generation=generation)
    if prepared is None:
        return "stop"
    try:
        secrets_ = [sender.box.open(sealed) for sealed in prepared.sealed_secrets]
    except ValueError:  # sealed under an instance secret no longer configured
        unreadable = outbox.Answer(
            None,
            "the signing secret cannot be read: the instance "
            "secret changed; rotate the webhook's secret",
            "",
            0,
        )
        with sender.db.session() as db:
            outbox.record_attempt(db, delivery_pk=delivery_pk, number=number, answer=unreadable)
        return "retry"
    headers = signing.headers(
        secrets_, message_id=prepared.message_id, timestamp=int(time.time()), body=prepared.body
    )
    answer = sender.post(prepared.url, headers, prepared.body)
    with sender.db.session() as db:
        outbox.record_attempt(db, delivery_pk=delivery_pk, number=number, answer=answer)
    return "delivered" if answer.ok else "retry"


@tasks.step(name="webhooks.finish", retries=20, retry_interval=0.5, backoff=1.5)
def finish(delivery_pk: int, outcome: str, generation: int = 0) -> None:
    """The delivery's end; its lane's next delivery may go (the dispatcher is woken)."""
    sender = current()
    if outcome == "failed":
        with sender.db.session() as db:
            delivery = outbox.give_up(db, delivery_pk=delivery_pk, generation=generation)
            off = None
            if delivery is not None:
                off = service.disable_if_failing(
                    db,
                    subscription_pk=delivery.subscription_pk,
                    failing_for=timedelta(seconds=sender.settings.webhook_disable_after),
                    now=utcnow(),
                )
        if off is not None:
            log.warning(
                "webhook subscription turned off after a long failure",
                extra={"fields": {"tenant": off.tenant_id, "subscription": off.subscription_id}},
            )
    outbox.wake.set()


@tasks.workflow(name="webhooks.deliver")
async def deliver(
    delivery_pk: int, schedule: list[float], generation: int = 0, first: int = 1
) -> str:
    """Attempt, then again after each pause of `schedule`, until one succeeds. A
    re-queued delivery's workflow (`generation` > 0) numbers its attempts from `first`."""
    outcome = "failed"
    for number, pause in enumerate([0.0, *schedule], start=first):
        if pause > 0:
            await tasks.sleep_async(pause)
        try:
            result = await tasks.call(attempt, delivery_pk, number, generation)
        except Exception:  # its own retries used up (a long database outage): a failed try
            log.exception("webhook attempt failed", extra={"fields": {"delivery": delivery_pk}})
            result = "retry"
        if result != "retry":
            outcome = result
            break
    await tasks.call(finish, delivery_pk, outcome, generation)
    return outcome
