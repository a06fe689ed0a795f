"""IPP's own listener (issue 14): a port of its own for the queues, as CUPS listens on
631, served on the event loop that already runs the print service.

Why: the HTTP server of `printcloud serve` (granian) hands each request from its Rust
threads to the event loop and back, about 13 thread wake-ups per Get-Printer-Attributes
on the one core the benchmark pins it to, where CUPS's `ippeveprinter` takes one
(bench/README.md, "Where one connection's time goes"). Here a connection is an
`asyncio.Protocol` on the loop itself: a cached Get-Printer-Attributes is read, answered
from the fast lane's cache (`ipp_fastlane`) and written, on one thread.

HTTP/1.1 is uvicorn's `httptools` protocol (RFC 9112 as llhttp parses it: chunked
bodies, as CUPS sends Print-Job; `Expect: 100-continue`; keep-alive; pipelining;
header limits; a request with both Content-Length and Transfer-Encoding refused, no
smuggling), run without uvicorn's server loop: this module starts and stops it with the
print service, keeps its Date header current, and serves TLS (IPPS, TLS 1.2 at least, RFC
7472) with the certificate of `printcloud serve` (core/tls.py). Before the parser: a
segment holding one simple Get-Printer-Attributes is answered by the protocol itself
(`ipp_fastpath`). Behind the parser: the IPP fast lane, then the print service's own app
for every other operation; a path outside `/ipp/` is answered 404 (the console, API and
sign-in stay on the main port).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import cast

from starlette.types import ASGIApp, Receive, Scope, Send

from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings
from printcloud.core.web import SecurityHeaders

from .ipp_fastlane import IppFastLane
from .ipp_fastpath import FastAnswers, simple_request
from .ipp_routes import IppQueues
from .runtime import PrintingRuntime

log = get_logger("printing.ipp.listener")
#: What the listener answers under; everything else is the main port's.
IPP_PREFIX = "/ipp/"
#: How long an idle kept-alive connection stays open (CUPS's KeepAliveTimeout default).
KEEP_ALIVE_SECONDS = 30
#: How long a stop waits for the requests in progress before cancelling them.
GRACE_SECONDS = 30


class IppOnly:
    """The print service's app for `/ipp/…` paths; 404 for any other path on this port."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(IPP_PREFIX):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "error": "not_found",
                "error_description": "this port serves IPP queues only "
                "(/ipp/print/{tenant}/{queue}); the console and API are on the main port",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *SecurityHeaders.HEADERS,
        ]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class CoalescedWrites:
    """A connection's transport whose writes of one turn of the loop leave in one
    `send`: an answer's head and body (two ASGI messages, two writes in uvicorn) are one
    segment and one wake-up of the client, not two. The bytes and their order are
    unchanged; a close sends what is pending first."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def write_now(self, data: bytes) -> None:
        """`data` sent at once, after anything pending."""
        self._pending.append(data)
        self.flush()

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


def _protocol_class(
    base: type[asyncio.Protocol], fast: FastAnswers | None
) -> type[asyncio.Protocol]:
    """`base` (uvicorn's protocol) writing through `CoalescedWrites`, and answering a
    simple Get-Printer-Attributes from `fast` before its HTTP parser (`ipp_fastpath`)."""

    class Protocol(base):  # type: ignore[valid-type,misc]
        #: The parser is between requests (nothing of a next one fed to it yet).
        between = True
        plain_ok: bool | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's transports are not asyncio.Transport subclasses, but are ones
            super().connection_made(CoalescedWrites(cast(asyncio.Transport, transport)))

        def on_message_begin(self) -> None:
            self.between = False
            super().on_message_begin()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self.between = True

        def data_received(self, data: bytes) -> None:
            if fast is not None and self.between and not self.pipeline:
                cycle = self.cycle
                if (cycle is None or cycle.response_complete) and self._answered(data):
                    return
            super().data_received(data)

        def _answered(self, data: bytes) -> bool:
            """Whether `data` was one simple Get-Printer-Attributes, now answered."""
            assert fast is not None
            request = simple_request(data)
            if request is None or self.flow.write_paused or self.transport.is_closing():
                return False
            if self.plain_ok is None:
                self.plain_ok = fast.plain_allowed(
                    self.client[0] if self.client else None, self.scheme or "http"
                )
            if not self.plain_ok:
                return False  # the full path answers 426
            response = fast.response(request, self.server_state.default_headers)
            if response is None:
                return False
            # as uvicorn does for a kept-alive request: the idle timer is stopped while
            # the request is served and armed again once it is answered
            self._unset_keepalive_if_required()
            self.transport.write_now(response)
            self.server_state.total_requests += 1
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
            return True

    return Protocol


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for IPPS: TLS 1.2 at least (RFC 7472), the given chain and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


class IppListener:
    """The IPP port: `await start()` on the serving loop, `await stop()` before it ends."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        fast: FastAnswers | None = None,
    ) -> None:
        """`fast`: simple Get-Printer-Attributes answered before HTTP parsing
        (`ipp_fastpath`); None: every request is parsed and goes to `app`."""
        from uvicorn import Config
        from uvicorn.server import ServerState

        # log_config=None: printcloud's logging stays as configured; no access log (as the
        # main port); the transport policy reads X-Forwarded-* itself (trusted_proxies).
        self.config = Config(
            app,
            http="httptools",
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            date_header=True,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self.config.load()
        self.config.ssl = tls
        self.protocol_class = _protocol_class(self.config.http_protocol_class, fast)
        self.state = ServerState()
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self._servers: list[asyncio.Server] = []
        self._clock: asyncio.Task[None] | None = None

    @property
    def ports(self) -> list[int]:
        """The ports listened on (the one asked for, or the one picked for port 0)."""
        return [s.getsockname()[1] for server in self._servers for s in server.sockets]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._date()
        protocol: Callable[[], asyncio.Protocol] = self._protocol
        self._servers = [
            await loop.create_server(
                protocol,
                host=self.host,
                port=self.port,
                ssl=self.config.ssl,
                backlog=self.config.backlog,
                reuse_port=self.reuse_port or None,
            )
        ]
        self._clock = asyncio.create_task(self._keep_date())
        log.info(
            "IPP listener started",
            extra={"fields": {"ports": self.ports, "tls": self.config.ssl is not None}},
        )

    def _protocol(self) -> asyncio.Protocol:
        made: asyncio.Protocol = self.protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.state, app_state={}
        )
        return made

    def _date(self) -> None:
        """The Date header every answer carries (RFC 9110 §6.6.1), this second's."""
        now = formatdate(time.time(), usegmt=True).encode()
        self.state.default_headers = [(b"date", now)]

    async def _keep_date(self) -> None:
        # one wake-up a second, just after the second turns, whatever the traffic
        while True:
            await asyncio.sleep(1.0 - time.time() % 1.0 + 0.001)
            self._date()

    async def stop(self, *, grace: float = GRACE_SECONDS) -> None:
        """Stop accepting, close idle connections, let the requests in progress finish
        (within `grace` seconds, then they are cancelled), and end."""
        for server in self._servers:
            server.close()
        for connection in list(self.state.connections):
            connection.shutdown()
        deadline = time.monotonic() + grace
        while (self.state.connections or self.state.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        cut = len(self.state.tasks) + len(self.state.connections)
        for task in list(self.state.tasks):
            task.cancel()
        for connection in list(self.state.connections):  # slower than the grace: closed
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=5)
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        if cut:
            log.warning(
                "IPP listener stopped with requests cut short",
                extra={"fields": {"requests_and_connections": cut}},
            )
        else:
            log.info("IPP listener stopped")


def ipp_listener(
    settings: Settings, *, app: ASGIApp, rt: PrintingRuntime, queues: IppQueues
) -> IppListener | None:
    """The listener `settings` ask for (`PRINTCLOUD_IPP_PORT`), or None when it is off.

    `app` is the print service's app (routes at `/ipp/print/…`), `queues` its IPP state."""
    if not settings.ipp_port:
        return None
    tls = None
    if settings.serves_tls:
        from printcloud.core.tls import server_certificate

        cert = server_certificate(settings)
        tls = tls_context(cert.cert, cert.key)
    lanes = IppFastLane(IppOnly(app), rt=rt, state=queues)
    # several HTTP worker processes (a print service without workflows) share the port
    return IppListener(
        lanes,
        fast=FastAnswers(lanes, settings),
        host=settings.host,
        port=settings.ipp_port,
        tls=tls,
        reuse_port=settings.http_workers > 1 and hasattr(socket, "SO_REUSEPORT"),
    )
