"""The office printer behind an INFRA proxy (issue 15, `printcloud device --protocol infra
--forward ipp://…`): what PWG ippsample's `ippproxy` does towards its local printer.

- `capabilities`: the printer's Get-Printer-Attributes answer (RFC 8011 §4.2.5), of the
  attributes a proxy registers as its output device's (`REGISTERED`);
- `formats`: what the proxy asks printcloud's Fetch-Document for, in printcloud's order
  of preference (`FORWARDABLE`: the PDF itself, else PWG raster, else Apple raster),
  of those the printer lists in `document-format-supported`;
- `print`: one fetched document (PDF, PWG raster or URF, as fetched) by Print-Job
  (RFC 8011 §4.2.1) with the fetched job's
  `copies`, `sides`, `print-color-mode` and `media` (each only when the printer lists
  the value as supported), then Get-Job-Attributes until the job is terminal (after
  0.02 s, the wait doubling up to `poll`, 0.5 s). The
  outcome carries the printer's `job-state-reasons` and `printer-state-reasons`
  (`media-empty-error`, …), which become the `output-device-job-state-reasons` the
  proxy reports (PWG 5100.18 Update-Job-Status). A job not terminal by the deadline
  is cancelled (Cancel-Job) and reported aborted; a printer that does not answer at all
  aborts the job with `printer-stopped` (no page of it printed).

The URI is the operator's (`--forward`); nothing here connects elsewhere."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from printcloud.core.logs import get_logger
from printcloud.device.config import DeviceError, ServiceUnreachable
from printcloud.device.ippclient import IppAnswer, IppChannel
from printcloud.ipp.message import Attribute, Group, GroupTag, ValueTag
from printcloud.ipp.model import JobState, Operation, Status

__all__ = ["FORWARDABLE", "REGISTERED", "FetchedJob", "ForwardOutcome", "ForwardPrinter"]

log = get_logger("device.forward")

#: What a proxy reports of its printer (PWG 5100.18 Update-Output-Device-Attributes).
REGISTERED = (
    "document-format-supported",
    "document-format-default",
    "media-supported",
    "media-default",
    "media-ready",
    "sides-supported",
    "sides-default",
    "color-supported",
    "print-color-mode-supported",
    "print-color-mode-default",
    "printer-resolution-supported",
    "printer-resolution-default",
    "copies-supported",
    "copies-default",
    "pwg-raster-document-resolution-supported",
    "pwg-raster-document-type-supported",
    "urf-supported",
    "printer-make-and-model",
    "printer-info",
    "printer-state",
    "printer-state-reasons",
)
#: The document formats a proxy fetches and forwards unchanged, best first: the PDF (the
#: printer's own rendering), PWG raster, Apple raster (printcloud's Fetch-Document).
FORWARDABLE = ("application/pdf", "image/pwg-raster", "image/urf")
#: The first wait between two Get-Job-Attributes of a forwarded job (then doubling).
FIRST_POLL = 0.02
TERMINAL = (JobState.CANCELED, JobState.ABORTED, JobState.COMPLETED)
#: Reasons that say nothing about why a job ended.
QUIET = {"none", "job-printing", "job-queued", "job-incoming", "job-data-insufficient"}


@dataclass(frozen=True)
class FetchedJob:
    """What Fetch-Job said of a job, as the printer needs it."""

    number: int
    uuid: str
    title: str
    user: str
    copies: int
    sides: str
    color_mode: str
    media: str
    dpi: int
    impressions: int


@dataclass(frozen=True)
class ForwardOutcome:
    """How the printer ended the job: `state` is an IPP job state (7, 8 or 9)."""

    state: JobState
    reasons: tuple[str, ...]
    impressions: int
    message: str


class ForwardPrinter:
    """An IPP Everywhere printer at `uri` that the proxy prints to."""

    def __init__(
        self,
        uri: str,
        http: httpx.Client,
        *,
        deadline: float = 300.0,
        poll: float = 0.5,
    ) -> None:
        self.uri = uri
        self.channel = IppChannel(uri, http, timeout=httpx.Timeout(60.0, connect=10.0))
        self.deadline = deadline
        self.poll = poll
        self._supported: dict[str, list[object]] = {}

    def capabilities(self) -> list[Attribute]:
        """The printer's attributes a proxy registers (`REGISTERED`), as it answered them."""
        answer = self.channel.send(
            Operation.GET_PRINTER_ATTRIBUTES,
            [Attribute("requested-attributes", ValueTag.KEYWORD, list(REGISTERED))],
        )
        if not answer.ok:
            raise DeviceError(f"Get-Printer-Attributes at {self.uri}: {answer.describe()}")
        group = answer.message.group(GroupTag.PRINTER)
        attributes = [a for a in group or [] if a.name in REGISTERED and not a.out_of_band]
        self._supported = {a.name: list(a.values) for a in attributes}
        return attributes

    def identify(self, actions: tuple[str, ...], message: str) -> bool:
        """Identify-Printer (PWG 5100.13 §4.1.2) to the printer: the actions it supports
        (`identify-actions-supported`, asked now), and the message. Whether it agreed; a
        printer that does not answer or refuses is only logged."""
        try:
            supported = self.channel.send(
                Operation.GET_PRINTER_ATTRIBUTES,
                [
                    Attribute(
                        "requested-attributes",
                        ValueTag.KEYWORD,
                        ["identify-actions-supported", "operations-supported"],
                    )
                ],
            )
            if int(Operation.IDENTIFY_PRINTER) not in supported.values(
                GroupTag.PRINTER, "operations-supported"
            ):
                log.info("identify: the printer at %s has no Identify-Printer", self.uri)
                return False
            offered = supported.values(GroupTag.PRINTER, "identify-actions-supported")
            wanted = [a for a in actions if not offered or a in offered] or ["display"]
            attributes = [Attribute("identify-actions", ValueTag.KEYWORD, wanted)]
            if message:
                attributes.append(Attribute("message", ValueTag.TEXT, message))
            answer = self.channel.send(Operation.IDENTIFY_PRINTER, attributes, user="printcloud")
        except DeviceError as exc:
            log.warning("identify: the printer at %s does not answer: %s", self.uri, exc)
            return False
        if not answer.ok:
            log.warning("identify: the printer at %s refused: %s", self.uri, answer.describe())
            return False
        log.info("identify: forwarded to %s (%s)", self.uri, ",".join(wanted))
        return True

    def formats(self) -> list[str]:
        """`FORWARDABLE` formats the printer supports (all of them when it named none)."""
        supported = {str(f).lower() for f in self._supported.get("document-format-supported", [])}
        return [f for f in FORWARDABLE if f in supported] or list(FORWARDABLE)

    def _state_reasons(self) -> list[str]:
        try:
            answer = self.channel.send(
                Operation.GET_PRINTER_ATTRIBUTES,
                [Attribute("requested-attributes", ValueTag.KEYWORD, "printer-state-reasons")],
            )
        except DeviceError:
            return []
        return [str(r) for r in answer.values(GroupTag.PRINTER, "printer-state-reasons")]

    def _job_attributes(self, job: FetchedJob) -> list[Attribute]:
        wanted = [
            ("copies", ValueTag.INTEGER, job.copies, "copies-supported"),
            ("sides", ValueTag.KEYWORD, job.sides, "sides-supported"),
            ("print-color-mode", ValueTag.KEYWORD, job.color_mode, "print-color-mode-supported"),
            ("media", ValueTag.KEYWORD, job.media, "media-supported"),
        ]
        out = []
        for name, tag, value, supported in wanted:
            values = self._supported.get(supported)
            if name == "copies":
                # copies-supported is a rangeOfInteger (RFC 8011 §5.4.13)
                if job.copies > 1 and values and job.copies <= int(getattr(values[0], "upper", 1)):
                    out.append(Attribute(name, tag, value))
            elif values is None or value in values:
                out.append(Attribute(name, tag, value))
        return out

    def print(
        self,
        job: FetchedJob,
        document: bytes,
        *,
        pages: int,
        document_format: str = FORWARDABLE[0],
        stop: threading.Event | None = None,
        on_progress: Callable[[int], None] | None = None,
        on_accepted: Callable[[int], None] | None = None,
    ) -> ForwardOutcome:
        """Print `document` (of `pages` pages, in `document_format`) there and wait for
        the job to end; `on_accepted` hears the printer's job-id as soon as it took it."""
        deadline = time.monotonic() + self.deadline
        if not self._supported:
            try:
                self.capabilities()
            except DeviceError as exc:
                return self._stopped(f"the printer at {self.uri} does not answer: {exc}")
        operation = [
            Attribute("job-name", ValueTag.NAME, job.title[:255] or "untitled"),
            Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, document_format),
        ]
        group = Group(GroupTag.JOB, self._job_attributes(job))
        while True:
            try:
                answer = self.channel.send(
                    Operation.PRINT_JOB,
                    operation,
                    [group] if len(group) else [],
                    data=document,
                    user=job.user[:255] or "printcloud",
                )
            except DeviceError as exc:
                return self._stopped(f"Print-Job at {self.uri}: {exc}")
            # The printer takes one job at a time (ippeveprinter): busy means later.
            if answer.status != Status.SERVER_ERROR_BUSY or time.monotonic() > deadline:
                break
            if stop is not None and stop.is_set():
                raise ServiceUnreachable("stopped while the printer was busy")
            time.sleep(self.poll)
        if not answer.ok:
            reasons = tuple(r for r in self._state_reasons() if r not in QUIET) or (
                "document-format-error",
            )
            return ForwardOutcome(
                JobState.ABORTED, reasons, 0, f"the printer refused the job: {answer.describe()}"
            )
        printer_job = int(answer.value(GroupTag.JOB, "job-id", 0))
        if on_accepted is not None:
            on_accepted(printer_job)
        log.info(
            "job %d forwarded to %s as its job %d",
            job.number,
            self.uri,
            printer_job,
            extra={"fields": {"title": job.title}},
        )
        return self._wait(printer_job, job, pages, deadline, on_progress)

    def follow(self, printer_job: int, job: FetchedJob, *, pages: int) -> ForwardOutcome | None:
        """Wait for a job the printer took before (the proxy restarted); None when the
        printer no longer knows it (then it is sent again)."""
        try:
            answer = self.channel.send(
                Operation.GET_JOB_ATTRIBUTES,
                [
                    Attribute("job-id", ValueTag.INTEGER, printer_job),
                    Attribute("requested-attributes", ValueTag.KEYWORD, "job-state"),
                ],
            )
        except DeviceError as exc:
            return self._stopped(f"Get-Job-Attributes at {self.uri}: {exc}")
        if answer.status == Status.CLIENT_ERROR_NOT_FOUND:
            return None
        log.info("job %d: following its job %d at %s", job.number, printer_job, self.uri)
        return self._wait(printer_job, job, pages, time.monotonic() + self.deadline, None)

    def _wait(
        self,
        printer_job: int,
        job: FetchedJob,
        pages: int,
        deadline: float,
        on_progress: Callable[[int], None] | None,
    ) -> ForwardOutcome:
        ids = [Attribute("job-id", ValueTag.INTEGER, printer_job)]
        wanted = Attribute(
            "requested-attributes",
            ValueTag.KEYWORD,
            ["job-state", "job-state-reasons", "job-state-message", "job-impressions-completed"],
        )
        answer: IppAnswer | None = None
        # A job the printer ends at once is seen at once; a long one is asked about every
        # `poll` seconds: the wait doubles from FIRST_POLL (most jobs are short, and each
        # poll's wait is added to the job's time in printcloud).
        delay = min(FIRST_POLL, self.poll)
        while time.monotonic() < deadline:
            try:
                answer = self.channel.send(Operation.GET_JOB_ATTRIBUTES, [*ids, wanted])
            except DeviceError as exc:
                return self._stopped(f"Get-Job-Attributes at {self.uri}: {exc}")
            if not answer.ok:
                return self._stopped(f"Get-Job-Attributes at {self.uri}: {answer.describe()}")
            state = int(answer.value(GroupTag.JOB, "job-state", 0))
            done = int(answer.value(GroupTag.JOB, "job-impressions-completed", 0) or 0)
            if on_progress is not None and done:
                on_progress(done)
            if state in TERMINAL:
                return self._ended(JobState(state), answer, job, pages)
            time.sleep(delay)
            delay = min(delay * 2, self.poll)
        # Stuck: the printer holds the job past the deadline (stopped, out of paper, …).
        reasons = tuple(r for r in self._state_reasons() if r not in QUIET)
        try:
            self.channel.send(Operation.CANCEL_JOB, ids)
        except DeviceError as exc:
            log.warning("could not cancel job %d at %s: %s", printer_job, self.uri, exc)
        return ForwardOutcome(
            JobState.ABORTED,
            reasons or ("printer-stopped",),
            0,
            f"the printer did not finish the job within {self.deadline:g} s",
        )

    def _ended(
        self, state: JobState, answer: IppAnswer, job: FetchedJob, pages: int
    ) -> ForwardOutcome:
        reasons = [str(r) for r in answer.values(GroupTag.JOB, "job-state-reasons")]
        message = str(answer.value(GroupTag.JOB, "job-state-message", "") or "")
        done = int(answer.value(GroupTag.JOB, "job-impressions-completed", 0) or 0)
        if state == JobState.COMPLETED:
            # A printer that counts no impressions (ippeveprinter with a print command)
            # printed the whole document.
            return ForwardOutcome(state, ("none",), done or pages * job.copies, message)
        # Why it ended: the printer's own faults first (media-empty-error, …).
        printer = [r for r in self._state_reasons() if r not in QUIET]
        ordered = [*printer, *(r for r in reasons if r not in QUIET and r not in printer)]
        return ForwardOutcome(state, tuple(ordered) or ("none",), done, message)

    def _stopped(self, why: str) -> ForwardOutcome:
        log.warning("%s", why)
        return ForwardOutcome(JobState.ABORTED, ("printer-stopped",), 0, why)
