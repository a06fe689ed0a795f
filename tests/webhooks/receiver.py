"""A webhook receiver on loopback that verifies every delivery with the Standard Webhooks
reference implementation (`standardwebhooks`, from PyPI), as a subscriber would.

Each path behaves as its test needs: `ok` answers 204; `fail-first` answers 500 to a
message's first attempt, then 204; `hang-first` holds a message's first attempt without
answering (until `release` or the test's end), then answers 204; `hang-once` holds only
the path's very first request, never answering it (the test kills the sender meanwhile),
then answers 204; `down` always answers 500 with a body longer than the log keeps.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: What each secret of the path said: the parsed body, or the refusal.
    verified: dict[str, Any]


@dataclass
class Receiver:
    url: str
    #: path -> the secrets the receiver holds for it (a rotation adds one).
    secrets: dict[str, list[str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def verify(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        said: dict[str, Any] = {}
        for secret in self.secrets.get(path, []):
            try:
                said[secret] = Webhook(secret).verify(body, headers)
            except WebhookVerificationError as exc:
                said[secret] = exc
        return said


@contextmanager
def receiver() -> Iterator[Receiver]:
    seen: dict[tuple[str, str], int] = {}
    on_path: dict[str, int] = {}
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            live = state["r"]
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.strip("/")
            with live.lock:
                live.received.append(
                    Received(path, headers, body, live.verify(path, headers, body))
                )
                key = (path, headers.get("webhook-id", ""))
                seen[key] = seen.get(key, 0) + 1
                first = seen[key] == 1
                on_path[path] = on_path.get(path, 0) + 1
                very_first = on_path[path] == 1
            kind = path.split("/", 1)[0]
            if (kind == "hang-first" and first) or (kind == "hang-once" and very_first):
                live.release.wait(60)  # the sender gave up long before, or is gone
                return
            if kind == "down" or (kind == "fail-first" and first):
                answer = b"receiver is down " * 100
                self.send_response(500)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                return
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    live = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    state["r"] = live
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield live
    finally:
        live.release.set()
        server.shutdown()
        server.server_close()
