"""IPP in the distributed run (issue 14): through the real nginx and HAProxy in front of
the print service, `ipptool` reaches a queue; a chunked Print-Job body streams through
to the endpoint; the balancer's X-Forwarded-* decide the plain-IPP policy
(printing/ipp_transport.py), and a client cannot forge them past it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from printcloud.cluster.render import render_haproxy, render_nginx, rendered_files
from printcloud.cluster.topology import Topology
from printcloud.ipp.encoding import encode
from printcloud.ipp.message import Attribute, Group, GroupTag, Message, ValueTag
from printcloud.ipp.model import Operation
from printcloud.printing import queues
from tests.cluster.conftest import MakeCluster
from tests.cluster.test_jobs import as_stack
from tests.conftest import require_peer

GET_PRINTER_ATTRIBUTES = Path("/usr/share/cups/ipptool/get-printer-attributes.test")
IPP = {"Content-Type": "application/ipp"}


def _request(operation: Operation, uri: str, *, data: bytes = b"") -> bytes:
    group = Group(
        GroupTag.OPERATION,
        [
            Attribute("attributes-charset", ValueTag.CHARSET, "utf-8"),
            Attribute("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, "en"),
            Attribute("printer-uri", ValueTag.URI, uri),
            Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, "application/pdf"),
        ],
    )
    return encode(Message(operation, 3, [group], version=(2, 0), data=data))


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_ipp_through_the_balancer(make_cluster: MakeCluster, balancer: str, tmp_path: Path) -> None:
    require_peer(
        shutil.which("ipptool") is not None and GET_PRINTER_ATTRIBUTES.exists(),
        "ipptool (cups-ipp-utils) is not installed",
    )
    cluster = make_cluster(balancer=balancer, convert_workers=1, printing=1)  # type: ignore[arg-type]
    stack = as_stack(cluster)
    tenant = stack.tenant()
    with stack.db.session() as db:
        queues.add_queue(db, tenant_id=tenant, name="lobby", printer_id=None)
    url = f"{cluster.entry_url}/printing/ipp/print/{tenant}/lobby"
    uri = "ipp" + url.removeprefix("http")

    home = tmp_path / "home"
    home.mkdir()
    run = subprocess.run(
        ["ipptool", "-tv", "-T", "60", uri, str(GET_PRINTER_ATTRIBUTES)],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr + cluster.log("printing-1")
    assert "[PASS]" in run.stdout and "[FAIL]" not in run.stdout
    # the queue names itself by the public URL (the balancer's), not the backend's port
    assert f"printer-uri-supported (uri) = {uri}" in run.stdout

    # A Print-Job sent chunked (as CUPS sends documents) streams through to the endpoint,
    # which asks for credentials: the whole body arrived, and the challenge came back.
    document = b"%PDF-1.4\n" + b"0" * (8 * 1024 * 1024)
    body = _request(Operation.PRINT_JOB, uri, data=document)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    unsigned = httpx.post(url, content=chunks(), headers=IPP, timeout=120)
    assert unsigned.status_code == 401, unsigned.text
    assert unsigned.headers["content-type"] != "text/html"

    # The balancer says who the client was: here, this machine, so plain IPP is served.
    # A client that claims another address or TLS in its own headers is not believed
    # for the scheme (the balancer sets X-Forwarded-Proto itself) and, named by its own
    # X-Forwarded-For as a remote client, is refused: 426, with the Upgrade header.
    gpa = _request(Operation.GET_PRINTER_ATTRIBUTES, uri)
    assert httpx.post(url, content=gpa, headers=IPP, timeout=60).status_code == 200
    forged = {"X-Forwarded-For": "198.51.100.20", "X-Forwarded-Proto": "https"}
    refused = httpx.post(url, content=gpa, headers={**IPP, **forged}, timeout=60)
    assert refused.status_code == 426, refused.text
    assert refused.headers["upgrade"].startswith("TLS/1.2")
    assert refused.json()["error"] == "upgrade_required"


def test_the_ipp_routes_stream_the_body() -> None:
    """What the test above cannot see from outside: the balancers pass an IPP body on as
    it arrives (no spooling of a large Print-Job), to the print service, and tell it
    who asked; every instance believes only the balancer's forwarded headers."""
    topo = Topology.example()
    nginx = render_nginx(topo)
    ipp = nginx[nginx.index("location /printing/ipp/ {") :]
    ipp = ipp[: ipp.index("}")]
    assert "proxy_pass http://printcloud_printing;" in ipp
    assert "proxy_request_buffering off;" in ipp
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in nginx
    haproxy = render_haproxy(topo)
    assert "use_backend printcloud_printing if { path_beg /printing/ipp/ }" in haproxy
    assert "\n    option http-buffer-request" not in haproxy
    assert "option forwardfor" in haproxy
    for name, text in rendered_files(topo).items():
        if name.startswith("systemd/instances/"):
            assert f"PRINTCLOUD_TRUSTED_PROXIES={topo.host}\n" in text, name
