"""Sending: a durable workflow per delivery, started by a dispatcher in each process
that runs the print service's workflows.

- the dispatcher (`Sender`'s thread): each lane's next delivery
  (`outbox.next_deliveries`) gets its workflow, `webhook-<message>-<subscription>`;
  starting one twice (two executors, a restart) runs it once. It looks when this
  process wrote a message or ended a delivery (`outbox.wake`), else every
  `PRINTCLOUD_WEBHOOK_POLL_INTERVAL` seconds.
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
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from printcloud.core import egress, tasks
from printcloud.core.crypto import SecretBox
from printcloud.core.db import Database, utcnow
from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings
from printcloud.core.tasks.running import Running

from . import outbox, service, signing

log = get_logger("webhooks")
#: Seconds between two prunings of the delivery log by one dispatcher.
PRUNE_EVERY = 3600.0
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
        self._thread = threading.Thread(target=self._run, name="webhook-dispatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
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
        while not self._stop.is_set():
            outbox.wake.clear()
            try:
                self.dispatch_once()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY
                    self.prune_log()
            except Exception:  # a database outage: logged, and tried again at the next poll
                log.exception("webhook dispatch failed; trying again")
            outbox.wake.wait(self.settings.webhook_poll_interval)

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
        for delivery_pk, workflow_id in due:
            if self._stop.is_set():
                break
            engine.start(deliver, workflow_id=workflow_id)(delivery_pk, schedule)
            with self.db.session() as db:
                outbox.mark_sending(db, delivery_pk=delivery_pk)
        return len(due)

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


@tasks.step(name="webhooks.attempt", retries=20, retry_interval=0.5, backoff=1.5)
def attempt(delivery_pk: int, number: int) -> str:
    """One attempt: `delivered`, `retry` (it failed) or `stop` (no longer wanted)."""
    sender = current()
    with sender.db.session() as db:
        prepared = outbox.prepare(db, delivery_pk=delivery_pk)
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
def finish(delivery_pk: int, outcome: str) -> None:
    """The delivery's end; its lane's next delivery may go (the dispatcher is woken)."""
    sender = current()
    if outcome == "failed":
        with sender.db.session() as db:
            delivery = outbox.give_up(db, delivery_pk=delivery_pk)
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
async def deliver(delivery_pk: int, schedule: list[float]) -> str:
    """Attempt, then again after each pause of `schedule`, until one succeeds."""
    outcome = "failed"
    for number, pause in enumerate([0.0, *schedule], start=1):
        if pause > 0:
            await tasks.sleep_async(pause)
        try:
            result = await tasks.call(attempt, delivery_pk, number)
        except Exception:  # its own retries used up (a long database outage): a failed try
            log.exception("webhook attempt failed", extra={"fields": {"delivery": delivery_pk}})
            result = "retry"
        if result != "retry":
            outcome = result
            break
    await tasks.call(finish, delivery_pk, outcome)
    return outcome
