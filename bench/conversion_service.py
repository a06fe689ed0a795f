"""Conversion pages/s through the print service (1 and 2 workers) against one-process peers.

Seed 003, FIG. 8 (S1301–S1318) as the service runs it: `printcloud serve`
with `PRINTCLOUD_CONVERT_WORKERS=1` and `=2` (round robin), plus `=2` with
`PRINTCLOUD_BALANCE=least_loaded` for reference — separate stacks, all
started at the start of the run (idle, a stack uses under 1 % of a core).
A batch submits 4 jobs of `../shared/bench-data/doc10.pdf` (10 A4 pages) at
once, colour, JPEG quality 85; the service's pages/s are 40 pages over the
window from the first S107 event (downloaded, so conversion may start) to the
last S108 event (converted), from the jobs' history. Printing is not counted:
the jobs wait for their printer and are then cancelled (and cleaned up, S112)
before the next batch.

Peers, each one process, unpinned (like one conversion worker): pypdfium2 +
Pillow in this process (`bench.conversion._bare`), `pdftoppm -jpeg -r DPI`
and `mutool draw -F pnm` + `cjpeg` per page, as in `bench/conversion.py`.
At 150 and 300 dpi; a warm-up batch/pass each (unless `--warm 0`), then
`--runs` rounds (default 3, `--quick` 1), each round every target once, so
load from elsewhere hits them alike; medians. CPU ms/page (user + system of
every process involved) is printed too: it holds when the machine is shared.
Goals (issue "The print service and the virtual printer"): 1 worker >= 0.9x
pypdfium2 + Pillow; 2 workers >= 1.8x 1 worker on two or more cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.progress import Progress
from rich.table import Table

from bench.conversion import DOC, DPIS, PAGES, QUALITY, _bare, _one_pass
from bench.harness import BenchError, Options, busy_warning, console, machine, tool_version
from bench.print_stack import WAITING, PrintStack, at, print_stack

JOBS = 4
BARE, PDFTOPPM, ONE, TWO = "pypdfium2+pillow", "pdftoppm", "service-1w", "service-2w"
#: label -> (conversion workers, balancer)
STACKS: dict[str, tuple[int, str]] = {
    ONE: (1, "round_robin"),
    TWO: (2, "round_robin"),
    "service-2w-least": (2, "least_loaded"),
}
#: (numerator, denominator, goal or None)
RATIOS: tuple[tuple[str, str, float | None], ...] = (
    (ONE, BARE, 0.9),
    (ONE, PDFTOPPM, None),
    (ONE, "mutool+cjpeg", None),
    (TWO, ONE, 1.8),
    ("service-2w-least", ONE, None),
)

Target = Callable[[bytes, int, Path, str], None]


@dataclass
class Case:
    """One target at one dpi: wall seconds and CPU seconds per pass (peers) or batch (service)."""

    pages: int
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.error is None and bool(self.seconds)

    @property
    def pages_per_s(self) -> float:
        return self.pages / statistics.median(self.seconds) if self.valid else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * statistics.median(self.cpu) / self.pages if self.cpu else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "pages_per_pass": self.pages,
            "pages_per_s": round(self.pages_per_s, 2),
            "cpu_ms_per_page": round(self.cpu_ms_per_page, 1),
            "runs_s": [round(value, 4) for value in self.seconds],
            "runs_cpu_s": [round(value, 3) for value in self.cpu],
            "details": self.details,
            "valid": self.valid,
            "error": self.error,
        }


# -- the peers: one process each, unpinned -----------------------------------


def _cmd(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-400:]}")


def _pdftoppm(data: bytes, dpi: int, out: Path, cpu: int) -> None:
    cmd = ["pdftoppm", "-jpeg", "-jpegopt", f"quality={QUALITY}", "-r", str(dpi)]
    _cmd([*cmd, str(DOC), str(out / "page")])


def _mutool_cjpeg(data: bytes, dpi: int, out: Path, cpu: int) -> None:
    _cmd(
        ["mutool", "draw", "-q", "-r", str(dpi), "-F", "pnm", "-o", str(out / "p%d.pnm"), str(DOC)]
    )
    for pnm in sorted(out.glob("p*.pnm")):
        _cmd(
            ["cjpeg", "-quality", str(QUALITY), "-outfile", str(pnm.with_suffix(".jpg")), str(pnm)]
        )
        pnm.unlink()


PEERS: dict[str, tuple[tuple[str, ...], Target]] = {
    BARE: ((), _bare),
    PDFTOPPM: (("pdftoppm",), _pdftoppm),
    "mutool+cjpeg": (("mutool", "cjpeg"), _mutool_cjpeg),
}


def _cpu_self_and_children() -> float:
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _peer_pass(target: Target, data: bytes, dpi: int) -> tuple[float, float]:
    before = _cpu_self_and_children()
    seconds, _, _ = _one_pass(target, data, dpi, "0")  # checks that 10 JPEGs were written
    return seconds, _cpu_self_and_children() - before


# -- the service ---------------------------------------------------------------


def _batch(stack: PrintStack, data: bytes, dpi: int) -> tuple[float, float, dict[str, Any]]:
    """Submit JOBS jobs at once; (first S107 → last S108 seconds, CPU s of the stack, details)."""
    before, begun = stack.cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(JOBS) as pool:
        ids = list(pool.map(lambda _: stack.submit(data, dpi=dpi), range(JOBS)))
    try:
        states = stack.wait(ids, WAITING)
        cpu, wall = stack.cpu_seconds() - before, time.perf_counter() - begun
        if bad := {job_id: state for job_id, state in states.items() if state not in WAITING}:
            raise BenchError(f"jobs ended instead of waiting for the printer: {bad}")
        jobs = [stack.job(job_id) for job_id in ids]
        if pages := [job["page_count"] for job in jobs if job["page_count"] != PAGES]:
            raise BenchError(f"jobs converted {pages} pages, not {PAGES}")
        start, end = min(at(job, "S107") for job in jobs), max(at(job, "S108") for job in jobs)
        workers = Counter(
            event["worker"] for job in jobs for event in job["history"] if event["step"] == "S108"
        )
        return (
            end - start,
            cpu,
            {
                "convert_s": [round(at(job, "S108") - at(job, "S107"), 3) for job in jobs],
                "s105_to_last_s108_s": round(end - min(at(job, "S105") for job in jobs), 3),
                "conversions_per_worker": dict(sorted(workers.items())),
                "cores_busy": round(cpu / wall, 2),
            },
        )
    finally:
        stack.cancel(ids)


# -- the run -------------------------------------------------------------------


def _measure(
    stacks: dict[str, PrintStack], peers: dict[str, Target], runs: int, warm: bool
) -> dict[str, dict[int, Case]]:
    data = DOC.read_bytes()
    results = {name: {dpi: Case(PAGES) for dpi in DPIS} for name in peers}
    results |= {name: {dpi: Case(PAGES * JOBS) for dpi in DPIS} for name in stacks}
    steps = (runs + warm) * len(DPIS) * len(results)
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("conversion_service", total=steps)
        for round_ in range(-1 if warm else 0, runs):
            for dpi in DPIS:
                for name, cases in results.items():
                    case = cases[dpi]
                    label = "warm-up" if round_ < 0 else f"run {round_ + 1}/{runs}"
                    progress.update(bar, description=f"{label} {dpi} dpi {name}")
                    progress.advance(bar)
                    if case.error:
                        continue
                    try:
                        if name in stacks:
                            seconds, cpu, detail = _batch(stacks[name], data, dpi)
                        else:
                            (seconds, cpu), detail = _peer_pass(peers[name], data, dpi), {}
                    except (BenchError, OSError, subprocess.SubprocessError) as exc:
                        case.error = str(exc)
                        progress.console.print(f"[bold red]{name} {dpi} dpi FAILED: {exc}[/]")
                        continue
                    progress.console.print(
                        f"  {label:9} {dpi} dpi {name:18} {case.pages / seconds:7.1f} pages/s"
                        f"  {1000 * cpu / case.pages:6.0f} CPU ms/page  {detail or ''}"
                    )
                    if round_ >= 0:
                        case.seconds.append(seconds)
                        case.cpu.append(cpu)
                        case.details.append(detail)
    return results


def _skipped(case: Case) -> bool:
    return (case.error or "").startswith("skipped")


def _ratios(results: dict[str, dict[int, Case]]) -> dict[str, dict[str, Any]]:
    ratios: dict[str, dict[str, Any]] = {}
    cpus = os.cpu_count() or 1
    for mine, other, wanted in RATIOS:
        # two workers cannot beat one on one core
        goal = None if other == ONE and cpus < 2 else wanted
        row: dict[str, Any] = {"goal": goal}
        for dpi in DPIS:
            a, b = results[mine][dpi], results[other][dpi]
            value = a.pages_per_s / b.pages_per_s if a.valid and b.valid else None
            row[str(dpi)] = round(value, 3) if value is not None else None
            row[f"met_{dpi}"] = None if value is None or goal is None else value >= goal
        ratios[f"{mine} / {other}"] = row
    return ratios


def _report(results: dict[str, dict[int, Case]], ratios: dict[str, dict[str, Any]]) -> None:
    table = Table(title=f"doc10.pdf → JPEG q{QUALITY}: pages/s (median), CPU ms/page (median)")
    table.add_column("target")
    for dpi in DPIS:
        table.add_column(f"{dpi} dpi p/s", justify="right")
        table.add_column(f"CPU ms/p {dpi}", justify="right")
    table.add_column("runs (pages/s)")
    for name, cases in results.items():
        cells = []
        for case in cases.values():
            if case.valid:
                cells += [f"{case.pages_per_s:.1f}", f"{case.cpu_ms_per_page:.0f}"]
            else:
                cells += ["[yellow]skipped[/]" if _skipped(case) else "[red]FAILED[/]", "-"]
        runs = "; ".join(
            f"{dpi}: " + ", ".join(f"{case.pages / s:.1f}" for s in case.seconds)
            for dpi, case in cases.items()
        )
        table.add_row(name, *cells, runs)
    console.print(table)

    detail = Table(title=f"service batches: {JOBS} jobs × {PAGES} pages (medians over runs)")
    for column in ("stack", "dpi", "S107→S108 window s", "one job S107→S108 s", "S105→last S108 s"):
        detail.add_column(column, justify="left" if column == "stack" else "right")
    detail.add_column("conversions per worker (last run)")
    detail.add_column("cores busy", justify="right")
    for name, cases in results.items():
        for dpi, case in cases.items():
            if name not in STACKS or not case.valid:
                continue
            one_job = statistics.median(s for d in case.details for s in d["convert_s"])
            to_last = statistics.median(d["s105_to_last_s108_s"] for d in case.details)
            window = statistics.median(case.seconds)
            per_worker = case.details[-1]["conversions_per_worker"]
            cores = statistics.median(d["cores_busy"] for d in case.details)
            figures = (f"{window:.2f}", f"{one_job:.2f}", f"{to_last:.2f}", str(per_worker))
            detail.add_row(name, str(dpi), *figures, f"{cores:.2f}")
    console.print(detail)
    console.print(
        "[dim]cores busy: the stack's CPU seconds / wall seconds, from the submissions "
        "until every job waits for its printer[/]"
    )

    for key, row in ratios.items():
        parts = []
        for dpi in DPIS:
            value, met = row[str(dpi)], row[f"met_{dpi}"]
            colour = "" if met is None else ("green" if met else "red")
            text = "-" if value is None else f"{value:.2f}x"
            parts.append(f"{dpi} dpi [{colour}]{text}[/]" if colour else f"{dpi} dpi {text}")
        goal = f"  (goal >= {row['goal']:.1f}x)" if row["goal"] else ""
        console.print(f"{key:34} {'   '.join(parts)}{goal}")
    console.print(
        f"CPUs: os.cpu_count() = {os.cpu_count()}, usable = {len(os.sched_getaffinity(0))}"
    )


def run(options: Options, out_dir: Path) -> bool:
    """Start the stacks, measure every target at each dpi, print the tables, write summary.json."""
    if not DOC.is_file():
        raise BenchError(f"{DOC} is missing (the shared benchmark inputs)")
    runs = options.runs or (1 if options.quick else 3)
    warm = options.warm is None or options.warm > 0  # a cold worker's first job loads PDFium
    out_dir.mkdir(parents=True, exist_ok=True)
    peers: dict[str, Target] = {}
    skipped: dict[str, str] = {}
    for name, (tools, target) in PEERS.items():
        if missing := [tool for tool in tools if shutil.which(tool) is None]:
            skipped[name] = f"skipped: missing {', '.join(missing)}"
            console.print(f"[yellow]{name} {skipped[name]}[/]")
        else:
            peers[name] = target
    started_at, machine_before, warning = datetime.now(UTC), machine(), None
    with contextlib.ExitStack() as exits:
        stacks: dict[str, PrintStack] = {}
        for name, (workers, balance) in STACKS.items():
            with console.status(f"starting {name}: {workers} worker(s), {balance}"):
                stacks[name] = exits.enter_context(
                    # No printer ever takes these jobs (printing is not counted): with the
                    # default per-printer cap of 2, jobs 3 and 4 of a batch would wait
                    # for the printer before conversion, for ever.
                    print_stack(
                        workers=workers,
                        balance=balance,
                        log_dir=out_dir,
                        printer_concurrency=JOBS,
                    )
                )
            if (listed := stacks[name].workers()) != workers:
                raise BenchError(f"{name}: healthz lists {listed} workers, not {workers}")
        console.print(
            f"conversion_service: {runs} round(s){' after a warm-up' if warm else ''}; "
            f"{JOBS} jobs per service batch; stacks {', '.join(STACKS)}; peers unpinned"
        )
        if warning := busy_warning():
            console.print(f"[bold yellow]{warning}[/]")
        results = _measure(stacks, peers, runs, warm)
    for name, reason in skipped.items():
        results[name] = {dpi: Case(PAGES, error=reason) for dpi in DPIS}
    ratios = _ratios(results)
    _report(results, ratios)
    summary = {
        "benchmark": "conversion_service",
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": str(DOC),
        "jobs_per_batch": JOBS,
        "quality": QUALITY,
        "stacks": {name: {"workers": w, "balance": b} for name, (w, b) in STACKS.items()},
        "options": {"runs": runs, "warm_up": warm},
        "machine": machine_before
        | {"loadavg_after": machine()["loadavg"], "busy_warning": warning},
        "versions": {name: metadata.version(name) for name in ("printcloud", "pypdfium2", "pillow")}
        | {tool: tool_version([tool, "-v"]) for tool in ("pdftoppm", "mutool")},
        "targets": {
            name: {str(dpi): case.to_json() for dpi, case in cases.items()}
            for name, cases in results.items()
        },
        "ratios": ratios,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return all(c.valid or _skipped(c) for cs in results.values() for c in cs.values())
