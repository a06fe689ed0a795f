"""The print service under the egress policy (issue 11, items 1, 2 and 6).

A stack whose `egress_allow` is empty — global unicast only, what a deployment
gets by default — and real listeners on 127.0.0.1 and ::1 that count the
connections they accept: a refused push URL or print-data URL must never reach
them, at save time nor at connect time, and jobs still print (by polling).
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from printcloud.core.egress import EgressPolicy
from printcloud.device.agent import DeviceAgent, DeviceConfig
from tests.helpers.cli import run_cli
from tests.helpers.listeners import Listener
from tests.helpers.print_stack import PrintStack
from tests.helpers.printing import Tenant, assert_no_leftovers, make_pdf, wait_completed


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    made = [Listener("127.0.0.1"), Listener("::1")]
    yield made
    for listener in made:
        listener.close()


def _strict_stack(make_print_stack: Any) -> PrintStack:
    stack: PrintStack = make_print_stack(workers=1, egress_allow=[])
    assert stack.settings.egress_allow == []
    return stack


def _refused(resp: Any, field: str, words: str = "loopback") -> None:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body.get("field") == field, body
    assert words in body["error_description"], body


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(env, *args)


def test_loopback_push_urls_and_url_jobs_are_refused_before_anything_connects(
    make_print_stack: Any, listeners: list[Listener], tmp_path: Path
) -> None:
    stack = _strict_stack(make_print_stack)
    t = Tenant(stack)
    device_api = stack.api(stack.token(t.dev_id, t.dev_secret, "device"))
    # The printer API is for the tenant's administrators (the issuer's `admin` claim).
    stack.user(t.id, "boss", "correct horse", admin=True)
    admin_api = stack.api(stack.user_token(t.id, "boss", "correct horse", "print admin"))
    for number, listener in enumerate(listeners):
        push = f"{listener.base}/push"
        # the admin API
        added = admin_api.post(
            "/api/printers",
            json={"printer_id": f"p{number}", "client_id": t.dev_id, "push_url": push},
        )
        _refused(added, "push_url")
        assert "push_url" in added.json()["error_description"]
        # the device API
        _refused(
            device_api.put("/api/device/printers/mono-1/push_url", json={"push_url": push}),
            "push_url",
        )
        # the CLI (it reads the deployment's settings: no allow-list here either)
        cli = _cli(
            stack.env,
            "admin",
            "printer",
            "add",
            f"c{number}",
            "--tenant",
            t.id,
            "--client-id",
            t.dev_id,
            "--push-url",
            push,
        )
        assert cli.returncode == 2, cli.stdout + cli.stderr
        assert "push_url" in cli.stderr and "loopback" in cli.stderr, cli.stderr
        # a URL job aimed at the listener
        _refused(
            t.api.post("/api/jobs", json={"printer_id": "mono-1", "url": f"{listener.base}/a.pdf"}),
            "url",
        )
    # The "own URL" exception is gone: `..` no longer walks from the print service's
    # internal prefix to another service's page (it was fetched, then refused as not a PDF).
    walk = f"{stack.printing}/internal/../../idp-a/.well-known/oauth-authorization-server"
    _refused(t.api.post("/api/jobs", json={"printer_id": "mono-1", "url": walk}), "url")
    # Nothing reached the listeners; no printer, no push URL and no job was saved.
    assert [listener.accepted for listener in listeners] == [0, 0]
    printers = {p["printer_id"]: p for p in t.api.get("/api/printers").json()["printers"]}
    assert set(printers) == {"color-1", "mono-1"}
    assert printers["mono-1"]["push_url"] is None
    assert t.api.get("/api/jobs").json()["jobs"] == []
    # The internal data route of the old download path is gone with its signed links.
    gone = httpx.get(f"{stack.printing}/internal/jobs/x/data", params={"expires": 1, "sig": "x"})
    assert gone.status_code == 404


def test_a_refused_push_url_leaves_the_virtual_printer_polling(
    make_print_stack: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`printcloud device --listen 127.0.0.1:0` against a deployment that does not push to
    loopback: one clear warning, no crash, and it prints by polling."""
    stack = _strict_stack(make_print_stack)
    t = Tenant(stack)
    agent = DeviceAgent(
        DeviceConfig(
            server=stack.base_url,
            tenant_id=t.id,
            printer_id="mono-1",
            client_id=t.dev_id,
            client_secret=t.dev_secret,
            out_dir=tmp_path,
            poll_interval=0.3,
            listen="127.0.0.1:0",
        )
    )
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    with caplog.at_level(logging.WARNING, logger="printcloud"):
        loop.start()
        try:
            job = t.submit(make_pdf(2), "mono-1")
            done = stack.wait_for(t.api, job["job_id"], "printed", timeout=90)
            assert loop.is_alive()
        finally:
            stop.set()
            loop.join(timeout=10)
            agent.close()
    assert done["pages_printed"] == 2
    assert agent.push_refused is not None and "loopback" in agent.push_refused
    warnings = [r.getMessage() for r in caplog.records if "refused the push URL" in r.getMessage()]
    assert len(warnings) == 1, warnings  # said once, not at every poll
    assert "PRINTCLOUD_EGRESS_ALLOW" in warnings[0] and "polls" in warnings[0]
    printers = {p["printer_id"]: p for p in t.api.get("/api/printers").json()["printers"]}
    assert printers["mono-1"]["push_url"] is None


def test_a_push_url_refused_at_connect_time_sends_nothing_and_the_printer_polls(
    make_print_stack: Any, listeners: list[Listener], tmp_path: Path
) -> None:
    """The push URL passed when it was saved (loopback was allowed then; a rebound name
    is the same case) and the policy refuses it now: the print service connects nowhere,
    the history says the egress policy refused it (not whether anything answered), and
    the job prints by polling. The uploaded job's data reaches the worker through the
    blob store, so it prints with no allow-list at all."""
    stack = _strict_stack(make_print_stack)
    t = Tenant(stack)
    listener = listeners[0]
    from printcloud.printing import service

    with stack.db.session() as s:
        service.add_printer(
            s,
            tenant_id=t.id,
            printer_id="pushed",
            name="Pushed",
            color=False,
            client_id=t.dev_id,
            push_url=f"{listener.base}/push",
            egress=EgressPolicy.loopback(),
        )
    job = t.submit(make_pdf(2), "pushed")
    stack.wait_for(t.api, job["job_id"], "waiting_for_printer")
    t.print_all("pushed", tmp_path, job["job_id"])
    done = stack.wait_for(t.api, job["job_id"], "printed")
    assert done["pages_printed"] == 2
    pushes = [e["detail"] for e in done["history"] if e["step"] == "S109"]
    assert len(pushes) == 2 and pushes[0] == "waiting for the printer", pushes
    assert pushes[1].startswith("push refused by the egress policy ("), pushes
    assert "loopback" in pushes[1] and pushes[1].endswith("the printer will poll"), pushes
    assert listener.accepted == 0
    wait_completed(t, job["job_id"])
    assert_no_leftovers(stack, job["job_id"])


def test_a_url_job_is_fetched_once_and_prints(make_print_stack: Any, tmp_path: Path) -> None:
    """Item 6: the intake fetches a URL job once (through the pinned client) and keeps it
    as the job's blob; the worker reads that blob, so no second resolution or fetch can
    land elsewhere. The operator allowed loopback here, where the data is served."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    pdf = make_pdf(3)
    gets: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            gets.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(pdf)))
            self.end_headers()
            self.wfile.write(pdf)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stack = make_print_stack(workers=1)
        t = Tenant(stack)
        url = f"http://127.0.0.1:{server.server_address[1]}/report.pdf"
        made = t.api.post("/api/jobs", json={"printer_id": "mono-1", "url": url})
        assert made.status_code == 202, made.text
        job_id = made.json()["job_id"]
        t.print_all("mono-1", tmp_path, job_id)
        done = stack.wait_for(t.api, job_id, "printed")
        assert done["pages_printed"] == 3 and done["source"] == "url"
        wait_completed(t, job_id)
        assert_no_leftovers(stack, job_id)
    finally:
        server.shutdown()
        server.server_close()
    assert gets == ["/report.pdf"]  # once, at intake; the worker read the blob
