"""A pure-ASGI lane for Get-Printer-Attributes (issue 14, RFC 8011 §4.2.5), placed in
front of the print service's FastAPI app, as `auth/fastlane.py` is for tokens.

A print dialog asks Get-Printer-Attributes over and over; the framework's per-request
machinery (routing, dependencies, the middleware stack) cost more than the answer
(bench/README.md "Where Get-Printer-Attributes time goes"). This lane answers it with
the same code the route runs (`ipp_operations.get_printer_attributes`: the cached
encodings, with the request's `requested-attributes` selection), from the process's
memo of the queue (`ipp_memo`: no database read while it is fresh). The whole answer
is kept for the current second, by queue, printer status, version and selection, and
the request's request-id spliced into it (so `printer-current-time` and
`printer-up-time` are at most one second old).

It serves a request only when everything the route would check passes: `POST
…/ipp/print/{tenant}/{queue}` with `Content-Type: application/ipp`, no query string,
a body under `MAX_BODY`, the transport policy (`ipp_transport.require_transport`),
a body that decodes and passes RFC 8011 §4.1's checks, the operation
Get-Printer-Attributes, a printer-uri naming this queue, and the queue in the memo
(so it exists in this tenant). Anything else — an unknown tenant or queue, a bad
request, every other operation, a failure here — passes to the route untouched
(with the body it sent), which answers exactly as it always did.
"""

from __future__ import annotations

import time

from starlette.requests import Request as HttpRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from printcloud.core.logs import get_logger
from printcloud.core.web import SecurityHeaders
from printcloud.ipp.encoding import decode
from printcloud.ipp.model import Operation
from printcloud.ipp.operations import Request, check_request, requested_names

from .ipp_operations import HANDLERS, Call, printer_attributes, printer_status
from .ipp_printer import PrinterStatus, QueueFacts
from .ipp_routes import IPP, IppQueues, _targets_queue
from .ipp_transport import require_transport
from .models import QueueRow
from .runtime import PrintingRuntime

log = get_logger("printing.ipp.fastlane")
#: Larger bodies (a Get-Printer-Attributes is a few hundred bytes) go to the route.
MAX_BODY = 64 * 1024
PREFIX = "/ipp/print/"
#: Whole answers kept per second at most (distinct selections of all queues).
MAX_ANSWERS = 1000
#: Marks a request a lane has seen (a fall-through is not looked at twice).
SEEN = "printcloud.ipp_lane"
OPERATIONS = frozenset(HANDLERS)


class IppFastLane:
    def __init__(
        self, app: ASGIApp, *, rt: PrintingRuntime, state: IppQueues, mount: str = ""
    ) -> None:
        """`mount`: where the print service's app is mounted in `app` ("" for the app
        itself; the embedded stack puts a second lane at "/printing" in front of
        everything, and the first lane to see a request is the only one to serve it)."""
        self.app = app
        self.rt = rt
        self.state = state
        self.prefix = mount + PREFIX
        #: This second's answers by (queue, printer status, version, requested-attributes).
        self._answers: dict[tuple[object, ...], bytes] = {}
        self._second = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("query_string")
            and SEEN not in scope
            and _content_type(scope) == IPP.encode()
        ):
            scope[SEEN] = True
            path = _route_path(scope)
            if path.startswith(self.prefix):
                parts = path[len(self.prefix) :].split("/")
                if len(parts) == 2 and all(parts):
                    await self._serve(scope, receive, send, parts[0], parts[1])
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, tenant_id: str, queue: str
    ) -> None:
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= MAX_BODY:
            message = await receive()
            if message["type"] != "http.request":
                more = False
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        answer = None if more else await self._answer(scope, body, tenant_id, queue)
        if answer is None:
            await self.app(scope, _replay(body, more, receive), send)
            return
        headers = answer_headers(len(answer))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, scope: Scope, body: bytes, tenant_id: str, queue: str) -> bytes | None:
        """The answer, or None for the route to give it."""
        found = self.state.memo.facts(tenant_id, queue)
        if found is None:
            return None  # not read lately, or no such queue: the route reads (and refuses)
        try:
            require_transport(HttpRequest(scope), self.rt.settings)
        except Exception:  # the transport's refusal: the route answers it (426)
            return None
        checked = self.checked(body, tenant_id=tenant_id, queue=queue)
        if checked is None:
            return None
        row, facts = found
        try:
            status = await printer_status(self._call(checked, row, facts))
            return self.answer(checked, row, facts, status)
        except Exception:
            log.exception("fast Get-Printer-Attributes failed; the route answers")
            return None

    def checked(self, body: bytes, *, tenant_id: str, queue: str) -> Request | None:
        """`body` decoded and checked (RFC 8011 §4.1) when it is a Get-Printer-Attributes
        of this queue; None for anything else (the route answers it)."""
        try:
            checked = check_request(decode(body), operations=OPERATIONS)
        except Exception:  # IPPError, a decoding failure: the route answers the same way
            return None
        if checked.operation != Operation.GET_PRINTER_ATTRIBUTES:
            return None
        if not _targets_queue(checked.printer_uri, tenant_id=tenant_id, queue=queue):
            return None
        return checked

    def answer(
        self, checked: Request, row: QueueRow, facts: QueueFacts, status: PrinterStatus
    ) -> bytes:
        """The answer to a checked Get-Printer-Attributes: this second's, by queue,
        printer status, version and selection, with the request's request-id."""
        key = (facts, status, checked.message.version, tuple(requested_names(checked.message)))
        second = int(time.time())
        if second != self._second:  # printer-current-time / -up-time: this second's
            self._answers.clear()
            self._second = second
        answer = self._answers.get(key)
        if answer is None:
            answer = printer_attributes(self._call(checked, row, facts), status)
            if len(self._answers) < MAX_ANSWERS:
                self._answers[key] = answer
        # RFC 8010 §3.1.1: the request-id is octets 4-7 of the answer
        return answer[:4] + checked.message.request_id.to_bytes(4, "big") + answer[8:]

    def _call(self, checked: Request, row: QueueRow, facts: QueueFacts) -> Call:
        return Call(
            rt=self.rt,
            request=checked,
            queue=row,
            facts=facts,
            principal=None,
            cache=self.state.cache,
            memo=self.state.memo,
        )


def answer_headers(length: int) -> list[tuple[bytes, bytes]]:
    """The headers of the lane's answer of `length` octets (after the server's Date)."""
    return [
        (b"content-length", str(length).encode()),
        (b"content-type", IPP.encode()),
        *SecurityHeaders.HEADERS,
    ]


def _content_type(scope: Scope) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower()
    return b""


def _route_path(scope: Scope) -> str:
    """The path inside this app (Starlette keeps a mount's prefix in `root_path`)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """`receive` again from the start: what the lane read, then the rest."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": more}
        return await receive()

    return replayed
