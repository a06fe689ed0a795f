"""Waking what waits: one thread per process instead of DBOS's per-waiter polling.

Waiting costs nothing. A workflow waiting in `recv`, a `TaskHandle.result()` and a
queue are woken by events through one thread per process (`Waker`), not polled
per waiter: DBOS's per-waiter pollers are turned off or slowed down
(`quiet_dbos_pollers`), and the figures are in `bench/idle_cost.py` and
docs/printing.md ("Waiting costs nothing"). This leans on a few DBOS internals
(named where they are used); the tests in tests/core/test_tasks.py that count
statements per waiting workflow fail if a DBOS upgrade changes them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from dbos import DBOS

from printcloud.core.tasks.priority import lower_this_thread

if TYPE_CHECKING:
    from printcloud.core.tasks.declarations import TaskQueue

#: DBOS re-reads the database for each waiting `recv` this often, as a fallback behind its
#: listener; the waker's one sweep per process does that job instead.
_RECHECK_SECONDS = 24 * 3600.0
#: The waker's sweep of every waiting `recv` of this process, in one query: a safety net
#: behind PostgreSQL's NOTIFY and the SQLite message watch (`Waker`).
_MESSAGE_SWEEP_SECONDS = 60.0
#: SQLite: how often the waker looks for messages another process sent (one query).
_MESSAGE_WATCH_SECONDS = 1.0
#: How long an executor takes its "am I the latest application version" answer as true.
_LATEST_VERSION_SECONDS = 5.0
#: DBOS's background jobs (delayed workflows, timeouts: unused here) run this often.
_BACKGROUND_JOBS_SECONDS = 60.0
#: The looks at awaited runs' status, each one query for all that are due, are this far apart.
_SWEEP_GAP_SECONDS = 1.0
#: A queue with nothing announced is polled this often (work enqueued by another process).
_QUEUE_FALLBACK_SECONDS = 30.0
#: Runs this process started or enqueued whose queue (or none) it remembers, at most.
_KNOWN_RUNS = 100_000
#: A run this process did not start: its end may free a slot of any queue.
_UNKNOWN = "?"
#: After a run says it ends, its recorded end is looked for at these delays (seconds).
_ENDING_CHECKS = (0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
_ACTIVE_STATES = ("PENDING", "ENQUEUED", "DELAYED")


class _Nudge(threading.Event):
    """The event DBOS's queue worker waits on between polls, made wakeable.

    DBOS's worker stops when its event is set and otherwise polls every interval.
    Here `set()` still stops it, while `nudge()` only ends its current wait: it
    polls now (though not more often than the queue's own interval), and without a
    nudge it polls every `_QUEUE_FALLBACK_SECONDS`."""

    def __init__(self) -> None:
        super().__init__()
        self._poke = threading.Event()
        self._poke.set()  # one poll at start: work left by a previous run

    def nudge(self) -> None:
        self._poke.set()

    def set(self) -> None:
        super().set()
        self._poke.set()

    def wait(self, timeout: float | None = None) -> bool:
        # `timeout` is DBOS's interval (the declared one, longer under contention).
        if super().wait(timeout):
            return True
        self._poke.wait(_QUEUE_FALLBACK_SECONDS)
        self._poke.clear()
        return self.is_set()


class Waker:
    """Wakes waiting workflows and queues by events, one thread per process.

    What DBOS does by polling per waiter, done once per process:

    - a `recv` (or an async workflow's `recv_async`, which awaits the same event
      on the event loop) waits on DBOS's in-memory event. A message sent through
      `TaskEngine.send` in this process sets it at once. On PostgreSQL, DBOS's
      LISTEN/NOTIFY sets it for messages sent elsewhere; on SQLite (no NOTIFY),
      one query a second over the messages written since the last one does.
      DBOS's own per-waiter polling is turned off (`quiet_dbos_pollers`,
      `_RECHECK_SECONDS`); one query a minute over every waiter is the safety net;
    - `TaskHandle.result()` (`AsyncTaskHandle.result()` in an async workflow) waits
      on an event set when the run's end is recorded: DBOS's write of a run's
      outcome in this process announces it (`recorded`, `announce_recorded_ends`),
      so its waiters wake as the write commits. Behind that, a run of this process
      says when it ends (`workflow()`), and the waker reads its status until the
      end is recorded; runs of other processes are found by one query a second at
      most over the awaited runs due for a look (each every `poll_interval` of its
      `result()`);
    - a declared queue is polled when this process enqueues on it, when one of
      its runs ends here (a slot is free: announced by the same write; only that
      queue when this process started or enqueued the run, `expect`, every queue
      otherwise) or when dead executors' work is recovered, else every
      `_QUEUE_FALLBACK_SECONDS`.

    So the cost of waiting does not grow with the number of waiting workflows.
    """

    current: ClassVar[Waker | None] = None

    def __init__(self, schema: str | None) -> None:
        from dbos._dbos import _get_dbos_instance

        self._dbos = _get_dbos_instance()
        self._sys_db = self._dbos._sys_db
        self._sqlite = schema is None
        self._cond = threading.Condition()
        self._stopped = False
        self._awaited: dict[str, dict[threading.Event, float]] = {}
        self._due: dict[str, float] = {}  # next look at an awaited run's status
        self._ending: dict[str, tuple[float, int]] = {}
        self._nudges: dict[str, _Nudge] = {}
        #: run → the queue it was enqueued on here ("" if started on none), until it ends
        self._queue_of: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self._mark = 0

    @classmethod
    def start(cls, queues: Sequence[TaskQueue], *, schema: str | None, nice: int = 0) -> Waker:
        """`nice`: the queues' workers (they start the queued workflows) run at this nice
        value (`priority.py`); the waker itself does not."""
        from dbos._queue import queue_worker_thread

        def work(*args: Any) -> None:
            lower_this_thread(nice)
            queue_worker_thread(*args)

        waker = cls(schema)
        waker._sys_db._notification_fallback_polling_interval = _RECHECK_SECONDS
        if waker._sqlite:
            waker._mark = waker._newest_message()
        found: list[Any] = []
        for declared in queues:
            queue = DBOS.retrieve_queue(declared.name)
            if queue is None:
                raise RuntimeError(f"queue {declared.name!r} missing after registration")
            found.append(queue)
        # DBOS's own queues (scheduled runs, resumed and forked workflows), which its queue
        # thread polled every second (`quiet_dbos_pollers`): woken as ours are.
        registry = waker._dbos._registry
        found.append(registry.get_internal_queue())
        found.extend(q for q in registry.internal_queues() if q not in found)
        for queue in found:
            nudge = _Nudge()
            waker._nudges[queue.name] = nudge
            waker._threads.append(
                threading.Thread(
                    target=work,
                    args=(nudge, waker._dbos, queue),
                    name=f"queue-worker-{queue.name}",
                    daemon=True,
                )
            )
        waker._threads.append(threading.Thread(target=waker._run, name="tasks-waker", daemon=True))
        for thread in waker._threads:
            thread.start()
        cls.current = waker
        return waker

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            awaited = [e for events in self._awaited.values() for e in events]
            self._cond.notify_all()
        for nudge in self._nudges.values():
            nudge.set()
        for event in awaited:  # their `result()` falls back on DBOS's own wait
            event.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if Waker.current is self:
            Waker.current = None

    # events announced by this process

    @staticmethod
    def ending(workflow_id: str | None) -> None:
        waker = Waker.current
        if waker is None or not workflow_id:
            return
        with waker._cond:
            waker._ending[workflow_id] = (time.monotonic() + _ENDING_CHECKS[0], 0)
            waker._cond.notify_all()

    @staticmethod
    def recorded(workflow_id: str) -> None:
        """DBOS recorded the end of run `workflow_id` in this process: wake whoever
        awaits it and poll the queues now (its slot is free). No query: the write
        has committed, so a waiter's `get_result` finds it."""
        waker = Waker.current
        if waker is None:
            return
        with waker._cond:
            if waker._stopped:
                return
            events = list(waker._awaited.get(workflow_id, {}))
            waker._ending.pop(workflow_id, None)  # its checks have nothing left to find
            queue = waker._queue_of.pop(workflow_id, _UNKNOWN)
        # Only its own queue has a slot free: each poll of a queue is a few queries
        # (issue 13), and a print job's three runs end on two queues and none.
        if queue == _UNKNOWN:
            waker.nudge()
        elif queue:
            waker.nudge(queue)
        for event in events:
            event.set()

    def expect(self, workflow_id: str, queue: str | None) -> None:
        """Run `workflow_id` is started (`queue` None) or enqueued on `queue` by this
        process: when it ends, only that queue is polled (`recorded`)."""
        with self._cond:
            if len(self._queue_of) < _KNOWN_RUNS:
                self._queue_of[workflow_id] = queue or ""

    def nudge(self, queue: str | None = None) -> None:
        for name, nudge in self._nudges.items():
            if queue is None or name == queue:
                nudge.nudge()

    @staticmethod
    def schedules_changed() -> None:
        """This process created, changed or deleted a schedule: DBOS's schedule thread
        reads them now instead of at its next poll (`_SCHEDULES_POLL_SECONDS`)."""
        wake = _SchedulesThread.wake
        if wake is not None:
            wake.nudge()

    def sent(self, workflow_id: str, topic: str | None) -> None:
        self._signal(workflow_id, topic)

    def until_done(self, workflow_id: str, poll_interval: float) -> None:
        """Return once the run's end is recorded (or the waker stops)."""
        event = threading.Event()
        if not self._await(workflow_id, event, poll_interval):
            return
        try:
            try:
                done = self._done([workflow_id])
            except Exception:  # the database is away: the waker's sweep looks again
                done = False
            if not done:
                event.wait()
        finally:
            self._unawait(workflow_id, event)

    async def until_done_async(self, workflow_id: str, poll_interval: float) -> None:
        """`until_done` for a coroutine (an async workflow awaiting another): it waits on
        the event loop, holding no thread; the waker wakes it as it does the others."""
        from dbos._utils import LoopAwareEvent  # a threading.Event a coroutine can await

        event = LoopAwareEvent()
        if not self._await(workflow_id, event, poll_interval):
            return
        try:
            try:
                done = await asyncio.to_thread(self._done, [workflow_id])
            except Exception:  # the database is away: the waker's sweep looks again
                done = False
            while not done and not event.is_set():
                await event.wait_async(timeout=3600.0)
        finally:
            self._unawait(workflow_id, event)

    def _await(self, workflow_id: str, event: threading.Event, poll_interval: float) -> bool:
        with self._cond:
            if self._stopped:
                return False
            interval = max(poll_interval, 0.01)
            self._awaited.setdefault(workflow_id, {})[event] = interval
            self._due[workflow_id] = min(
                self._due.get(workflow_id, float("inf")), time.monotonic() + interval
            )
            self._cond.notify_all()
        return True

    def _unawait(self, workflow_id: str, event: threading.Event) -> None:
        with self._cond:
            events = self._awaited.get(workflow_id, {})
            events.pop(event, None)
            if not events:
                self._awaited.pop(workflow_id, None)
                self._due.pop(workflow_id, None)

    # the thread

    def _run(self) -> None:
        now = time.monotonic()
        last_sweep = now - _SWEEP_GAP_SECONDS
        next_messages = now + _MESSAGE_SWEEP_SECONDS
        next_watch = now + _MESSAGE_WATCH_SECONDS
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    due = [next_messages]
                    if self._sqlite:
                        due.append(next_watch)
                    if self._due:
                        due.append(max(min(self._due.values()), last_sweep + _SWEEP_GAP_SECONDS))
                    due.extend(at for at, _ in self._ending.values())
                    if min(due) <= now:
                        break
                    self._cond.wait(min(due) - now)
                if self._stopped:
                    return
                ending = [wid for wid, (at, _) in self._ending.items() if at <= now]
                swept: list[str] = []
                if now >= last_sweep + _SWEEP_GAP_SECONDS:
                    swept = [wid for wid, at in self._due.items() if at <= now]
                for wid in swept:
                    self._due[wid] = now + min(self._awaited.get(wid, {}).values(), default=1.0)
            try:
                if ending:
                    self._check_ending(ending)
                if swept:
                    last_sweep = now
                    self._wake_done(swept)
                if self._sqlite and next_watch <= now:
                    self._watch_messages()
                    next_watch = time.monotonic() + _MESSAGE_WATCH_SECONDS
                if next_messages <= now:
                    self._sweep_messages()
                    next_messages = time.monotonic() + _MESSAGE_SWEEP_SECONDS
            except Exception:  # the database may be away a while: try again, never die
                logging.getLogger("printcloud.tasks").warning("waker pass failed", exc_info=True)
                with self._cond:
                    self._cond.wait(1.0)

    def _check_ending(self, ids: list[str]) -> None:
        done = self._wake_done(ids)
        if done:
            self.nudge()  # a queue slot may be free
        with self._cond:
            now = time.monotonic()
            for wid in ids:
                _, attempt = self._ending.pop(wid, (0.0, 0))
                if wid in done or attempt + 1 >= len(_ENDING_CHECKS):
                    continue
                self._ending[wid] = (now + _ENDING_CHECKS[attempt + 1], attempt + 1)

    def _wake_done(self, ids: list[str]) -> set[str]:
        done = self._finished(ids)
        with self._cond:
            events = [e for wid in done for e in self._awaited.get(wid, {})]
        for event in events:
            event.set()
        return done

    def _done(self, ids: list[str]) -> bool:
        return set(ids) <= self._finished(ids)

    def _finished(self, ids: list[str]) -> set[str]:
        import sqlalchemy as sa

        status = self._sys_db.tables.workflow_status
        found: set[str] = set()
        for start in range(0, len(ids), 1000):
            query = sa.select(status.c.workflow_uuid, status.c.status).where(
                status.c.workflow_uuid.in_(ids[start : start + 1000])
            )
            with self._sys_db.engine.connect() as conn:
                rows = conn.execute(query).all()
            found.update(wid for wid, state in rows if state not in _ACTIVE_STATES)
        return found

    def _signal(self, workflow_id: str, topic: str | None) -> None:
        from dbos._sys_db import _dbos_null_topic

        payload, _ = self._sys_db._waiter(workflow_id, topic or _dbos_null_topic)
        signal = self._sys_db.notifications_map.get(payload)
        if signal is not None:
            signal.set()

    def _newest_message(self) -> int:
        import sqlalchemy as sa

        rowid: sa.ColumnClause[int] = sa.literal_column("rowid")
        with self._sys_db.engine.connect() as conn:
            query = sa.select(sa.func.max(rowid)).select_from(self._sys_db.tables.notifications)
            return int(conn.execute(query).scalar() or 0)

    def _watch_messages(self) -> None:
        """SQLite: wake the waiters of messages written since the last look."""
        import sqlalchemy as sa

        notes = self._sys_db.tables.notifications
        rowid: sa.ColumnClause[int] = sa.literal_column("rowid")
        query = (
            sa.select(rowid, notes.c.destination_uuid, notes.c.topic)
            .where(rowid > self._mark)
            .order_by(rowid)
            .limit(5000)
        )
        with self._sys_db.engine.connect() as conn:
            rows = conn.execute(query).all()
        for rowid, destination, topic in rows:
            self._mark = max(self._mark, int(rowid))
            self._signal(destination, topic)

    def _sweep_messages(self) -> None:
        """Every waiting `recv` of this process whose message is there, in one query."""
        import sqlalchemy as sa

        waiting = {components[0] for _, components, _ in self._sys_db.notifications_map.snapshot()}
        if not waiting:
            return
        notes = self._sys_db.tables.notifications
        ids = sorted(waiting)
        for start in range(0, len(ids), 1000):
            query = (
                sa.select(notes.c.destination_uuid, notes.c.topic)
                .where(notes.c.consumed == sa.false())
                .where(notes.c.destination_uuid.in_(ids[start : start + 1000]))
                .distinct()
            )
            with self._sys_db.engine.connect() as conn:
                rows = conn.execute(query).all()
            for destination, topic in rows:
                self._signal(destination, topic)


def quiet_dbos_pollers() -> None:
    """Turn off DBOS's SQLite message poller, which reads the database once per waiting
    `recv` every interval: `Waker` does its work with one query for all of them.

    And run DBOS's background jobs (start delayed workflows, cancel timed-out ones:
    printcloud uses neither) every `_BACKGROUND_JOBS_SECONDS`, not every second.

    And remember for `_LATEST_VERSION_SECONDS` whether this executor runs the latest
    application version: DBOS asks the database (a union query it builds anew) on
    every claim of every queue partition, a fifth of a busy print service's CPU
    (issue 13). The version is pinned to the release; the answer changes only when
    another release registers, which an executor then sees a few seconds late."""
    from dbos import _workflow_commands
    from dbos._sys_db import SystemDatabase
    from dbos._sys_db_sqlite import SQLiteSystemDatabase

    SQLiteSystemDatabase._notification_listener = _wait_for_stop  # type: ignore[method-assign]
    announce_recorded_ends()
    _workflow_commands._BACKGROUND_JOBS_INTERVAL_SEC = _BACKGROUND_JOBS_SECONDS
    quiet_queue_and_schedule_threads()
    if not getattr(SystemDatabase._is_latest_version, "remembered", False):
        SystemDatabase._is_latest_version = _remembered(SystemDatabase._is_latest_version)  # type: ignore[method-assign]
    close_backfill_gap()


#: DBOS's schedule thread reads the schedules this often: a change made in this process
#: wakes it at once (`Waker.schedules_changed`), one made by another process is seen this
#: late (DBOS's own default; its first minute's once a second is turned off).
_SCHEDULES_POLL_SECONDS = 30.0


class _Wakeable(threading.Event):
    """A stop event whose `wait` a `nudge()` also ends (returning whether it is set)."""

    def __init__(self) -> None:
        super().__init__()
        self._wake = threading.Condition()
        self._stopping = False
        self._nudged = False

    def nudge(self) -> None:
        with self._wake:
            self._nudged = True
            self._wake.notify_all()

    def set(self) -> None:
        super().set()
        with self._wake:
            self._stopping = True
            self._wake.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        with self._wake:
            if not self._stopping and not self._nudged:
                self._wake.wait(timeout)
            self._nudged = False
            return self._stopping


class _SchedulesThread:
    #: The wakeable stop event of DBOS's schedule thread, while it runs.
    wake: ClassVar[_Wakeable | None] = None


def quiet_queue_and_schedule_threads() -> None:
    """Turn off DBOS's pollers that `Waker` replaces with wake-ups (issue 13: an idle
    serve on PostgreSQL spent a third of its CPU in them).

    - DBOS's queue thread lists the queue table every second to start a worker per
      queue it finds, and DBOS's internal queue's worker polls it every second. Our
      engine listens to no dynamic queue (`DBOS.listen_queues([])`), so the thread only
      waits for the stop; `Waker.start` runs the internal queues' workers beside ours,
      polled when something is enqueued on them here (a schedule's tick, below), when
      a run ends and when dead executors' work is recovered, else every
      `_QUEUE_FALLBACK_SECONDS`.
    - A schedule's tick, enqueued by DBOS's schedule thread, nudges its queue's worker.
    - DBOS's schedule thread reads the schedule table every second during its first
      minute, then every `_SCHEDULES_POLL_SECONDS`: it reads it at the interval from the
      start, and at once when this process changes a schedule (`Waker.schedules_changed`:
      the engine's launch, `set_schedule`, `delete_schedule`)."""
    from dbos import _dbos, _scheduler

    if getattr(_dbos.queue_thread, "quiet", False):
        return
    _dbos.queue_thread = _stop_only_queue_thread
    _scheduler._enqueue_scheduled_workflow = _nudging_enqueue(
        _scheduler._enqueue_scheduled_workflow
    )
    _scheduler._STARTUP_FAST_POLL_DURATION_SEC = 0.0
    _dbos.dynamic_scheduler_loop = _wakeable_scheduler(_dbos.dynamic_scheduler_loop)


def _stop_only_queue_thread(stop_event: threading.Event, dbos: Any) -> None:
    """DBOS's `queue_thread(stop_event, dbos)`, with nothing left to do (above)."""
    stop_event.wait()


_stop_only_queue_thread.quiet = True  # type: ignore[attr-defined]


def _nudging_enqueue(enqueue: Any) -> Any:
    """DBOS's `_enqueue_scheduled_workflow(sys_db, workflow_name, …, queue_name, …)`,
    followed by a nudge of the queue it enqueued on."""
    from dbos._utils import INTERNAL_QUEUE_NAME

    def enqueue_scheduled_workflow(*args: Any, **kwargs: Any) -> None:
        enqueue(*args, **kwargs)
        queue = kwargs.get("queue_name", args[7] if len(args) > 7 else None)
        waker = Waker.current
        if waker is not None:
            waker.nudge(queue or INTERNAL_QUEUE_NAME)

    return enqueue_scheduled_workflow


def _wakeable_scheduler(loop: Any) -> Any:
    """DBOS's `dynamic_scheduler_loop(stop_event, polling_interval_sec)` given a stop
    event that `Waker.schedules_changed` can wake: it stands in for DBOS's in the list
    of events `DBOS.destroy` sets."""

    def scheduler_loop(stop_event: threading.Event, polling_interval_sec: float) -> None:
        from dbos._dbos import _get_dbos_instance

        wake = _Wakeable()
        events = _get_dbos_instance().background_thread_stop_events
        for at, event in enumerate(events):
            if event is stop_event:
                events[at] = wake
        if stop_event.is_set():  # a destroy before the swap
            wake.set()
        _SchedulesThread.wake = wake
        try:
            loop(wake, max(polling_interval_sec, _SCHEDULES_POLL_SECONDS))
        finally:
            if _SchedulesThread.wake is wake:
                _SchedulesThread.wake = None

    return scheduler_loop


def announce_recorded_ends() -> None:
    """Make DBOS's write of a run's outcome (`SystemDatabase.update_workflow_outcome`)
    tell the waker once it has landed (`Waker.recorded`): a parent awaiting the run and
    the next workflow waiting for its queue slot go on at once, where the waker's
    status checks after the run's `ending` hint (`_ENDING_CHECKS`) found the end a
    few to tens of milliseconds late, on the path of every print job (issue 13, goal
    4; issue 15). Those checks stay, behind it, should a DBOS upgrade record ends
    elsewhere; tests/core/test_tasks.py fails if this announcement stops coming."""
    from dbos._sys_db import SystemDatabase

    if not getattr(SystemDatabase.update_workflow_outcome, "announced", False):
        SystemDatabase.update_workflow_outcome = _announced(  # type: ignore[method-assign]
            SystemDatabase.update_workflow_outcome
        )


def _announced(record: Any) -> Any:
    """DBOS's `update_workflow_outcome(self, workflow_id, status, *, ...) -> bool` (whether
    the write landed), followed by `Waker.recorded` when it did."""

    def update_workflow_outcome(self: Any, workflow_id: str, status: Any, **kwargs: Any) -> bool:
        landed = bool(record(self, workflow_id, status, **kwargs))
        if landed:
            Waker.recorded(workflow_id)
        return landed

    update_workflow_outcome.announced = True  # type: ignore[attr-defined]
    return update_workflow_outcome


def close_backfill_gap() -> None:
    """Make DBOS's automatic backfill reach the moment the schedule's thread starts.

    When a schedule starts with `automatic_backfill`, DBOS enqueues the ticks between
    the last fired one and a `now` it reads first, then starts the schedule's thread,
    whose first tick is the next after a second `now`. A tick that falls due while the
    backfill is enqueueing (several writes; a second or more on a busy machine) was in
    neither window and never ran: a schedule restarted after a crash lost a tick. The
    backfill now runs again from where it stopped until a pass finds nothing due: the
    window left is the few microseconds before the thread starts. Workflow IDs are per
    tick, so a tick both would start runs once."""
    from dbos import _scheduler

    if not getattr(_scheduler.backfill_schedule, "to_now", False):
        _scheduler.backfill_schedule = _backfill_to_now(_scheduler.backfill_schedule)


def _backfill_to_now(backfill: Any) -> Any:
    def backfill_to_now(sys_db: Any, schedule_name: str, start: Any, end: Any) -> list[str]:
        ids: list[str] = list(backfill(sys_db, schedule_name, start, end))
        for _ in range(100):  # each pass is shorter than the one before; 100 is "stuck"
            now = datetime.now(UTC)
            # `start` is exclusive: begin a hair before `end` so a tick at `end` counts
            more = list(backfill(sys_db, schedule_name, end - timedelta(microseconds=1), now))
            ids += more
            end = now
            if not more:
                break
        return ids

    backfill_to_now.to_now = True  # type: ignore[attr-defined]
    return backfill_to_now


def _remembered(ask: Any) -> Any:
    """DBOS's `_is_latest_version(self, app_version, c=None)`, its answer kept a while."""

    def is_latest_version(self: Any, app_version: str, c: Any = None) -> bool:
        memo: dict[str, tuple[bool, float]] = self.__dict__.setdefault("_latest_memo", {})
        now = time.monotonic()
        hit = memo.get(app_version)
        if hit is not None and hit[1] > now:
            return hit[0]
        answer = bool(ask(self, app_version, c))
        memo[app_version] = (answer, now + _LATEST_VERSION_SECONDS)
        return answer

    is_latest_version.remembered = True  # type: ignore[attr-defined]
    return is_latest_version


def _wait_for_stop(self: Any) -> None:
    while self._run_background_processes:
        time.sleep(0.5)


# bells: a wake-up rung in one process and heard in every other, on PostgreSQL

#: DBOS's channel for its messages, which its listener thread LISTENs to in every process;
#: a payload no message uses (`_BELL`) reaches the events `listen` registered for it.
_CHANNEL = "dbos_notifications_channel"
_BELL = "printcloud.bell::"


def ring(db: Any, name: str) -> None:
    """Ring bell `name` in every process of this PostgreSQL database once `db`'s
    transaction (a SQLAlchemy session of the app's database, which holds DBOS's schema on
    PostgreSQL) commits; never if it rolls back (NOTIFY is transactional). Nothing on
    SQLite, which has no NOTIFY: listeners there poll (`listen`)."""
    import sqlalchemy as sa

    if db.get_bind().dialect.name == "postgresql":
        db.execute(sa.select(sa.func.pg_notify(_CHANNEL, _BELL + name)))


def listen(name: str, event: threading.Event) -> bool:
    """Set `event` whenever bell `name` rings (`ring`) in any process, through DBOS's
    LISTEN connection of the launched engine: no thread or connection of its own.
    Answers whether bells reach this process at all (PostgreSQL); False (SQLite) means
    the caller must look for the others' work by polling. A notification lost while the
    listener reconnects is not repeated: keep a slow safety poll."""
    from dbos._dbos import _get_dbos_instance
    from dbos._sys_db_postgres import PostgresSystemDatabase

    sys_db = _get_dbos_instance()._sys_db
    if not isinstance(sys_db, PostgresSystemDatabase) or not sys_db.use_listen_notify:
        return False
    # DBOS's map of waiting `recv`s by payload: its listener sets what is registered under
    # a payload it receives. The components name no workflow: `Waker._sweep_messages`
    # finds no message for them.
    key = _BELL + name
    sys_db.notifications_map.add(key, event, (key, "", None))  # type: ignore[arg-type]
    return True


def unlisten(name: str, event: threading.Event) -> None:
    """Stop setting `event` for bell `name` (before the engine shuts down)."""
    from dbos._dbos import _get_dbos_instance

    sys_db = _get_dbos_instance()._sys_db
    key = _BELL + name
    if sys_db.notifications_map.get(key) is not None:
        sys_db.notifications_map.pop(key, event)  # type: ignore[arg-type]
