"""The virtual printer agent: seed 003, FIG. 9, printer PRT001 (S1401–S1415, ¶0102–0112).

The agent is an OAuth client of `idp-a` (client credentials, scope `device`).
It learns of work by polling the print service (¶0112) or, when it runs a push
listener (registered as the printer's push_url), at once on a print request
(S109, S1401), and for each job:

- S1401–S1403: takes the job from the work list (`GET …/printers/{id}/work`):
  the identity of the converted data, the metafile's URL and the conversion
  token, then says it starts (`POST …/jobs/{id}/started`; a 409 means the job
  is no longer printable, e.g. its owner cancelled it, and it is skipped);
- S1404–S1405: downloads the metafile with the conversion token; a 401 (the
  token is wrong or timed out, FIG. 10) or a 404 is reported as a failure (S1415);
- S1406–S1410, per page: downloads the JPEG, renders it to the job's media and
  resolution, separates it (CMYK, or gray for a mono job, ¶0107), halftones it
  to one bit per colorant (`raster.render_page`) and "prints" it: one PBM per
  colorant and a preview PNG in `out_dir/<job_id>/`; a thumbnail (at most 256 px,
  `thumbnails.py`) is uploaded for the user's job page, unless the printer is
  configured to send none (`DeviceConfig.previews`);
- a **sink** printer (`DeviceConfig.sink`, issue 13) downloads and checks every
  page the same way, then counts it printed without rendering anything (no raster,
  no engine output, and by default no thumbnail): the platform's load without the
  printers' own work, for measuring it;
- S1411: before each page, an injected fault (`paper_out@2`, …) cancels the job;
- S1412–S1414: reports `printed` or `cancelled` with a reason and the pages printed.

The poll also brings the printer's Identify-Printer requests (issue 14, PWG 5100.13
§4.1.2), pushed like a print request; `identify` performs each (a WARNING log line
and the panel's banner with the message; a bell) and emits an `identify` event.

Exactly-once pages: `out_dir/<job_id>/journal.json` (`Journal`) is replaced
atomically after each page. A job handed again — the agent restarted, or the
server's workflow resumed after a crash — prints only the pages the journal
lacks; a job the journal shows finished is only reported again. A page
interrupted between its engine output and its journal entry is printed again
on resume, to the same file names, so there is still one set of files per page.

Copies are logical: the engine output of a page is written once; the journal,
the report's message and `JobOutcome.impressions` count `pages × copies`;
`pages_printed` is the number of distinct pages printed.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Literal
from urllib.parse import urljoin

import httpx
from rich.console import Console

from printcloud.core.errors import InvalidRequest
from printcloud.core.http import error_of
from printcloud.core.logs import get_logger
from printcloud.device import thumbnails
from printcloud.device.api import DeviceApi, Page, WorkItem, device_errors
from printcloud.device.config import (
    FAULT_NAMES,
    MEDIA,
    DeviceConfig,
    DeviceError,
    Fault,
    ServiceUnreachable,
)
from printcloud.device.events import DeviceEvent, EventHook, JobOutcome
from printcloud.device.journal import Journal, Outcome, page_name
from printcloud.device.printer import Printer
from printcloud.device.push import PushListener
from printcloud.device.raster import Media, render_page, warm_up
from printcloud.printing.client import IdentifyRequest, refused

__all__ = [
    "FAULT_NAMES",
    "MEDIA",
    "DeviceAgent",
    "DeviceConfig",
    "DeviceError",
    "DeviceEvent",
    "EventHook",
    "Fault",
    "JobOutcome",
    "Journal",
    "ServiceUnreachable",
    "main",
]

log = get_logger("device.agent")


class _Stop(Exception):  # control flow inside one job, not an error
    """The job ends here: `outcome`/`reason` go to the journal and the report."""

    def __init__(self, outcome: Outcome, reason: str, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.outcome, self.reason, self.message, self.final = outcome, reason, message, final


# -- the agent ---------------------------------------------------------------------


class DeviceAgent(Printer):
    """One printer PRT001: polls (or is pushed) work and prints it, FIG. 9."""

    def __init__(
        self,
        config: DeviceConfig,
        *,
        http: httpx.Client | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        super().__init__(config, http=http, on_event=on_event)
        self._api = DeviceApi(config, self._http)
        self._wake = threading.Event()
        self._listener: PushListener | None = None
        self._unreachable = False
        self._registered = False
        #: Why the print service refused the push URL (its egress policy, say); the
        #: agent then polls and does not ask again.
        self.push_refused: str | None = None

    # -- lifecycle

    def close(self) -> None:
        if self._registered:
            # Back to polling only: a push to a closed listener would just fail.
            try:
                self.register_push_url(None)
            except DeviceError as exc:
                log.warning("could not clear the push URL: %s", exc)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._close_http()

    def start_listener(self) -> str:
        """Start the push listener on `config.listen`; the URL to register as push_url."""
        if self._listener is None:
            if not self.config.listen:
                raise ValueError("no listen address configured")
            self._listener = PushListener(
                self.config.listen, printer_id=self.config.printer_id, on_push=self.wake
            )
        return self._listener.url

    @property
    def push_url(self) -> str | None:
        """The listener's URL, with the port actually bound; None when not listening."""
        return self._listener.url if self._listener is not None else None

    def register_push_url(self, url: str | None) -> None:
        """Tell the print service where to push print requests (S109); None: poll only."""
        self._api.set_push_url(url)
        self._registered = url is not None
        log.info("push URL of printer %s set to %s", self.config.printer_id, url)

    def _try_register(self) -> None:
        """Register the listener once the service answers; until then the agent polls.

        A refusal (400: the print service's egress policy does not connect to this
        address, say) is final: one warning, and the agent keeps polling."""
        if (
            self.push_url is None
            or self._registered
            or self.push_refused is not None
            or not self.config.register_push
        ):
            return
        try:
            self.register_push_url(self.push_url)
        except ServiceUnreachable as exc:
            log.warning("push URL not registered yet (%s); polling meanwhile", exc)
        except DeviceError as exc:
            if exc.status not in (400, 422):  # only a refusal of the URL itself is final
                log.warning("push URL not registered yet (%s); polling meanwhile", exc)
                return
            self.push_refused = str(exc)
            log.warning(
                "the print service refused the push URL %s (%s); this printer polls every "
                "%g s instead. For pushes, listen on an address the print service may "
                "connect to (an operator lists private ones in PRINTCLOUD_EGRESS_ALLOW).",
                self.push_url,
                exc,
                self.config.poll_interval,
            )

    def wake(self, job_id: str = "") -> None:
        """A print request (or an identify request) arrived (S1401): poll now."""
        what = "print request pushed" if job_id else "pushed: poll now"  # identify: no job
        log.info(what, extra={"fields": {"job_id": job_id}})
        self._emit(DeviceEvent("push", job_id=job_id))
        self._wake.set()

    def identify(self, request: IdentifyRequest) -> None:
        """Show this printer to whoever looks for it (PWG 5100.13 §4.1.2, Identify-Printer).

        `display`: the client's message in a WARNING log line and, through the
        `identify` event, as a banner on the printer's panel (`status.PrintStatus`).
        `sound`: the terminal's bell when the agent runs in one, and an INFO "beep" log
        line: a virtual printer has no speaker. The service asks for no other action
        (its `identify-actions-supported`); one it did would only be logged."""
        actions = tuple(a for a in request.actions if a in ("display", "sound"))
        fields = {"actions": ",".join(request.actions), "requested_by": request.requested_by}
        if "display" in actions:
            log.warning("identify: %s", request.message or "(no message)", extra={"fields": fields})
        if "sound" in actions:
            if sys.stderr.isatty():
                sys.stderr.write("\a")
                sys.stderr.flush()
            log.info("identify: beep", extra={"fields": fields})
        if len(actions) != len(request.actions):
            log.info("identify: actions not performed here", extra={"fields": fields})
        self._emit(DeviceEvent("identify", message=request.message, actions=actions))

    # -- the loop

    def run(self, stop: threading.Event | None = None, on_event: EventHook | None = None) -> None:
        """Poll every `poll_interval` (at once on a push) until `stop` is set or Ctrl-C."""
        if on_event is not None:
            self.on_event = on_event
        stop = stop or threading.Event()
        if self.config.listen and self._listener is None:
            self.start_listener()
        try:
            while not stop.is_set():
                self._wake.clear()
                self._try_register()
                self._poll_logged()
                deadline = time.monotonic() + self.config.poll_interval
                while not stop.is_set() and not self._wake.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(min(remaining, 0.2))
        except KeyboardInterrupt:
            log.info("device agent stopped")

    def _poll_logged(self) -> list[JobOutcome]:
        """`poll_once`, with every failure logged instead of raised (the loop goes on)."""
        try:
            outcomes = self.poll_once()
        except ServiceUnreachable as exc:
            if not self._unreachable:
                log.warning("print service unreachable, retrying (%s)", exc)
            self._unreachable = True
            return []
        except DeviceError as exc:
            log.error("poll failed: %s", exc)
            self._emit(DeviceEvent("error", message=str(exc)))
            return []
        except Exception as exc:  # a bug must not end the printer's loop: log it, go on
            log.error("poll failed unexpectedly: %r", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self._emit(DeviceEvent("error", message=repr(exc)))
            return []
        if self._unreachable:
            log.info("print service reachable again")
            self._unreachable = False
        return outcomes

    def poll_once(self) -> list[JobOutcome]:
        """Process every job of the work list now, in order (¶0112).

        Raises `DeviceError` (`ServiceUnreachable`) when the work list cannot be
        had; a job that fails comes back as an `error` outcome and the others go on.
        """
        outcomes = []
        for item in self._work():
            try:
                outcome = self._process(item)
            except DeviceError as exc:
                log.error("job %s: %s", item.job_id, exc)
                self._emit(DeviceEvent("error", job_id=item.job_id, message=str(exc)))
                outcome = self._outcome(item, None, "error", message=str(exc))
            outcomes.append(outcome)
        return outcomes

    # -- work in, results out (the calls themselves are in api.py)

    def _work(self) -> list[WorkItem]:
        work = self._api.work()
        for request in work.identify:
            self.identify(request)
        items = []
        for job in work.jobs:
            try:
                items.append(WorkItem.parse(job))
            except DeviceError as exc:  # one bad item must not block the others
                log.error("work list: %s", exc)
                self._emit(DeviceEvent("error", message=str(exc)))
        return items

    def _report_final(self, journal: Journal, folder: Path) -> None:
        assert journal.outcome is not None
        self._api.report(
            journal.job_id, journal.outcome, journal.reason, journal.pages_printed, journal.message
        )
        journal.reported = True
        journal.save(folder)

    def _fetch(self, url: str, token: str, what: str) -> httpx.Response:
        """S1404/S1406: converted data, with the job's conversion token (FIG. 10)."""
        with device_errors(what):
            resp = self._api.printing.converted(url, token=token, what=what)
        if resp.status_code in (401, 403, 404):
            code, text = error_of(resp)
            why = "token refused or timed out" if resp.status_code != 404 else "no such data"
            raise _Stop(
                "cancelled",
                "download_failed",
                f"{what}: HTTP {resp.status_code}, {why}" + (f" ({code}: {text})" if code else ""),
                final=False,
            )
        if resp.status_code != 200:
            raise DeviceError(str(refused(what, resp)), status=resp.status_code)
        return resp

    def _manifest(self, item: WorkItem) -> list[Page]:
        resp = self._fetch(item.manifest_url, item.token, "metafile")
        try:
            data = resp.json()
            entries = data["pages"]
            pages = [
                Page(
                    number=int(entry["number"]),
                    url=urljoin(item.manifest_url, str(entry["url"])),
                    sha256=entry.get("sha256"),
                )
                for entry in entries
            ]
            count = int(data.get("page_count", len(pages)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _Stop(
                "cancelled", "invalid_data", f"unreadable metafile: {exc}", final=True
            ) from exc
        numbers = [page.number for page in pages]
        if not pages or count != len(pages) or len(set(numbers)) != len(numbers):
            raise _Stop(
                "cancelled",
                "invalid_data",
                f"metafile lists {len(pages)} distinct page(s) {numbers[:10]}, page_count {count}",
                final=True,
            )
        return sorted(pages, key=lambda page: page.number)

    # -- one job

    def _outcome(
        self,
        item: WorkItem,
        journal: Journal | None,
        outcome: Literal["printed", "cancelled", "skipped", "error"],
        *,
        message: str = "",
        reason: str | None = None,
        replayed: bool = False,
        reported: bool = False,
    ) -> JobOutcome:
        folder = self.config.out_dir / item.job_id
        if journal is None:
            try:
                journal = Journal.load(folder)
            except DeviceError:
                journal = None
        done = journal.pages_done if journal else []
        previews = tuple(
            folder / f"{page_name(n)}-preview.png"
            for n in done
            if (folder / f"{page_name(n)}-preview.png").is_file()
        )
        return JobOutcome(
            job_id=item.job_id,
            title=item.title,
            outcome=outcome,
            reason=reason if reason is not None else (journal.reason if journal else None),
            pages_printed=journal.pages_printed if journal else 0,
            copies=journal.copies if journal else item.copies,
            folder=folder,
            previews=previews,
            message=message or (journal.message if journal else ""),
            reported=reported,
            replayed=replayed,
        )

    def _process(self, item: WorkItem) -> JobOutcome:
        folder = self.config.out_dir / item.job_id
        journal = Journal.load(folder)
        if journal is not None and journal.finished:
            # Printed (or cancelled) before: never again; only the report may be missing.
            assert journal.outcome is not None
            log.info("job %s already %s; reporting again", item.job_id, journal.outcome)
            self._report_final(journal, folder)
            outcome = self._outcome(item, journal, journal.outcome, replayed=True, reported=True)
            self._emit(DeviceEvent("done", job_id=item.job_id, title=item.title, outcome=outcome))
            return outcome

        if not self._api.started(item.job_id):
            log.info("job %s is no longer printable; skipped", item.job_id)
            outcome = self._outcome(item, journal, "skipped", message="refused by the server (409)")
            self._emit(DeviceEvent("skipped", job_id=item.job_id, title=item.title))
            return outcome

        if journal is None:
            journal = Journal(
                job_id=item.job_id,
                printer_id=self.config.printer_id,
                title=item.title,
                copies=item.copies,
            )
            journal.save(folder)
        try:
            self._print(item, journal, folder)
        except _Stop as stop:
            return self._stopped(item, journal, folder, stop)
        journal.finish("printed", None, f"printed {journal.summary()}")
        journal.save(folder)
        log.info("job %s printed: %s", item.job_id, journal.summary())
        self._report_final(journal, folder)
        outcome = self._outcome(item, journal, "printed", reported=True)
        self._emit(DeviceEvent("done", job_id=item.job_id, title=item.title, outcome=outcome))
        return outcome

    def _stopped(self, item: WorkItem, journal: Journal, folder: Path, stop: _Stop) -> JobOutcome:
        log.warning("job %s %s (%s): %s", item.job_id, stop.outcome, stop.reason, stop.message)
        if stop.final:
            journal.finish(stop.outcome, stop.reason, stop.message)
            journal.save(folder)
            self._report_final(journal, folder)
        else:
            # S1415: a failed download is reported, but the journal stays open: if the
            # server hands the job again, the pages it lacks are fetched again.
            self._api.report(
                item.job_id, stop.outcome, stop.reason, journal.pages_printed, stop.message
            )
        outcome = self._outcome(
            item, journal, stop.outcome, message=stop.message, reason=stop.reason, reported=True
        )
        self._emit(DeviceEvent("done", job_id=item.job_id, title=item.title, outcome=outcome))
        return outcome

    def _print(self, item: WorkItem, journal: Journal, folder: Path) -> None:
        """S1404–S1412 for one job; raises `_Stop` when it ends early."""
        media = MEDIA.get(item.media)
        if media is None:
            raise _Stop("cancelled", "invalid_data", f"unknown media {item.media!r}", final=True)
        pages = self._manifest(item)
        if journal.page_count != len(pages):
            journal.page_count = len(pages)
            journal.save(folder)
        self._emit(
            DeviceEvent(
                "job",
                job_id=item.job_id,
                title=item.title,
                page=journal.pages_printed,
                page_count=len(pages),
            )
        )
        if self.config.sends_previews:
            for number in journal.pages_done:
                if number not in journal.previews_uploaded:
                    self._resend_preview(item, journal, folder, number)
        by_number = {page.number: page for page in pages}
        todo = journal.pages_to_print(list(by_number))
        # I/O beside the engine: the next page downloads and the last thumbnail uploads
        # while this page renders (two threads; the httpx client is thread-safe).
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="device-io") as pool:
            fetches: dict[int, Future[bytes]] = {}
            uploads: list[tuple[int, Future[bool]]] = []
            try:
                for index, number in enumerate(todo):
                    page = by_number[number]
                    fault = self._take_fault(page.number)
                    if fault is not None:
                        raise _Stop(
                            "cancelled",
                            fault.name,
                            f"{fault.name} before page {page.number}; printed {journal.summary()}",
                            final=True,
                        )
                    if number not in fetches:
                        fetches[number] = pool.submit(self._page_data, item, page)
                    if index + 1 < len(todo):
                        following = by_number[todo[index + 1]]
                        fetches[following.number] = pool.submit(self._page_data, item, following)
                    jpeg = fetches.pop(number).result()
                    thumb = self._print_page(item, journal, folder, page, jpeg, media, len(pages))
                    if thumb is not None:
                        upload = pool.submit(self._send_thumbnail, item.job_id, number, thumb)
                        uploads.append((number, upload))
            finally:
                for pending in fetches.values():
                    pending.cancel()
                wanted = self._settle_uploads(item, journal, folder, uploads)
        if not wanted:
            raise _Stop("cancelled", "job_cancelled", "the server cancelled the job", final=True)

    def _page_data(self, item: WorkItem, page: Page) -> bytes:
        jpeg = self._fetch(page.url, item.token, f"page {page.number}").content
        if page.sha256 and hashlib.sha256(jpeg).hexdigest() != page.sha256:
            raise DeviceError(f"page {page.number}: content does not match the metafile")
        return jpeg

    def _print_page(
        self,
        item: WorkItem,
        journal: Journal,
        folder: Path,
        page: Page,
        jpeg: bytes,
        media: Media,
        page_count: int,
    ) -> Callable[[], bytes] | None:
        """S1406–S1410: render, separate, halftone and "print" one page. Answers what
        makes its thumbnail (PNG, made beside the next page's rendering) when the
        printer sends previews. A sink printer only counts the page."""
        if self.config.sink:
            journal.mark_printed(page.number)
            journal.save(folder)
            self._page_event(item, page.number, page_count, None)
            return partial(thumbnails.of_jpeg, jpeg) if self.config.sends_previews else None
        try:
            rendered = render_page(
                jpeg,
                color=item.color,
                dpi=item.dpi,
                media=media,
                halftone=self.config.halftone,
                profile=self.config.profile,
            )
        except InvalidRequest as exc:
            raise _Stop(
                "cancelled", "invalid_data", f"page {page.number}: {exc}", final=True
            ) from exc
        # S1410: the engine "prints" — then the journal says so, then the user sees it.
        written = rendered.write(folder, name=page_name(page.number))
        journal.mark_printed(page.number)
        journal.save(folder)
        self._page_event(item, page.number, page_count, written[-1])
        return partial(thumbnails.of_rendered, rendered) if self.config.sends_previews else None

    def _send_thumbnail(self, job_id: str, number: int, make: Callable[[], bytes]) -> bool:
        """Make a page's thumbnail and upload it; False when the server no longer wants
        the job. A page whose thumbnail cannot be made is printed all the same."""
        try:
            png = make()
        except (ValueError, InvalidRequest) as exc:
            log.warning("job %s page %d: no thumbnail: %s", job_id, number, exc)
            return True
        return self._api.upload_preview(job_id, number, png)

    def _page_event(self, item: WorkItem, number: int, page_count: int, path: Path | None) -> None:
        self._emit(
            DeviceEvent(
                "page",
                job_id=item.job_id,
                title=item.title,
                page=number,
                page_count=page_count,
                path=path,
            )
        )

    def _settle_uploads(
        self,
        item: WorkItem,
        journal: Journal,
        folder: Path,
        uploads: list[tuple[int, Future[bool]]],
    ) -> bool:
        """Wait for the thumbnails; False when the server no longer wants the job. A
        thumbnail that failed is sent again the next time the job is handed over."""
        wanted = True
        for number, upload in uploads:
            try:
                ok = upload.result()
            except DeviceError as exc:
                log.warning("job %s page %d: preview not sent: %s", item.job_id, number, exc)
                continue
            if ok:
                journal.mark_uploaded(number)
            else:
                wanted = False
        if uploads:
            journal.save(folder)
        return wanted

    def _resend_preview(self, item: WorkItem, journal: Journal, folder: Path, number: int) -> None:
        """A page printed before a restart whose preview never reached the server."""
        path = folder / f"{page_name(number)}-preview.png"
        if not path.is_file():
            log.warning("job %s page %d: no preview to send", item.job_id, number)
            return
        if not self._api.upload_preview(item.job_id, number, thumbnails.of_file(path)):
            raise _Stop("cancelled", "job_cancelled", "the server cancelled the job", final=True)
        journal.mark_uploaded(number)
        journal.save(folder)


def main(config: DeviceConfig, *, once: bool = False, console: Console | None = None) -> int:
    """`printcloud device`: print what the work list holds (`once`) or keep polling.

    Returns the exit status: 0, or 1 when `once` met an error (nothing final
    happened to some job, or the work list could not be had).
    """
    # The display builds on the agent (console.py imports this module), hence here.
    from printcloud.device.console import Display, announce

    console = console or Console()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    if not config.sink:  # a sink printer renders nothing
        with console.status("Loading the raster engine…"):
            warm_up()
    display = Display(console)
    with DeviceAgent(config, on_event=display) as agent:
        announce(config, agent, console, once=once)
        with display.live():
            if once:
                try:
                    outcomes = agent.poll_once()
                except ServiceUnreachable as exc:
                    console.print(f"[red]print service unreachable[/red]: {exc}")
                    return 1
                except DeviceError as exc:
                    console.print(f"[red]error[/red]: {exc}")
                    return 1
                if not outcomes:
                    console.print("no work for this printer")
                return 1 if any(o.outcome == "error" for o in outcomes) else 0
            console.print(f"polling every {config.poll_interval:g} s; Ctrl-C to stop")
            agent.run()
    return 0
