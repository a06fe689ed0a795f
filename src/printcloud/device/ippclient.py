"""IPP over HTTP as a client (RFC 8010 §4, RFC 8011 §4.1), for the virtual printer's INFRA
mode (issue 15): requests built and answers read with printcloud's own codec
(`printcloud.ipp`), sent with the device's httpx client. Used both towards printcloud's
Infrastructure Printer (with the device's bearer token, `infra.py`) and towards the
office printer a proxy forwards to (`forward.py`).

A transport failure or an HTTP 5xx is `ServiceUnreachable` (tried again later); another
HTTP status, or a body that is not IPP, is `DeviceError` carrying the status (a 401 lets
`DeviceTokens.call` renew the token). The IPP status of a decoded answer is the caller's
to judge (`IppAnswer.ok`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import count
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from printcloud.device.config import DeviceError, ServiceUnreachable
from printcloud.ipp.encoding import Limits, decode, encode
from printcloud.ipp.message import Attribute, Group, GroupTag, IPPError, Message
from printcloud.ipp.model import Operation, Status
from printcloud.ipp.operations import request as ipp_request

__all__ = ["IppAnswer", "IppChannel", "http_url"]

#: An answer's attributes may be large (a printer's whole Get-Printer-Attributes); the
#: document data after them (Fetch-Document) is not bounded by this.
ANSWER_LIMITS = Limits(max_size=4 << 20)


def http_url(uri: str) -> str:
    """`ipp://h:p/x` → `http://h:p/x`, `ipps://` → `https://` (RFC 8010 §4.4.2: port 631
    when none is given); an `http(s)://` URI stays as it is. A `ValueError` names a URI
    of any other scheme."""
    parts = urlsplit(uri)
    scheme = {"ipp": "http", "ipps": "https", "http": "http", "https": "https"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise ValueError(f"{uri!r} is not an ipp://, ipps://, http:// or https:// URI")
    netloc = parts.netloc
    if parts.scheme in ("ipp", "ipps") and parts.port is None:
        netloc = f"{netloc}:631"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


@dataclass(frozen=True)
class IppAnswer:
    """A decoded IPP response."""

    message: Message

    @property
    def status(self) -> int:
        return self.message.code

    @property
    def ok(self) -> bool:
        return self.message.code < 0x0100  # successful-ok and its -ignored-… variants

    @property
    def status_name(self) -> str:
        try:
            return Status(self.message.code).name.lower().replace("_", "-")
        except ValueError:
            return f"0x{self.message.code:04x}"

    @property
    def status_message(self) -> str:
        return str(self.message.value(GroupTag.OPERATION, "status-message", "") or "")

    def describe(self) -> str:
        text = self.status_message
        return self.status_name + (f" ({text})" if text else "")

    def value(self, tag: int, name: str, default: Any = None) -> Any:
        return self.message.value(tag, name, default)

    def values(self, tag: int, name: str) -> list[Any]:
        attribute = self.message.get(tag, name)
        return list(attribute.values) if attribute is not None else []


class IppChannel:
    """Requests to one IPP URI. `printer_uri` is what goes in the request's `printer-uri`."""

    def __init__(
        self,
        printer_uri: str,
        http: httpx.Client,
        *,
        timeout: httpx.Timeout | float | None = None,
    ) -> None:
        self.printer_uri = printer_uri
        self.url = http_url(printer_uri)
        self._http = http
        self._timeout = timeout
        self._ids = count(1)

    def send(
        self,
        operation: Operation,
        attributes: Iterable[Attribute] = (),
        groups: Iterable[Group] = (),
        *,
        data: bytes = b"",
        user: str | None = None,
        bearer: str | None = None,
        timeout: float | None = None,
    ) -> IppAnswer:
        """`operation` with `attributes` in the operation group, then `groups` and `data`;
        `bearer`: an OAuth token (RFC 6750) for the Authorization header."""
        name = operation.name.replace("_", "-").title()
        body = encode(
            ipp_request(
                operation,
                printer_uri=self.printer_uri,
                requesting_user_name=user,
                attributes=attributes,
                groups=groups,
                request_id=next(self._ids) & 0x7FFFFFFF or 1,
            )
        )
        if data:
            body += data
        headers = {"Content-Type": "application/ipp"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            resp = self._http.post(
                self.url,
                content=body,
                headers=headers,
                timeout=timeout
                if timeout is not None
                else self._timeout or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise ServiceUnreachable(
                f"{name} at {self.url}: {exc.__class__.__name__}: {exc}"
            ) from exc
        if resp.status_code >= 500:
            raise ServiceUnreachable(
                f"{name} at {self.url}: HTTP {resp.status_code}", status=resp.status_code
            )
        if resp.status_code != 200:
            raise DeviceError(
                f"{name} at {self.url}: HTTP {resp.status_code} {resp.text[:200]!r}",
                status=resp.status_code,
            )
        try:
            message = decode(resp.content, limits=ANSWER_LIMITS)
        except IPPError as exc:
            raise DeviceError(f"{name} at {self.url}: not an IPP answer: {exc}") from exc
        return IppAnswer(message)
