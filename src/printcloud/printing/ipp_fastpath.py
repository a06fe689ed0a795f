"""Get-Printer-Attributes answered inside the IPP port's protocol (issue 14), before
HTTP parsing and ASGI: the last CPU between the IPP port and ippeveprinter at one
connection was httptools' callbacks, the request's scope and task, and the ASGI
messages (bench/README.md, "IPP's own port, served on the event loop").

A segment that holds exactly one simple request is recognised here (`simple_request`):
`POST /ipp/print/{tenant}/{queue} HTTP/1.1`, only the ordinary headers a print client
sends (Host once, Content-Type `application/ipp`, Content-Length matching the rest of
the segment, keep-alive), operation Get-Printer-Attributes in the IPP header
(RFC 8010 §3.1.1). It is answered by `FastAnswers` from what the fast lane
(`ipp_fastlane`) answered to the same request body this second, for the queue's facts
and printer status the memo holds now (`ipp_memo`), with the request's request-id
spliced in. The first such body of each second is decoded, checked and answered by the
lane's own code (`IppFastLane.checked`, `.answer`), so the answer is the one the full
path gives, byte for byte (its head as uvicorn writes it: status line, Date, the lane's
headers).

Everything else goes to the HTTP parser untouched, and from there to the lane or the
print service: a request split over segments or pipelined with another, a chunked body,
`Expect`, `Connection: close`, HTTP/1.0, a query string or an escaped path, any other
header (X-Forwarded-* included: the transport policy then needs the full path), any
other operation, a body the lane would not answer (bad version, another queue's
printer-uri), a queue the memo does not hold, a connection the transport policy
(`ipp_transport`) refuses, one whose writes are paused, or one with a request in
progress. Get-Printer-Attributes needs no credentials on the full path either
(`ipp_operations.ANONYMOUS`): an Authorization header is ignored on both alike; every
other operation is authenticated by the full path.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings

from .ipp_fastlane import MAX_BODY, IppFastLane, answer_headers
from .ipp_printer import PrinterStatus, QueueFacts
from .ipp_transport import plain_allowed, transport_of

log = get_logger("printing.ipp.fastpath")
_REQUEST_LINE = re.compile(rb"POST /ipp/print/([A-Za-z0-9._~-]+)/([A-Za-z0-9._~-]+) HTTP/1\.1")
_NAME = re.compile(rb"[A-Za-z0-9-]+")
_VALUE = re.compile(rb"[\t\x20-\x7e]*")
#: The headers a simple request may carry; any other sends it to the full path.
ORDINARY = frozenset(
    {
        b"host",
        b"content-type",
        b"content-length",
        b"connection",
        b"authorization",
        b"user-agent",
        b"accept",
        b"accept-encoding",
        b"accept-language",
        b"date",
    }
)
#: Of those, the ones given at most once (Host exactly once).
ONCE = frozenset({b"host", b"content-type", b"content-length", b"connection"})
#: RFC 8010 §3.1.1: version-number (2 octets), operation-id (2), request-id (4).
GET_PRINTER_ATTRIBUTES = b"\x00\x0b"
#: This second's answers kept at most (distinct request bodies of all queues).
MAX_ANSWERS = 1000
STATUS_LINE = b"HTTP/1.1 200 OK\r\n"


@dataclass(frozen=True, slots=True)
class Simple:
    """A simple request's queue and IPP body."""

    tenant_id: str
    queue: str
    body: bytes


def simple_request(data: bytes) -> Simple | None:
    """The one simple Get-Printer-Attributes request `data` holds, or None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    target = _REQUEST_LINE.fullmatch(lines[0])
    if target is None:
        return None
    seen: set[bytes] = set()
    length = -1
    for line in lines[1:]:
        raw, colon, value = line.partition(b":")
        name = raw.lower()
        if not colon or _NAME.fullmatch(raw) is None or name not in ORDINARY:
            return None
        if name in seen and name in ONCE:
            return None
        seen.add(name)
        value = value.strip(b" \t")
        if _VALUE.fullmatch(value) is None:
            return None
        if name == b"content-length":
            if not value.isdigit():
                return None
            length = int(value)
        elif name == b"content-type":
            if value.split(b";", 1)[0].strip().lower() != b"application/ipp":
                return None
        elif name == b"connection" and value.lower() != b"keep-alive":
            return None
    body = data[end + 4 :]
    if b"host" not in seen or b"content-type" not in seen or length != len(body):
        return None
    if length > MAX_BODY or length < 8 or body[2:4] != GET_PRINTER_ATTRIBUTES:
        return None
    return Simple(target[1].decode("ascii"), target[2].decode("ascii"), body)


@dataclass(frozen=True, slots=True)
class _Kept:
    facts: QueueFacts
    status: PrinterStatus
    response: bytes
    #: Where the answer's request-id starts in `response`.
    request_id_at: int


class FastAnswers:
    """The IPP port's Get-Printer-Attributes answers of this second, shared by its
    connections."""

    def __init__(self, lane: IppFastLane, settings: Settings) -> None:
        self.lane = lane
        self.settings = settings
        self._kept: dict[tuple[str, str, bytes], _Kept] = {}
        self._second = 0
        self._date: object = None

    def plain_allowed(self, peer: str | None, scheme: str) -> bool:
        """The transport policy for a connection whose request has no forwarded headers
        (a simple request has none): the same answer for each of its requests."""
        transport = transport_of(
            peer=peer, scheme=scheme, headers={}, trusted_proxies=self.settings.trusted_proxies
        )
        return plain_allowed(transport, allow_plain=self.settings.ipp_allow_plain)

    def response(self, request: Simple, date_headers: list[tuple[bytes, bytes]]) -> bytes | None:
        """The whole HTTP answer to `request`, or None for the full path to give it.
        `date_headers`: the server's headers of this moment (uvicorn's Date)."""
        memo = self.lane.state.memo
        found = memo.facts(request.tenant_id, request.queue)
        if found is None:
            return None
        row, facts = found
        status = memo.status(facts)
        if status is None:
            return None
        second = int(time.time())
        if second != self._second or date_headers is not self._date:
            self._kept.clear()
            self._second, self._date = second, date_headers
        body = request.body
        key = (request.tenant_id, request.queue, body[:4] + body[8:])
        kept = self._kept.get(key)
        if kept is None or kept.facts is not facts or kept.status != status:
            checked = self.lane.checked(body, tenant_id=request.tenant_id, queue=request.queue)
            if checked is None:
                return None
            try:
                answer = self.lane.answer(checked, row, facts, status)
            except Exception:
                log.exception("fast Get-Printer-Attributes failed; the full path answers")
                return None
            head = [STATUS_LINE]
            for name, value in (*date_headers, *answer_headers(len(answer))):
                head += [name, b": ", value, b"\r\n"]
            head.append(b"\r\n")
            head_bytes = b"".join(head)
            kept = _Kept(facts, status, head_bytes + answer, len(head_bytes) + 4)
            if len(self._kept) < MAX_ANSWERS:
                self._kept[key] = kept
        at = kept.request_id_at
        return kept.response[:at] + body[4:8] + kept.response[at + 4 :]
