"""What the virtual printer reports (seed 003, FIG. 9, S1412–S1414) to whoever drives
it: the outcome of a job (`JobOutcome`) and progress for a display (`DeviceEvent`).
Kept apart from the agent so the display (console.py) and the agent share them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["DeviceEvent", "EventHook", "JobOutcome"]


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one job of the work list in one poll.

    `outcome`: `printed` / `cancelled` (reported to the server, or to be reported
    again when `reported` is False), `skipped` (the server refused the start,
    409), `error` (nothing final; the job is tried again at the next poll).
    `replayed`: the journal showed the job finished, so it was only reported.
    """

    job_id: str
    title: str
    outcome: Literal["printed", "cancelled", "skipped", "error"]
    reason: str | None
    pages_printed: int
    copies: int
    folder: Path
    previews: tuple[Path, ...]
    message: str = ""
    reported: bool = False
    replayed: bool = False

    @property
    def impressions(self) -> int:
        return self.pages_printed * self.copies


@dataclass(frozen=True)
class DeviceEvent:
    """Progress for a display: `job` (printing starts; `page_count` known), `page`
    (one page printed; `path` is its local preview, None for a sink printer), `done`
    (the job's `outcome`), `skipped`, `error` (`message`), `push` (a print request
    arrived), `identify` (the printer was asked to show itself, PWG 5100.13 §4.1.2:
    `actions` it performed, the client's `message`)."""

    kind: Literal["job", "page", "done", "skipped", "error", "push", "identify"]
    job_id: str = ""
    title: str = ""
    page: int = 0
    page_count: int = 0
    path: Path | None = None
    outcome: JobOutcome | None = None
    message: str = ""
    actions: tuple[str, ...] = ()


EventHook = Callable[[DeviceEvent], None]
