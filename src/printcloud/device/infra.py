"""The virtual printer as an IPP INFRA output device (issue 15, PWG 5100.18): `printcloud
device --protocol infra`, and with `--forward ipp://…` a proxy in front of an office
printer, as PWG ippsample's `ippproxy` is.

It talks to printcloud's Infrastructure Printer for its printer
(`{server}/printing/ipp/infra/{tenant}/{printer}`, docs/infra.md) with the
`printcloud.ipp` codec, authenticated as the printer's device client (the
client-credentials token of `api.DeviceTokens`, scope `device`, as a bearer token):

1. Update-Output-Device-Attributes: registers as the printer's output device, with an
   `output-device-uuid` that is the same for the same printer on every start
   (`device_uuid`), and its capabilities: the virtual printer's own, or the forward
   printer's Get-Printer-Attributes answer (`forward.REGISTERED`);
2. Create-Printer-Subscriptions (`ippget`; `job-fetchable`, `job-state-changed`,
   `printer-state-changed`: an Identify-Printer request, which it acknowledges with
   Acknowledge-Identify-Printer and shows, `identify`), then
   Get-Notifications with `notify-wait` (the server holds it up to 30 s): each time it
   returns, the device lists the fetchable jobs (Get-Jobs `which-jobs=fetchable`), so a
   job it fetched before a restart and never finished is found again. An error backs
   off (1 s doubling to 30 s); a subscription the server forgot is made again;
3. per job: Fetch-Job, Acknowledge-Job, Fetch-Document (`document-format-accepted`
   application/pdf; forwarding, what the office printer takes of PDF, PWG raster and
   URF, `ForwardPrinter.formats`), Acknowledge-Document (sent beside the printing: nothing
   waits for its answer, which is in before the report); then the job is printed
   (Update-Active-Jobs before each page: a job cancelled in printcloud stops,
   `still_active`): rendered like the JSON-mode agent's pages (`raster.render_page`, one
   PBM per colorant and a preview PNG per page in `out_dir/<job>/`, a sink printer only
   counting them), or forwarded as fetched (`forward.ForwardPrinter`); the fetched
   document is kept as `document.pdf` (`.pwg`, `.urf`) beside them;
4. Update-Job-Status, then Update-Document-Status (the job's end in printcloud waits
   for one round trip, not two): `completed` with
   `job-impressions-completed` (pages × copies), or `aborted`/`canceled` with
   `output-device-job-state-reasons` (an injected fault: `paper_out` →
   `media-empty-error`, `toner_out` → `toner-empty-error`, `engine_error` →
   `media-jam-error`, `user_cancel` → canceled, `canceled-at-device`; a forwarded job:
   the office printer's own reasons);
5. Deregister-Output-Device when it stops cleanly.

Exactly once, as in the JSON mode: the job's `journal.json` (`journal.Journal`) is
saved after each page. A job fetched again after a restart prints only the pages its
journal lacks, and a job the journal shows finished is only reported again. A
forwarded job is one unit: once the office printer took it, its job-id there is in the
journal, and a restarted proxy follows that job instead of sending the PDF again.
Events (`DeviceEvent`) and outcomes (`JobOutcome`) are those of the JSON-mode agent, so
`console.Display` shows INFRA jobs the same way. The JSON mode's thumbnails for the
user's job page are not sent: INFRA has no such operation (for a job fetched as PDF,
printcloud makes them from the pages it converts beside the printing)."""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pypdfium2 as pdfium
from rich.console import Console

from printcloud.core.errors import InvalidRequest
from printcloud.core.logs import get_logger
from printcloud.device.api import DeviceTokens, issuer_client
from printcloud.device.config import (
    MEDIA,
    SAFE_ID,
    DeviceConfig,
    DeviceError,
    ServiceUnreachable,
)
from printcloud.device.events import DeviceEvent, EventHook, JobOutcome
from printcloud.device.forward import FORWARDABLE, FetchedJob, ForwardOutcome, ForwardPrinter
from printcloud.device.ippclient import IppAnswer, IppChannel
from printcloud.device.journal import Journal, page_name
from printcloud.device.printer import Printer
from printcloud.device.raster import render_page, warm_up
from printcloud.ipp.message import Attribute, Group, GroupTag, ValueTag
from printcloud.ipp.model import JobState, Operation, Resolution, Status

__all__ = ["FAULT_REASONS", "InfraAgent", "device_uuid", "infra_uri", "main"]

log = get_logger("device.infra")
#: What the device subscribes to: its jobs, and its printer's state (Identify-Printer).
EVENTS = ("job-fetchable", "job-state-changed", "printer-state-changed")
#: The printer-state-reason of a waiting Identify-Printer request (PWG 5100.18).
IDENTIFY_REQUESTED = "identify-printer-requested"

PDF, PWG, URF = FORWARDABLE
#: The fetched document is kept in the job's folder as `document.<suffix>`.
SUFFIX = {PDF: "pdf", PWG: "pwg", URF: "urf"}
#: An injected fault (S1411) as the output device reports it (PWG 5100.18 Update-Job-Status).
FAULT_REASONS: dict[str, tuple[JobState, str]] = {
    "paper_out": (JobState.ABORTED, "media-empty-error"),
    "toner_out": (JobState.ABORTED, "toner-empty-error"),
    "engine_error": (JobState.ABORTED, "media-jam-error"),
    "user_cancel": (JobState.CANCELED, "canceled-at-device"),
}
#: PWG 5101.1 media names of the virtual printer's sizes (`config.MEDIA`).
PWG_MEDIA = {
    "iso_a4_210x297mm": "A4",
    "iso_a3_297x420mm": "A3",
    "iso_a5_148x210mm": "A5",
    "na_letter_8.5x11in": "Letter",
    "na_legal_8.5x14in": "Legal",
}
RESOLUTIONS = (150, 300, 600)
#: Get-Notifications may be held 30 s by the server: the read waits longer.
LONG_POLL = httpx.Timeout(75.0, connect=5.0)
MAX_BACKOFF = 30.0


def device_uuid(config: DeviceConfig) -> str:
    """The output device's `output-device-uuid`: one per printer (server, tenant,
    printer), the same on every start, so a restarted device is the registered one."""
    name = f"printcloud-output-device:{config.printing_url}/{config.tenant_id}/{config.printer_id}"
    return f"urn:uuid:{uuidlib.uuid5(uuidlib.NAMESPACE_URL, name)}"


def infra_uri(config: DeviceConfig) -> str:
    """The printer's Infrastructure Printer URI, ipp:// (ipps:// when the server is https)."""
    parts = urlsplit(config.printing_url)
    scheme = "ipps" if parts.scheme == "https" else "ipp"
    return f"{scheme}://{parts.netloc}{parts.path}/ipp/infra/{config.tenant_id}/{config.printer_id}"


def _raster_pages(data: bytes, document_format: str) -> int:
    """The pages of a PWG raster or URF stream (each decoded, one at a time)."""
    from printcloud.ipp import pwg, urf  # numba: only when a raster has no page count

    reader = urf.read_pages if document_format == URF else pwg.read_pages
    return sum(1 for _ in reader(data, reuse=True))


def _own_capabilities() -> list[Attribute]:
    """What the virtual printer prints: the PDF it fetches, on its media, in color."""
    return [
        Attribute("document-format-supported", ValueTag.MIME_MEDIA_TYPE, PDF),
        Attribute("document-format-default", ValueTag.MIME_MEDIA_TYPE, PDF),
        Attribute("media-supported", ValueTag.KEYWORD, list(PWG_MEDIA)),
        Attribute("media-default", ValueTag.KEYWORD, "iso_a4_210x297mm"),
        Attribute(
            "sides-supported",
            ValueTag.KEYWORD,
            ["one-sided", "two-sided-long-edge", "two-sided-short-edge"],
        ),
        Attribute("color-supported", ValueTag.BOOLEAN, True),
        Attribute("print-color-mode-supported", ValueTag.KEYWORD, ["color", "monochrome"]),
        Attribute(
            "printer-resolution-supported",
            ValueTag.RESOLUTION,
            [Resolution(d, d) for d in RESOLUTIONS],
        ),
        Attribute("printer-make-and-model", ValueTag.TEXT, "printcloud virtual printer"),
    ]


class _Ended(Exception):  # control flow inside one job, not an error
    def __init__(self, state: JobState, reason: str, message: str) -> None:
        super().__init__(message)
        self.state, self.reason, self.message = state, reason, message


@dataclass(frozen=True)
class _Report:
    """What Update-Job-Status says of a job."""

    state: JobState
    reasons: tuple[str, ...]
    impressions: int
    message: str


class InfraAgent(Printer):
    """One printer as an INFRA output device (module docstring)."""

    def __init__(
        self,
        config: DeviceConfig,
        *,
        http: httpx.Client | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        super().__init__(config, http=http, on_event=on_event)
        self.tokens = DeviceTokens(issuer_client(config, self._http))
        self.uri = infra_uri(config)
        self.uuid = device_uuid(config)
        self._channel = IppChannel(self.uri, self._http)
        self.forward = (
            ForwardPrinter(config.forward, self._http, deadline=config.forward_deadline)
            if config.forward
            else None
        )
        self._registered = False
        self._subscription: int | None = None
        self._sequence = 1
        self._unreachable = False

    # -- lifecycle

    def close(self) -> None:
        """Deregister (a clean stop) and close the HTTP client."""
        if self._registered:
            try:
                self.deregister()
            except DeviceError as exc:
                log.warning("could not deregister the output device: %s", exc)
        self._close_http()

    # -- the Infrastructure Printer's operations

    def _send(
        self,
        operation: Operation,
        attributes: list[Attribute],
        groups: list[Group] | None = None,
        *,
        timeout: httpx.Timeout | None = None,
    ) -> IppAnswer:
        name = operation.name.replace("_", "-").title()
        return self.tokens.call(
            name,
            lambda token: self._channel.send(
                operation,
                attributes,
                groups or [],
                bearer=token,
                timeout=timeout.read if timeout is not None else None,
            ),
        )

    def _beside(
        self, operation: Operation, attributes: list[Attribute], groups: list[Group] | None = None
    ) -> threading.Thread:
        """Send an operation whose answer nothing waits for (Acknowledge-Document: the
        Infrastructure Printer only notes it) on a thread of its own, while the job goes
        on; the caller joins it before the job's report.
        Its failure is logged, as that of the same `_send` inline was ignored."""

        def send() -> None:
            try:
                answer = self._send(operation, attributes, groups)
            except DeviceError as exc:
                log.warning("%s: %s", operation.name.replace("_", "-").title(), exc)
                return
            if not answer.ok:
                log.info("%s: %s", operation.name.replace("_", "-").title(), answer.describe())

        thread = threading.Thread(target=send, name=f"infra-{operation.name.lower()}", daemon=True)
        thread.start()
        return thread

    def _checked(
        self, operation: Operation, attributes: list[Attribute], groups: list[Group] | None = None
    ) -> IppAnswer:
        answer = self._send(operation, attributes, groups)
        if not answer.ok:
            name = operation.name.replace("_", "-").title()
            raise DeviceError(f"{name}: {answer.describe()}", error=answer.status_name)
        return answer

    def _device(self) -> Attribute:
        return Attribute("output-device-uuid", ValueTag.URI, self.uuid)

    def _job(self, number: int, *more: Attribute) -> list[Attribute]:
        return [Attribute("job-id", ValueTag.INTEGER, number), self._device(), *more]

    def capabilities(self) -> list[Attribute]:
        """What is registered: the forward printer's answer, or the virtual printer's own."""
        if self.forward is not None:
            return self.forward.capabilities()
        return _own_capabilities()

    def register(self) -> None:
        """Update-Output-Device-Attributes with the device's capabilities."""
        attributes = self.capabilities()
        self._checked(
            Operation.UPDATE_OUTPUT_DEVICE_ATTRIBUTES,
            [self._device()],
            [Group(GroupTag.PRINTER, attributes)],
        )
        self._registered = True
        log.info(
            "registered as the output device %s of %s (%d attributes)",
            self.uuid,
            self.uri,
            len(attributes),
        )

    def deregister(self) -> None:
        self._subscription = None
        self._checked(Operation.DEREGISTER_OUTPUT_DEVICE, [self._device()])
        self._registered = False
        log.info("deregistered the output device %s", self.uuid)

    def subscribe(self) -> int:
        template = Group(
            GroupTag.SUBSCRIPTION,
            [
                Attribute("notify-pull-method", ValueTag.KEYWORD, "ippget"),
                Attribute("notify-events", ValueTag.KEYWORD, list(EVENTS)),
                Attribute("notify-lease-duration", ValueTag.INTEGER, 0),
            ],
        )
        made = self._checked(Operation.CREATE_PRINTER_SUBSCRIPTIONS, [], [template])
        self._subscription = int(made.value(GroupTag.SUBSCRIPTION, "notify-subscription-id"))
        self._sequence = 1
        return self._subscription

    def wait_for_events(self) -> int:
        """One Get-Notifications with `notify-wait`: returns when there are events (or the
        server's wait ends); the number of events. A forgotten subscription is made again."""
        subscription = self._subscription if self._subscription is not None else self.subscribe()
        answer = self._send(
            Operation.GET_NOTIFICATIONS,
            [
                Attribute("notify-subscription-ids", ValueTag.INTEGER, subscription),
                Attribute("notify-sequence-numbers", ValueTag.INTEGER, self._sequence),
                Attribute("notify-wait", ValueTag.BOOLEAN, True),
            ],
            timeout=LONG_POLL,
        )
        if answer.status == Status.CLIENT_ERROR_NOT_FOUND:
            log.info("subscription %s ended; subscribing again", subscription)
            self._subscription = None
            return 0
        if not answer.ok:
            raise DeviceError(f"Get-Notifications: {answer.describe()}", error=answer.status_name)
        events = answer.message.groups_of(GroupTag.EVENT_NOTIFICATION)
        identify = False
        for event in events:
            number = event.get("notify-sequence-number")
            if number is not None:
                self._sequence = max(self._sequence, int(number.value) + 1)
            reasons = event.get("printer-state-reasons")
            if reasons is not None and IDENTIFY_REQUESTED in reasons.values:
                identify = True
        if identify:
            self.identify()
        return len(events)

    def identify(self) -> tuple[str, ...]:
        """Acknowledge-Identify-Printer: take the printer's Identify-Printer requests and
        show this printer as the JSON mode does (`display`: a WARNING log line and the
        console's or panel's banner with the message; `sound`: the terminal's bell);
        with `--forward`, Identify-Printer goes on to the office printer. The actions."""
        answer = self._send(Operation.ACKNOWLEDGE_IDENTIFY_PRINTER, [self._device()])
        if not answer.ok:  # another process of this device took it, or it timed out
            log.info("identify: nothing to acknowledge (%s)", answer.describe())
            return ()
        asked = tuple(str(a) for a in answer.values(GroupTag.OPERATION, "identify-actions"))
        message = str(answer.value(GroupTag.OPERATION, "message", "") or "")
        actions = tuple(a for a in asked if a in ("display", "sound"))
        fields = {"actions": ",".join(asked)}
        if "display" in actions:
            log.warning("identify: %s", message or "(no message)", extra={"fields": fields})
        if "sound" in actions:
            if sys.stderr.isatty():
                sys.stderr.write("\a")
                sys.stderr.flush()
            log.info("identify: beep", extra={"fields": fields})
        if self.forward is not None:
            self.forward.identify(asked, message)
        self._emit(DeviceEvent("identify", message=message, actions=actions))
        return asked

    def still_active(self, number: int) -> bool:
        """Update-Active-Jobs with the job being printed: False when printcloud says it
        ended there (its owner cancelled it) or does not know it; True otherwise, and when
        the server does not answer the question (printing goes on)."""
        try:
            answer = self._send(
                Operation.UPDATE_ACTIVE_JOBS,
                [
                    self._device(),
                    Attribute("job-ids", ValueTag.INTEGER, number),
                    Attribute("output-device-job-states", ValueTag.ENUM, int(JobState.PROCESSING)),
                ],
            )
        except DeviceError as exc:
            log.info("Update-Active-Jobs: %s", exc)
            return True
        if not answer.ok:
            log.info("Update-Active-Jobs: %s", answer.describe())
            return True
        unknown = answer.values(GroupTag.UNSUPPORTED, "job-ids")
        ids = answer.values(GroupTag.OPERATION, "job-ids")
        states = answer.values(GroupTag.OPERATION, "output-device-job-states")
        ended = {
            int(i): int(s) for i, s in zip(ids, states, strict=False) if int(s) >= JobState.CANCELED
        }
        return number not in unknown and number not in ended

    def fetchable(self) -> list[int]:
        """Get-Jobs `which-jobs=fetchable`: the job-ids this device may fetch."""
        answer = self._checked(
            Operation.GET_JOBS,
            [
                Attribute("which-jobs", ValueTag.KEYWORD, "fetchable"),
                Attribute(
                    "requested-attributes",
                    ValueTag.KEYWORD,
                    ["job-id", "output-device-uuid-assigned"],
                ),
            ],
        )
        numbers = []
        for group in answer.message.groups_of(GroupTag.JOB):
            assigned = group.get("output-device-uuid-assigned")
            if assigned is not None and assigned.value != self.uuid:
                continue  # another device's (it took the job before this one registered)
            numbers.append(int(group["job-id"].value))
        return numbers

    # -- the loop

    def run(self, stop: threading.Event | None = None) -> None:
        """Register, subscribe and print what becomes fetchable until `stop` is set or
        Ctrl-C; then deregister (`close`). Errors are logged and backed off."""
        stop = stop or threading.Event()
        backoff = 1.0
        try:
            while not stop.is_set():
                try:
                    if not self._registered:
                        self.register()
                    self.poll_once()
                    if stop.is_set():
                        break
                    self.wait_for_events()
                except DeviceError as exc:
                    if isinstance(exc, ServiceUnreachable):
                        if not self._unreachable:
                            log.warning("print service unreachable, retrying (%s)", exc)
                        self._unreachable = True
                    else:
                        log.error("INFRA: %s", exc)
                        self._emit(DeviceEvent("error", message=str(exc)))
                    stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                except Exception as exc:  # a bug must not end the printer's loop
                    log.error(
                        "INFRA loop failed: %r", exc, exc_info=log.isEnabledFor(logging.DEBUG)
                    )
                    self._emit(DeviceEvent("error", message=repr(exc)))
                    stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                if self._unreachable:
                    log.info("print service reachable again")
                    self._unreachable = False
                backoff = 1.0
        except KeyboardInterrupt:
            log.info("device agent stopped")

    def poll_once(self) -> list[JobOutcome]:
        """Fetch and print every fetchable job now, in order. Raises `DeviceError` when
        the list cannot be had; a job that fails is an `error` outcome, the others go on."""
        outcomes = []
        for number in self.fetchable():
            try:
                outcome = self._process(number)
            except DeviceError as exc:
                log.error("INFRA job %d: %s", number, exc)
                self._emit(DeviceEvent("error", job_id=str(number), message=str(exc)))
                outcome = JobOutcome(
                    job_id=str(number),
                    title="",
                    outcome="error",
                    reason=None,
                    pages_printed=0,
                    copies=1,
                    folder=self.config.out_dir,
                    previews=(),
                    message=str(exc),
                )
            outcomes.append(outcome)
        return outcomes

    # -- one job

    def _fetch_job(self, number: int) -> FetchedJob | None:
        answer = self._send(Operation.FETCH_JOB, self._job(number))
        if answer.status == Status.CLIENT_ERROR_NOT_FETCHABLE:
            return None
        if not answer.ok:
            raise DeviceError(f"Fetch-Job {number}: {answer.describe()}")
        job = answer.message.group(GroupTag.JOB)
        if job is None:
            raise DeviceError(f"Fetch-Job {number}: no job attributes")

        def value(name: str, default: Any) -> Any:
            attribute = job.get(name)
            return default if attribute is None or attribute.out_of_band else attribute.value

        resolution = value("printer-resolution", None)
        return FetchedJob(
            number=number,
            uuid=str(value("job-uuid", f"urn:uuid:{uuidlib.uuid4()}")),
            title=str(value("job-name", f"job {number}")),
            user=str(value("job-originating-user-name", "")),
            copies=max(1, int(value("copies", 1))),
            sides=str(value("sides", "one-sided")),
            color_mode=str(value("print-color-mode", "color")),
            media=str(value("media", "iso_a4_210x297mm")),
            dpi=int(resolution.x) if isinstance(resolution, Resolution) else 300,
            impressions=int(value("job-impressions", 0)),
        )

    def _folder(self, job: FetchedJob) -> tuple[str, Path]:
        key = job.uuid.removeprefix("urn:uuid:")
        if not SAFE_ID.match(key):
            raise DeviceError(f"job-uuid {job.uuid!r:.80} cannot name a folder")
        return key, self.config.out_dir / key

    def _process(self, number: int) -> JobOutcome:
        job = self._fetch_job(number)
        if job is None:
            log.info("INFRA job %d is no longer fetchable; skipped", number)
            self._emit(DeviceEvent("skipped", job_id=str(number)))
            return self._outcome(str(number), job, None, "skipped", self.config.out_dir)
        key, folder = self._folder(job)
        journal = Journal.load(folder)
        if journal is not None and journal.finished:
            # Printed (or cancelled) before: never again; only the report may be missing.
            log.info("job %s (INFRA %d) already %s; reporting again", key, number, journal.outcome)
            self._report(job, self._report_of(journal), journal, folder)
            outcome = self._outcome(
                key, job, journal, journal.outcome or "printed", folder, replayed=True
            )
            self._emit(DeviceEvent("done", job_id=key, title=job.title, outcome=outcome))
            return outcome
        acked = self._send(Operation.ACKNOWLEDGE_JOB, self._job(number))
        if not acked.ok:
            log.info("INFRA job %d not taken (%s); skipped", number, acked.describe())
            self._emit(DeviceEvent("skipped", job_id=key, title=job.title))
            return self._outcome(key, job, journal, "skipped", folder)
        accepted = self.forward.formats() if self.forward is not None else [PDF]
        document = self._checked(
            Operation.FETCH_DOCUMENT,
            self._job(
                number,
                Attribute("document-number", ValueTag.INTEGER, 1),
                Attribute("document-format-accepted", ValueTag.MIME_MEDIA_TYPE, accepted),
            ),
        )
        fetched = str(document.value(GroupTag.DOCUMENT, "document-format", PDF)).lower()
        if fetched not in accepted:
            raise DeviceError(f"Fetch-Document {number}: {fetched!r:.60} was not asked for")
        data = bytes(document.message.data)
        # The document is printed while its acknowledgement travels (one round trip less
        # on the job's path); it has arrived before the job's report.
        acknowledged = self._beside(
            Operation.ACKNOWLEDGE_DOCUMENT,
            self._job(number, Attribute("document-number", ValueTag.INTEGER, 1)),
        )
        if journal is None:
            journal = Journal(job_id=key, printer_id=self.config.printer_id, title=job.title)
        journal.copies = job.copies
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"document.{SUFFIX[fetched]}").write_bytes(data)
        try:
            if fetched == PDF:
                report = self._print(job, data, journal, folder)
            else:
                report = self._print_raster(job, data, fetched, journal, folder)
        finally:
            acknowledged.join()
        self._report(job, report, journal, folder)
        outcome = self._outcome(
            key,
            job,
            journal,
            "printed" if report.state == JobState.COMPLETED else "cancelled",
            folder,
        )
        self._emit(DeviceEvent("done", job_id=key, title=job.title, outcome=outcome))
        return outcome

    def _outcome(
        self,
        key: str,
        job: FetchedJob | None,
        journal: Journal | None,
        outcome: Literal["printed", "cancelled", "skipped", "error"],
        folder: Path,
        *,
        replayed: bool = False,
    ) -> JobOutcome:
        done = journal.pages_done if journal else []
        previews = tuple(
            folder / f"{page_name(n)}-preview.png"
            for n in done
            if (folder / f"{page_name(n)}-preview.png").is_file()
        )
        return JobOutcome(
            job_id=key,
            title=job.title if job else "",
            outcome=outcome,
            reason=journal.reason if journal else None,
            pages_printed=journal.pages_printed if journal else 0,
            copies=journal.copies if journal else 1,
            folder=folder,
            previews=previews,
            message=journal.message if journal else "",
            reported=bool(journal and journal.reported),
            replayed=replayed,
        )

    def _report_of(self, journal: Journal) -> _Report:
        """A finished journal as Update-Job-Status: its reason is the reported reasons."""
        if journal.outcome == "printed":
            return _Report(JobState.COMPLETED, ("none",), journal.impressions, journal.message)
        reasons = tuple((journal.reason or "none").split(","))
        cancelled = {"canceled-at-device", "job-canceled-by-user"} & set(reasons)
        state = JobState.CANCELED if cancelled else JobState.ABORTED
        return _Report(state, reasons, journal.impressions, journal.message)

    def _print(self, job: FetchedJob, pdf: bytes, journal: Journal, folder: Path) -> _Report:
        try:
            document = pdfium.PdfDocument(pdf)
        except pdfium.PdfiumError as exc:
            journal.finish("cancelled", "document-format-error", f"unreadable PDF: {exc}")
            journal.save(folder)
            return self._report_of(journal)
        try:
            pages = len(document)
            journal.page_count = pages
            journal.save(folder)
            self._emit(
                DeviceEvent(
                    "job",
                    job_id=journal.job_id,
                    title=job.title,
                    page=journal.pages_printed,
                    page_count=pages,
                )
            )
            if self.forward is not None:
                ended = self._forward(job, pdf, journal, folder, pages)
                self._forwarded(ended, journal, folder, pages, job.copies)
            else:
                try:
                    self._print_pages(job, document, journal, folder, pages)
                except _Ended as stop:
                    log.warning("job %s %s: %s", journal.job_id, stop.reason, stop.message)
                    journal.finish("cancelled", stop.reason, stop.message)
                else:
                    journal.finish("printed", None, f"printed {journal.summary()}")
                journal.save(folder)
        finally:
            document.close()
        return self._report_of(journal)

    def _print_raster(
        self, job: FetchedJob, data: bytes, document_format: str, journal: Journal, folder: Path
    ) -> _Report:
        """A PWG raster or URF document, fetched for the office printer, goes there as
        it is; its pages are Fetch-Job's `job-impressions`, else counted by decoding."""
        pages = job.impressions
        if pages <= 0:
            try:
                pages = _raster_pages(data, document_format)
            except InvalidRequest as exc:  # pwg.RasterError
                journal.finish("cancelled", "document-format-error", f"unreadable raster: {exc}")
                journal.save(folder)
                return self._report_of(journal)
        journal.page_count = pages
        journal.save(folder)
        self._emit(
            DeviceEvent(
                "job",
                job_id=journal.job_id,
                title=job.title,
                page=journal.pages_printed,
                page_count=pages,
            )
        )
        ended = self._forward(job, data, journal, folder, pages, document_format)
        self._forwarded(ended, journal, folder, pages, job.copies)
        return self._report_of(journal)

    def _forward(
        self,
        job: FetchedJob,
        document: bytes,
        journal: Journal,
        folder: Path,
        pages: int,
        document_format: str = PDF,
    ) -> ForwardOutcome:
        """Print on the office printer, or follow the job it took before a restart."""
        assert self.forward is not None
        prefix = f"{self.forward.uri}#"
        if journal.forwarded and journal.forwarded.startswith(prefix):
            taken = journal.forwarded.removeprefix(prefix)
            if taken.isdigit():
                ended = self.forward.follow(int(taken), job, pages=pages)
                if ended is not None:
                    return ended

        def accepted(printer_job: int) -> None:
            journal.forwarded = f"{prefix}{printer_job}"
            journal.save(folder)

        return self.forward.print(
            job, document, pages=pages, document_format=document_format, on_accepted=accepted
        )

    def _forwarded(
        self, ended: ForwardOutcome, journal: Journal, folder: Path, pages: int, copies: int
    ) -> None:
        done = (
            pages if ended.state == JobState.COMPLETED else min(pages, ended.impressions // copies)
        )
        for number in range(1, done + 1):
            journal.mark_printed(number)
        if ended.state == JobState.COMPLETED:
            journal.finish(
                "printed", None, f"forwarded to {self.config.forward}: {journal.summary()}"
            )
        else:
            reasons = ",".join(ended.reasons)
            if ended.state == JobState.CANCELED and "canceled-at-device" not in ended.reasons:
                reasons = f"canceled-at-device,{reasons}"
            message = ended.message or f"the printer {ended.state.name.lower()} the job"
            journal.finish("cancelled", reasons, message)
        journal.save(folder)

    def _print_pages(
        self,
        job: FetchedJob,
        document: pdfium.PdfDocument,
        journal: Journal,
        folder: Path,
        pages: int,
    ) -> None:
        """The JSON mode's engine for each page the journal lacks: render, separate,
        halftone, write (`raster.render_page`); a sink printer only counts them."""
        media = MEDIA.get(PWG_MEDIA.get(job.media, "A4"), MEDIA["A4"])
        color = job.color_mode != "monochrome"
        for number in journal.pages_to_print(list(range(1, pages + 1))):
            if not self.still_active(job.number):
                raise _Ended(
                    JobState.CANCELED,
                    "job-canceled-by-user",
                    f"cancelled in printcloud before page {number}; printed {journal.summary()}",
                )
            fault = self._take_fault(number)
            if fault is not None:
                state, reason = FAULT_REASONS[fault.name]
                raise _Ended(
                    state, reason, f"{fault.name} before page {number}; printed {journal.summary()}"
                )
            path = None
            if not self.config.sink:
                page = document[number - 1]
                try:
                    image = page.render(scale=job.dpi / 72, grayscale=not color).to_pil()
                finally:
                    page.close()
                buffer = io.BytesIO()
                image.convert("RGB" if color else "L").save(buffer, "JPEG", quality=90)
                try:
                    rendered = render_page(
                        buffer.getvalue(),
                        color=color,
                        dpi=job.dpi,
                        media=media,
                        halftone=self.config.halftone,
                        profile=self.config.profile,
                    )
                except InvalidRequest as exc:
                    raise _Ended(
                        JobState.ABORTED, "document-format-error", f"page {number}: {exc}"
                    ) from exc
                # The engine "prints" — then the journal says so.
                path = rendered.write(folder, name=page_name(number))[-1]
            journal.mark_printed(number)
            journal.save(folder)
            self._emit(
                DeviceEvent(
                    "page",
                    job_id=journal.job_id,
                    title=job.title,
                    page=number,
                    page_count=pages,
                    path=path,
                )
            )

    def _report(self, job: FetchedJob, report: _Report, journal: Journal, folder: Path) -> None:
        """Update-Job-Status (the one printcloud acts on), then Update-Document-Status: the
        job's end in printcloud waits for one round trip, not two (the Infrastructure
        Printer only notes the document's status, also of an ended job)."""
        reasons = Attribute(
            "output-device-job-state-reasons", ValueTag.KEYWORD, list(report.reasons)
        )
        impressions = Attribute("job-impressions-completed", ValueTag.INTEGER, report.impressions)
        status = [
            Attribute("output-device-job-state", ValueTag.ENUM, int(report.state)),
            reasons,
            impressions,
        ]
        if report.message:
            status.append(
                Attribute("output-device-job-state-message", ValueTag.TEXT, report.message[:255])
            )
        self._checked(
            Operation.UPDATE_JOB_STATUS, self._job(job.number), [Group(GroupTag.JOB, status)]
        )
        self._send(
            Operation.UPDATE_DOCUMENT_STATUS,
            self._job(job.number, Attribute("document-number", ValueTag.INTEGER, 1)),
            [
                Group(
                    GroupTag.DOCUMENT,
                    [
                        Attribute("output-device-document-state", ValueTag.ENUM, int(report.state)),
                        Attribute(
                            "output-device-document-state-reasons",
                            ValueTag.KEYWORD,
                            list(report.reasons),
                        ),
                        Attribute("impressions-completed", ValueTag.INTEGER, report.impressions),
                    ],
                )
            ],
        )
        journal.reported = True
        journal.save(folder)
        log.info(
            "job %s (INFRA %d) reported %s (%s), %d impression(s)",
            journal.job_id,
            job.number,
            report.state.name.lower(),
            ",".join(report.reasons),
            report.impressions,
        )


def main(config: DeviceConfig, *, once: bool = False, console: Console | None = None) -> int:
    """`printcloud device --protocol infra`: print what is fetchable (`once`) or keep
    waiting for jobs; the exit status is 1 when `once` met an error."""
    # The display builds on the agent (console.py imports agent.py), hence here.
    from printcloud.device.console import Display

    console = console or Console()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    if not config.sink and not config.forward:  # only the local engine renders
        with console.status("Loading the raster engine…"):
            warm_up()
    display = Display(console)
    with InfraAgent(config, on_event=display) as agent:
        target = (
            f"forwarding to {config.forward}" if config.forward else f"output in {config.out_dir}"
        )
        console.print(
            f"printer {config.printer_id} of tenant {config.tenant_id} as INFRA output device "
            f"{agent.uuid} → {agent.uri}, {target}"
        )
        if config.faults:
            console.print("faults armed: " + ", ".join(str(f) for f in config.faults))
        with display.live():
            if once:
                try:
                    agent.register()
                    outcomes = agent.poll_once()
                except DeviceError as exc:
                    console.print(f"error: {exc}")
                    return 1
                if not outcomes:
                    console.print("no work for this printer")
                return 1 if any(o.outcome == "error" for o in outcomes) else 0
            console.print("waiting for jobs (IPP notifications); Ctrl-C to stop")
            started = time.monotonic()
            agent.run()
            log.info("INFRA device ran %.0f s", time.monotonic() - started)
    return 0
