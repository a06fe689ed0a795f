"""The virtual printer as an IPP INFRA output device (issue 15, `printcloud device --protocol
infra`), against a real print stack over loopback HTTP: a job submitted through the API is
fetched, printed by the virtual printer's engine and ends `printed` with its converted data
and session gone; an injected fault ends it with its reason; with `--forward` the job goes
on to CUPS's `ippeveprinter` by Print-Job (its spool keeps the PDF, with every page); and a
device killed mid-job is started again and prints the rest of the job, each page once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from printcloud.device.config import DeviceConfig, DeviceError, Fault
from printcloud.device.events import DeviceEvent
from printcloud.device.infra import PDF, InfraAgent, device_uuid
from printcloud.ipp.encoding import decode, encode
from printcloud.ipp.message import Attribute, Group, GroupTag, Message, ValueTag
from printcloud.ipp.model import JobState, Operation, Status
from printcloud.ipp.operations import response as ipp_response
from printcloud.printing.ipp_printer import PWG_MEDIA
from tests.conftest import require_command
from tests.helpers.print_stack import PrintStack, print_stacks
from tests.helpers.printing import Tenant, assert_no_leftovers, make_pdf, wait_completed
from tests.ipp.client import call, request
from tests.ipp.conftest import Ippeve, ippeveprinter_running


@dataclass
class World:
    stack: PrintStack
    tenant: Tenant

    def config(self, printer: str, out: Path, *faults: str, **more: object) -> DeviceConfig:
        return DeviceConfig(
            server=self.stack.base_url,
            tenant_id=self.tenant.id,
            printer_id=printer,
            client_id=self.tenant.dev_id,
            client_secret=self.tenant.dev_secret,
            out_dir=out,
            faults=[Fault.parse(f) for f in faults],
            **more,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with print_stacks(tmp_path_factory) as make_print_stack:
        stack = make_print_stack(workers=1)
        yield World(stack=stack, tenant=Tenant(stack))


@pytest.fixture(scope="module")
def office_printer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ippeve]:
    with ippeveprinter_running(tmp_path_factory) as printer:
        yield printer


class Running:
    """An `InfraAgent` looping in a thread, with the events it emitted."""

    def __init__(self, config: DeviceConfig) -> None:
        self.events: list[DeviceEvent] = []
        self.agent = InfraAgent(config, on_event=self.events.append)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        # The loop may be in a Get-Notifications the server holds up to 30 s: leaving
        # ends the device's subscriptions, which ends the wait.
        if self.agent._registered:
            self.agent.deregister()
        self.thread.join(timeout=90)
        assert not self.thread.is_alive()
        self.agent.close()

    def done(self, job_key: str) -> DeviceEvent:
        return next(e for e in self.events if e.kind == "done" and e.job_id == job_key)


def _key(job_id: str) -> str:
    """The folder of a job: its INFRA job-uuid (uuid5 of the printcloud job ID)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "printcloud-job:" + job_id))


def _pdf_pages(path: Path) -> int:
    info = subprocess.run(
        [require_command("pdfinfo"), str(path)], capture_output=True, text=True, check=True
    )
    line = next(x for x in info.stdout.splitlines() if x.startswith("Pages:"))
    return int(line.split()[1])


def test_the_virtual_printer_prints_an_infra_job(world: World, tmp_path: Path) -> None:
    t = world.tenant
    pdf = make_pdf(2)
    with Running(world.config("color-1", tmp_path)) as device:
        job_id = t.submit(pdf, printer="color-1", copies=2)["job_id"]
        job = world.stack.wait_for(t.api, job_id, "printed")
        wait_completed(t, job_id)
        # the device's report: pages × copies impressions
        assert job["pages_printed"] == 4
        assert_no_leftovers(world.stack, job_id)
        folder = tmp_path / _key(job_id)
        journal = json.loads((folder / "journal.json").read_text())
        assert journal["pages_done"] == [1, 2] and journal["outcome"] == "printed"
        assert journal["reported"] is True
        for page in (1, 2):
            for colorant in "CMYK":
                assert (folder / f"page-{page:04d}-{colorant}.pbm").stat().st_size > 0
            assert (folder / f"page-{page:04d}-preview.png").is_file()
        assert (folder / "document.pdf").read_bytes() == pdf
        # the events a display shows, as for a JSON-mode printer
        kinds = [e.kind for e in device.events if e.job_id == _key(job_id)]
        assert kinds[0] == "job" and kinds.count("page") == 2 and kinds[-1] == "done"
        done = device.done(_key(job_id)).outcome
        assert done is not None and done.outcome == "printed" and done.impressions == 4
        assert len(done.previews) == 2
        registered = device.agent.uuid
    # registered with the printer's stable UUID; deregistered on a clean stop
    assert registered == device_uuid(world.config("color-1", tmp_path))
    assert device.agent._registered is False


def test_a_fault_aborts_the_job_with_its_reason(world: World, tmp_path: Path) -> None:
    t = world.tenant
    with Running(world.config("mono-1", tmp_path, "paper_out@2", sink=True)) as device:
        job_id = t.submit(make_pdf(3), printer="mono-1")["job_id"]
        job = world.stack.wait_for(t.api, job_id, "printer_cancelled")
        assert job["reason"] == "paper_out", job
        assert job["pages_printed"] == 1
        wait_completed(t, job_id)
        assert_no_leftovers(world.stack, job_id)
        done = device.done(_key(job_id)).outcome
        assert done is not None and done.outcome == "cancelled"
        assert done.reason == "media-empty-error"
        # a sink printer writes no engine output
        assert not list(tmp_path.rglob("*.pbm"))


def test_forwarded_to_ippeveprinter(world: World, office_printer: Ippeve, tmp_path: Path) -> None:
    t = world.tenant
    pdf = make_pdf(3)
    config = world.config("color-1", tmp_path, forward=office_printer.uri)
    with Running(config) as device:
        job_id = t.submit(pdf, printer="color-1")["job_id"]
        job = world.stack.wait_for(t.api, job_id, "printed")
        wait_completed(t, job_id)
        assert job["pages_printed"] == 3
        assert_no_leftovers(world.stack, job_id)
        # ippeveprinter kept the PDF it was sent, with every page
        deadline = time.monotonic() + 60
        while not (kept := list(office_printer.spool.rglob("*.pdf"))):
            assert time.monotonic() < deadline, list(office_printer.spool.rglob("*"))
            time.sleep(0.2)
        assert len(kept) == 1
        assert kept[0].read_bytes() == pdf
        assert _pdf_pages(kept[0]) == 3
        # the office printer's capabilities are the output device's
        got = device.agent._checked(
            Operation.GET_OUTPUT_DEVICE_ATTRIBUTES,
            [
                device.agent._device(),
                Attribute("requested-attributes", ValueTag.KEYWORD, "all"),
            ],
        )
        printer = got.message.group(GroupTag.PRINTER)
        assert printer is not None
        assert "application/pdf" in printer["document-format-supported"].values
        assert "image/urf" in printer["document-format-supported"].values
        assert printer["printer-make-and-model"].value != "printcloud virtual printer"
        done = device.done(_key(job_id)).outcome
        assert done is not None and done.outcome == "printed"
    # ... and become the printer's and its queue's (docs/infra.md "Registered capabilities")
    _queue_follows_the_office_printer(world, office_printer, "color-1")


def _queue_follows_the_office_printer(world: World, office: Ippeve, printer: str) -> None:
    stack, t = world.stack, world.tenant
    stack.user(t.id, "boss", "boss-password-1", admin=True)
    boss = stack.api(stack.user_token(t.id, "boss", "boss-password-1", "admin print"))
    made = boss.post("/api/queues", json={"name": "office", "printer_id": printer})
    assert made.status_code == 201, made.text

    def attributes(uri: str) -> dict[str, Attribute]:
        answer = call(uri, request(Operation.GET_PRINTER_ATTRIBUTES, uri, user=None))
        group = answer.group(GroupTag.PRINTER)
        assert answer.code == Status.SUCCESSFUL_OK and group is not None, answer
        return {a.name: a for a in group}

    real, queue = attributes(office.uri), attributes(made.json()["uri"])
    assert queue["printer-make-and-model"].value == real["printer-make-and-model"].value
    assert queue["color-supported"].value == real["color-supported"].value
    ours = ("one-sided", "two-sided-long-edge")
    assert queue["sides-supported"].values == [
        s for s in ours if s in real["sides-supported"].values
    ]
    sizes = set(real["media-supported"].values) & set(PWG_MEDIA)
    assert set(queue["media-supported"].values) == sizes and sizes
    listed = {p["printer_id"]: p for p in t.api.get("/api/printers").json()["printers"]}
    caps = listed[printer]["capabilities"]
    assert caps is not None and caps["color"] == real["color-supported"].value
    assert listed[printer]["color"] == real["color-supported"].value


class StandInPrinter:
    """An IPP printer on loopback (our codec, `http.server`) whose jobs do what a test
    says: Print-Job takes the job, Get-Job-Attributes answers `job_state`, and the
    printer reports `printer_reasons` (`media-empty-error`, as a real one out of paper
    does: ippeveprinter has no way to be out of paper, nor to hold a job)."""

    def __init__(self, *, job_state: JobState, printer_reasons: str = "none") -> None:
        self.job_state = job_state
        self.printer_reasons = printer_reasons
        self.operations: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answer = encode(outer.answer(decode(body)))
                self.send_response(200)
                self.send_header("Content-Type", "application/ipp")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"ipp://127.0.0.1:{self.server.server_address[1]}/ipp/print"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, request: Message) -> Message:
        self.operations.append(request.code)
        groups = []
        if request.code == Operation.GET_PRINTER_ATTRIBUTES:
            groups.append(
                Group(
                    GroupTag.PRINTER,
                    [
                        Attribute("document-format-supported", ValueTag.MIME_MEDIA_TYPE, PDF),
                        Attribute("printer-make-and-model", ValueTag.TEXT, "Stand-In 1"),
                        Attribute("printer-state-reasons", ValueTag.KEYWORD, self.printer_reasons),
                    ],
                )
            )
        elif request.code in (Operation.PRINT_JOB, Operation.GET_JOB_ATTRIBUTES):
            state = self.job_state if request.code == Operation.GET_JOB_ATTRIBUTES else 3
            reason = "aborted-by-system" if state == JobState.ABORTED else "none"
            groups.append(
                Group(
                    GroupTag.JOB,
                    [
                        Attribute("job-id", ValueTag.INTEGER, 1),
                        Attribute("job-state", ValueTag.ENUM, int(state)),
                        Attribute("job-state-reasons", ValueTag.KEYWORD, reason),
                    ],
                )
            )
        return ipp_response(request, Status.SUCCESSFUL_OK, groups)


@pytest.mark.parametrize("stuck", [False, True], ids=["aborted", "stuck"])
def test_an_office_printer_out_of_paper_cancels_the_job(
    world: World, tmp_path: Path, stuck: bool
) -> None:
    """The printer's `media-empty-error` becomes `printer_cancelled: paper_out`, whether
    it aborts the job or holds it past the proxy's deadline (then the proxy cancels it)."""
    t = world.tenant
    office = StandInPrinter(
        job_state=JobState.PROCESSING if stuck else JobState.ABORTED,
        printer_reasons="media-empty-error",
    )
    config = world.config("mono-1", tmp_path, forward=office.uri, forward_deadline=2.0)
    try:
        with Running(config) as device:
            job_id = t.submit(make_pdf(2), printer="mono-1")["job_id"]
            job = world.stack.wait_for(t.api, job_id, "printer_cancelled")
            assert job["reason"] == "paper_out", job
            assert job["pages_printed"] == 0
            wait_completed(t, job_id)
            assert_no_leftovers(world.stack, job_id)
            done = device.done(_key(job_id)).outcome
            assert done is not None and done.outcome == "cancelled"
            assert done.reason is not None and done.reason.startswith("media-empty-error")
    finally:
        office.close()
    assert Operation.PRINT_JOB in office.operations
    assert (Operation.CANCEL_JOB in office.operations) is stuck


def test_a_stopped_office_printer_aborts_the_job(
    world: World, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """ippeveprinter is stopped after the proxy registered it: the job ends
    `printer_cancelled` (`printer-stopped`: `engine_error`), not printed."""
    t = world.tenant
    with ippeveprinter_running(tmp_path_factory) as office:
        running = Running(world.config("mono-1", tmp_path, forward=office.uri))
        running.__enter__()
        deadline = time.monotonic() + 60
        while not running.agent._registered:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    try:
        job_id = t.submit(make_pdf(1), printer="mono-1")["job_id"]
        job = world.stack.wait_for(t.api, job_id, "printer_cancelled")
        assert job["reason"] == "engine_error", job
        wait_completed(t, job_id)
        assert_no_leftovers(world.stack, job_id)
        done = running.done(_key(job_id)).outcome
        assert done is not None and done.reason == "printer-stopped"
    finally:
        running.__exit__(None, None, None)


def test_killed_mid_job_and_started_again_prints_each_page_once(
    world: World, tmp_path: Path
) -> None:
    """`printcloud device --protocol infra` is killed (SIGKILL) after page 1 of 3; started
    again, it fetches the job again and prints pages 2 and 3 only. Page 2 is made
    unwritable until then (a folder where its engine output goes), so the kill comes
    while the job is between its pages, whatever the machine's speed."""
    t = world.tenant
    job_id = t.submit(make_pdf(3), printer="mono-1")["job_id"]
    world.stack.wait_for(t.api, job_id, "waiting_for_printer")
    folder = tmp_path / _key(job_id)
    blocker = folder / "page-0002-K.pbm"
    blocker.mkdir(parents=True)
    argv = _device_argv(world, "mono-1", tmp_path)
    env = {**world.stack.env, "PRINTCLOUD_DEVICE_SECRET": t.dev_secret}
    log = tmp_path / "device.log"
    with open(log, "wb") as out:
        first = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        journal: dict[str, object] = {}
        while journal.get("pages_done") != [1]:
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
            if (folder / "journal.json").is_file():
                journal = json.loads((folder / "journal.json").read_text())
        assert world.stack.wait_for(t.api, job_id, "printing")["state"] == "printing"
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    first_page = (folder / "page-0001-K.pbm").stat().st_mtime_ns
    shutil.rmtree(blocker)

    # The job stays the printer's, fetchable again; a new process takes it up.
    with open(log, "ab") as out:
        again = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        job = world.stack.wait_for(t.api, job_id, "printed")
        wait_completed(t, job_id)
    finally:
        again.send_signal(signal.SIGINT)  # a clean stop: it deregisters
        try:
            again.wait(timeout=60)
        except subprocess.TimeoutExpired:
            again.kill()
            again.wait(timeout=10)
    assert job["pages_printed"] == 3
    assert_no_leftovers(world.stack, job_id)
    journal = json.loads((folder / "journal.json").read_text())
    assert journal["pages_done"] == [1, 2, 3] and journal["outcome"] == "printed"
    # page 1 was printed once: its engine output is the first process's
    assert (folder / "page-0001-K.pbm").stat().st_mtime_ns == first_page
    for page in (2, 3):
        assert (folder / f"page-{page:04d}-K.pbm").is_file()
    # Ctrl-C is a clean stop: the device deregistered
    with InfraAgent(world.config("mono-1", tmp_path)) as probe:
        gone = probe._send(Operation.GET_OUTPUT_DEVICE_ATTRIBUTES, [probe._device()])
    assert gone.status == Status.CLIENT_ERROR_NOT_POSSIBLE, gone.describe()


def test_a_proxy_killed_while_its_printer_prints_does_not_send_the_job_twice(
    world: World, tmp_path: Path
) -> None:
    """The proxy is killed (SIGKILL) while the office printer holds the job it forwarded;
    started again, it follows that job at the printer instead of sending it again."""
    t = world.tenant
    office = StandInPrinter(job_state=JobState.PROCESSING)
    argv = [*_device_argv(world, "mono-1", tmp_path), "--forward", office.uri]
    env = {**world.stack.env, "PRINTCLOUD_DEVICE_SECRET": t.dev_secret}
    log = tmp_path / "device.log"
    try:
        job_id = t.submit(make_pdf(2), printer="mono-1")["job_id"]
        journal_path = tmp_path / _key(job_id) / "journal.json"
        with open(log, "wb") as out:
            first = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not (
                journal_path.is_file() and json.loads(journal_path.read_text())["forwarded"]
            ):
                assert first.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        assert office.operations.count(Operation.PRINT_JOB) == 1
        office.job_state = JobState.COMPLETED
        with open(log, "ab") as out:
            again = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            job = world.stack.wait_for(t.api, job_id, "printed")
            wait_completed(t, job_id)
        finally:
            again.send_signal(signal.SIGINT)
            again.wait(timeout=60)
    finally:
        office.close()
    assert job["pages_printed"] == 2
    assert office.operations.count(Operation.PRINT_JOB) == 1, log.read_text()
    assert_no_leftovers(world.stack, job_id)


def _device_argv(world: World, printer: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "printcloud",
        "device",
        "--protocol",
        "infra",
        "--server",
        world.stack.base_url,
        "--tenant",
        world.tenant.id,
        "--printer-id",
        printer,
        "--client-id",
        world.tenant.dev_id,
        "--out",
        str(out),
    ]


def test_printcloud_device_infra_once(world: World, tmp_path: Path) -> None:
    """`--once`: register, print what is fetchable now (a sink printer), leave."""
    t = world.tenant
    job_id = t.submit(make_pdf(2), printer="mono-1")["job_id"]
    world.stack.wait_for(t.api, job_id, "waiting_for_printer")
    printed = subprocess.run(
        [*_device_argv(world, "mono-1", tmp_path), "--sink", "--once"],
        env={**world.stack.env, "PRINTCLOUD_DEVICE_SECRET": t.dev_secret},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert printed.returncode == 0, printed.stdout + printed.stderr
    assert "INFRA output device" in printed.stdout and "printed" in printed.stdout
    job = world.stack.wait_for(t.api, job_id, "printed")
    assert job["pages_printed"] == 2
    wait_completed(t, job_id)
    assert_no_leftovers(world.stack, job_id)
    journal = json.loads((tmp_path / _key(job_id) / "journal.json").read_text())
    assert journal["pages_done"] == [1, 2] and journal["reported"] is True


def test_protocol_and_forward_are_checked(world: World, tmp_path: Path) -> None:
    t = world.tenant
    base = [
        sys.executable,
        "-m",
        "printcloud",
        "device",
        "--tenant",
        t.id,
        "--printer-id",
        "mono-1",
        "--client-id",
        t.dev_id,
        "--client-secret",
        "x",
    ]
    for extra, says in (
        (["--protocol", "pcl"], "choose json or infra"),
        (["--forward", "ipp://127.0.0.1:1/ipp/print"], "forwarding needs --protocol infra"),
        (["--protocol", "infra", "--forward", "ftp://x/y"], "is not an ipp://"),
        (["--protocol", "infra", "--card-reader"], "INFRA device"),
    ):
        done = subprocess.run(
            [*base, *extra], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2, (extra, done.stdout, done.stderr)
        assert says in done.stdout + done.stderr, (extra, done.stdout, done.stderr)


def test_another_output_device_is_refused_meanwhile(world: World, tmp_path: Path) -> None:
    """While one output device is registered for a printer, another is refused."""
    with Running(world.config("mono-1", tmp_path)) as device:
        deadline = time.monotonic() + 60
        while not device.agent._registered:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        other = InfraAgent(world.config("mono-1", tmp_path / "other"))
        other.uuid = f"urn:uuid:{uuid.uuid4()}"
        with other, pytest.raises(DeviceError, match="client-error-not-possible") as refused:
            other.register()
        assert device.agent.uuid in str(refused.value)
