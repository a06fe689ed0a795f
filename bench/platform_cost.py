"""Platform cost: CPU milliseconds per printed page, by tier (platform, conversion, printer).

Issue 13, goal 2: "a page costs little", <= 10 ms of platform CPU per page.
One embedded `printcloud serve` (`bench.print_stack`, two conversion workers)
and its colour printer as a `printcloud device` process of its own (pushed
print requests, polling every 2 s as a fallback). A run submits `--runs` jobs
(default 6, `--quick` 2) of `../shared/bench-data/doc10.pdf` (10 pages at
300 dpi, colour) at once and waits, polling the job list once a second, until
every one is `printed`; the CPU time (user + system, from /proc/<pid>/stat) of
every process is read before the first submission and after the last job
ended, and split by what the process is:

- **conversion**: the conversion children (`printcloud.printing.convert_child`,
  PDFium + JPEG), the seed's S108 proper;
- **printer**: the `printcloud device` process (fetch, raster, halftone, write,
  preview), a machine of its own in real life;
- **platform**: everything else in the serve process group: the print service
  (HTTP, auth, workflows, history, page downloads, preview uploads) and the
  conversion workers' own part (session calls, the download step, page
  counting), shown as two lines.

Each figure is divided by the pages printed. The platform figure includes the
serve stack's idle cost over the run, read first over 10 quiet seconds and
reported as its share, and the bench's own once-a-second poll. A warm-up job
first (unless `--warm 0`), so first-call imports and the printer's raster
compilation do not count.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.conversion import DOC, PAGES, _scratch
from bench.harness import (
    LOOPBACK,
    BenchError,
    Options,
    busy_warning,
    console,
    log_tail,
    machine,
    started,
)
from bench.print_stack import FINAL, PrintStack, print_stack

DPI = 300
WORKERS = 2
GOAL_MS = 10.0
PRINTER_POLL = 2.0
#: The idle stack's own CPU is read over this window first (after a calm), to tell it apart.
IDLE_WINDOW = 10.0
CALM = 3.0
TIERS = ("service", "worker", "conversion", "printer")
LABELS = {
    "service": "platform: print service (serve, its HTTP, workflows, auth)",
    "worker": "platform: conversion workers' own part (sessions, download, HTTP)",
    "conversion": "conversion (convert_child: PDFium + JPEG)",
    "printer": "printer (`printcloud device`: fetch, raster, previews)",
}


def _cpu_ticks(pid: int) -> tuple[int, int] | None:
    """(process group, user + system ticks) of a live process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[2]), int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _tier(cmdline: str) -> str:
    if "printcloud.printing.convert_child" in cmdline:
        return "conversion"
    if "--service" in cmdline and "convert" in cmdline.split("--service", 1)[1][:16]:
        return "worker"
    return "service"


@dataclass
class Sample:
    """CPU ticks per PID (and its tier) of the stack's and the printer's processes."""

    ticks: dict[int, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def take(cls, serve_group: int, printer_group: int) -> Sample:
        sample = cls()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            read = _cpu_ticks(pid)
            if read is None or read[0] not in (serve_group, printer_group):
                continue
            tier = "printer" if read[0] == printer_group else _tier(_cmdline(pid))
            sample.ticks[pid] = (tier, read[1])
        return sample

    def seconds_since(self, before: Sample) -> dict[str, float]:
        """CPU seconds per tier between two samples. A process born in between counts in
        full; one that ended in between is lost (the stack keeps its processes: the
        conversion children are warm and live on)."""
        per_tier = dict.fromkeys(TIERS, 0)
        for pid, (tier, ticks) in self.ticks.items():
            per_tier[tier] += ticks - before.ticks.get(pid, (tier, 0))[1]
        hz = os.sysconf("SC_CLK_TCK")
        return {tier: value / hz for tier, value in per_tier.items()}


@contextlib.contextmanager
def _printer(stack: PrintStack, out_dir: Path) -> Any:
    printed = Path(tempfile.mkdtemp(prefix="pc-bench-cost-printed-", dir=_scratch()))
    cmd = [
        sys.executable,
        "-m",
        "printcloud",
        "device",
        "--server",
        stack.base,
        "--tenant",
        stack.tenant_id,
        "--printer-id",
        stack.printer_id,
        "--client-id",
        stack.device_id,
        "--out",
        str(printed),
        "--poll-interval",
        str(PRINTER_POLL),
        "--listen",
        f"{LOOPBACK}:0",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTCLOUD_")}
    env["PRINTCLOUD_DEVICE_SECRET"] = stack.device_secret
    log = out_dir / "printer.log"
    try:
        with started(cmd, env=env, log=log) as proc:
            yield proc, log, printed
    finally:
        shutil.rmtree(printed, ignore_errors=True)


def _batch(stack: PrintStack, printer: Any, log: Path, data: bytes, jobs: int) -> float:
    """Submit `jobs` jobs at once; wait (1 s polls of the job list) until all are printed."""
    began = time.monotonic()
    ids = [stack.submit(data, dpi=DPI) for _ in range(jobs)]
    deadline = time.monotonic() + 120 + 60 * jobs
    while True:
        stack.alive()
        if printer.poll() is not None:
            raise BenchError(f"the printer died; last lines of {log}:\n{log_tail(log)}")
        states = stack.states()
        if all(states.get(job_id) in FINAL for job_id in ids):
            break
        if time.monotonic() > deadline:
            raise BenchError(f"jobs not all printed in time: {states}")
        time.sleep(1.0)
    wrong = {job_id: states[job_id] for job_id in ids if states[job_id] != "printed"}
    if wrong:
        raise BenchError(f"jobs that did not print: {wrong}")
    return time.monotonic() - began


def _report(per_page: dict[str, float], pages: int, seconds: float) -> dict[str, Any]:
    table = Table(title=f"CPU per printed page ({pages} pages of doc10.pdf at {DPI} dpi)")
    for column in ("tier", "ms/page", "cores over the run"):
        table.add_column(column, justify="left" if column == "tier" else "right")
    for tier in TIERS:
        ms = per_page[tier]
        table.add_row(LABELS[tier], f"{ms:.1f}", f"{ms * pages / 1000 / seconds:.2f}")
    platform = per_page["service"] + per_page["worker"]
    colour = "green" if platform <= GOAL_MS else "red"
    table.add_row(
        "[bold]platform (both lines above conversion)[/]",
        f"[{colour}]{platform:.1f}[/]",
        f"{platform * pages / 1000 / seconds:.2f}",
    )
    console.print(table)
    ratios = {
        "platform_ms_per_page": round(platform, 2),
        "conversion_ms_per_page": round(per_page["conversion"], 2),
        "printer_ms_per_page": round(per_page["printer"], 2),
        "platform_over_conversion": round(platform / max(per_page["conversion"], 1e-9), 3),
        "goal_platform_ms_per_page": GOAL_MS,
        "met": platform <= GOAL_MS,
    }
    console.print(
        f"platform {platform:.1f} ms/page (goal <= {GOAL_MS:g}), "
        f"{ratios['platform_over_conversion']:.2f}x the conversion's "
        f"{per_page['conversion']:.1f} ms/page; printer {per_page['printer']:.1f} ms/page"
    )
    return ratios


def run(options: Options, out_dir: Path) -> bool:
    """Print jobs through the stack and its printer; CPU per page by tier; `summary.json`."""
    if not DOC.is_file():
        raise BenchError(f"{DOC} is missing (the shared benchmark inputs)")
    jobs = options.runs or (2 if options.quick else 6)
    warm = options.warm is None or options.warm > 0
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(
        f"platform_cost: {jobs} job(s) of {PAGES} pages at once, {WORKERS} conversion workers, "
        f"one `printcloud device` printer (push, {PRINTER_POLL:g} s polls)"
        + (", after a warm-up job" if warm else "")
    )
    warning = busy_warning()
    if warning:
        console.print(f"[bold yellow]{warning}[/]")
    started_at, machine_before = datetime.now(UTC), machine()
    data = DOC.read_bytes()
    with (
        print_stack(workers=WORKERS, log_dir=out_dir, printer_concurrency=jobs) as stack,
        _printer(stack, out_dir) as (printer, log, _printed),
    ):
        if warm:
            with console.status("warm-up job"):
                _batch(stack, printer, log, data, 1)
        with console.status(f"the idle stack, {IDLE_WINDOW:g} s"):
            time.sleep(CALM)
            idle_before, idle_began = Sample.take(stack.proc.pid, printer.pid), time.monotonic()
            time.sleep(IDLE_WINDOW)
            idle = Sample.take(stack.proc.pid, printer.pid).seconds_since(idle_before)
            idle_rate = (idle["service"] + idle["worker"]) / (time.monotonic() - idle_began)
        before = Sample.take(stack.proc.pid, printer.pid)
        with console.status(f"{jobs} jobs through the stack and the printer"):
            seconds = _batch(stack, printer, log, data, jobs)
        spent = Sample.take(stack.proc.pid, printer.pid).seconds_since(before)
    pages = jobs * PAGES
    per_page = {tier: 1000 * spent[tier] / pages for tier in TIERS}
    ratios = _report(per_page, pages, seconds)
    idle_ms = 1000 * idle_rate * seconds / pages
    ratios["platform_idle_share_ms_per_page"] = round(idle_ms, 2)
    console.print(
        f"of the platform's figure, {idle_ms:.1f} ms/page is what the idle stack spends anyway "
        f"({100 * idle_rate:.2f} % of a core over the {seconds:.0f} s run)"
    )
    summary = {
        "benchmark": "platform_cost",
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": str(DOC),
        "dpi": DPI,
        "workers": WORKERS,
        "options": {"jobs": jobs, "warm_up": warm, "printer_poll_s": PRINTER_POLL},
        "machine": machine_before | {"loadavg_after": machine()["loadavg"]},
        "busy_warning": warning,
        "printcloud": metadata.version("printcloud"),
        "pages": pages,
        "seconds": round(seconds, 3),
        "cpu_s": {tier: round(value, 3) for tier, value in spent.items()},
        "ms_per_page": {tier: round(value, 2) for tier, value in per_page.items()},
        "figures": ratios,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return True
