"""A tiny IPP server on loopback for the tests: it records every HTTP request body
it receives and answers with printcloud's codec (decode, `check_request`, a few
printer and job attributes), so `ipptool`, `lp` and `lpstat` talk to it as to a
printer. It is a peer for the codec only: no jobs are kept, nothing is printed."""

from __future__ import annotations

import socket
import socketserver
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import BufferedIOBase

from printcloud import ipp
from printcloud.ipp import Attribute, Collection, Group, GroupTag, Operation, ValueTag

CURRENT_TIME = datetime(2026, 12, 7, 4, 5, 6, tzinfo=timezone(timedelta(hours=5, minutes=30)))


@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    body: bytes


def _media_col(width: int, length: int) -> Collection:
    size = Collection(
        [
            Attribute("x-dimension", ValueTag.INTEGER, width),
            Attribute("y-dimension", ValueTag.INTEGER, length),
        ]
    )
    return Collection(
        [
            Attribute("media-size", ValueTag.BEG_COLLECTION, size),
            *(
                Attribute(f"media-{side}-margin", ValueTag.INTEGER, 423)
                for side in ("bottom", "left", "right", "top")
            ),
            Attribute("media-source", ValueTag.KEYWORD, "main"),
            Attribute("media-type", ValueTag.KEYWORD, "stationery"),
        ]
    )


def printer_attributes(uri: str) -> list[Attribute]:
    """What the capture printer says about itself (enough for ipptool and lp)."""
    kw, name, text = ValueTag.KEYWORD, ValueTag.NAME, ValueTag.TEXT
    operations = [
        Operation.PRINT_JOB,
        Operation.VALIDATE_JOB,
        Operation.CREATE_JOB,
        Operation.SEND_DOCUMENT,
        Operation.CANCEL_JOB,
        Operation.GET_JOB_ATTRIBUTES,
        Operation.GET_JOBS,
        Operation.GET_PRINTER_ATTRIBUTES,
        Operation.CANCEL_MY_JOBS,
        Operation.CLOSE_JOB,
        Operation.IDENTIFY_PRINTER,
    ]
    return [
        Attribute("printer-uri-supported", ValueTag.URI, uri),
        Attribute("uri-security-supported", kw, "none"),
        Attribute("uri-authentication-supported", kw, "none"),
        Attribute("printer-name", name, "capture"),
        Attribute("printer-info", text, "printcloud codec test printer"),
        Attribute("printer-location", text, "loopback"),
        Attribute("printer-make-and-model", text, "printcloud capture"),
        Attribute("printer-more-info", ValueTag.URI, uri.replace("ipp://", "http://", 1)),
        Attribute("printer-state", ValueTag.ENUM, ipp.PrinterState.IDLE),
        Attribute("printer-state-reasons", kw, "none"),
        Attribute("printer-is-accepting-jobs", ValueTag.BOOLEAN, True),
        Attribute("printer-up-time", ValueTag.INTEGER, 1000),
        # fixed, so an answer encodes the same twice; an offset, so readers convert it
        Attribute("printer-current-time", ValueTag.DATE_TIME, CURRENT_TIME),
        Attribute("queued-job-count", ValueTag.INTEGER, 0),
        Attribute("operations-supported", ValueTag.ENUM, operations),
        Attribute("charset-configured", ValueTag.CHARSET, "utf-8"),
        Attribute("charset-supported", ValueTag.CHARSET, ["us-ascii", "utf-8"]),
        Attribute("natural-language-configured", ValueTag.NATURAL_LANGUAGE, "en"),
        Attribute("generated-natural-language-supported", ValueTag.NATURAL_LANGUAGE, "en"),
        Attribute("ipp-versions-supported", kw, ["1.1", "2.0", "2.1", "2.2"]),
        Attribute("compression-supported", kw, ["none", "gzip", "deflate"]),
        Attribute("pdl-override-supported", kw, "attempted"),
        Attribute("document-format-default", ValueTag.MIME_MEDIA_TYPE, "application/pdf"),
        Attribute(
            "document-format-supported",
            ValueTag.MIME_MEDIA_TYPE,
            ["application/pdf", "application/octet-stream", "image/jpeg"],
        ),
        Attribute("copies-default", ValueTag.INTEGER, 1),
        Attribute("copies-supported", ValueTag.RANGE_OF_INTEGER, ipp.Range(1, 99)),
        Attribute("sides-default", kw, "one-sided"),
        Attribute("sides-supported", kw, ["one-sided", "two-sided-long-edge"]),
        Attribute("media-default", kw, "iso_a4_210x297mm"),
        Attribute("media-supported", kw, ["iso_a4_210x297mm", "na_letter_8.5x11in"]),
        Attribute("media-col-default", ValueTag.BEG_COLLECTION, _media_col(21000, 29700)),
        Attribute(
            "media-col-database",
            ValueTag.BEG_COLLECTION,
            [_media_col(21000, 29700), _media_col(21590, 27940)],
        ),
        Attribute("printer-resolution-supported", ValueTag.RESOLUTION, ipp.Resolution(300, 300)),
    ]


JOB_CREATING = {Operation.PRINT_JOB, Operation.CREATE_JOB, Operation.PRINT_URI}
JOB_TARGETED = {
    Operation.SEND_DOCUMENT,
    Operation.GET_JOB_ATTRIBUTES,
    Operation.CANCEL_JOB,
    Operation.CLOSE_JOB,
}


class CaptureServer:
    """`with CaptureServer() as server:` — `server.uri`, then `server.captured`."""

    def __init__(self) -> None:
        self.captured: list[Captured] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.connection.settimeout(60)
                try:
                    while outer._serve_one(self.rfile, self.connection):
                        pass
                except (OSError, ValueError):
                    return  # the client hung up, or spoke something else

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.uri = f"ipp://127.0.0.1:{self.port}/ipp/print"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=60)

    def _serve_one(self, rfile: BufferedIOBase, conn: socket.socket) -> bool:
        readline, read = rfile.readline, rfile.read
        line = readline(65537)
        if not line:
            return False
        _method, path, _version = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            header = readline(65537)
            if header in (b"\r\n", b"\n", b""):
                break
            key, _, value = header.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(readline(1024).split(b";")[0], 16)
                if size == 0:
                    while readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(read(size))
                readline(3)
            body = b"".join(chunks)
        else:
            body = read(int(headers.get("content-length", "0")))
        with self._lock:
            self.captured.append(Captured(path, headers, body))
        answer = self.answer(path, body)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/ipp\r\n"
            b"Content-Length: %d\r\n\r\n" % len(answer) + answer
        )
        return headers.get("connection", "").lower() != "close"

    def answer(self, path: str, body: bytes) -> bytes:
        try:
            message = ipp.decode(body)
            ipp.check_request(message)
        except ipp.IPPError as error:
            return ipp.encode(ipp.error_response(error))
        uri = f"ipp://127.0.0.1:{self.port}{path}"
        groups: list[Group] = []
        if message.code == Operation.GET_PRINTER_ATTRIBUTES:
            available = {a.name: a for a in printer_attributes(uri)}
            names, _ = ipp.select_attributes(
                ipp.requested_names(message),
                available,
                target="printer",
                explicit_only={"media-col-database"},
            )
            groups.append(Group(GroupTag.PRINTER, [available[n] for n in names]))
        elif message.code in JOB_CREATING or message.code in JOB_TARGETED:
            groups.append(
                Group(
                    GroupTag.JOB,
                    [
                        Attribute("job-id", ValueTag.INTEGER, 1),
                        Attribute("job-uri", ValueTag.URI, f"{uri}/1"),
                        Attribute("job-state", ValueTag.ENUM, ipp.JobState.COMPLETED),
                        Attribute(
                            "job-state-reasons", ValueTag.KEYWORD, "job-completed-successfully"
                        ),
                    ],
                )
            )
        return ipp.encode(ipp.response(message, groups=groups))
