"""A 10-page job through the INFRA proxy to ippeveprinter, submission to `printed`, vs its parts.

Issue 15 (IPP INFRA, PWG 5100.18): `printcloud serve` with two conversion workers
(round robin) and one colour printer, whose output device is the virtual printer in
INFRA mode with `--forward` (`printcloud.device.infra.InfraAgent`, a thread of this
process): it waits on Get-Notifications, fetches the job (Fetch-Job, Fetch-Document:
the PDF itself, since ippeveprinter takes PDF), forwards it to Debian's `ippeveprinter
-k` by Print-Job, follows it with Get-Job-Attributes and reports it by
Update-Job-Status. A run submits `../shared/bench-data/doc10.pdf` (300 dpi, colour)
and polls the job every 20 ms: the wall time runs from the POST to the poll that sees
`printed`; the job's history gives S105 accepted → S111 printed and where it goes.
Since the proxy registers that its printer takes PDF, the job is fetchable once
downloaded (PDF pass-through): its S108 conversion (JPEG pages and page previews)
runs beside the printing and is timed apart, and each run checks the previews.

The reference, measured in the same rounds: (a) the job's conversion,
`printcloud.printing.convert.convert_pdf` of the 10 pages at 300 dpi in this process
(as `print_e2e`'s), plus (c) the transfer to ippeveprinter alone: the same PDF sent
to the same ippeveprinter by the proxy's own `ForwardPrinter.print` (Print-Job, then
Get-Job-Attributes every 20 ms until `completed`). Ratio = e2e / (a + c); goal (issue
15): <= 1.3x. A warm-up job first (unless `--warm 0`), then `--runs` rounds (default 3,
`--quick` 1); medians. Data folders live in /dev/shm when there is one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.progress import Progress
from rich.table import Table

from bench.conversion import DOC, PAGES, QUALITY, _scratch
from bench.harness import BenchError, Options, busy_warning, console, machine, require_tools
from bench.ipp_server import ippeveprinter
from bench.print_e2e import Runs
from bench.print_stack import FINAL, PrintStack, at, print_stack

DPI = 300
WORKERS = 2
GOAL = 1.3
POLL = 0.02
#: (label, history step, detail the event's text contains) in the order the job goes.
#: ippeveprinter takes PDF, so the job is fetchable once downloaded (PDF pass-through):
#: its JPEG conversion (S108) runs beside the printing, timed apart (`BESIDE`).
STEPS = (
    ("accepted", "S105", ""),
    ("token", "S106", ""),
    ("download", "S107", ""),
    ("print request", "S109", ""),
    ("proxy woken, Fetch-Job, Acknowledge-Job", "S110", "started"),
    ("Fetch-Document, Print-Job … completed, Update-Job-Status", "S110", "reports"),
    ("notify (printed)", "S111", ""),
)
BREAKDOWN = (
    "POST → S105: upload, accepted",
    *(f"{a[1]} → {b[1]}: {b[0]}" for a, b in itertools.pairwise(STEPS)),
    "S111 → seen by the poll",
)
#: Off the job's path: S109 → S108 (the JPEG pages and previews made beside the
#: printing), and S111 → S112 (completion, which waits for that conversion).
BESIDE = ("S109 → S108: JPEG pages + previews, beside", "S111 → S112: clean-up")


def _reference(data: bytes, forward_uri: str, runs: Runs) -> None:
    """(a) convert_pdf in process; (c) Print-Job of the PDF to ippeveprinter, to `completed`."""
    from printcloud.core.blobs import FileBlobStore
    from printcloud.core.http import client as http_client
    from printcloud.device.forward import FetchedJob, ForwardPrinter
    from printcloud.ipp.model import JobState
    from printcloud.printing.convert import convert_pdf

    with tempfile.TemporaryDirectory(prefix="pc-bench-infra-", dir=_scratch()) as folder:
        store = FileBlobStore(Path(folder) / "blobs")
        start = time.perf_counter()
        manifest = convert_pdf(
            data,
            dpi=DPI,
            color=True,
            quality=QUALITY,
            store=store,
            prefix="job",
            base_url="http://127.0.0.1/converted/job",
        )
        runs.add("a_convert", time.perf_counter() - start)
        if manifest.page_count != PAGES:
            raise BenchError(f"convert_pdf made {manifest.page_count} pages, not {PAGES}")
    job = FetchedJob(
        number=0,
        uuid="urn:uuid:00000000-0000-0000-0000-000000000000",
        title="doc10.pdf",
        user="bench",
        copies=1,
        sides="one-sided",
        color_mode="color",
        media="iso_a4_210x297mm",
        dpi=DPI,
        impressions=PAGES,
    )
    with http_client(timeout=60) as http:
        printer = ForwardPrinter(forward_uri, http, poll=POLL)
        printer.capabilities()  # as the proxy did when it registered
        start = time.perf_counter()
        ended = printer.print(job, data, pages=PAGES)
        runs.add("c_transfer", time.perf_counter() - start)
    if ended.state != JobState.COMPLETED:
        raise BenchError(f"ippeveprinter ended the reference job {ended}")
    runs.add("a_plus_c", runs.values["a_convert"][-1] + runs.values["c_transfer"][-1])


def _e2e(stack: PrintStack, data: bytes, runs: Runs) -> dict[str, Any]:
    """One job through the service, the INFRA proxy and ippeveprinter, into `runs`."""
    begun, begun_wall = time.perf_counter(), time.time()
    job_id = stack.submit(data, dpi=DPI)
    posted = time.perf_counter()
    deadline = posted + 300
    while (job := stack.job(job_id))["state"] not in FINAL:
        if time.perf_counter() > deadline:
            raise BenchError(f"job {job_id} still {job['state']} after 300 s")
        stack.alive()
        time.sleep(POLL)
    seen, seen_wall = time.perf_counter(), time.time()
    if job["state"] != "printed" or job["pages_printed"] != PAGES:
        raise BenchError(f"job {job_id} ended {job['state']} ({job['reason']}), not printed")
    times = [at(job, step, detail=detail) for _, step, detail in STEPS]
    runs.add("e2e_wall", seen - begun)
    runs.add("e2e_history", times[-1] - times[0])
    spans = [times[0] - begun_wall]
    spans += [after - before for before, after in itertools.pairwise(times)]
    spans += [seen_wall - times[-1]]
    for name, span in zip(BREAKDOWN, spans, strict=True):
        runs.add(name, span)
    stack.cancel([job_id])  # nothing to cancel (409): waits for the clean-up (S112)
    done = stack.job(job_id)
    if done.get("previews") != PAGES:
        raise BenchError(f"job {job_id} has {done.get('previews')} page previews, not {PAGES}")
    runs.add(BESIDE[0], at(done, "S108") - at(done, "S109"))
    runs.add(BESIDE[1], at(done, "S112") - at(done, "S111"))
    return job


def _measure(out_dir: Path, runs_wanted: int, warm: bool) -> Runs:
    from printcloud.device.config import DeviceConfig
    from printcloud.device.infra import InfraAgent

    data = DOC.read_bytes()
    runs = Runs()
    with contextlib.ExitStack() as exits:
        kept = Path(tempfile.mkdtemp(prefix="pc-bench-proxy-", dir=_scratch()))
        exits.callback(shutil.rmtree, kept, ignore_errors=True)
        with console.status("starting ippeveprinter and the stack"):
            _, office, _ = exits.enter_context(ippeveprinter(out_dir))
            stack = exits.enter_context(print_stack(workers=WORKERS, log_dir=out_dir))
        config = DeviceConfig(
            server=stack.base,
            tenant_id=stack.tenant_id,
            printer_id=stack.printer_id,
            client_id=stack.device_id,
            client_secret=stack.device_secret,
            out_dir=kept,
            forward=office,
        )
        agent = exits.enter_context(InfraAgent(config))
        stop = threading.Event()
        proxy = threading.Thread(target=agent.run, args=(stop,), name="proxy", daemon=True)
        proxy.start()
        exits.callback(proxy.join, 90)
        # last in, first out: stop, deregister (ends a held Get-Notifications), join, close
        exits.callback(_leave, agent)
        exits.callback(stop.set)
        deadline = time.monotonic() + 60
        while not agent._registered:
            if time.monotonic() > deadline or not proxy.is_alive():
                raise BenchError(f"the INFRA proxy did not register (see {out_dir})")
            time.sleep(0.05)
        with Progress(console=console, transient=True) as progress:
            bar = progress.add_task("infra_e2e", total=runs_wanted + warm)
            for index in range(-1 if warm else 0, runs_wanted):
                label = "warm-up" if index < 0 else f"run {index + 1}/{runs_wanted}"
                into = Runs() if index < 0 else runs
                progress.update(bar, description=f"{label}: convert_pdf + Print-Job alone")
                _reference(data, office, into)
                progress.update(bar, description=f"{label}: the job through the INFRA proxy")
                job = _e2e(stack, data, into)
                progress.advance(bar)
                progress.console.print(
                    f"  {label:9} e2e {into.values['e2e_wall'][-1]:.2f} s "
                    f"(S105→S111 {into.values['e2e_history'][-1]:.2f} s); "
                    f"a + c {into.values['a_plus_c'][-1]:.2f} s "
                    f"(job {job['job_id'][:8]})"
                )
    return runs


def _leave(agent: Any) -> None:
    with contextlib.suppress(Exception):
        if agent._registered:
            agent.deregister()


def _report(runs: Runs) -> dict[str, Any]:
    ac = runs.median("a_plus_c")
    table = Table(title=f"doc10.pdf, {PAGES} pages at {DPI} dpi colour: seconds (median)")
    table.add_column("figure")
    table.add_column("s", justify="right")
    table.add_column("runs")
    names = {
        "e2e_wall": "e2e: POST → `printed` seen (20 ms polls)",
        "e2e_history": "e2e: S105 → S111 (job history)",
        "a_convert": "(a) convert_pdf in process",
        "c_transfer": "(c) Print-Job to ippeveprinter → completed",
        "a_plus_c": "(a) + (c)",
    }
    for name, text in names.items():
        values = ", ".join(f"{value:.3f}" for value in runs.values[name])
        table.add_row(text, f"{runs.median(name):.3f}", values)
    console.print(table)

    steps = Table(title="where the e2e time goes (median per step, from the job history)")
    for column in ("step", "s", "share", "runs"):
        steps.add_column(column, justify="left" if column in ("step", "runs") else "right")
    span = runs.median("e2e_wall")
    for name in (*BREAKDOWN, *BESIDE):
        value = runs.median(name)
        each = ", ".join(f"{v:.3f}" for v in runs.values[name])
        steps.add_row(name, f"{value:.3f}", f"{value / span:.0%}", each)
    console.print(steps)
    console.print(
        "[dim]Shares are of the e2e wall time. The two S110 spans are the proxy's: from "
        "the print request to Acknowledge-Job, and from there to its report. The last two "
        "rows are off the job's path (PDF pass-through): the conversion beside the "
        "printing, and the clean-up after `printed`.[/]"
    )
    ratios: dict[str, Any] = {"goal": GOAL}
    for name in ("e2e_wall", "e2e_history"):
        ratio = runs.median(name) / ac
        ratios[name] = {"ratio": round(ratio, 3), "met": ratio <= GOAL}
        colour = "green" if ratio <= GOAL else "red"
        console.print(f"{names[name]} / (a + c): [{colour}]{ratio:.2f}x[/] (goal <= {GOAL}x)")
    return ratios


def run(options: Options, out_dir: Path) -> bool:
    """Measure the job end to end and its parts; print, write `summary.json`."""
    if not DOC.is_file():
        raise BenchError(f"{DOC} is missing (the shared benchmark inputs)")
    require_tools("taskset", "ippeveprinter", "dbus-daemon", "avahi-daemon")
    runs_wanted = options.runs or (1 if options.quick else 3)
    warm = options.warm is None or options.warm > 0
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(
        f"infra_e2e: {runs_wanted} run(s){' after a warm-up job' if warm else ''}; "
        f"{WORKERS} conversion workers; the INFRA proxy in this process forwards to "
        "ippeveprinter"
    )
    if warning := busy_warning():
        console.print(f"[bold yellow]{warning}[/]")
    started_at, machine_before = datetime.now(UTC), machine()
    runs = _measure(out_dir, runs_wanted, warm)
    ratios = _report(runs)
    summary = {
        "benchmark": "infra_e2e",
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": str(DOC),
        "dpi": DPI,
        "quality": QUALITY,
        "workers": WORKERS,
        "options": {"runs": runs_wanted, "warm_up": warm, "poll_s": POLL},
        "machine": machine_before
        | {"loadavg_after": machine()["loadavg"], "busy_warning": warning},
        "printcloud": metadata.version("printcloud"),
        "medians_s": {name: round(runs.median(name), 4) for name in runs.values},
        "runs_s": {name: [round(v, 4) for v in values] for name, values in runs.values.items()},
        "ratios_over_a_plus_c": ratios,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return all(len(values) == runs_wanted for values in runs.values.values())
