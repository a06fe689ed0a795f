"""The printer's calls to the outside: its tokens from the issuer (`auth.client`:
client credentials, scope `device`; the card grant in `cards.py`) and the print
service's device API (`printing.client`), with their errors turned into the
device's own (`DeviceError`, `ServiceUnreachable`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import httpx

from printcloud.auth.client import AuthClient, OAuthError
from printcloud.device.config import DeviceConfig, DeviceError, ServiceUnreachable
from printcloud.printing.client import PrintClient, PrintServiceError, PrintServiceUnreachable

__all__ = ["DeviceTokens", "as_device_error", "device_errors", "issuer_client", "print_client"]

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
