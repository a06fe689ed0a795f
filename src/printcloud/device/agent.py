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
  colorant and a preview PNG in `out_dir/<job_id>/`; the preview, downscaled,
  is uploaded for the user's job page;
- S1411: before each page, an injected fault (`paper_out@2`, …) cancels the job;
- S1412–S1414: reports `printed` or `cancelled` with a reason and the pages printed.

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
import io
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin

import httpx
from PIL import Image
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from printcloud.core.errors import InvalidRequest
from printcloud.core.http import client as http_client
from printcloud.core.logs import get_logger
from printcloud.device.raster import A3, A4, LETTER, Halftone, Media, render_page, warm_up

__all__ = [
    "FAULT_NAMES",
    "MEDIA",
    "DeviceAgent",
    "DeviceConfig",
    "DeviceError",
    "DeviceEvent",
    "Fault",
    "JobOutcome",
    "Journal",
    "ServiceUnreachable",
    "main",
]

log = get_logger("device.agent")

#: What the panel can report (S1411): no paper, no toner, an engine fault, a user's cancel.
FAULT_NAMES = ("paper_out", "toner_out", "engine_error", "user_cancel")
MEDIA: dict[str, Media] = {
    "A4": A4,
    "A3": A3,
    "A5": Media("A5", 148.0, 210.0),
    "Letter": LETTER,
    "Legal": Media("Legal", 215.9, 355.6),
}
JOURNAL_NAME = "journal.json"
PREVIEW_WIDTH = 400
#: The print service refuses larger previews.
MAX_PREVIEW_BYTES = 2 * 1024 * 1024
#: A job ID becomes a folder name: nothing that could climb out of `out_dir`.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)

Outcome = Literal["printed", "cancelled"]


class DeviceError(Exception):
    """The print service or the issuer answered something the agent cannot use.

    `status` is the HTTP status when there was an answer; `error` its wire code.
    """

    def __init__(self, message: str, *, status: int | None = None, error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class ServiceUnreachable(DeviceError):
    """No answer at all (refused, timed out, DNS): the agent retries at the next poll."""


# -- faults (S1411) --------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """`name@page`: before printing page `page`, the printer reports `name` and stops."""

    name: str
    page: int

    @classmethod
    def parse(cls, text: str) -> Fault:
        """`"paper_out@2"` → `Fault("paper_out", 2)`; a `ValueError` names what is wrong."""
        name, sep, page = text.strip().partition("@")
        if not sep or not page.strip().isdigit():
            raise ValueError(f"fault {text!r}: expected NAME@PAGE, e.g. paper_out@2")
        if name not in FAULT_NAMES:
            raise ValueError(f"fault {text!r}: NAME is one of {', '.join(FAULT_NAMES)}")
        number = int(page)
        if number < 1:
            raise ValueError(f"fault {text!r}: PAGE counts from 1")
        return cls(name, number)

    def __str__(self) -> str:
        return f"{self.name}@{self.page}"


# -- configuration -----------------------------------------------------------------


@dataclass
class DeviceConfig:
    """One printer: who it is at the issuer, where it prints to, how it behaves."""

    server: str  # e.g. http://127.0.0.1:8000 ; the print service is {server}/printing
    tenant_id: str
    printer_id: str
    client_id: str
    client_secret: str
    out_dir: Path
    issuer: str = "idp-a"
    poll_interval: float = 2.0
    halftone: Halftone = "ordered"
    faults: list[Fault] = field(default_factory=list)
    #: `HOST:PORT` of the push listener (port 0: any free one); None: poll only.
    listen: str | None = None
    #: Register the listener's URL as the printer's push_url (and clear it on close).
    register_push: bool = True
    #: CMYK output profile; None: raster's default (Ghostscript's), else the formula.
    profile: Path | None = None

    @property
    def printing_url(self) -> str:
        return f"{self.server.rstrip('/')}/printing"

    @property
    def issuer_url(self) -> str:
        return f"{self.server.rstrip('/')}/{self.issuer}"


# -- the journal -------------------------------------------------------------------


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


# -- what the agent reports --------------------------------------------------------


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
    (one page printed; `path` is its preview), `done` (the job's `outcome`),
    `skipped`, `error` (`message`), `push` (a print request arrived)."""

    kind: Literal["job", "page", "done", "skipped", "error", "push"]
    job_id: str = ""
    title: str = ""
    page: int = 0
    page_count: int = 0
    path: Path | None = None
    outcome: JobOutcome | None = None
    message: str = ""


EventHook = Callable[[DeviceEvent], None]


@dataclass(frozen=True)
class _WorkItem:
    job_id: str
    title: str
    state: str
    manifest_url: str
    token: str = field(repr=False)
    pages: int
    color: bool
    copies: int
    duplex: bool
    media: str
    dpi: int

    @classmethod
    def parse(cls, data: Any) -> _WorkItem:
        try:
            options = data.get("options") or {}
            job_id = str(data["job_id"])
            item = cls(
                job_id=job_id,
                title=str(data.get("title") or job_id),
                state=str(data.get("state", "")),
                manifest_url=str(data["manifest_url"]),
                token=str(data["token"]),
                pages=int(data.get("pages") or 0),
                color=bool(options.get("color", False)),
                copies=max(1, int(options.get("copies") or 1)),
                duplex=bool(options.get("duplex", False)),
                media=str(options.get("media") or "A4"),
                dpi=int(options.get("dpi") or 300),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DeviceError(f"malformed work item {data!r:.200}: {exc}") from exc
        if not _SAFE_ID.match(item.job_id):
            raise DeviceError(f"job id {item.job_id!r:.80} cannot name a folder")
        return item


@dataclass(frozen=True)
class _Page:
    number: int
    url: str
    sha256: str | None


class _Stop(Exception):  # control flow inside one job, not an error
    """The job ends here: `outcome`/`reason` go to the journal and the report."""

    def __init__(self, outcome: Outcome, reason: str, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.outcome, self.reason, self.message, self.final = outcome, reason, message, final


# -- HTTP -------------------------------------------------------------------------


def _describe(resp: httpx.Response) -> tuple[str, str]:
    """(wire code, description) of an error answer, JSON or not."""
    try:
        body = resp.json()
    except ValueError:
        return "", resp.text[:200].strip()
    if isinstance(body, dict):
        return str(body.get("error", "")), str(
            body.get("error_description", body.get("detail", ""))
        )
    return "", str(body)[:200]


def _error(what: str, resp: httpx.Response) -> DeviceError:
    code, text = _describe(resp)
    detail = ": ".join(part for part in (code, text) if part)
    return DeviceError(
        f"{what}: HTTP {resp.status_code}" + (f" ({detail})" if detail else ""),
        status=resp.status_code,
        error=code,
    )


class _Tokens:
    """Client-credentials tokens of the device from its issuer (RFC 8414 discovery).

    The device may not import `auth` (import-linter's independence contract), so
    this is the few lines of `auth.client.AuthClient` it needs.
    """

    def __init__(self, http: httpx.Client, config: DeviceConfig) -> None:
        self._http = http
        self._config = config
        self._endpoint: str | None = None
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def _token_endpoint(self) -> str:
        if self._endpoint is None:
            self._endpoint = issuer_endpoint(self._http, self._config, "token_endpoint")
        return self._endpoint

    def get(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                resp = _send(
                    self._http,
                    "POST",
                    self._token_endpoint(),
                    data={"grant_type": "client_credentials", "scope": "device"},
                    auth=(self._config.client_id, self._config.client_secret),
                )
                if resp.status_code != 200:
                    raise _error(f"token request of client {self._config.client_id}", resp)
                try:
                    body = resp.json()
                    self._token = str(body["access_token"])
                    lifetime = float(body.get("expires_in") or 300)
                except (ValueError, KeyError, TypeError) as exc:
                    raise DeviceError("the issuer's token answer has no access_token") from exc
                # Renew a little early, so a token does not expire in flight.
                self._expires = time.monotonic() + max(1.0, lifetime - min(30.0, lifetime / 10))
            return self._token

    def forget(self) -> None:
        with self._lock:
            self._token = None


def issuer_endpoint(http: httpx.Client, config: DeviceConfig, name: str) -> str:
    """An endpoint (`token_endpoint`, `revocation_endpoint`…) of the issuer's RFC 8414 metadata."""
    url = f"{config.issuer_url}/.well-known/oauth-authorization-server"
    resp = _send(http, "GET", url)
    if resp.status_code != 200:
        raise _error(f"issuer metadata {url}", resp)
    try:
        return str(resp.json()[name])
    except (ValueError, KeyError, TypeError) as exc:
        raise DeviceError(f"issuer metadata {url} names no {name}") from exc


def _send(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return http.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise ServiceUnreachable(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
    except httpx.InvalidURL as exc:
        raise DeviceError(f"{method} {url}: invalid URL ({exc})") from exc


# -- the push listener (S109 → S1401) ---------------------------------------------


class _PushServer(ThreadingHTTPServer):
    daemon_threads = True
    agent: DeviceAgent


class _PushServer6(_PushServer):
    address_family = socket.AF_INET6


class _PushHandler(BaseHTTPRequestHandler):
    server: _PushServer
    server_version = "printcloud-device"

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        agent = self.server.agent
        self._answer(200, {"printer_id": agent.config.printer_id, "push_url": agent.push_url})

    def do_POST(self) -> None:
        # Unauthenticated on purpose: a push only makes the agent poll, and the poll is.
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= 65536:
            self._answer(400, {"error": "invalid_request", "error_description": "bad length"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("event") != "print_request":
            description = 'expected {"event": "print_request", ...}'
            self._answer(400, {"error": "invalid_request", "error_description": description})
            return
        agent = self.server.agent
        printer = body.get("printer_id")
        if printer is not None and printer != agent.config.printer_id:
            self._answer(404, {"error": "not_found", "error_description": "unknown printer"})
            return
        agent.wake(str(body.get("job_id") or ""))
        self._answer(202, {"accepted": True})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("push listener: " + format, *args)


def _parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"listen address {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:0")
    return host.strip("[]"), int(port)


# -- the agent ---------------------------------------------------------------------


class DeviceAgent:
    """One printer PRT001: polls (or is pushed) work and prints it, FIG. 9."""

    def __init__(
        self,
        config: DeviceConfig,
        *,
        http: httpx.Client | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        if config.halftone not in ("ordered", "error_diffusion"):
            raise ValueError(f"unknown halftone {config.halftone!r}")
        self.config = config
        self.on_event = on_event
        self._own_http = http is None
        self._http = http or http_client(timeout=_TIMEOUT)
        self._tokens = _Tokens(self._http, config)
        self._faults = list(config.faults)
        self._wake = threading.Event()
        self._server: _PushServer | None = None
        self._thread: threading.Thread | None = None
        self._unreachable = False
        self._registered = False
        #: Why the print service refused the push URL (its egress policy, say); the
        #: agent then polls and does not ask again.
        self.push_refused: str | None = None

    # -- lifecycle

    def __enter__(self) -> DeviceAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._registered:
            # Back to polling only: a push to a closed listener would just fail.
            try:
                self.register_push_url(None)
            except DeviceError as exc:
                log.warning("could not clear the push URL: %s", exc)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._own_http:
            self._http.close()

    @property
    def pending_faults(self) -> tuple[Fault, ...]:
        return tuple(self._faults)

    def start_listener(self) -> str:
        """Start the push listener on `config.listen`; the URL to register as push_url."""
        if self._server is None:
            if not self.config.listen:
                raise ValueError("no listen address configured")
            host, port = _parse_listen(self.config.listen)
            server_class = _PushServer6 if ":" in host else _PushServer
            server = server_class((host, port), _PushHandler)
            server.agent = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, name="device-push", daemon=True
            )
            self._thread.start()
            log.info("push listener on %s", self.push_url)
        assert self.push_url is not None
        return self.push_url

    @property
    def push_url(self) -> str | None:
        """The listener's URL, with the port actually bound; None when not listening."""
        if self._server is None:
            return None
        address = self._server.server_address
        host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
        shown = f"[{host}]" if ":" in host else host
        port = address[1]
        return f"http://{shown}:{port}/push"

    def register_push_url(self, url: str | None) -> None:
        """Tell the print service where to push print requests (S109); None: poll only."""
        printer = self.config.printer_id
        resp = self._device_call(
            "PUT", f"printers/{printer}/push_url", "push URL", json={"push_url": url}
        )
        if resp.status_code != 200:
            raise _error(f"push URL of printer {printer}", resp)
        self._registered = url is not None
        log.info("push URL of printer %s set to %s", printer, url)

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
        """A print request arrived (S1401): poll now."""
        log.info("print request pushed", extra={"fields": {"job_id": job_id}})
        self._emit(DeviceEvent("push", job_id=job_id))
        self._wake.set()

    # -- the loop

    def run(self, stop: threading.Event | None = None, on_event: EventHook | None = None) -> None:
        """Poll every `poll_interval` (at once on a push) until `stop` is set or Ctrl-C."""
        if on_event is not None:
            self.on_event = on_event
        stop = stop or threading.Event()
        if self.config.listen and self._server is None:
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

    # -- device API calls

    def _device_call(
        self, method: str, path: str, what: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        """A call with the device's token; on 401 one new token and one retry."""
        url = f"{self.config.printing_url}/api/device/{path}"
        for attempt in (1, 2):
            auth = {"Authorization": f"Bearer {self._tokens.get()}"}
            resp = _send(self._http, method, url, headers={**(headers or {}), **auth}, **kw)
            if resp.status_code != 401 or attempt == 2:
                break
            self._tokens.forget()
        if resp.status_code >= 500:
            # The service is there but not well: like unreachable, retry at the next poll.
            raise ServiceUnreachable(str(_error(what, resp)), status=resp.status_code)
        return resp

    def _work(self) -> list[_WorkItem]:
        printer = self.config.printer_id
        resp = self._device_call("GET", f"printers/{printer}/work", "work list")
        if resp.status_code != 200:
            raise _error(f"work list of printer {printer}", resp)
        try:
            jobs = resp.json()["jobs"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DeviceError("the work list is not {'jobs': [...]}") from exc
        if not isinstance(jobs, list):
            raise DeviceError("the work list's jobs is not a list")
        items = []
        for job in jobs:
            try:
                items.append(_WorkItem.parse(job))
            except DeviceError as exc:  # one bad item must not block the others
                log.error("work list: %s", exc)
                self._emit(DeviceEvent("error", message=str(exc)))
        return items

    def _started(self, item: _WorkItem) -> bool:
        """S1401: the server agrees the printer starts; False when it refuses (409)."""
        resp = self._device_call(
            "POST",
            f"jobs/{item.job_id}/started",
            "start",
            json={"printer_id": self.config.printer_id},
        )
        if resp.status_code == 409:
            return False
        if resp.status_code != 200:
            raise _error(f"start of job {item.job_id}", resp)
        return True

    def _report(
        self, job_id: str, outcome: Outcome, reason: str | None, pages: int, message: str
    ) -> None:
        """S1413/S1414/S1415: tell the server how the job ended (idempotent there)."""
        resp = self._device_call(
            "POST",
            f"jobs/{job_id}/result",
            "result",
            json={
                "printer_id": self.config.printer_id,
                "outcome": outcome,
                "reason": reason[:200] if reason else reason,
                "pages_printed": pages,
                "message": message[:1000],
            },
        )
        if resp.status_code == 409:
            # Already final on the server (e.g. cancelled by its owner): nothing to add.
            log.info("job %s: the server had closed it (%s)", job_id, _describe(resp)[1])
        elif resp.status_code != 200:
            raise _error(f"result of job {job_id}", resp)

    def _report_final(self, journal: Journal, folder: Path) -> None:
        assert journal.outcome is not None
        self._report(
            journal.job_id, journal.outcome, journal.reason, journal.pages_printed, journal.message
        )
        journal.reported = True
        journal.save(folder)

    def _upload_preview(self, job_id: str, number: int, png: bytes) -> bool:
        """The page's preview for the user; False when the server no longer wants the job."""
        if len(png) > MAX_PREVIEW_BYTES:
            log.warning("job %s page %d: preview of %d bytes not sent", job_id, number, len(png))
            return True
        resp = self._device_call(
            "PUT",
            f"jobs/{job_id}/pages/{number}/preview",
            "preview",
            content=png,
            headers={"Content-Type": "image/png"},
        )
        if resp.status_code == 409:
            return False
        if resp.status_code not in (200, 201, 204):
            raise _error(f"preview of job {job_id} page {number}", resp)
        return True

    def _fetch(self, url: str, token: str, what: str) -> httpx.Response:
        """S1404/S1406: converted data, with the job's conversion token (FIG. 10)."""
        resp = _send(self._http, "GET", url, headers={"Authorization": f"Bearer {token}"})
        if resp.status_code in (401, 403, 404):
            code, text = _describe(resp)
            why = "token refused or timed out" if resp.status_code != 404 else "no such data"
            raise _Stop(
                "cancelled",
                "download_failed",
                f"{what}: HTTP {resp.status_code}, {why}" + (f" ({code}: {text})" if code else ""),
                final=False,
            )
        if resp.status_code >= 500:
            raise ServiceUnreachable(str(_error(what, resp)), status=resp.status_code)
        if resp.status_code != 200:
            raise _error(what, resp)
        return resp

    def _manifest(self, item: _WorkItem) -> list[_Page]:
        resp = self._fetch(item.manifest_url, item.token, "metafile")
        try:
            data = resp.json()
            entries = data["pages"]
            pages = [
                _Page(
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

    def _emit(self, event: DeviceEvent) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a display's bug must not stop the printer
                log.exception("device event hook failed")

    def _outcome(
        self,
        item: _WorkItem,
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
            folder / f"{_page_name(n)}-preview.png"
            for n in done
            if (folder / f"{_page_name(n)}-preview.png").is_file()
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

    def _process(self, item: _WorkItem) -> JobOutcome:
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

        if not self._started(item):
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

    def _stopped(self, item: _WorkItem, journal: Journal, folder: Path, stop: _Stop) -> JobOutcome:
        log.warning("job %s %s (%s): %s", item.job_id, stop.outcome, stop.reason, stop.message)
        if stop.final:
            journal.finish(stop.outcome, stop.reason, stop.message)
            journal.save(folder)
            self._report_final(journal, folder)
        else:
            # S1415: a failed download is reported, but the journal stays open: if the
            # server hands the job again, the pages it lacks are fetched again.
            self._report(
                item.job_id, stop.outcome, stop.reason, journal.pages_printed, stop.message
            )
        outcome = self._outcome(
            item, journal, stop.outcome, message=stop.message, reason=stop.reason, reported=True
        )
        self._emit(DeviceEvent("done", job_id=item.job_id, title=item.title, outcome=outcome))
        return outcome

    def _take_fault(self, number: int) -> Fault | None:
        for fault in self._faults:
            if fault.page == number:
                self._faults.remove(fault)  # once: then the printer is "fixed"
                return fault
        return None

    def _print(self, item: _WorkItem, journal: Journal, folder: Path) -> None:
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
        for number in journal.pages_done:
            if number not in journal.previews_uploaded:
                self._resend_preview(item, journal, folder, number)
        by_number = {page.number: page for page in pages}
        todo = journal.pages_to_print(list(by_number))
        # I/O beside the engine: the next page downloads and the last preview uploads
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
                    preview = self._print_page(item, journal, folder, page, jpeg, media, len(pages))
                    uploads.append(
                        (number, pool.submit(self._upload_file, item.job_id, number, preview))
                    )
            finally:
                for pending in fetches.values():
                    pending.cancel()
                wanted = self._settle_uploads(item, journal, folder, uploads)
        if not wanted:
            raise _Stop("cancelled", "job_cancelled", "the server cancelled the job", final=True)

    def _page_data(self, item: _WorkItem, page: _Page) -> bytes:
        jpeg = self._fetch(page.url, item.token, f"page {page.number}").content
        if page.sha256 and hashlib.sha256(jpeg).hexdigest() != page.sha256:
            raise DeviceError(f"page {page.number}: content does not match the metafile")
        return jpeg

    def _print_page(
        self,
        item: _WorkItem,
        journal: Journal,
        folder: Path,
        page: _Page,
        jpeg: bytes,
        media: Media,
        page_count: int,
    ) -> Path:
        """S1406–S1410: render, separate, halftone and "print" one page; its preview."""
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
        written = rendered.write(folder, name=_page_name(page.number))
        journal.mark_printed(page.number)
        journal.save(folder)
        preview = written[-1]
        self._emit(
            DeviceEvent(
                "page",
                job_id=item.job_id,
                title=item.title,
                page=page.number,
                page_count=page_count,
                path=preview,
            )
        )
        return preview

    def _upload_file(self, job_id: str, number: int, preview: Path) -> bool:
        # the preview written beside the engine output, shrunk: not rendered twice
        with Image.open(preview) as image:
            image.thumbnail((PREVIEW_WIDTH, PREVIEW_WIDTH * 4))
            small = _png(image)
        return self._upload_preview(job_id, number, small)

    def _settle_uploads(
        self,
        item: _WorkItem,
        journal: Journal,
        folder: Path,
        uploads: list[tuple[int, Future[bool]]],
    ) -> bool:
        """Wait for the previews; False when the server no longer wants the job. A
        preview that failed is sent again the next time the job is handed over."""
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

    def _resend_preview(self, item: _WorkItem, journal: Journal, folder: Path, number: int) -> None:
        """A page printed before a restart whose preview never reached the server."""
        path = folder / f"{_page_name(number)}-preview.png"
        if not path.is_file():
            log.warning("job %s page %d: no preview to send", item.job_id, number)
            return
        with Image.open(path) as image:
            image.thumbnail((PREVIEW_WIDTH, PREVIEW_WIDTH * 4))
            png = _png(image)
        if not self._upload_preview(item.job_id, number, png):
            raise _Stop("cancelled", "job_cancelled", "the server cancelled the job", final=True)
        journal.mark_uploaded(number)
        journal.save(folder)


def _page_name(number: int) -> str:
    return f"page-{number:04d}"


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# -- the command -----------------------------------------------------------------


class _Display:
    """Rich output for `printcloud device`: a progress bar per job, then where it went."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}

    @contextmanager
    def live(self) -> Iterator[None]:
        with self.progress:
            yield

    def __call__(self, event: DeviceEvent) -> None:
        label = escape(event.title or event.job_id)
        if event.kind == "push":
            self.console.print(f"[cyan]print request[/cyan] {escape(event.job_id)}")
        elif event.kind == "job":
            task = self.tasks.get(event.job_id)
            if task is None:
                self.tasks[event.job_id] = self.progress.add_task(
                    label, total=event.page_count, completed=event.page, status=""
                )
            else:
                self.progress.update(task, total=event.page_count, completed=event.page)
        elif event.kind == "page" and event.job_id in self.tasks:
            task = self.tasks[event.job_id]
            self.progress.update(task, advance=1, status=f"printed page {event.page}")
            self.progress.refresh()
        elif event.kind == "skipped":
            self.console.print(f"[yellow]skipped[/yellow] {label}: no longer printable")
        elif event.kind == "error":
            where = f"job {event.job_id}: " if event.job_id else ""
            self.console.print(f"[red]error[/red] {escape(where + event.message)}")
        elif event.kind == "done" and event.outcome is not None:
            self._done(event.outcome)

    def _done(self, outcome: JobOutcome) -> None:
        task = self.tasks.pop(outcome.job_id, None)
        if task is not None:
            # The line below says how it ended; the live area keeps only running jobs.
            self.progress.remove_task(task)
        color = "green" if outcome.outcome == "printed" else "yellow"
        again = " (already done; reported again)" if outcome.replayed else ""
        reason = f" ({outcome.reason})" if outcome.reason else ""
        copies = f" × {outcome.copies} copies" if outcome.copies > 1 else ""
        text = (
            f"{outcome.title} [{outcome.job_id}]: {outcome.pages_printed} page(s){copies}{again}"
            f" → {outcome.folder}"
        )
        self.console.print(f"[{color}]{outcome.outcome}{escape(reason)}[/{color}] {escape(text)}")
        if outcome.outcome == "cancelled" and outcome.message:
            self.console.print(f"   {escape(outcome.message)}")
        for path in outcome.previews:
            self.console.print(f"   preview {path}")


def announce(
    config: DeviceConfig, agent: DeviceAgent, console: Console, *, once: bool = False
) -> None:
    """Say which printer this is; start the push listener (not for `once`)."""
    console.print(
        f"printer [bold]{escape(config.printer_id)}[/bold] of tenant {escape(config.tenant_id)} "
        f"→ {config.printing_url}, output in {config.out_dir}"
    )
    if config.faults:
        console.print("faults armed: " + ", ".join(str(f) for f in config.faults))
    if config.listen and not once:
        url = agent.start_listener()
        registered = " (registering it as the printer's push_url)" if config.register_push else ""
        console.print(f"push listener: [bold]{url}[/bold]{registered}")


def main(config: DeviceConfig, *, once: bool = False, console: Console | None = None) -> int:
    """`printcloud device`: print what the work list holds (`once`) or keep polling.

    Returns the exit status: 0, or 1 when `once` met an error (nothing final
    happened to some job, or the work list could not be had).
    """
    console = console or Console()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    with console.status("Loading the raster engine…"):
        warm_up()
    display = _Display(console)
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
