"""What the printer did lately, for its card-reader console and web panel.

`PrintStatus` is an event hook of `DeviceAgent` (`on_event`): it keeps the jobs
being printed and the last few finished ones, and lets a caller wait until given
jobs are finished (the console, after a user released them at the printer). It
also keeps the printer's last Identify-Printer requests (`Identified`): the panel
shows the newest as a banner for `BANNER_SECONDS`.
The agent's loop calls it from its own thread; readers take snapshots.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from printcloud.core.logs import get_logger
from printcloud.device.agent import DeviceEvent, EventHook

__all__ = ["BANNER_SECONDS", "Identified", "JobStatus", "PrintStatus", "fan_out"]

log = get_logger("device.status")

FINAL = ("printed", "cancelled", "skipped")
#: How long the panel shows an identify request's banner.
BANNER_SECONDS = 60.0


@dataclass(frozen=True)
class Identified:
    """An Identify-Printer request the printer performed (`actions`, the `message`)."""

    actions: tuple[str, ...]
    message: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class JobStatus:
    """One job as the printer saw it: `printing`, then `printed`, `cancelled`,
    `skipped` (the server refused it) or `error` (tried again at the next poll)."""

    job_id: str
    title: str
    state: str
    page: int = 0
    page_count: int = 0
    message: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def final(self) -> bool:
        return self.state in FINAL


class PrintStatus:
    """The agent's recent jobs, newest last; at most `keep` of them."""

    def __init__(self, keep: int = 20) -> None:
        self.keep = keep
        self._jobs: OrderedDict[str, JobStatus] = OrderedDict()
        self._identified: deque[Identified] = deque(maxlen=keep)
        self._changed = threading.Condition()

    def __call__(self, event: DeviceEvent) -> None:
        if event.kind == "identify":
            with self._changed:
                self._identified.append(Identified(event.actions, event.message))
                self._changed.notify_all()
            return
        if not event.job_id or event.kind == "push":
            return
        now = datetime.now(UTC)
        with self._changed:
            old = self._jobs.pop(event.job_id, None) or JobStatus(
                event.job_id, event.title or event.job_id, "printing", at=now
            )
            title = event.title or old.title
            if event.kind == "job":
                new = replace(
                    old,
                    title=title,
                    state="printing",
                    page=event.page,
                    page_count=event.page_count,
                    at=now,
                )
            elif event.kind == "page":
                new = replace(
                    old,
                    title=title,
                    state="printing",
                    page=max(old.page + 1, 1),
                    page_count=event.page_count or old.page_count,
                    at=now,
                )
            elif event.kind == "done" and event.outcome is not None:
                outcome = event.outcome
                new = replace(
                    old,
                    title=title,
                    state=outcome.outcome,
                    page=outcome.pages_printed,
                    message=outcome.message or (outcome.reason or ""),
                    at=now,
                )
            elif event.kind == "skipped":
                new = replace(old, title=title, state="skipped", message="no longer printable")
            elif event.kind == "error":
                new = replace(old, title=title, state="error", message=event.message, at=now)
            else:
                new = old
            self._jobs[event.job_id] = new
            while len(self._jobs) > self.keep:
                self._jobs.popitem(last=False)
            self._changed.notify_all()

    def recent(self) -> list[JobStatus]:
        """The jobs, newest first."""
        with self._changed:
            return list(reversed(self._jobs.values()))

    def identified(self) -> list[Identified]:
        """The identify requests performed lately, newest first."""
        with self._changed:
            return list(reversed(self._identified))

    def banner(self) -> Identified | None:
        """The identify request to show now: the newest, when it asked for `display` and
        is younger than `BANNER_SECONDS`."""
        with self._changed:
            shown = [i for i in self._identified if "display" in i.actions]
        if not shown:
            return None
        age = (datetime.now(UTC) - shown[-1].at).total_seconds()
        return shown[-1] if age < BANNER_SECONDS else None

    def get(self, job_id: str) -> JobStatus | None:
        with self._changed:
            return self._jobs.get(job_id)

    @property
    def busy(self) -> bool:
        """A job is being printed now."""
        with self._changed:
            return any(job.state == "printing" for job in self._jobs.values())

    def wait(
        self, job_ids: Iterable[str], timeout: float, stop: threading.Event | None = None
    ) -> dict[str, JobStatus]:
        """Wait until every job is final (or `timeout`/`stop`); their last status."""
        wanted = list(job_ids)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = {j: self._jobs[j] for j in wanted if j in self._jobs}
                done = len(found) == len(wanted) and all(s.final for s in found.values())
                left = deadline - time.monotonic()
                if done or left <= 0 or (stop is not None and stop.is_set()):
                    return found
                self._changed.wait(min(left, 0.2))


def fan_out(*hooks: EventHook) -> EventHook:
    """One `on_event` hook that calls several, in order."""

    def hook(event: DeviceEvent) -> None:
        for each in hooks:
            try:
                each(event)
            except Exception:  # one display's bug must not starve the others
                log.exception("device event hook failed")

    return hook
