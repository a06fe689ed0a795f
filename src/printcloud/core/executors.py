"""Executor leases: who runs durable work, and taking over from one that died.

DBOS recovers an executor's pending workflows only when that same executor
launches again; an executor that dies and never returns (its machine is gone)
leaves its workflows PENDING for ever. Each executor therefore holds a lease,
a row in `task_executors` renewed every third of `PRINTCLOUD_EXECUTOR_LEASE`
seconds. A live executor of the same scope (the service whose workflows they
run) that finds a lease expired claims it — one UPDATE that only one claimer
can win — and hands the dead executor's id to DBOS recovery, which re-enqueues
its pending workflows to resume after their last finished step.

Fencing: an executor that was only slow (a long pause, a network partition)
and finds its lease taken must not go on running workflows that now run
elsewhere. Its next renewal sees the row no longer `alive`, and it stops
(`on_lost`; the serving process exits and its supervisor starts it afresh,
which registers a new lease and recovers nothing: its work moved on).

Clocks: leases compare the executors' wall clocks (UTC); keep them in sync
(NTP) and keep the lease well above the clock skew.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from printcloud import __version__
from printcloud.core.db import Base, Database, UTCDateTime, utcnow
from printcloud.core.logs import get_logger

__all__ = ["ExecutorLease", "ExecutorRow", "LeaseState"]

log = get_logger("executors")
ALIVE = "alive"
STOPPED = "stopped"
TAKEN_OVER = "taken_over"


class ExecutorRow(Base):
    __tablename__ = "task_executors"

    #: The service whose workflows the executor runs (`embedded` for all of them).
    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    executor_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    app_version: Mapped[str] = mapped_column(String(40))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20), default=ALIVE)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    taken_over_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    taken_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: How many pending workflows the taker recovered.
    recovered: Mapped[int] = mapped_column(Integer, default=0)


@dataclass(frozen=True)
class LeaseState:
    scope: str
    executor_id: str
    state: str
    host: str
    pid: int
    app_version: str
    heartbeat_at: datetime
    taken_over_by: str | None
    recovered: int


class ExecutorLease:
    """This executor's lease, renewed by a thread, and the takeover of expired ones.

    `recover(executor_ids)` takes over dead executors' workflows (the task
    engine's `recover_pending`) and returns the ids it recovered; `on_lost` is
    called when this executor finds its own lease taken over.
    """

    def __init__(
        self,
        db: Database,
        *,
        scope: str,
        executor_id: str,
        lease_seconds: float,
        recover: Callable[[Sequence[str]], list[str]],
        on_lost: Callable[[], None],
    ) -> None:
        self.db = db
        self.scope = scope
        self.executor_id = executor_id
        self.lease = timedelta(seconds=lease_seconds)
        self.interval = max(0.2, lease_seconds / 3)
        self._recover = recover
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.takeovers: list[tuple[str, list[str]]] = []

    # -- lifecycle ----------------------------------------------------------------------

    def register(self) -> None:
        """Take (or take back) this executor's lease, fresh."""
        now = utcnow()
        with self.db.session() as db:
            row = db.get(ExecutorRow, (self.scope, self.executor_id))
            if row is None:
                row = ExecutorRow(scope=self.scope, executor_id=self.executor_id)
                db.add(row)
            elif row.state == TAKEN_OVER:
                log.warning(
                    "this executor's work was taken over while it was away; starting clean",
                    extra={"fields": {"executor": self.executor_id, "by": row.taken_over_by}},
                )
            row.app_version = __version__
            row.host = socket.gethostname()[:255]
            row.pid = os.getpid()
            row.state = ALIVE
            row.started_at = now
            row.heartbeat_at = now
            row.taken_over_by = None
            row.taken_over_at = None
            row.recovered = 0

    def start(self) -> None:
        self.register()
        self.run_in_background()

    def run_in_background(self) -> None:
        """Renew the lease and take over expired ones, every third of the lease."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{self.executor_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and mark the lease stopped (its pending work stays this
        executor's: it resumes it at its next start, or a survivor once the lease
        has expired)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            with self.db.session() as db:
                db.execute(
                    update(ExecutorRow)
                    .where(
                        ExecutorRow.scope == self.scope,
                        ExecutorRow.executor_id == self.executor_id,
                        ExecutorRow.state == ALIVE,
                    )
                    .values(state=STOPPED)
                )
        except Exception as exc:  # the database may be the reason we stop
            log.warning("could not mark the lease stopped", extra={"fields": {"error": str(exc)}})

    # -- the renewal loop -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.renew():
                    log.critical(
                        "this executor's lease was taken over: another executor runs its "
                        "workflows now; stopping",
                        extra={"fields": {"executor": self.executor_id}},
                    )
                    self._on_lost()
                    return
                self.take_over_expired()
            except Exception as exc:  # a database outage: try again at the next tick
                log.warning(
                    "executor lease renewal failed; retrying",
                    extra={"fields": {"executor": self.executor_id, "error": str(exc)[:300]}},
                )

    def renew(self) -> bool:
        """Renew the lease; False when it is no longer ours (taken over)."""
        with self.db.session() as db:
            renewed = db.execute(
                update(ExecutorRow)
                .where(
                    ExecutorRow.scope == self.scope,
                    ExecutorRow.executor_id == self.executor_id,
                    ExecutorRow.state == ALIVE,
                )
                .values(heartbeat_at=utcnow())
            ).rowcount  # type: ignore[attr-defined]
        return bool(renewed)

    def take_over_expired(self, *, now: datetime | None = None) -> list[str]:
        """Claim every expired lease of this scope and recover its executor's workflows;
        returns the recovered workflow ids."""
        cutoff = (now or utcnow()) - self.lease
        with self.db.sessions() as db:
            expired = list(
                db.scalars(
                    select(ExecutorRow.executor_id).where(
                        ExecutorRow.scope == self.scope,
                        ExecutorRow.executor_id != self.executor_id,
                        ExecutorRow.state.in_((ALIVE, STOPPED)),
                        ExecutorRow.heartbeat_at < cutoff,
                    )
                )
            )
        recovered: list[str] = []
        for dead in expired:
            if not self._claim(dead, cutoff):
                continue  # another survivor was first, or it came back
            ids = self._recover([dead])
            recovered.extend(ids)
            self.takeovers.append((dead, ids))
            with self.db.session() as db:
                db.execute(
                    update(ExecutorRow)
                    .where(ExecutorRow.scope == self.scope, ExecutorRow.executor_id == dead)
                    .values(recovered=len(ids))
                )
            log.warning(
                "took over the pending workflows of an executor whose lease expired",
                extra={"fields": {"dead": dead, "by": self.executor_id, "workflows": len(ids)}},
            )
        return recovered

    def _claim(self, dead: str, cutoff: datetime) -> bool:
        with self.db.session() as db:
            won = db.execute(
                update(ExecutorRow)
                .where(
                    ExecutorRow.scope == self.scope,
                    ExecutorRow.executor_id == dead,
                    ExecutorRow.state.in_((ALIVE, STOPPED)),
                    ExecutorRow.heartbeat_at < cutoff,
                )
                .values(state=TAKEN_OVER, taken_over_by=self.executor_id, taken_over_at=utcnow())
            ).rowcount  # type: ignore[attr-defined]
        return bool(won)

    # -- for operators ----------------------------------------------------------------------

    @staticmethod
    def leases(db: Database, *, scope: str | None = None) -> list[LeaseState]:
        with db.sessions() as session:
            query = select(ExecutorRow).order_by(ExecutorRow.scope, ExecutorRow.executor_id)
            if scope is not None:
                query = query.where(ExecutorRow.scope == scope)
            return [
                LeaseState(
                    scope=r.scope,
                    executor_id=r.executor_id,
                    state=r.state,
                    host=r.host,
                    pid=r.pid,
                    app_version=r.app_version,
                    heartbeat_at=r.heartbeat_at,
                    taken_over_by=r.taken_over_by,
                    recovered=r.recovered,
                )
                for r in session.scalars(query)
            ]
