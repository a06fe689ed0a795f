"""A 10-page job end to end, submission to last page printed, against its parts in one process.

Seed 003, the whole print path (FIG. 3–11): `printcloud serve` with two
conversion workers (round robin) and one colour printer, whose virtual
printer (`printcloud.device.agent.DeviceAgent`, polling every 0.05 s) runs
in a thread of this process. A run submits `../shared/bench-data/doc10.pdf`
(300 dpi, colour, the printer's default) and polls the job every 20 ms: the
wall time runs from the POST to the poll that sees `printed`; the job's
history gives the same span more precisely (S105 accepted → S111 printed) and
where it goes, step by step (S105 → S106 token → S107 download → S108 convert
→ S109 print request → S110 printer started → S110 printer reports → S111).

The reference, measured in the same rounds on the same machine: (a)
`printcloud.printing.convert.convert_pdf` of the 10 pages at 300 dpi, JPEG
quality 85, in this process, plus (b) the printer's raster pipeline for those
10 JPEGs (`printcloud.device.raster.render_page`: decode → CMYK → halftone)
and writing its engine output (`RenderedPage.write`). Ratio = e2e / (a + b);
goal (issue "The print service and the virtual printer"): <= 1.3x. A warm-up
job first (unless `--warm 0`), then `--runs` rounds (default 3, `--quick` 1);
medians. Data folders and printer output live in /dev/shm when there is one.

Accounting (issue 18), side by side in the same rounds: each round also prints the
job with the tenant's accounting on (a price list; the shared account pays), so the
intake reserves and the `printing.charge` step charges the 10 pages; the two e2e jobs
of a round run in alternating order. Ratio = e2e with accounting / without; goal <=
1.05x. Each accounted job is checked to be charged exactly its 10 pages. On a loaded
machine two e2e runs of many seconds differ by more than accounting costs, so the
benchmark also times accounting's own work alone (the intake's reservation and the
charge step's transaction, 20 times on the stack's database) and gives it as a share
of the e2e time.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.progress import Progress
from rich.table import Table

from bench.conversion import DOC, PAGES, QUALITY, _scratch
from bench.harness import BenchError, Options, busy_warning, console, machine
from bench.print_stack import FINAL, PRINTER, PrintStack, at, print_stack

DPI = 300
WORKERS = 2
GOAL = 1.3
ACCOUNTING_GOAL = 1.05
#: Per colour side (minor units): the accounted job costs 10 x this.
COLOR_PRICE = 20
PRINTER_ID = PRINTER
POLL = 0.02
#: (label, history step, detail the event's text contains) in the order the job goes.
STEPS = (
    ("accepted", "S105", ""),
    ("token", "S106", ""),
    ("download", "S107", ""),
    ("convert", "S108", ""),
    ("print request", "S109", ""),
    ("printer started", "S110", "started"),
    ("printing", "S110", "reports"),
    ("notify (printed)", "S111", ""),
)
#: The e2e breakdown, in order: the client's view at both ends, the history between.
BREAKDOWN = (
    "POST → S105: upload, accepted",
    *(f"{a[1]} → {b[1]}: {b[0]}" for a, b in itertools.pairwise(STEPS)),
    "S111 → seen by the poll",
)


@dataclass
class Runs:
    """Every measured run: seconds per figure name."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.values.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        return statistics.median(self.values[name])


def _reference(data: bytes, runs: Runs) -> None:
    """(a) convert_pdf in process; (b) render_page + write of its 10 pages."""
    from printcloud.core.blobs import FileBlobStore
    from printcloud.device.raster import render_page
    from printcloud.printing.convert import convert_pdf, page_name

    with tempfile.TemporaryDirectory(prefix="pc-bench-e2e-", dir=_scratch()) as folder:
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
        jpegs = [store.get(f"job/{page_name(page.number)}") for page in manifest.pages]
        render = write = 0.0
        for number, jpeg in enumerate(jpegs, 1):
            start = time.perf_counter()
            page = render_page(jpeg, color=True, dpi=DPI)
            middle = time.perf_counter()
            page.write(Path(folder) / "printed", name=f"page-{number:04d}")
            render, write = render + middle - start, write + time.perf_counter() - middle
        runs.add("b_render", render)
        runs.add("b_write", write)
        runs.add("b_raster", render + write)
        runs.add("a_plus_b", runs.values["a_convert"][-1] + render + write)


def _accounting(stack: PrintStack, *, on: bool) -> None:
    """Turn the stack tenant's accounting on (EUR, a price list, a funded shared account
    that pays for the client's jobs) or off (no settings: today's behaviour)."""
    from sqlalchemy import delete

    from printcloud.core.db import Database
    from printcloud.core.settings import Settings
    from printcloud.printing.accounting import ledger, prices
    from printcloud.printing.accounting.models import AccountingSettingsRow, PriceRow

    db = Database(Settings(data_dir=stack.data_dir, database_url=None).effective_database_url)
    tenant_id = stack.tenant_id
    try:
        with db.session() as s:
            if not on:
                s.execute(delete(PriceRow).where(PriceRow.tenant_id == tenant_id))
                s.execute(
                    delete(AccountingSettingsRow).where(
                        AccountingSettingsRow.tenant_id == tenant_id
                    )
                )
                return
            prices.configure(s, tenant_id=tenant_id, currency="EUR")
            prices.set_price(s, tenant_id=tenant_id, mono=5, color=COLOR_PRICE)
            shared = ledger.save_account(s, tenant_id=tenant_id, kind="shared", name="shared")
            if ledger.balance(s, shared) < 10**8:
                ledger.top_up(
                    s,
                    tenant_id=tenant_id,
                    account=shared,
                    value=10**9,
                    actor="bench",
                    reason="bench",
                )
    finally:
        db.dispose()


def _charged(stack: PrintStack, job_id: str) -> int | None:
    from printcloud.core.db import Database
    from printcloud.core.settings import Settings
    from printcloud.printing.accounting import charging

    db = Database(Settings(data_dir=stack.data_dir, database_url=None).effective_database_url)
    try:
        with db.sessions() as s:
            return charging.job_cost(s, tenant_id=stack.tenant_id, job_id=job_id).charged
    finally:
        db.dispose()


def _e2e_accounted(stack: PrintStack, data: bytes, runs: Runs) -> dict[str, Any]:
    """The same job with the tenant's accounting on; it must be charged its 10 pages."""
    _accounting(stack, on=True)
    try:
        measured = Runs()
        job = _e2e(stack, data, measured)
    finally:
        _accounting(stack, on=False)
    for name in ("e2e_wall", "e2e_history"):
        runs.add(f"{name}_accounting", measured.values[name][-1])
    charged = _charged(stack, job["job_id"])
    if charged != PAGES * COLOR_PRICE:
        raise BenchError(f"job {job['job_id']} charged {charged}, not {PAGES * COLOR_PRICE}")
    return job


def _accounting_work(stack: PrintStack, runs: Runs, *, jobs: int = 20) -> None:
    """Accounting's own work per job, alone, on the stack's database: the intake's
    reservation and the charge step's transaction for a 10-page job of a tenant of its
    own (`bench-acct-…`), `jobs` times; medians into `runs` (less noisy on a loaded
    machine than the difference of two e2e runs of many seconds)."""
    import secrets

    from printcloud.core.db import Database
    from printcloud.core.settings import Settings
    from printcloud.printing.accounting import charging, ledger, prices
    from printcloud.printing.models import PrintJobRow

    db = Database(Settings(data_dir=stack.data_dir, database_url=None).effective_database_url)
    tenant_id = f"bench-acct-{secrets.token_hex(3)}"
    options = {"color": True, "copies": 1, "duplex": False, "media": "A4"}
    try:
        with db.session() as s:
            prices.configure(s, tenant_id=tenant_id, currency="EUR")
            prices.set_price(s, tenant_id=tenant_id, mono=5, color=COLOR_PRICE)
            account = ledger.save_account(s, tenant_id=tenant_id, kind="user", name="bench")
            ledger.top_up(
                s, tenant_id=tenant_id, account=account, value=10**9, actor="b", reason="b"
            )
        for _ in range(jobs):
            job_id = f"bench{secrets.token_hex(8)}"
            start = time.perf_counter()
            with db.session() as s:
                charging.reserve(
                    s,
                    tenant_id=tenant_id,
                    job_id=job_id,
                    owner="bench",
                    printer_id=PRINTER_ID,
                    options=options,
                    pages=PAGES,
                )
            reserved = time.perf_counter()
            with db.session() as s:  # the job as the printer left it (not timed)
                s.add(
                    PrintJobRow(
                        job_id=job_id,
                        tenant_id=tenant_id,
                        printer_id=PRINTER_ID,
                        owner="bench",
                        client_id="bench",
                        title="bench",
                        source="upload",
                        options=options,
                        state="printed",
                        pages_printed=PAGES,
                    )
                )
            begun = time.perf_counter()
            with db.session() as s:
                if charging.settle(s, tenant_id=tenant_id, job_id=job_id) != PAGES * COLOR_PRICE:
                    raise BenchError("the charge of the in-process job is wrong")
            runs.add("acct_reserve", reserved - start)
            runs.add("acct_charge", time.perf_counter() - begun)
    finally:
        db.dispose()


def _e2e(stack: PrintStack, data: bytes, runs: Runs) -> dict[str, Any]:
    """One job through the service and the printer, submission to `printed`, into `runs`."""
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
    runs.add("post_answer", posted - begun)
    spans = [times[0] - begun_wall]
    spans += [after - before for before, after in itertools.pairwise(times)]
    spans += [seen_wall - times[-1]]
    for name, span in zip(BREAKDOWN, spans, strict=True):
        runs.add(name, span)
    stack.cancel([job_id])  # nothing to cancel (409): waits for the clean-up (S112)
    return job


def _measure(out_dir: Path, runs_wanted: int, warm: bool) -> Runs:
    from printcloud.device.agent import DeviceAgent, DeviceConfig
    from printcloud.device.raster import warm_up

    data = DOC.read_bytes()
    runs = Runs()
    with contextlib.ExitStack() as exits:
        printed = Path(tempfile.mkdtemp(prefix="pc-bench-printer-", dir=_scratch()))
        exits.callback(shutil.rmtree, printed, ignore_errors=True)
        with console.status("compiling the raster kernels, starting the stack"):
            warm_up()
            stack = exits.enter_context(print_stack(workers=WORKERS, log_dir=out_dir))
        config = DeviceConfig(
            server=stack.base,
            tenant_id=stack.tenant_id,
            printer_id=stack.printer_id,
            client_id=stack.device_id,
            client_secret=stack.device_secret,
            out_dir=printed,
            poll_interval=0.05,
        )
        agent = exits.enter_context(DeviceAgent(config))
        stop = threading.Event()
        printer = threading.Thread(target=agent.run, args=(stop,), name="printer", daemon=True)
        printer.start()
        exits.callback(printer.join, 60)
        exits.callback(stop.set)  # last in, first out: stop, then join, then close
        with Progress(console=console, transient=True) as progress:
            bar = progress.add_task("print_e2e", total=runs_wanted + warm)
            for index in range(-1 if warm else 0, runs_wanted):
                label = "warm-up" if index < 0 else f"run {index + 1}/{runs_wanted}"
                into = Runs() if index < 0 else runs
                progress.update(bar, description=f"{label}: convert_pdf + raster in process")
                _reference(data, into)
                progress.update(bar, description=f"{label}: the job through the service")
                # with and without accounting, in alternating order from round to round
                order = (_e2e, _e2e_accounted) if index % 2 == 0 else (_e2e_accounted, _e2e)
                for measure in order:
                    job = measure(stack, data, into)
                    shutil.rmtree(printed / job["job_id"], ignore_errors=True)
                progress.advance(bar)
                progress.console.print(
                    f"  {label:9} e2e {into.values['e2e_wall'][-1]:.2f} s "
                    f"(S105→S111 {into.values['e2e_history'][-1]:.2f} s), with accounting "
                    f"{into.values['e2e_wall_accounting'][-1]:.2f} s "
                    f"(S105→S111 {into.values['e2e_history_accounting'][-1]:.2f} s); "
                    f"a + b {into.values['a_plus_b'][-1]:.2f} s"
                )
        with console.status("accounting's own work per job, in process"):
            _accounting_work(stack, runs)
    return runs


def _report(runs: Runs) -> dict[str, Any]:
    ab = runs.median("a_plus_b")
    table = Table(title=f"doc10.pdf, {PAGES} pages at {DPI} dpi colour: seconds (median)")
    table.add_column("figure")
    table.add_column("s", justify="right")
    table.add_column("runs")
    names = {
        "e2e_wall": "e2e: POST → `printed` seen (20 ms polls)",
        "e2e_history": "e2e: S105 → S111 (job history)",
        "a_convert": "(a) convert_pdf in process",
        "b_render": "(b) render_page × 10",
        "b_write": "(b) RenderedPage.write × 10",
        "a_plus_b": "(a) + (b)",
        "e2e_wall_accounting": "e2e with accounting: POST → `printed` seen",
        "e2e_history_accounting": "e2e with accounting: S105 → S111",
    }
    for name, text in names.items():
        values = ", ".join(f"{value:.3f}" for value in runs.values[name])
        table.add_row(text, f"{runs.median(name):.3f}", values)
    console.print(table)

    steps = Table(title="where the e2e time goes (median per step, from the job history)")
    for column in ("step", "s", "share", "runs"):
        steps.add_column(column, justify="left" if column in ("step", "runs") else "right")
    span = runs.median("e2e_wall")
    for name in BREAKDOWN:
        value = runs.median(name)
        each = ", ".join(f"{v:.3f}" for v in runs.values[name])
        steps.add_row(name, f"{value:.3f}", f"{value / span:.0%}", each)
    console.print(steps)
    console.print(
        "[dim]Shares are of the e2e wall time. 'printer started': the printer's pick-up of "
        "the print request; 'printing': from its start to its report (S110 → S110).[/]"
    )
    ratios: dict[str, Any] = {"goal": GOAL}
    for name in ("e2e_wall", "e2e_history"):
        ratio = runs.median(name) / ab
        ratios[name] = {"ratio": round(ratio, 3), "met": ratio <= GOAL}
        colour = "green" if ratio <= GOAL else "red"
        console.print(f"{names[name]} / (a + b): [{colour}]{ratio:.2f}x[/] (goal <= {GOAL}x)")
    for name in ("e2e_wall", "e2e_history"):
        ratio = runs.median(f"{name}_accounting") / runs.median(name)
        met = ratio <= ACCOUNTING_GOAL
        ratios[f"{name}_accounting_over_off"] = {
            "ratio": round(ratio, 3),
            "met": met,
            "goal": ACCOUNTING_GOAL,
        }
        colour = "green" if met else "red"
        console.print(
            f"{names[name]}, accounting on / off: [{colour}]{ratio:.3f}x[/] "
            f"(goal <= {ACCOUNTING_GOAL}x)"
        )
    work = runs.median("acct_reserve") + runs.median("acct_charge")
    share = work / runs.median("e2e_wall")
    ratios["accounting_work_over_e2e"] = {"ratio": round(1 + share, 4), "met": share <= 0.05}
    console.print(
        f"accounting's own work per job (in process, median of {len(runs.values['acct_charge'])}):"
        f" reserve {runs.median('acct_reserve') * 1000:.1f} ms + charge "
        f"{runs.median('acct_charge') * 1000:.1f} ms = {share:.2%} of the e2e wall time "
        f"(+ one workflow step checkpoint, not measured here)"
    )
    return ratios


def run(options: Options, out_dir: Path) -> bool:
    """Measure the job end to end and its parts in process; print, write `summary.json`."""
    if not DOC.is_file():
        raise BenchError(f"{DOC} is missing (the shared benchmark inputs)")
    runs_wanted = options.runs or (1 if options.quick else 3)
    warm = options.warm is None or options.warm > 0
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(
        f"print_e2e: {runs_wanted} run(s){' after a warm-up job' if warm else ''}; "
        f"{WORKERS} conversion workers; the printer polls every 0.05 s in this process"
    )
    if warning := busy_warning():
        console.print(f"[bold yellow]{warning}[/]")
    started_at, machine_before = datetime.now(UTC), machine()
    runs = _measure(out_dir, runs_wanted, warm)
    ratios = _report(runs)
    summary = {
        "benchmark": "print_e2e",
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
        "ratios_over_a_plus_b": ratios,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return all(
        len(values) == runs_wanted
        for name, values in runs.values.items()
        if not name.startswith("acct_")
    )
