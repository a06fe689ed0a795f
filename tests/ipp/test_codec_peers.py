"""Real requests from real clients, decoded byte for byte: `ipptool` running
CUPS's own test files, CUPS's `lp`, `lpstat` and `cancel`, and a private `cupsd`
whose queue (`lpadmin -m everywhere`) prints through CUPS's ipp backend, all
against a loopback IPP server answering with this codec (tests/ipp/codec_capture.py).

Every request they send decodes, and encodes back to exactly the bytes received;
the document after end-of-attributes-tag is the file sent. They are also referees
of the other direction: ipptool reads our encoded answers (collections included)
and passes the RFC 8011 §4.1 request checks of `ipp-1.1.test`, and CUPS builds its
driverless PPD from our encoded Get-Printer-Attributes answer."""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from printcloud import ipp
from printcloud.ipp import GroupTag, Operation, ValueTag
from tests.conftest import free_port, require_command, require_peer
from tests.ipp.codec_capture import Captured, CaptureServer

IPPTOOL_TESTS = Path("/usr/share/cups/ipptool")
FILES = [
    "get-printer-attributes.test",
    "ipp-1.1.test",
    "ipp-2.0.test",
    "ipp-2.1.test",
    "ipp-2.2.test",
    "ipp-everywhere.test",
    "print-job-gzip.test",
    "print-job-deflate.test",
    "print-job-media-col.test",
    "create-job.test",
    "validate-job.test",
    "get-jobs.test",
    "identify-printer.test",
]
RESULT = re.compile(r"^\s+(?P<name>.+?)\s+\[(?P<result>PASS|FAIL|SKIP)\]\s*$")


@pytest.fixture
def document(tmp_path: Path) -> Path:
    """A one-page PDF (A4 at 24 dpi: a blank page of 2 kB)."""
    path = tmp_path / "one-page.pdf"
    Image.new("L", (198, 281), 255).save(path, resolution=24)
    return path


def run_ipptool(server: CaptureServer, test_file: str, document: Path) -> dict[str, str]:
    """Run one of CUPS's test files (-I: on past failures); returns test name -> result."""
    ipptool = require_command("ipptool")
    path = IPPTOOL_TESTS / test_file
    if not path.exists():
        pytest.fail(f"{path} is missing: cups-ipp-utils ships it")
    done = subprocess.run(
        [ipptool, "-I", "-t", "-f", str(document), server.uri, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    results = {}
    for line in done.stdout.splitlines():
        found = RESULT.match(line)
        if found:
            results[found["name"]] = found["result"]
    assert results, f"ipptool {test_file} ran no test:\n{done.stdout}\n{done.stderr}"
    return results


def decoded_exactly(captured: Captured) -> ipp.Message:
    message = ipp.decode(captured.body)
    assert ipp.encode(message) == captured.body, f"{captured.path}: {message!r}"
    return message


def document_of(message: ipp.Message) -> bytes:
    compression = message.value(GroupTag.OPERATION, "compression", "none")
    data = bytes(message.data)
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "deflate":
        return (
            zlib.decompress(data, -zlib.MAX_WBITS) if data[:1] != b"\x78" else zlib.decompress(data)
        )
    return data


@pytest.mark.peer("ipptool")
def test_ipptool_requests_decode_and_encode_back_byte_for_byte(document: Path) -> None:
    with CaptureServer() as server:
        for test_file in FILES:
            run_ipptool(server, test_file, document)
    assert len(server.captured) > 100
    seen: set[int] = set()
    refused_versions = 0
    for captured in server.captured:
        try:
            message = decoded_exactly(captured)
        except ipp.IPPError as error:
            # ipp-1.1.test sends IPP/0.0 on purpose (RFC 8011 §4.1.8)
            assert error.status == ipp.Status.SERVER_ERROR_VERSION_NOT_SUPPORTED, error
            assert captured.body[:2] == b"\x00\x00"
            refused_versions += 1
            continue
        seen.add(message.code)
        if message.code in (Operation.PRINT_JOB, Operation.SEND_DOCUMENT) and message.data:
            assert document_of(message) == document.read_bytes()
            assert captured.body[message.data_offset :] == bytes(message.data)
    assert refused_versions >= 1
    assert {
        Operation.PRINT_JOB,
        Operation.VALIDATE_JOB,
        Operation.CREATE_JOB,
        Operation.SEND_DOCUMENT,
        Operation.CANCEL_JOB,
        Operation.GET_JOB_ATTRIBUTES,
        Operation.GET_JOBS,
        Operation.GET_PRINTER_ATTRIBUTES,
        Operation.IDENTIFY_PRINTER,
    } <= seen
    compressed = [
        m.value(GroupTag.OPERATION, "compression")
        for m in (ipp.decode(c.body) for c in server.captured if c.body[:2] != b"\x00\x00")
        if m.code == Operation.PRINT_JOB
    ]
    assert {"gzip", "deflate"} <= set(compressed)


@pytest.mark.peer("ipptool")
def test_ipptool_get_printer_attributes_request_decodes_to_what_the_test_file_says(
    document: Path,
) -> None:
    with CaptureServer() as server:
        results = run_ipptool(server, "get-printer-attributes.test", document)
    # ipptool read our answer, the collections of media-col-default included
    assert results == {"Get printer attributes using get-printer-attributes": "PASS"}
    (captured,) = server.captured
    assert captured.path == "/ipp/print"
    assert captured.headers["content-type"] == "application/ipp"
    message = decoded_exactly(captured)
    assert message.version == (2, 0)
    assert message.operation is Operation.GET_PRINTER_ATTRIBUTES
    assert message.request_id > 0
    assert [g.tag for g in message.groups] == [GroupTag.OPERATION]
    expected = [
        ipp.Attribute("attributes-charset", ValueTag.CHARSET, "utf-8"),
        ipp.Attribute("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, "en"),
        ipp.Attribute("printer-uri", ValueTag.URI, server.uri),
        ipp.Attribute("requested-attributes", ValueTag.KEYWORD, ["all", "media-col-database"]),
    ]
    assert list(message.groups[0].attributes) == expected
    assert bytes(message.data) == b""
    assert message.data_offset == len(captured.body)


@pytest.mark.peer("ipptool")
def test_ipptool_referees_the_rfc_8011_request_checks(document: Path) -> None:
    with CaptureServer() as server:
        results = run_ipptool(server, "ipp-1.1.test", document)
    checks = [
        "RFC 8011 section 4.1.1: Bad request-id value 0",
        "RFC 8011 section 4.1.4: No Operation Attributes",
        "RFC 8011 section 4.1.4: attributes-charset",
        "RFC 8011 section 4.1.4: attributes-natural-language",
        "RFC 8011 section 4.1.8: Unsupported IPP version 0.0",
        "RFC 8011 section 4.2: No printer-uri operation attribute",
        "RFC 8011 section 4.2.5: Get-Printer-Attributes Operation (default)",
    ]
    for name in checks:
        assert results.get(name) == "PASS", (name, results)
    in_order = [n for n in results if n.startswith("RFC 8011 section 4.1.4: attributes-")]
    assert len(in_order) == 4 and all(results[n] == "PASS" for n in in_order), results


@pytest.mark.peer("lp")
def test_cups_clients_requests_decode_and_encode_back_byte_for_byte(
    document: Path, tmp_path: Path
) -> None:
    lp, lpstat, cancel = (require_command(c) for c in ("lp", "lpstat", "cancel"))
    env = {**os.environ, "HOME": str(tmp_path), "CUPS_SERVERROOT": str(tmp_path)}
    env.pop("CUPS_SERVER", None)
    with CaptureServer() as server:
        host = f"127.0.0.1:{server.port}"
        for argv in (
            [
                lp,
                "-h",
                host,
                "-d",
                "cloud",
                "-n",
                "2",
                "-o",
                "sides=two-sided-long-edge",
                str(document),
            ],
            [lpstat, "-h", host, "-o", "cloud"],
            [cancel, "-h", host, "cloud-1"],
        ):
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL
            )
            assert done.returncode == 0, (argv, done.stdout, done.stderr)
    messages = [decoded_exactly(c) for c in server.captured]
    by_operation = {m.code: m for m in messages}
    create = by_operation[Operation.CREATE_JOB]
    send = by_operation[Operation.SEND_DOCUMENT]
    assert create.get(GroupTag.JOB, "copies") == ipp.Attribute("copies", ValueTag.INTEGER, 2)
    assert create.value(GroupTag.JOB, "sides") == "two-sided-long-edge"
    assert send.value(GroupTag.OPERATION, "last-document") is True
    # lp types the file itself only with a local cupsd; to a bare server it says octet-stream
    assert send.value(GroupTag.OPERATION, "document-format") in {
        "application/pdf",
        "application/octet-stream",
    }
    assert document_of(send) == document.read_bytes()
    assert by_operation[Operation.GET_JOBS].value(GroupTag.OPERATION, "which-jobs")
    cancel_job = by_operation[Operation.CANCEL_JOB]
    assert cancel_job.value(GroupTag.OPERATION, "job-uri").endswith("/jobs/1")


@contextlib.contextmanager
def private_cupsd() -> Iterator[dict[str, str]]:
    """`cupsd -f` from a configuration folder of its own on 127.0.0.1:PORT; yields the
    environment that points CUPS's commands at it. Stopped (by its pid) afterwards."""
    program = require_command("cupsd")
    for needed in ("/usr/lib/cups/backend/ipp", "/usr/lib/cups/filter/pdftopdf"):
        require_peer(Path(needed).exists(), f"{needed} is missing (cups-daemon, cups-filters)")
    # cupsd runs its filters and backends as `lp`: the folder must be open to it,
    # which pytest's private temporary folders are not.
    root = Path(tempfile.mkdtemp(prefix="pc-cupsd-"))
    port = free_port()
    try:
        for name in ("log", "spool/tmp", "cache", "state", "ppd"):
            (root / name).mkdir(parents=True)
        (root / "cupsd.conf").write_text(
            f"Listen 127.0.0.1:{port}\n"
            "LogLevel debug\nWebInterface No\nBrowsing No\nDefaultAuthType None\n"
            "<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
            "<Location /admin>\n  Order allow,deny\n  Allow all\n</Location>\n"
            "<Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n"
        )
        (root / "cups-files.conf").write_text(
            f"ServerRoot {root}\nRequestRoot {root}/spool\nTempDir {root}/spool/tmp\n"
            f"CacheDir {root}/cache\nStateDir {root}/state\n"
            f"AccessLog {root}/log/access_log\nErrorLog {root}/log/error_log\n"
            f"PageLog {root}/log/page_log\n"
            "ServerBin /usr/lib/cups\nDataDir /usr/share/cups\n"
            # cupsd refuses to run its children as root
            "User lp\nGroup lp\nSandboxing relaxed\n"
        )
        for path in [root, *root.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        env = {**os.environ, "CUPS_SERVER": f"127.0.0.1:{port}", "LANG": "C"}
        process = subprocess.Popen(
            [program, "-f", "-c", str(root / "cupsd.conf"), "-s", str(root / "cups-files.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    pytest.fail(f"cupsd exited with {process.returncode}:\n{_cups_log(root)}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"cupsd did not listen within 60 s:\n{_cups_log(root)}")
                    time.sleep(0.2)
            env["PC_CUPS_LOG"] = str(root / "log" / "error_log")
            yield env
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _cups_log(root: Path) -> str:
    path = root / "log" / "error_log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"


def _job_log(error_log: Path) -> str:
    """The lines of CUPS's log about job 1 and the printer's state (the last 80)."""
    if not error_log.exists():
        return "(no log)"
    lines = error_log.read_text(errors="replace").splitlines()
    kept = [line for line in lines if "[Job 1]" in line or "capture" in line]
    return "\n".join(kept[-80:])


@pytest.mark.peer("cupsd")
def test_cupsd_queue_prints_through_requests_that_decode_byte_for_byte(document: Path) -> None:
    lpadmin, lp, lpstat = (require_command(c) for c in ("lpadmin", "lp", "lpstat"))
    with private_cupsd() as env, CaptureServer() as server:

        def run(*argv: str) -> str:
            done = subprocess.run(
                list(argv),
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
            )
            log = Path(env["PC_CUPS_LOG"])
            assert done.returncode == 0, (
                argv,
                done.stdout,
                done.stderr,
                _cups_log(log.parent.parent),
            )
            return done.stdout

        # CUPS builds its driverless PPD from our encoded Get-Printer-Attributes answer
        run(lpadmin, "-p", "capture", "-E", "-v", server.uri, "-m", "everywhere")
        run(lp, "-d", "capture", "-o", "sides=two-sided-long-edge", str(document))
        deadline = time.monotonic() + 120
        while "capture-1" not in run(lpstat, "-W", "completed", "-o", "capture"):
            assert time.monotonic() < deadline, "the job did not complete within 120 s"
            time.sleep(0.5)
        # `-W completed` lists aborted and canceled jobs too: what CUPS did with the job
        # is in its log, kept for the assertions below (the folder goes with cupsd).
        job_log = _job_log(Path(env["PC_CUPS_LOG"]))
    messages = [decoded_exactly(c) for c in server.captured]
    operations = [m.code for m in messages]
    assert Operation.GET_PRINTER_ATTRIBUTES in operations
    assert Operation.SEND_DOCUMENT in operations or Operation.PRINT_JOB in operations, (
        operations,
        job_log,
    )
    (sent,) = [m for m in messages if m.code in (Operation.SEND_DOCUMENT, Operation.PRINT_JOB)]
    # pdftopdf rewrote the file: a PDF of one page, after the attributes
    data = document_of(sent)
    assert data.startswith(b"%PDF-")
    pdf = pdfium.PdfDocument(data)
    try:
        assert len(pdf) == 1
    finally:
        pdf.close()
    created = next(m for m in messages if m.code in (Operation.CREATE_JOB, Operation.PRINT_JOB))
    assert created.value(GroupTag.JOB, "sides") == "two-sided-long-edge"
    assert created.value(GroupTag.OPERATION, "requesting-user-name")


# -- ipptool's own reading of the bytes, line by line -----------------------------------

SYNTAX = {
    ValueTag.CHARSET: "charset",
    ValueTag.NATURAL_LANGUAGE: "naturalLanguage",
    ValueTag.URI: "uri",
    ValueTag.KEYWORD: "keyword",
    ValueTag.NAME: "nameWithoutLanguage",
    ValueTag.TEXT: "textWithoutLanguage",
    ValueTag.ENUM: "enum",
    ValueTag.BOOLEAN: "boolean",
    ValueTag.INTEGER: "integer",
    ValueTag.DATE_TIME: "dateTime",
    ValueTag.RANGE_OF_INTEGER: "rangeOfInteger",
    ValueTag.RESOLUTION: "resolution",
    ValueTag.BEG_COLLECTION: "collection",
    ValueTag.MIME_MEDIA_TYPE: "mimeMediaType",
}


def ipptool_value(name: str, tag: int, value: object) -> str:
    """A value as `ipptool -v` prints it (libcups' ippAttributeString)."""
    if isinstance(value, ipp.Collection):
        return "{" + " ".join(f"{m.name}={ipptool_values(m)}" for m in value.members) + "}"
    if tag == ValueTag.ENUM and name == "operations-supported":
        return Operation(value).keyword
    if tag == ValueTag.ENUM and name == "printer-state":
        return ipp.PrinterState(value).name.lower()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, ipp.Range):
        return f"{value.lower}-{value.upper}"
    if isinstance(value, ipp.Resolution):
        units = "dpi" if value.units == ipp.ResolutionUnits.DOTS_PER_INCH else "dpcm"
        size = f"{value.x}" if value.x == value.y else f"{value.x}x{value.y}"
        return size + units
    if isinstance(value, datetime):  # the wire's local time and offset, as sent
        zone = "Z" if not value.utcoffset() else value.strftime("%z")
        return value.strftime("%Y-%m-%dT%H:%M:%S") + zone
    return str(value)


def ipptool_values(attribute: ipp.Attribute) -> str:
    return ",".join(
        ipptool_value(attribute.name, t, v)
        for t, v in zip(attribute.tags, attribute.values, strict=True)
    )


def ipptool_line(attribute: ipp.Attribute) -> str:
    syntax = SYNTAX[attribute.tag]
    if len(attribute.values) > 1:
        syntax = f"1setOf {syntax}"
    return f"{attribute.name} ({syntax}) = {ipptool_values(attribute)}"


@pytest.mark.peer("ipptool")
def test_ipptool_reads_the_bytes_as_the_codec_does() -> None:
    ipptool = require_command("ipptool")
    path = IPPTOOL_TESTS / "get-printer-attributes.test"
    with CaptureServer() as server:
        done = subprocess.run(
            [ipptool, "-tv", server.uri, str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
    printed = [line.strip() for line in done.stdout.splitlines()]
    (captured,) = server.captured
    request = decoded_exactly(captured)
    answer = ipp.decode(server.answer(captured.path, captured.body))
    # what ipptool says it sent is what the codec read from the wire
    start = printed.index("Get-Printer-Attributes:") + 1
    sent = [ipptool_line(a) for a in request.groups[0]]
    assert printed[start : start + len(sent)] == sent
    # and what ipptool read from our answer is what the codec encoded, line for line
    received = [ipptool_line(a) for group in answer.groups for a in group]
    start = printed.index("status-code = successful-ok (successful-ok)") + 1
    assert printed[start : start + len(received)] == received
    assert any("media-col-database (1setOf collection)" in line for line in received)
