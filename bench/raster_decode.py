"""PWG raster (and URF) decode in MB/s of pixel bytes: printcloud against CUPS's own decoder.

Input: pages of `../shared/bench-data/doc10.pdf` (2 with `--quick`, else all 10)
rendered once by Ghostscript at 300 dpi to `image/pwg-raster` sRGB 8-bit
(`-sDEVICE=pwgraster -dcupsColorSpace=19 -dcupsBitsPerColor=8`, the type every
IPP Everywhere client can send) and to `image/urf` sRGB 24-bit (`-sDEVICE=urf`).
MB/s are the **uncompressed** pixel bytes (height × bytes per line, summed over
the pages) divided by the wall time, for every row.

The peer. Ghostscript writes PWG raster but cannot read it, and `mutool` does
not read it either; every C program that does (cups-filters' `rastertopdf`,
`pwgtoraster`, `rastertopclm`, CUPS's own `rastertoepson`…) reads it through one
decoder: libcups2's `cupsRasterReadHeader2` + `cupsRasterReadPixels`. So the
honest decode peer is that function itself, called through ctypes in this
process, one call per page into a page buffer (per-call overhead is nil; it
reads the file through its own buffered `read()`s, from the page cache):

- `printcloud_decode` / `libcups_decode`: PWG raster → pixel bytes, page by page;
- `printcloud_decode_urf` / `libcups_decode_urf`: the same pages as URF;
- `printcloud_to_pdf` / `cups_rastertopdf`: the whole conversion a print server
  does with such a document, PWG raster → PDF: ours is `printing.formats.to_pdf`
  (decode, JPEG q90 4:4:4 per page, PDF); the peer is cups-filters'
  `rastertopdf` filter (C++, libcups decode, Flate-compressed images, qpdf),
  run as CUPS runs a filter (`rastertopdf 1 user title 1 "" FILE`, output
  discarded), so it also pays one process start (~10 ms).

Before timing, our decoded bytes are compared with libcups's (page 1) and
rastertopdf's PDF is opened and its pages counted, so a broken decoder or a
filter that wrote nothing is never timed as fast. Everything is pinned to one
CPU; the numba kernel is compiled and warmed first; N rounds, each timing every
case once (round-robin, so load from elsewhere hits both sides), medians.
Goal (issue 14): no number was set; printcloud's decoder >= 1.0x libcups is the
bar kept here (numba against C).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import statistics
import struct
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.harness import REPO, VAR, BenchError, Options, busy_warning, console, machine

DOC = REPO.parent / "shared" / "bench-data" / "doc10.pdf"
DPI = 300
RASTERTOPDF = Path("/usr/lib/cups/filter/rastertopdf")
PAIRS = {
    "printcloud_decode": "libcups_decode",
    "printcloud_decode_urf": "libcups_decode_urf",
    "printcloud_to_pdf": "cups_rastertopdf",
}
GOAL = 1.0


class LibcupsReader:
    """libcups2's raster reader through ctypes: every page decoded into a page buffer."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("cups")
        if name is None:
            raise BenchError("libcups2 is not installed (Debian: apt-get install libcups2)")
        lib = ctypes.CDLL(name)
        lib.cupsRasterOpen.restype = ctypes.c_void_p
        lib.cupsRasterOpen.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.cupsRasterReadHeader2.restype = ctypes.c_uint
        lib.cupsRasterReadHeader2.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.cupsRasterReadPixels.restype = ctypes.c_uint
        lib.cupsRasterReadPixels.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]
        lib.cupsRasterClose.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.header = ctypes.create_string_buffer(4096)  # cups_page_header2_t: 1796 bytes
        # One page buffer, kept: ctypes zero-fills a new one, a cost libcups's callers
        # (filters reusing a line or band buffer) do not pay.
        self.buffer = ctypes.create_string_buffer(0)

    def decode(self, path: Path, *, keep_first: bool = False) -> tuple[int, bytes]:
        """(pixel bytes decoded, page 1's bytes when asked)."""
        fd = os.open(path, os.O_RDONLY)
        raster = self.lib.cupsRasterOpen(fd, 0)  # CUPS_RASTER_READ
        total = 0
        first = b""
        try:
            while self.lib.cupsRasterReadHeader2(raster, self.header):
                (height,) = struct.unpack_from("=I", self.header, 376)
                (bpl,) = struct.unpack_from("=I", self.header, 392)
                size = bpl * height
                if len(self.buffer) < size:
                    self.buffer = ctypes.create_string_buffer(size)
                if self.lib.cupsRasterReadPixels(raster, self.buffer, size) != size:
                    raise BenchError(f"libcups could not read a page of {path}")
                if keep_first and not first:
                    first = self.buffer.raw[:size]
                total += size
        finally:
            self.lib.cupsRasterClose(raster)
            os.close(fd)
        return total, first


def _make_inputs(pages: int, work: Path) -> tuple[Path, Path]:
    if not DOC.is_file():
        raise BenchError(f"benchmark input missing: {DOC}")
    common = ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", f"-r{DPI}", "-dFirstPage=1",
              f"-dLastPage={pages}", "-dcupsBitsPerColor=8"]  # fmt: skip
    pwg_file, urf_file = work / "doc.pwg", work / "doc.urf"
    for device, space, target in (("pwgraster", 19, pwg_file), ("urf", 19, urf_file)):
        done = subprocess.run(
            [*common, f"-sDEVICE={device}", f"-dcupsColorSpace={space}",
             f"-sOutputFile={target}", str(DOC)],
            capture_output=True, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise BenchError(f"gs {device} failed: {done.stderr.decode(errors='replace')}")
    return pwg_file, urf_file


def _rastertopdf(path: Path, cpu: int) -> Callable[[], None]:
    cmd = ["taskset", "-c", str(cpu), str(RASTERTOPDF), "1", "bench", "bench", "1", "", str(path)]

    def run() -> None:
        done = subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"rastertopdf failed: {done.stderr.decode(errors='replace')[-500:]}")

    run.command = " ".join(cmd)  # type: ignore[attr-defined]
    return run


def _check(pwg_file: Path, pages: int, reader: LibcupsReader, cpu: int) -> int:
    """Our page 1 equals libcups's; rastertopdf writes a PDF of `pages` pages."""
    import pypdfium2 as pdfium

    from printcloud.ipp import pwg

    data = pwg_file.read_bytes()
    ours = list(pwg.read_pages(data))
    total, first = reader.decode(pwg_file, keep_first=True)
    if len(ours) != pages or ours[0].data.tobytes() != first:
        raise BenchError("printcloud's decoded pixels differ from libcups's")
    if total != sum(page.data.nbytes for page in ours):
        raise BenchError("printcloud and libcups decoded different amounts of pixel bytes")
    done = subprocess.run(
        ["taskset", "-c", str(cpu), str(RASTERTOPDF), "1", "bench", "bench", "1", "",
         str(pwg_file)],
        capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    document = pdfium.PdfDocument(done.stdout) if done.stdout.startswith(b"%PDF") else None
    if document is None or len(document) != pages:
        raise BenchError(f"rastertopdf did not write a {pages}-page PDF")
    document.close()
    return total


def run(options: Options, out_dir: Path) -> bool:
    from printcloud.ipp import pwg, urf
    from printcloud.printing import formats

    runs = options.runs or (3 if options.quick else 7)
    pages = 2 if options.quick else 10
    out_dir.mkdir(parents=True, exist_ok=True)
    cpu = max(os.sched_getaffinity(0))
    if warning := busy_warning():
        console.print(f"[yellow]{warning}[/]")
    if not RASTERTOPDF.is_file():
        raise BenchError(f"{RASTERTOPDF} is missing (Debian: apt-get install cups-filters)")
    work = VAR / "raster_decode"
    work.mkdir(parents=True, exist_ok=True)
    with console.status(f"raster_decode: Ghostscript renders {pages} pages at {DPI} dpi"):
        pwg_file, urf_file = _make_inputs(pages, work)
    reader = LibcupsReader()
    pwg.warm_up()
    total = _check(pwg_file, pages, reader, cpu)
    if reader.decode(urf_file)[0] != total:  # the same pages: the same pixel bytes
        raise BenchError("the URF file does not hold the PWG file's pixel bytes")
    pwg_data, urf_data = pwg_file.read_bytes(), urf_file.read_bytes()
    limits = formats.FormatLimits(max_bytes=1 << 31)

    def drain(pages_iter: Any) -> None:
        for _ in pages_iter:
            pass

    cases: dict[str, Callable[[], object]] = {
        "printcloud_decode": lambda: drain(pwg.read_pages(pwg_data, reuse=True)),
        "libcups_decode": lambda: reader.decode(pwg_file),
        "printcloud_decode_urf": lambda: drain(urf.read_pages(urf_data, reuse=True)),
        "libcups_decode_urf": lambda: reader.decode(urf_file),
        "printcloud_to_pdf": lambda: formats.to_pdf(
            pwg_data, document_format="image/pwg-raster", limits=limits
        ),
        "cups_rastertopdf": _rastertopdf(pwg_file, cpu),
    }
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        for func in cases.values():
            func()  # warm: page cache, allocator
        times: dict[str, list[float]] = {name: [] for name in cases}
        for index in range(runs):
            with console.status(f"raster_decode: round {index + 1} of {runs}"):
                for name, func in cases.items():
                    start = time.perf_counter()
                    func()
                    times[name].append(time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, before)

    results: dict[str, dict[str, Any]] = {}
    for name, func in cases.items():
        median = statistics.median(times[name])
        results[name] = {
            "median_ms": round(median * 1000, 1),
            "mb_per_s": round(total / 1e6 / median, 1),
            "runs_ms": [round(t * 1000, 1) for t in times[name]],
        }
        if command := getattr(func, "command", None):
            results[name]["command"] = command
    info = {
        "input": f"{DOC.name} pages 1-{pages}, {DPI} dpi, sRGB 8-bit",
        "pixel_bytes": total,
        "pwg_bytes": len(pwg_data),
        "urf_bytes": len(urf_data),
        "cpu": cpu,
        "runs": runs,
    }
    table = Table(title=f"raster_decode: {info['input']}, CPU {cpu}, median of {runs}")
    for column in ("case", "ms", "MB/s (pixel bytes)"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for name, result in results.items():
        table.add_row(name, f"{result['median_ms']:.1f}", f"{result['mb_per_s']:.1f}")
    console.print(table)
    ratios: dict[str, Any] = {}
    for ours, peer in PAIRS.items():
        ratio = results[ours]["mb_per_s"] / results[peer]["mb_per_s"]
        ratios[ours] = {"vs": peer, "ratio": round(ratio, 2), "goal": GOAL, "met": ratio >= GOAL}
        colour = "green" if ratio >= GOAL else "red"
        console.print(f"{ours} / {peer}: [{colour}]{ratio:.2f}x[/] (bar >= {GOAL:.1f}x)")
    summary = {
        "benchmark": "raster_decode",
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "info": info,
        "cases": results,
        "ratios": ratios,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return True
