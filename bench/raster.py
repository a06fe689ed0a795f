"""The printer's raster pipeline in megapixels/s: printcloud against Ghostscript, one core.

Input: page 1 of `../shared/bench-data/doc10.pdf`, rendered once to a 300 dpi
JPEG (quality 85) with pypdfium2 + Pillow, which is what the printer downloads
(seed 003). printcloud's `device.raster.render_page` is timed from those JPEG
bytes to packed 1-bit planes on an A4 sheet: decode → CMYK through the ICC
grid → 8×8 ordered dither (`color_icc`), the same with the formula separation
(`color_formula`, for information) and decode → gray → dither (`mono`).
The peer is Ghostscript rendering the **same page from the PDF** at 300 dpi to
`-sDEVICE=bitcmyk` (ICC separation, 1 bit per colorant) and `-sDEVICE=pbmraw`
(mono), output to /dev/null, the whole `gs` process. So the peer
also interprets and rasterizes the PDF, which printcloud's print service did
before the printer got the JPEG: the comparison is the printer's work on each
side, as in DESIGN.md and bench-data/README.md. MP/s use the page's pixel count
at 300 dpi for every row. Everything is pinned to one CPU; the numba kernels
are compiled and warmed before timing; N rounds, each timing every case once
(round-robin), medians. The ceiling is a NumPy copy of the decoded RGB page.
Each case is timed twice over: wall clock, and CPU time (user + system: this
process's `time.process_time()` for ours, `getrusage(RUSAGE_CHILDREN)` for a `gs`
process, start-up included). Both ratios are printed; the CPU one holds when other
work shares the machine, the wall one only on a quiet machine.
Goals (issue 17, "The kernels"; first 5x and 8x): color_icc >= 15x gs bitcmyk,
mono >= 25x gs pbmraw (`GOALS`). `mono` decodes the colour JPEG to gray; a mono job's
page is a one-channel JPEG, which decodes no faster (bench/README.md).
"""

from __future__ import annotations

import io
import json
import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from bench.harness import (
    REPO,
    BenchError,
    Options,
    busy_warning,
    console,
    machine,
    require_tools,
    tool_version,
)

DOC = REPO.parent / "shared" / "bench-data" / "doc10.pdf"
DPI = 300
QUALITY = 85
GOALS = {"color_icc": ("gs_bitcmyk", 15.0), "mono": ("gs_pbmraw", 25.0)}
NOTE = (
    "Ghostscript renders the page from the PDF; printcloud starts from the page's JPEG "
    "(what the printer downloads): each side's printer work"
)


def _page_jpeg() -> tuple[bytes, tuple[int, int]]:
    import pypdfium2 as pdfium

    if not DOC.is_file():
        raise BenchError(f"benchmark input missing: {DOC}")
    pdf = pdfium.PdfDocument(DOC)
    try:
        image = pdf[0].render(scale=DPI / 72).to_pil()
    finally:
        pdf.close()
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue(), image.size


@contextmanager
def _pinned(cpu: int) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rounds(
    cases: dict[str, Callable[[], object]], runs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """One untimed call of each case, then `runs` rounds, each timing every case once:
    (wall seconds, CPU seconds) per case. A case that runs a process (`gs`) is charged
    that process's CPU; ours, this process's.

    Round-robin, so that load from elsewhere hits printcloud and the peer alike.
    """
    for func in cases.values():
        func()  # warm: caches, allocator, first touch of buffers
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for index in range(runs):
        with console.status(f"raster: round {index + 1} of {runs}"):
            for name, func in cases.items():
                child = hasattr(func, "command")
                cpu_start = _children_cpu() if child else time.process_time()
                start = time.perf_counter()
                func()
                times[name].append(time.perf_counter() - start)
                cpu_end = _children_cpu() if child else time.process_time()
                cpu[name].append(cpu_end - cpu_start)
    return times, cpu


def _gs(device: str, cpu: int, output: str = "/dev/null") -> Callable[[], None]:
    cmd = [
        "taskset", "-c", str(cpu),
        "gs", "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", f"-r{DPI}", f"-sDEVICE={device}",
        f"-sOutputFile={output}", "-dFirstPage=1", "-dLastPage=1", str(DOC),
    ]  # fmt: skip

    def run() -> None:
        done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed: {done.stderr.decode(errors='replace')}")

    run.command = " ".join(cmd)  # type: ignore[attr-defined]
    return run


def _check_gs_output(device: str, cpu: int, out_dir: Path, pixels: int) -> None:
    """One real run to a file, so a device that wrote nothing is not timed as fast."""
    target = out_dir / f"gs-{device}.out"
    _gs(device, cpu, str(target))()
    size = target.stat().st_size
    target.unlink()
    bits = {"bitcmyk": 4, "pbmraw": 1}[device]
    if size < pixels * bits // 8 * 0.99:
        raise BenchError(f"gs {device} wrote {size} bytes for a {pixels}-pixel page")


def run(options: Options, out_dir: Path) -> bool:
    from printcloud.device import raster

    runs = options.runs or (3 if options.quick else 11)
    out_dir.mkdir(parents=True, exist_ok=True)
    cpu = max(os.sched_getaffinity(0))
    if warning := busy_warning():
        console.print(f"[yellow]{warning}[/]")
    with console.status("raster: rendering the input page"):
        jpeg, size = _page_jpeg()
    pixels = size[0] * size[1]
    megapixels = pixels / 1e6
    profile = raster.find_profile()
    separation = raster.load_separation(profile)
    info: dict[str, Any] = {
        "input": f"{DOC.name} page 1, {DPI} dpi JPEG q{QUALITY}, {size[0]}x{size[1]}",
        "jpeg_bytes": len(jpeg),
        "megapixels": round(megapixels, 3),
        "cpu": cpu,
        "runs": runs,
        "separation": separation.name,
        "note": NOTE,
    }
    raster.warm_up()
    rgb = raster.decode(jpeg, gray=False, page=raster.A4.pixels(DPI))
    buffer = np.empty_like(rgb)
    cases: dict[str, Callable[[], object]] = {
        "color_icc": lambda: raster.render_page(jpeg, color=True, dpi=DPI, profile=profile),
        "color_formula": lambda: raster.render_page(
            jpeg, color=True, dpi=DPI, separation=raster.FORMULA
        ),
        "mono": lambda: raster.render_page(jpeg, color=False, dpi=DPI),
        "decode_rgb": lambda: raster.decode(jpeg, gray=False, page=raster.A4.pixels(DPI)),
        "decode_gray": lambda: raster.decode(jpeg, gray=True, page=raster.A4.pixels(DPI)),
        "copy_ceiling": lambda: np.copyto(buffer, rgb),
    }
    if profile is None:
        del cases["color_formula"]  # color_icc already runs the formula
    gs_ok = True
    try:
        require_tools("gs", "taskset")
        info["ghostscript"] = tool_version(["gs", "--version"])
        for device in ("bitcmyk", "pbmraw"):
            _check_gs_output(device, cpu, out_dir, pixels)
            cases[f"gs_{device}"] = _gs(device, cpu)
    except BenchError as exc:
        console.print(f"[bold red]raster: Ghostscript not measured: {exc}[/]")
        info["ghostscript_error"] = str(exc)
        gs_ok = False

    results: dict[str, dict[str, Any]] = {}
    with _pinned(cpu):
        all_times, all_cpu = _rounds(cases, runs)
    for name, func in cases.items():
        times = all_times[name]
        median = statistics.median(times)
        cpu_median = statistics.median(all_cpu[name])
        results[name] = {
            "median_ms": round(median * 1000, 2),
            "mp_per_s": round(megapixels / median, 1),
            "runs_ms": [round(t * 1000, 2) for t in times],
            "cpu_median_ms": round(cpu_median * 1000, 2),
            "cpu_mp_per_s": round(megapixels / cpu_median, 1) if cpu_median > 0 else None,
            "cpu_runs_ms": [round(t * 1000, 2) for t in all_cpu[name]],
        }
        if command := getattr(func, "command", None):
            results[name]["command"] = command

    # What the printer printed, for a person to look at.
    raster.render_page(jpeg, color=True, dpi=DPI, profile=profile).write(out_dir, name="color")
    raster.render_page(jpeg, color=False, dpi=DPI).write(out_dir, name="mono")

    table = Table(title=f"raster: {info['input']}, CPU {cpu}, median of {runs}")
    table.add_column("case")
    table.add_column("ms/page", justify="right")
    table.add_column("MP/s", justify="right")
    table.add_column("CPU ms/page", justify="right")
    table.add_column("MP/CPU-s", justify="right")
    for name, result in results.items():
        cpu_rate = result["cpu_mp_per_s"]
        table.add_row(
            name,
            f"{result['median_ms']:.1f}",
            f"{result['mp_per_s']:.1f}",
            f"{result['cpu_median_ms']:.1f}",
            "-" if cpu_rate is None else f"{cpu_rate:.1f}",
        )
    console.print(table)
    console.print(f"separation: {separation.name}")
    console.print(f"[dim]{NOTE}.[/]")

    ratios: dict[str, Any] = {}
    if gs_ok:
        for name, (peer, goal) in GOALS.items():
            ratio = results[name]["mp_per_s"] / results[peer]["mp_per_s"]
            cpu_ratio = results[peer]["cpu_median_ms"] / results[name]["cpu_median_ms"]
            met = ratio >= goal
            ratios[name] = {
                "vs": peer,
                "ratio": round(ratio, 2),
                "cpu_ratio": round(cpu_ratio, 2),
                "goal": goal,
                "met": met,
                "cpu_met": cpu_ratio >= goal,
            }
            colour = "green" if met else "red"
            cpu_colour = "green" if cpu_ratio >= goal else "red"
            console.print(
                f"{name} / {peer}: wall [{colour}]{ratio:.1f}x[/], "
                f"CPU [{cpu_colour}]{cpu_ratio:.1f}x[/] (goal >= {goal:.0f}x)"
            )
    summary = {
        "benchmark": "raster",
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "info": info,
        "cases": results,
        "ratios": ratios,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return gs_ok
