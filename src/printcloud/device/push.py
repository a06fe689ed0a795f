"""The push listener (seed 003, S109 → S1401): a small HTTP server where the print
service announces a print request (`{"event": "print_request", "job_id": …}`), or an
Identify-Printer request (`{"event": "identify_request"}`, issue 14), so the agent
polls at once instead of at its next tick. Unauthenticated on purpose: a push only
makes the agent poll, and the poll is authenticated."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from printcloud.core.logs import get_logger

__all__ = ["PushListener", "parse_listen"]

log = get_logger("device.push")

#: What the print service announces; either way the agent polls, and learns what it is.
_EVENTS = ("print_request", "identify_request")


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:0` for IPv6) → (host, port); a `ValueError` says what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"listen address {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:0")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    listener: PushListener


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "printcloud-device"

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        listener = self.server.listener
        self._answer(200, {"printer_id": listener.printer_id, "push_url": listener.url})

    def do_POST(self) -> None:
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
        if not isinstance(body, dict) or body.get("event") not in _EVENTS:
            description = 'expected {"event": "print_request" or "identify_request", ...}'
            self._answer(400, {"error": "invalid_request", "error_description": description})
            return
        listener = self.server.listener
        printer = body.get("printer_id")
        if printer is not None and printer != listener.printer_id:
            self._answer(404, {"error": "not_found", "error_description": "unknown printer"})
            return
        listener.on_push(str(body.get("job_id") or ""))
        self._answer(202, {"accepted": True})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("push listener: " + format, *args)


class PushListener:
    """Listens on `listen` (`HOST:PORT`, port 0: any free one) for one printer's print
    requests; each calls `on_push(job_id)`."""

    def __init__(self, listen: str, *, printer_id: str, on_push: Callable[[str], None]) -> None:
        self.printer_id = printer_id
        self.on_push = on_push
        host, port = parse_listen(listen)
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.listener = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="device-push", daemon=True
        )
        self._thread.start()
        log.info("push listener on %s", self.url)

    @property
    def url(self) -> str:
        """The listener's URL, with the port actually bound."""
        address = self._server.server_address
        host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{address[1]}/push"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
