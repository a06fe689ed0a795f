"""The printer's calls to the outside: its tokens from the issuer (`auth.client`:
client credentials, scope `device`; the card grant in `cards.py`) and the print
service's device API (`printing.client`, seed 003 S109, S1401, S1413–S1415), with
their errors turned into the device's own (`DeviceError`, `ServiceUnreachable`).
`WorkItem` and `Page` are what the work list and the metafile tell the printer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from printcloud.auth.client import AuthClient, OAuthError
from printcloud.core.logs import get_logger
from printcloud.device.config import SAFE_ID, DeviceConfig, DeviceError, ServiceUnreachable
from printcloud.printing.client import (
    PrintClient,
    PrintServiceError,
    PrintServiceUnreachable,
    Work,
)

__all__ = [
    "MAX_PREVIEW_BYTES",
    "DeviceApi",
    "DeviceTokens",
    "Page",
    "WorkItem",
    "as_device_error",
    "device_errors",
    "issuer_client",
    "print_client",
]

log = get_logger("device.agent")

#: The print service refuses larger previews.
MAX_PREVIEW_BYTES = 2 * 1024 * 1024

T = TypeVar("T")


def issuer_client(config: DeviceConfig, http: httpx.Client) -> AuthClient:
    """The device's OAuth client at its issuer (endpoints from RFC 8414 metadata)."""
    return AuthClient(
        config.issuer_url, client_id=config.client_id, client_secret=config.client_secret, http=http
    )


def print_client(config: DeviceConfig, http: httpx.Client) -> PrintClient:
    return PrintClient(config.printing_url, http=http)


def as_device_error(what: str, exc: Exception) -> DeviceError:
    """The print service's or the issuer's refusal (or silence) as the device's error:
    `what: HTTP 400 (code: why)`; no answer, or a 5xx of the print service, is
    `ServiceUnreachable`."""
    if isinstance(exc, PrintServiceUnreachable):
        return ServiceUnreachable(str(exc), status=exc.status, error=exc.error)
    if isinstance(exc, PrintServiceError):
        return DeviceError(str(exc), status=exc.status, error=exc.error)
    if isinstance(exc, OAuthError):
        detail = ": ".join(part for part in (exc.error, exc.description) if part)
        return DeviceError(
            f"{what}: HTTP {exc.status} ({detail})", status=exc.status, error=exc.error
        )
    if isinstance(exc, httpx.HTTPStatusError):  # the issuer's metadata
        status = exc.response.status_code
        return DeviceError(f"{what}: issuer metadata answered HTTP {status}", status=status)
    if isinstance(exc, httpx.TransportError):
        return ServiceUnreachable(f"{what}: {exc.__class__.__name__}: {exc}")
    return DeviceError(f"{what}: {exc.__class__.__name__}: {exc}")


@contextmanager
def device_errors(what: str) -> Iterator[None]:
    """Re-raise what the clients raise as the device's errors (`as_device_error`)."""
    try:
        yield
    except (PrintServiceError, OAuthError, httpx.HTTPError, ValueError, KeyError) as exc:
        raise as_device_error(what, exc) from exc


class DeviceTokens:
    """The device's client-credentials token (scope `device`), renewed a little before
    it expires and at once when the print service refuses it (`call`)."""

    def __init__(self, issuer: AuthClient) -> None:
        self._issuer = issuer
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def get(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                with device_errors(f"token request of client {self._issuer.client_id}"):
                    tokens = self._issuer.client_credentials(scope="device")
                lifetime = float(tokens.expires_in or 300)
                self._token = tokens.access_token
                # Renew a little early, so a token does not expire in flight.
                self._expires = time.monotonic() + max(1.0, lifetime - min(30.0, lifetime / 10))
            return self._token

    def forget(self) -> None:
        with self._lock:
            self._token = None

    def call(self, what: str, request: Callable[[str], T]) -> T:
        """`request(token)` on the print service; on 401 one new token and one retry."""
        for attempt in (1, 2):
            try:
                with device_errors(what):
                    return request(self.get())
            except DeviceError as exc:
                if exc.status != 401 or attempt == 2:
                    raise
                self.forget()
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class WorkItem:
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
    def parse(cls, data: Any) -> WorkItem:
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
        if not SAFE_ID.match(item.job_id):
            raise DeviceError(f"job id {item.job_id!r:.80} cannot name a folder")
        return item


@dataclass(frozen=True)
class Page:
    number: int
    url: str
    sha256: str | None


class DeviceApi:
    """The print service's device API as this printer, with its client-credentials token."""

    def __init__(self, config: DeviceConfig, http: httpx.Client) -> None:
        self.printer_id = config.printer_id
        self.printing = print_client(config, http)
        self.tokens = DeviceTokens(issuer_client(config, http))

    def work(self) -> Work:
        """¶0112: the work list, each job still to parse (`WorkItem.parse`), and the
        printer's identify requests (handed over once: the service forgets them)."""
        return self.tokens.call(
            "work list", lambda token: self.printing.work(self.printer_id, token=token)
        )

    def started(self, job_id: str) -> bool:
        """S1401: the server agrees the printer starts; False when it refuses (409)."""
        return self.tokens.call(
            "start",
            lambda token: self.printing.started(job_id, token=token, printer_id=self.printer_id),
        )

    def report(
        self, job_id: str, outcome: str, reason: str | None, pages: int, message: str
    ) -> None:
        """S1413/S1414/S1415: tell the server how the job ended (idempotent there)."""
        closed = self.tokens.call(
            "result",
            lambda token: self.printing.result(
                job_id,
                token=token,
                printer_id=self.printer_id,
                outcome=outcome,
                reason=reason[:200] if reason else reason,
                pages_printed=pages,
                message=message[:1000],
            ),
        )
        if closed is not None:
            # Already final on the server (e.g. cancelled by its owner): nothing to add.
            log.info("job %s: the server had closed it (%s)", job_id, closed)

    def upload_preview(self, job_id: str, number: int, png: bytes) -> bool:
        """The page's preview for the user; False when the server no longer wants the job."""
        if len(png) > MAX_PREVIEW_BYTES:
            log.warning("job %s page %d: preview of %d bytes not sent", job_id, number, len(png))
            return True
        return self.tokens.call(
            "preview",
            lambda token: self.printing.upload_preview(job_id, number, png, token=token),
        )

    def set_push_url(self, url: str | None) -> None:
        """S109: where the print service pushes print requests; None: poll only."""
        self.tokens.call(
            "push URL",
            lambda token: self.printing.set_push_url(self.printer_id, url, token=token),
        )
