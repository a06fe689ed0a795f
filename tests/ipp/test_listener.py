"""IPP's own port (`PRINTCLOUD_IPP_PORT`, printing/ipp_listener.py) against a real
`printcloud serve`: HTTP/1.1 as print clients use it (keep-alive, pipelining, a chunked
Print-Job as CUPS sends it, `Expect: 100-continue`), the Date header, paths outside
`/ipp/` refused, malformed requests answered without a 5xx, IPPS with the certificate
`serve` made, and a graceful stop that answers the request in progress.

ipptool's suites and CUPS run against this port too: `ipp_world` (conftest) is
parametrised by listener. No timing is asserted; waits poll with 60 s deadlines.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from printcloud.core.settings import Settings
from printcloud.ipp.encoding import decode
from printcloud.ipp.message import Attribute, ValueTag
from printcloud.ipp.model import Operation, Status
from printcloud.printing.queues import queue_uri
from tests.conftest import free_port, require_peer
from tests.helpers.cli import run_cli
from tests.helpers.print_stack import PrintStack, print_stacks
from tests.helpers.printing import make_pdf
from tests.ipp.client import request

USER, PASSWORD = "alice", "correct horse"
IPP_TYPE = {"Content-Type": "application/ipp"}
GET_PRINTER_ATTRIBUTES = Path("/usr/share/cups/ipptool/get-printer-attributes.test")


@dataclass
class Listener:
    stack: PrintStack
    tenant: str
    port: int

    @property
    def path(self) -> str:
        return f"/ipp/print/{self.tenant}/lobby"

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}{self.path}"


def _listening(stack: PrintStack) -> Listener:
    from printcloud.printing import queues

    tenant = stack.tenant()
    stack.user(tenant, USER, PASSWORD)
    device, _ = stack.client(tenant, kind="device", scope="device print")
    stack.printer(tenant, "color-1", client_id=device)  # where follow-me jobs may print
    with stack.db.session() as db:
        queues.add_queue(db, tenant_id=tenant, name="lobby", printer_id=None)  # follow-me
    return Listener(stack=stack, tenant=tenant, port=stack.settings.ipp_port)


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    with print_stacks(tmp_path_factory) as make:
        yield _listening(make(workers=1, ipp_port=free_port(), background_nice=10))


def _gpa(uri: str, request_id: int = 7) -> bytes:
    names = Attribute("requested-attributes", ValueTag.KEYWORD, ["printer-uri-supported"])
    return request(Operation.GET_PRINTER_ATTRIBUTES, uri, ops=[names], request_id=request_id)


def _print_job(uri: str) -> bytes:
    ops = [
        Attribute("job-name", ValueTag.NAME, "chunked"),
        Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, "application/pdf"),
    ]
    return request(Operation.PRINT_JOB, uri, ops=ops, data=make_pdf(1))


def _basic() -> str:
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def _read_response(stream: Any) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer from a socket's file: status, headers (lower-case), body."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return status, headers, body


def _uri_supported(body: bytes) -> str:
    message = decode(body)
    assert message.status == Status.SUCCESSFUL_OK, message
    (uri,) = [a.values[0] for g in message.groups for a in g if a.name == "printer-uri-supported"]
    return str(uri)


# -- the URIs ------------------------------------------------------------------------------


def test_the_queues_uris_name_the_ipp_port(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path, "port": 8000, "public_url": "http://print.example.com:8000"}
    off = Settings(**base)
    assert off.ipp_url == "http://print.example.com:8000/printing"
    assert queue_uri(off.ipp_url, tenant_id="t 1", name="q") == (
        "ipp://print.example.com:8000/printing/ipp/print/t%201/q"
    )
    on = Settings(**base, ipp_port=8631)
    assert queue_uri(on.ipp_url, tenant_id="t1", name="q") == (
        "ipp://print.example.com:8631/ipp/print/t1/q"
    )
    secure = Settings(**{**base, "public_url": "https://print.example.com"}, tls=True, ipp_port=631)
    assert queue_uri(secure.ipp_url, tenant_id="t1", name="q") == (
        "ipps://print.example.com:631/ipp/print/t1/q"
    )
    v6 = Settings(**{**base, "public_url": "http://[::1]:8000"}, ipp_port=8631)
    assert v6.ipp_url == "http://[::1]:8631"
    with pytest.raises(ValueError, match="PRINTCLOUD_IPP_PORT"):
        Settings(**base, ipp_port=8000)


def test_the_cli_lists_the_ipp_port_uri(listener: Listener) -> None:
    listed = run_cli(
        dict(listener.stack.env), "admin", "--json", "queue", "list", "--tenant", listener.tenant
    )
    assert listed.returncode == 0, listed.stderr
    (queue,) = json.loads(listed.stdout)
    assert queue["uri"] == listener.uri
    assert queue["add_linux"] == f"lpadmin -p lobby -E -v {listener.uri} -m everywhere"


# -- HTTP/1.1 as print clients use it ------------------------------------------------------


def test_keep_alive_pipelining_and_the_date_header(listener: Listener) -> None:
    body = _gpa(listener.uri)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=60) as sock:
        stream = sock.makefile("rb")
        one = (
            f"POST {listener.path} HTTP/1.1\r\nHost: 127.0.0.1:{listener.port}\r\n"
            f"Content-Type: application/ipp\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        sock.sendall(one)
        status, headers, answer = _read_response(stream)
        assert status == 200 and headers["content-type"] == "application/ipp"
        # the queue advertises this port
        assert _uri_supported(answer) == listener.uri
        assert "server" not in headers
        sent = parsedate_to_datetime(headers["date"])  # RFC 9110 §5.6.7 IMF-fixdate
        assert sent.tzinfo is not None and abs(time.time() - sent.timestamp()) < 3600
        # the same connection again, then two requests written at once (pipelined)
        sock.sendall(one)
        assert _read_response(stream)[0] == 200
        sock.sendall(one + one)
        assert [_read_response(stream)[0] for _ in range(2)] == [200, 200]
        # the request-id of each answer is its request's
        other = _gpa(listener.uri, request_id=4242)
        sock.sendall(
            (
                f"POST {listener.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\n"
                f"Content-Length: {len(other)}\r\n\r\n"
            ).encode()
            + other
        )
        assert decode(_read_response(stream)[2]).request_id == 4242


def test_a_chunked_print_job_with_expect_100_continue(listener: Listener) -> None:
    """As CUPS's ipp backend sends a Print-Job: chunked, after `100 Continue`."""
    body = _print_job(listener.uri)
    conn = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=60)
    try:
        pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
        assert len(pieces) > 2
        conn.request(
            "POST",
            listener.path,
            body=iter(pieces),
            headers={**IPP_TYPE, "Authorization": _basic(), "Expect": "100-continue"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        answer = resp.read()
        assert resp.status == 200, answer[:300]
        message = decode(answer)
        assert message.status == Status.SUCCESSFUL_OK, message
        job_id = next(a.values[0] for g in message.groups for a in g if a.name == "job-id")
        # answered after the commit: the job is there (pending, then held for its owner)
        attrs = request(
            Operation.GET_JOB_ATTRIBUTES,
            listener.uri,
            ops=[Attribute("job-id", ValueTag.INTEGER, job_id)],
        )
        signed = {**IPP_TYPE, "Authorization": _basic()}
        conn.request("POST", listener.path, body=attrs, headers=signed)
        again = conn.getresponse()
        job = decode(again.read())
        assert again.status == 200 and job.status == Status.SUCCESSFUL_OK, job
        state = next(a.values[0] for g in job.groups for a in g if a.name == "job-state")
        assert state in (3, 4), state  # pending, or pending-held (follow-me)
    finally:
        conn.close()


def test_only_ipp_paths_are_served(listener: Listener) -> None:
    base = f"http://127.0.0.1:{listener.port}"
    for path in ("/", "/printing/healthz", "/idp-a/token", "/printing/ipp/print/x/y"):
        got = httpx.get(base + path, timeout=60)
        assert got.status_code == 404, (path, got.text)
        assert got.json()["error"] == "not_found"
    # an unknown queue is the print service's own IPP answer (client-error-not-found)
    missing = f"ipp://127.0.0.1:{listener.port}/ipp/print/{listener.tenant}/nope"
    got = httpx.post(
        base + f"/ipp/print/{listener.tenant}/nope", content=_gpa(missing), headers=IPP_TYPE
    )
    assert got.status_code == 200
    assert decode(got.content).status == Status.CLIENT_ERROR_NOT_FOUND


MALFORMED: dict[str, bytes] = {
    "no request line": b"\r\n\r\nHELLO\r\n\r\n",
    "not HTTP": b"HELLO WORLD\r\n\r\n",
    "both lengths (smuggling)": (
        b"POST /ipp/print/T/lobby HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "bad chunk size": (
        b"POST /ipp/print/T/lobby HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    ),
    "two content lengths": (
        b"POST /ipp/print/T/lobby HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\n"
        b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    ),
    "header without colon": b"POST /ipp/print/T/lobby HTTP/1.1\r\nHost x\r\n\r\n",
    "not IPP": (
        b"POST /ipp/print/T/lobby HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\n"
        b"Content-Length: 9\r\n\r\nnot ipp!!"
    ),
    "truncated IPP": (
        b"POST /ipp/print/T/lobby HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\n"
        b"Content-Length: 5\r\n\r\n\x02\x00\x00\x0b\x00"
    ),
    "wrong content type": (
        b"POST /ipp/print/T/lobby HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 2\r\n\r\nhi"
    ),
    "GET a queue": b"GET /ipp/print/T/lobby HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_request_is_never_a_server_error(listener: Listener, case: str) -> None:
    raw = MALFORMED[case].replace(b"/T/", f"/{listener.tenant}/".encode())
    with socket.create_connection(("127.0.0.1", listener.port), timeout=60) as sock:
        sock.sendall(raw)
        first = sock.makefile("rb").readline()
    assert first.startswith(b"HTTP/1.1 "), (case, first)
    status = int(first.split()[1])
    assert 200 <= status < 500, (case, first)
    if case in ("both lengths (smuggling)", "bad chunk size", "two content lengths"):
        assert status == 400, (case, first)
    # and the listener still serves
    got = httpx.post(
        f"http://127.0.0.1:{listener.port}{listener.path}",
        content=_gpa(listener.uri),
        headers=IPP_TYPE,
        timeout=60,
    )
    assert got.status_code == 200 and _uri_supported(got.content) == listener.uri


# -- IPPS ----------------------------------------------------------------------------------


def test_ipps_on_the_listener_with_the_generated_certificate(
    make_print_stack: Any, tmp_path: Path
) -> None:
    require_peer(
        shutil.which("ipptool") is not None and GET_PRINTER_ATTRIBUTES.exists(),
        "ipptool (cups-ipp-utils) is not installed",
    )
    stack = make_print_stack(workers=1, tls=True, ipp_port=free_port())
    world = _listening(stack)
    secure = f"ipps://127.0.0.1:{world.port}{world.path}"
    assert stack.settings.ipp_url == f"https://127.0.0.1:{world.port}"

    # an HTTPS client that checks the certificate against the file `serve` made
    url = f"https://127.0.0.1:{world.port}{world.path}"
    got = httpx.post(url, content=_gpa(secure), headers=IPP_TYPE, verify=stack.verify)
    assert got.status_code == 200 and _uri_supported(got.content) == secure
    # TLS 1.2 clients are served (RFC 7472), and there is no plain listener on the port
    legacy = ssl.create_default_context(cafile=str(stack.settings.data_dir / "tls" / "cert.pem"))
    legacy.maximum_version = ssl.TLSVersion.TLSv1_2
    assert httpx.post(url, content=_gpa(secure), headers=IPP_TYPE, verify=legacy).status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.post(url.replace("https", "http", 1), content=_gpa(secure), headers=IPP_TYPE)

    # ipptool over ipps:// (CUPS pinned to TLS 1.2: docs/ipp.md, "Known client problem")
    home = tmp_path / "home"
    (home / ".cups").mkdir(parents=True)
    (home / ".cups" / "client.conf").write_text("SSLOptions MaxTLS1.2\n")
    run = subprocess.run(
        ["ipptool", "-tv", "-T", "60", secure, str(GET_PRINTER_ATTRIBUTES)],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"printer-uri-supported (uri) = {secure}" in run.stdout
    assert "uri-security-supported (keyword) = tls" in run.stdout


# -- stopping ------------------------------------------------------------------------------


def test_serve_refuses_an_ipp_port_in_use(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        main = free_port()
        env = {
            **os.environ,
            "PRINTCLOUD_DATA_DIR": str(tmp_path),
            "PRINTCLOUD_PORT": str(main),
            "PRINTCLOUD_PUBLIC_URL": f"http://127.0.0.1:{main}",
            "PRINTCLOUD_IPP_PORT": str(port),
        }
        done = subprocess.run(
            [sys.executable, "-m", "printcloud", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"PRINTCLOUD_IPP_PORT: cannot listen on 127.0.0.1:{port}" in " ".join(
        (done.stdout + done.stderr).split()
    )


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError:
        return True
    return False


def test_a_stop_answers_the_request_in_progress(make_print_stack: Any) -> None:
    """SIGTERM while a request's body is half sent and another connection idles: the
    listener stops accepting, closes the idle connection, answers the request once its
    body is complete (then closes that connection too), and the server exits."""
    stack = make_print_stack(workers=1, ipp_port=free_port())
    world = _listening(stack)
    body = _gpa(world.uri)
    head = (
        f"POST {world.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    idle = socket.create_connection(("127.0.0.1", world.port), timeout=60)
    busy = socket.create_connection(("127.0.0.1", world.port), timeout=60)
    try:
        idle.sendall(head + body)
        idle_stream = idle.makefile("rb")
        assert _read_response(idle_stream)[0] == 200  # kept alive, now idle
        busy.sendall(head + body[:10])
        assert stack.process is not None
        os.killpg(stack.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while not _refused(world.port):
            assert time.monotonic() < deadline, "the listener kept accepting after SIGTERM"
            time.sleep(0.1)
        assert idle_stream.read() == b""  # closed by the server, not by a timeout
        busy.sendall(body[10:])
        status, headers, answer = _read_response(busy.makefile("rb"))
        assert status == 200 and headers.get("connection") == "close"
        assert _uri_supported(answer) == world.uri
        stack.process.wait(timeout=60)
    finally:
        idle.close()
        busy.close()
    log = stack.log()
    assert "cut short" not in log, log
    assert not re.search(r"Traceback", log), log


def test_a_stop_cuts_a_request_slower_than_the_grace() -> None:
    """In-process, with an app of the test's own: a request whose body never completes
    is cancelled and its connection closed once the grace has passed, and the stop ends."""
    import asyncio

    from printcloud.printing.ipp_listener import IppListener, IppOnly

    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("answered")  # never: the body does not end
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> bytes:
        listener = IppListener(IppOnly(app), host="127.0.0.1", port=0)
        await listener.start()
        (port,) = listener.ports
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /ipp/print/t/q HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        await writer.drain()
        while not listener.state.tasks:  # the request has reached the app
            await asyncio.sleep(0.01)
        await listener.stop(grace=0.2)
        rest = await asyncio.wait_for(reader.read(), timeout=60)
        writer.close()
        return rest

    assert asyncio.run(scenario()) == b""  # closed, with no answer
    assert seen == ["cancelled"]


# -- Get-Printer-Attributes answered before HTTP parsing (ipp_fastpath) --------------------


def _raw(path: str, body: bytes, *headers: str) -> bytes:
    """A request as ipptool and CUPS write it: the head and body in one segment."""
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1:631",
        "Content-Type: application/ipp",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


SIMPLE = _raw(
    "/ipp/print/t1/q", request(Operation.GET_PRINTER_ATTRIBUTES, "ipp://x/ipp/print/t1/q")
)
_HEAD, _, _BODY = SIMPLE.partition(b"\r\n\r\n")
#: Each is answered by the full path (HTTP parser, lane, route), never before parsing.
UNUSUAL: dict[str, bytes] = {
    "pipelined": SIMPLE + SIMPLE,
    "head only (body in the next segment)": _HEAD + b"\r\n\r\n",
    "body cut short": SIMPLE[:-1],
    "chunked": SIMPLE.replace(b"Content-Length", b"Transfer-Encoding: chunked\r\nX-Length"),
    "expect 100-continue": SIMPLE.replace(b"Host:", b"Expect: 100-continue\r\nHost:"),
    "connection close": SIMPLE.replace(b"Host:", b"Connection: close\r\nHost:"),
    "HTTP/1.0": SIMPLE.replace(b"HTTP/1.1", b"HTTP/1.0", 1),
    "query string": SIMPLE.replace(b"/q HTTP", b"/q?x=1 HTTP", 1),
    "escaped path": SIMPLE.replace(b"/t1/q", b"/t%31/q", 1),
    "a job's path": SIMPLE.replace(b"/t1/q", b"/t1/q/7", 1),
    "forwarded": SIMPLE.replace(b"Host:", b"X-Forwarded-For: 10.0.0.1\r\nHost:"),
    "unknown header": SIMPLE.replace(b"Host:", b"X-Anything: 1\r\nHost:"),
    "two hosts": SIMPLE.replace(b"Host:", b"Host: a\r\nHost:"),
    "no host": SIMPLE.replace(b"Host: 127.0.0.1:631\r\n", b""),
    "two lengths": SIMPLE.replace(b"Host:", b"Content-Length: 1\r\nHost:"),
    "folded header": SIMPLE.replace(b"Host:", b"User-Agent: a\r\n b\r\nHost:"),
    "space before colon": SIMPLE.replace(b"Host:", b"Host :"),
    "eight-bit value": SIMPLE.replace(b"Host: 127", b"Host: \xe9127"),
    "bare LF": SIMPLE.replace(b"\r\nHost:", b"\nHost:"),
    "wrong type": SIMPLE.replace(b"application/ipp", b"text/plain"),
    "lower-case method": SIMPLE.replace(b"POST", b"post", 1),
    "other operation": _HEAD + b"\r\n\r\n" + _BODY[:2] + b"\x00\x0a" + _BODY[4:],
    "no IPP header": _HEAD.replace(f"Length: {len(_BODY)}".encode(), b"Length: 3") + b"\r\n\r\nabc",
}


def test_a_simple_get_printer_attributes_is_recognised() -> None:
    from printcloud.printing.ipp_fastpath import simple_request

    found = simple_request(SIMPLE)
    assert found is not None
    assert (found.tenant_id, found.queue, found.body) == ("t1", "q", _BODY)
    # what clients add besides: credentials (ignored, as on the full path), keep-alive
    usual = SIMPLE.replace(
        b"Host:",
        b"Authorization: Basic d3Jvbmc6d3Jvbmc=\r\nUser-Agent: CUPS/2.4.2 (Linux) IPP/2.0\r\n"
        b"Accept-Encoding: deflate, gzip, identity\r\nConnection: Keep-Alive\r\nHost:",
    )
    assert simple_request(usual) == found
    assert simple_request(SIMPLE.replace(b"application/ipp", b"Application/IPP; x=1")) == found


@pytest.mark.parametrize("case", list(UNUSUAL))
def test_anything_unusual_is_left_to_the_http_parser(case: str) -> None:
    from printcloud.printing.ipp_fastpath import simple_request

    assert UNUSUAL[case] != SIMPLE
    assert simple_request(UNUSUAL[case]) is None


def _exchange(port: int, raw: bytes, answers: int) -> list[bytes]:
    """`raw` written at once on a new connection, then `answers` whole HTTP answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(raw)
        stream = sock.makefile("rb")
        out = []
        for _ in range(answers):
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = stream.readline()
                assert line, head
                head += line
            length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
            out.append(head + stream.read(int(length[1]) if length else 0))
        return out


def _clocks(answer: bytes) -> tuple[object, ...]:
    """What an answer holds of the second it was made in: Date, printer-current-time."""
    head, _, body = answer.partition(b"\r\n\r\n")
    date = re.search(rb"\r\ndate: ([^\r]*)", head)
    now = []
    if b"application/ipp" in head:
        groups = decode(body).groups
        now = [a.values[0] for g in groups for a in g if a.name == "printer-current-time"]
    return (date[1] if date else None, *now)


ANSWERED = {"all attributes", "some attributes", "wrong credentials", "right credentials"}


def test_the_answer_before_parsing_is_the_full_paths_byte_for_byte(listener: Listener) -> None:
    """Each request is written alone (a simple one is answered before HTTP parsing) and
    pipelined twice (the HTTP parser, the lane or the route answer both): the same bytes,
    Date header included, whenever the three answers fall in the same second (the
    answer's printer-current-time is the second's)."""
    uri, path = listener.uri, listener.path
    other = f"ipp://127.0.0.1:{listener.port}/ipp/print/{listener.tenant}/elsewhere"
    names = Attribute("requested-attributes", ValueTag.KEYWORD, ["printer-state", "copies-default"])
    gpa = request(Operation.GET_PRINTER_ATTRIBUTES, uri, request_id=99)
    wrong = "Authorization: Basic " + base64.b64encode(b"alice:wrong").decode()
    cases = {
        "all attributes": _raw(path, gpa),
        "some attributes": _raw(
            path, request(Operation.GET_PRINTER_ATTRIBUTES, uri, ops=[names], request_id=3)
        ),
        "wrong credentials": _raw(path, gpa, wrong),
        "right credentials": _raw(path, gpa, f"Authorization: {_basic()}"),
        "bad version": _raw(path, b"\x09\x09" + gpa[2:]),
        "another queue's printer-uri": _raw(
            path, request(Operation.GET_PRINTER_ATTRIBUTES, other, request_id=5)
        ),
        "unknown queue": _raw(path.replace("/lobby", "/nope"), gpa),
        "Get-Jobs without credentials": _raw(path, request(Operation.GET_JOBS, uri)),
    }
    for case, raw in cases.items():
        for _attempt in range(30):
            (alone,) = _exchange(listener.port, raw, 1)
            full = _exchange(listener.port, raw + raw, 2)
            if len({_clocks(alone), *map(_clocks, full)}) == 1:
                break
        else:
            pytest.fail(f"{case}: never three answers in one second")
        assert full[0] == full[1] == alone, case
        if case in ANSWERED:
            assert alone.startswith(b"HTTP/1.1 200 OK\r\n"), case
            assert decode(alone.partition(b"\r\n\r\n")[2]).status == Status.SUCCESSFUL_OK, case


# -- background work below the answers (core/tasks/priority.py) ----------------------------


def _processes_of(pid: int) -> dict[int, str]:
    """`pid` and its descendants: their command lines."""
    found: dict[int, str] = {}
    parents = {pid}
    while parents:
        children: set[int] = set()
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                    if int(stat[1]) in parents:
                        children.add(int(entry.name))
                        cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
                        found[int(entry.name)] = cmd.decode()
                except (OSError, ValueError):
                    continue
        parents = children
    return found


def _thread_nices(pid: int) -> dict[int, int]:
    """Each thread of `pid` and its nice value (proc(5): field 19 of its stat)."""
    nices = {}
    for task in os.scandir(f"/proc/{pid}/task"):
        try:
            stat = Path(task.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        nices[int(task.name)] = int(stat[16])
    return nices


def test_answers_run_above_the_background_work(listener: Listener) -> None:
    """`printcloud serve` with PRINTCLOUD_BACKGROUND_NICE=10 (the module's stack): the
    thread that answers (the serving process's event loop) keeps nice 0; once a job has
    been printed, threads of its workflows run at 10, and so does every thread of the
    conversion worker's processes."""
    body = _print_job(listener.uri)
    got = httpx.post(
        f"http://127.0.0.1:{listener.port}{listener.path}",
        content=body,
        headers={**IPP_TYPE, "Authorization": _basic()},
        timeout=60,
    )
    assert got.status_code == 200 and decode(got.content).status == Status.SUCCESSFUL_OK
    assert listener.stack.process is not None
    processes = _processes_of(listener.stack.process.pid)
    (server,) = [p for p, cmd in processes.items() if cmd.rstrip().endswith("printcloud serve")]
    converters = [p for p, cmd in processes.items() if "--service convert" in cmd]
    assert converters, processes
    assert _thread_nices(server)[server] == 0  # the event loop answers at full priority
    deadline = time.monotonic() + 60
    while 10 not in _thread_nices(server).values():
        assert time.monotonic() < deadline, "no workflow thread at nice 10"
        time.sleep(0.1)
    for pid in converters:
        assert set(_thread_nices(pid).values()) == {10}, pid
