"""PDF → JPEG pages/s per process: printcloud against pypdfium2 + Pillow, pdftoppm, mutool.

The input is `../shared/bench-data/doc10.pdf` (10 A4 pages, see its README);
every target renders all 10 pages at 150 and 300 dpi and encodes them as JPEG
quality 85, as one process pinned to the same two CPUs (a conversion worker's
process; the parent's affinity for the in-process targets, `taskset` for the
others); `printcloud-1cpu` is pinned to one of them. Besides pages/s, every
pass records its CPU time (user + system of every thread and child), so the
per-core cost shows too. Outputs go to /dev/shm when it exists, so disk speed
does not count. Targets:

- `printcloud`: `printcloud.printing.convert.convert_pdf` (colour) into a
  temporary `FileBlobStore`: render page N + 1 while the encoder thread
  encodes, hashes and stores page N, then the manifest;
- `printcloud-1cpu`: the same on one CPU (no overlap possible), for reference;
- `printcloud-mono`: the same in mono (grayscale render and JPEG), for reference;
- `pypdfium2+pillow`: the practical limit of the stack DESIGN.md chose, in this
  process: `page.render(scale)` + `bitmap.to_pil().save(JPEG, quality=85)`;
- `pdftoppm`: `pdftoppm -jpeg -jpegopt quality=85 -r DPI` (poppler), one process;
- `mutool+cjpeg`: mutool 1.21 has no JPEG writer (`-o x.jpg` writes PNG), so
  `mutool draw -F pnm` writes the pages and `cjpeg -quality 85` encodes each
  (the DESIGN.md anchor does the same).

A warm-up pass per target and dpi (unless `--warm 0`; none with `--quick`),
then `--runs` rounds (default 5; `--quick` 1), each round one pass of every
target in turn, so that load from elsewhere hits all targets alike; the
median wall time of a pass gives pages/s. A pass
is invalid if it does not leave exactly 10 JPEGs. Goals: printcloud >= 1.3x bare
pypdfium2 + Pillow per worker process at 300 dpi (issue 17, "The kernels"; it was
>= 0.9x per core) and about 1.4x pdftoppm (issue "The print service and the virtual
printer"). The service-level figures (1 and 2
conversion workers behind the balancer) are `bench/conversion_service.py`'s.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.harness import REPO, BenchError, Options, busy_warning, console, machine, tool_version

DOC = REPO.parent / "shared" / "bench-data" / "doc10.pdf"
PAGES = 10
DPIS = (150, 300)
QUALITY = 85
BASELINE = "pypdfium2+pillow"
PEER = "pdftoppm"
GOALS = {BASELINE: 1.3, PEER: 1.4}
#: The dpi a goal is set at (all dpis when not named).
GOAL_DPI = {BASELINE: 300}
#: CPUs a worker process may use (the first two the bench may use).
WORKER_CPUS = 2
LATER = (
    "Service-level figures (pages/s through the conversion workers, with 1 and 2 "
    "workers behind the balancer): `python -m bench conversion_service`."
)


@dataclass
class Case:
    """The passes of one target at one dpi."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    jpeg_bytes: int = 0
    error: str | None = None

    @property
    def pages_per_s(self) -> float:
        return PAGES / statistics.median(self.seconds) if self.seconds else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * statistics.median(self.cpu_seconds) / PAGES if self.cpu_seconds else 0.0

    @property
    def valid(self) -> bool:
        return self.error is None and bool(self.seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "pages_per_s": round(self.pages_per_s, 2),
            "median_s": round(statistics.median(self.seconds), 4) if self.seconds else None,
            "runs_s": [round(value, 4) for value in self.seconds],
            "cpu_ms_per_page": round(self.cpu_ms_per_page, 1),
            "cpu_runs_s": [round(value, 4) for value in self.cpu_seconds],
            "jpeg_bytes_per_pass": self.jpeg_bytes,
            "valid": self.valid,
            "error": self.error,
        }


# -- targets: each renders DOC at `dpi` into `out` (an empty folder) -------------


def _printcloud(color: bool) -> Callable[[bytes, int, Path, str], None]:
    from printcloud.core.blobs import FileBlobStore
    from printcloud.printing.convert import convert_pdf

    def target(data: bytes, dpi: int, out: Path, cpus: str) -> None:
        convert_pdf(
            data,
            dpi=dpi,
            color=color,
            quality=QUALITY,
            store=FileBlobStore(out),
            prefix="job",
            base_url="http://127.0.0.1/converted/job",
        )

    return target


def _bare(data: bytes, dpi: int, out: Path, cpus: str) -> None:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        for index in range(len(doc)):
            page = doc[index]
            bitmap = page.render(scale=dpi / 72)
            buffer = io.BytesIO()
            bitmap.to_pil().save(buffer, "JPEG", quality=QUALITY)
            (out / f"page-{index + 1}.jpg").write_bytes(buffer.getvalue())
            bitmap.close()
            page.close()
    finally:
        doc.close()


def _run(cmd: list[str], cpus: str) -> None:
    done = subprocess.run(
        ["taskset", "-c", cpus, *cmd], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-400:]}")


def _pdftoppm(data: bytes, dpi: int, out: Path, cpus: str) -> None:
    cmd = ["pdftoppm", "-jpeg", "-jpegopt", f"quality={QUALITY}", "-r", str(dpi)]
    _run([*cmd, str(DOC), str(out / "page")], cpus)


def _mutool_cjpeg(data: bytes, dpi: int, out: Path, cpus: str) -> None:
    _run(
        ["mutool", "draw", "-q", "-r", str(dpi), "-F", "pnm", "-o", str(out / "p%d.pnm"), str(DOC)],
        cpus,
    )
    for pnm in sorted(out.glob("p*.pnm")):
        _run(
            ["cjpeg", "-quality", str(QUALITY), "-outfile", str(pnm.with_suffix(".jpg")), str(pnm)],
            cpus,
        )
        pnm.unlink()


#: name -> (tools it needs, in-process?, one CPU?, factory of the target)
TARGETS: dict[
    str,
    tuple[tuple[str, ...], bool, bool, Callable[[], Callable[[bytes, int, Path, str], None]]],
] = {
    "printcloud": ((), True, False, lambda: _printcloud(color=True)),
    "printcloud-1cpu": ((), True, True, lambda: _printcloud(color=True)),
    "printcloud-mono": ((), True, False, lambda: _printcloud(color=False)),
    BASELINE: ((), True, False, lambda: _bare),
    PEER: (("pdftoppm", "taskset"), False, False, lambda: _pdftoppm),
    "mutool+cjpeg": (("mutool", "cjpeg", "taskset"), False, False, lambda: _mutool_cjpeg),
}


@contextlib.contextmanager
def _pinned(cpus: set[int]) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _scratch() -> str | None:
    # A private folder inside it comes from TemporaryDirectory; tmpfs keeps disk speed out.
    shm = Path("/dev/shm")  # noqa: S108
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _cpu_seconds() -> float:
    """User + system time of this process (every thread) and its waited-for children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _one_pass(
    target: Callable[[bytes, int, Path, str], None], data: bytes, dpi: int, cpus: str
) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory(prefix="pc-bench-", dir=_scratch()) as folder:
        out = Path(folder)
        cpu_start = _cpu_seconds()
        start = time.perf_counter()
        target(data, dpi, out, cpus)
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_start
        jpegs = list(out.rglob("*.jpg"))
        if len(jpegs) != PAGES:
            raise BenchError(f"left {len(jpegs)} JPEGs, not {PAGES}")
        for path in jpegs:
            if path.read_bytes()[:3] != b"\xff\xd8\xff":
                raise BenchError(f"{path.name} is not a JPEG")
        return elapsed, cpu, sum(path.stat().st_size for path in jpegs)


def _measure_all(runs: int, warm: bool, cpus: list[int]) -> dict[str, dict[int, Case]]:
    data = DOC.read_bytes()
    results: dict[str, dict[int, Case]] = {name: {dpi: Case() for dpi in DPIS} for name in TARGETS}
    targets: dict[str, Callable[[bytes, int, Path, str], None]] = {}
    for name, (tools, _, _, factory) in TARGETS.items():
        missing = [tool for tool in tools if shutil.which(tool) is None]
        if missing:
            for case in results[name].values():
                case.error = f"skipped: missing {', '.join(missing)}"
        else:
            targets[name] = factory()
    for round_ in range(-1 if warm else 0, runs):
        for dpi in DPIS:
            for name, target in targets.items():
                case = results[name][dpi]
                if case.error:
                    continue
                _, in_process, one_cpu, _ = TARGETS[name]
                mine = cpus[-1:] if one_cpu else cpus
                pin = _pinned(set(mine)) if in_process else contextlib.nullcontext()
                try:
                    with pin:
                        seconds, cpu_s, size = _one_pass(
                            target, data, dpi, ",".join(map(str, mine))
                        )
                except (BenchError, OSError, subprocess.SubprocessError) as exc:
                    case.error = str(exc)
                    continue
                if round_ >= 0:  # round -1 is the warm-up
                    case.seconds.append(seconds)
                    case.cpu_seconds.append(cpu_s)
                    case.jpeg_bytes = size
    return results


def _ratio(results: dict[str, dict[int, Case]], name: str, dpi: int) -> float | None:
    mine, theirs = results["printcloud"].get(dpi), results.get(name, {}).get(dpi)
    if not (mine and theirs and mine.valid and theirs.valid):
        return None
    return mine.pages_per_s / theirs.pages_per_s


def _report(results: dict[str, dict[int, Case]]) -> dict[str, dict[str, float | None]]:
    table = Table(title=f"doc10.pdf → JPEG q{QUALITY}, one process: pages/s (median)")
    table.add_column("target")
    for dpi in DPIS:
        table.add_column(f"{dpi} dpi", justify="right")
        table.add_column(f"CPU ms/page {dpi}", justify="right")
        table.add_column(f"MB/pass {dpi}", justify="right")
    table.add_column("runs (s per pass)")
    for name, cases in results.items():
        cells: list[str] = []
        for dpi in DPIS:
            case = cases[dpi]
            if case.valid:
                cells += [
                    f"{case.pages_per_s:.1f}",
                    f"{case.cpu_ms_per_page:.0f}",
                    f"{case.jpeg_bytes / 1e6:.1f}",
                ]
            else:
                cells += [
                    "[yellow]skipped[/]"
                    if (case.error or "").startswith("skipped")
                    else "[bold red]FAILED[/]",
                    "-",
                    "-",
                ]
        runs = "; ".join(
            f"{dpi}: " + ", ".join(f"{value:.3f}" for value in cases[dpi].seconds) for dpi in DPIS
        )
        table.add_row(name, *cells, runs)
    console.print(table)

    ratios: dict[str, dict[str, float | None]] = {}
    ratio_table = Table(title="ratios printcloud / other (pages/s)")
    ratio_table.add_column("other")
    for dpi in DPIS:
        ratio_table.add_column(f"{dpi} dpi", justify="right")
    ratio_table.add_column("goal", justify="right")
    for name in results:
        if name == "printcloud":
            continue
        goal = GOALS.get(name)
        row = {str(dpi): _ratio(results, name, dpi) for dpi in DPIS}
        ratios[name] = {
            key: (round(value, 3) if value is not None else None) for key, value in row.items()
        }
        cells = []
        for dpi_key, value in row.items():
            if value is None:
                cells.append("-")
            elif goal is None or GOAL_DPI.get(name, int(dpi_key)) != int(dpi_key):
                cells.append(f"{value:.2f}x")
            else:
                cells.append(f"[{'green' if value >= goal * 0.97 else 'red'}]{value:.2f}x[/]")
        at = f" at {GOAL_DPI[name]}" if name in GOAL_DPI else ""
        ratio_table.add_row(
            name, *cells, f"{'>= ' if name == BASELINE else '≈ '}{goal:.1f}x{at}" if goal else ""
        )
    console.print(ratio_table)
    for name, cases in results.items():
        for dpi, case in cases.items():
            if case.error:
                colour = "yellow" if case.error.startswith("skipped") else "bold red"
                console.print(f"[{colour}]{name} {dpi} dpi: {case.error}[/]")
    console.print(LATER)
    return ratios


def run(options: Options, out_dir: Path) -> bool:
    """Measure every target at every dpi, print the tables, write `summary.json`."""
    if not DOC.is_file():
        raise BenchError(f"{DOC} is missing (the shared benchmark inputs)")
    runs = 1 if options.quick and options.runs is None else (options.runs or 5)
    warm = not options.quick if options.warm is None else options.warm > 0
    cpus = sorted(os.sched_getaffinity(0))[:WORKER_CPUS]
    console.print(
        f"conversion: {runs} pass(es) of {PAGES} pages per target and dpi"
        f"{', after a warm-up pass' if warm else ''}; every target one process pinned to "
        f"CPUs {','.join(map(str, cpus))}, printcloud-1cpu to CPU {cpus[-1]}; "
        f"load average {' '.join(f'{value:.1f}' for value in os.getloadavg())}"
    )
    warning = busy_warning()
    if warning:
        console.print(f"[bold yellow]{warning}[/]")
    started_at = datetime.now(UTC)
    machine_before = machine()
    results = _measure_all(runs, warm, cpus)
    ratios = _report(results)
    summary = {
        "benchmark": "conversion",
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": str(DOC),
        "pages": PAGES,
        "quality": QUALITY,
        "cpus": cpus,
        "options": {"runs": runs, "warm_up_pass": warm},
        "machine": machine_before
        | {"loadavg_after": machine()["loadavg"], "busy_warning": warning},
        "versions": {
            "pypdfium2": metadata.version("pypdfium2"),
            "pillow": metadata.version("pillow"),
            "simplejpeg": metadata.version("simplejpeg"),
            "pdftoppm": tool_version(["pdftoppm", "-v"]),
            "mutool": tool_version(["mutool", "-v"]),
            "cjpeg": tool_version(["cjpeg", "-version"]),
        },
        "targets": {
            name: {str(dpi): case.to_json() for dpi, case in cases.items()}
            for name, cases in results.items()
        },
        "ratios_printcloud_over": ratios,
        "goals": GOALS,
        "goal_dpi": GOAL_DPI,
        "later": LATER,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return all(
        case.valid or (case.error or "").startswith("skipped")
        for cases in results.values()
        for case in cases.values()
    )
