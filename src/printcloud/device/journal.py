"""The per-job journal: exactly-once pages across restarts (seed 003, PRT001).

`out_dir/<job_id>/journal.json` is replaced atomically after each page. A job
handed again prints only the pages the journal lacks; a job the journal shows
finished is only reported again.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from printcloud.device.config import DeviceError

__all__ = ["JOURNAL_NAME", "Journal", "Outcome", "page_name"]

JOURNAL_NAME = "journal.json"

Outcome = Literal["printed", "cancelled"]


def page_name(number: int) -> str:
    """The stem of a page's files in the job's folder (engine output, preview)."""
    return f"page-{number:04d}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Journal:
    """What this printer did for one job, kept in `<folder>/journal.json`.

    `pages_done` are the pages whose engine output is written; `outcome` is set
    once the job is over for the printer (printed, or cancelled by a fault or
    bad data) and from then on the job is only reported, never printed again.
    A failed download (S1415) is reported but not final here: if the server
    hands the job again, the missing pages are fetched again.
    """

    job_id: str
    printer_id: str
    title: str = ""
    copies: int = 1
    page_count: int | None = None
    pages_done: list[int] = field(default_factory=list)
    previews_uploaded: list[int] = field(default_factory=list)
    outcome: Outcome | None = None
    reason: str | None = None
    message: str = ""
    reported: bool = False
    #: A job an INFRA proxy forwarded (`infra.py`): `URI#job-id` at the office printer,
    #: kept once it took the job so that a restarted proxy follows it, not sends it again.
    forwarded: str | None = None
    started_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    version: int = 1

    @staticmethod
    def path(folder: Path) -> Path:
        return folder / JOURNAL_NAME

    @classmethod
    def load(cls, folder: Path) -> Journal | None:
        """The journal in `folder`, None when there is none; `DeviceError` when unreadable.

        An unreadable journal stops the job rather than risk printing pages twice:
        remove it (or the folder) to print the job again from page 1.
        """
        path = cls.path(folder)
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DeviceError(
                f"journal {path} is unreadable ({exc}); remove it to reprint"
            ) from exc
        if not isinstance(data, dict) or data.get("version") != 1:
            raise DeviceError(f"journal {path} has an unknown format; remove it to reprint")
        known = {name for name in cls.__dataclass_fields__}
        try:
            journal = cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as exc:
            raise DeviceError(f"journal {path} is incomplete ({exc})") from exc
        if journal.outcome not in (None, "printed", "cancelled"):
            raise DeviceError(f"journal {path}: unknown outcome {journal.outcome!r}")
        journal.pages_done = sorted({int(n) for n in journal.pages_done})
        journal.previews_uploaded = sorted({int(n) for n in journal.previews_uploaded})
        return journal

    def save(self, folder: Path) -> None:
        """Replace the journal atomically: a reader sees the old one or the new one."""
        folder.mkdir(parents=True, exist_ok=True)
        self.updated_at = _now()
        path = self.path(folder)
        tmp = path.with_name(f".{JOURNAL_NAME}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def pages_printed(self) -> int:
        return len(self.pages_done)

    @property
    def impressions(self) -> int:
        return self.pages_printed * self.copies

    def pages_to_print(self, numbers: list[int]) -> list[int]:
        """Of the document's page numbers, those still to print, in order."""
        return [n for n in sorted(numbers) if n not in self.pages_done]

    def mark_printed(self, number: int) -> None:
        if self.finished:
            raise DeviceError(f"job {self.job_id} is {self.outcome}; page {number} not printed")
        if number not in self.pages_done:
            self.pages_done = sorted([*self.pages_done, number])

    def mark_uploaded(self, number: int) -> None:
        if number not in self.previews_uploaded:
            self.previews_uploaded = sorted([*self.previews_uploaded, number])

    def finish(self, outcome: Outcome, reason: str | None, message: str) -> None:
        """The job is over for the printer; the first outcome recorded stays."""
        if self.finished:
            return
        self.outcome, self.reason, self.message = outcome, reason, message
        self.reported = False

    def summary(self) -> str:
        copies = (
            f" × {self.copies} copies = {self.impressions} impressions" if self.copies > 1 else ""
        )
        total = f" of {self.page_count}" if self.page_count is not None else ""
        return f"{self.pages_printed}{total} page(s){copies}"
