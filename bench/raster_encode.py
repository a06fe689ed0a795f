"""PWG raster encode in megapixels/s on one core: printcloud against MuPDF and Ghostscript.

Input: pages of `../shared/bench-data/doc10.pdf` (2 with `--quick`, else all 10)
at 300 dpi (A4: 2481 x 3508 pixels through PDFium, 2480 x 3508 through MuPDF and
Ghostscript). Every process is pinned to the same CPU (`taskset`, and
`sched_setaffinity` for this one); N rounds, each running every case once
(round-robin, so load from elsewhere hits every side), medians.

**(a) The encode step, from decoded pages in memory** (`srgb_8` and `black_1`).
Ours: `ipp.raster_encode.pwg_page` over pages rendered beforehand by pypdfium2
(RGB), and for `black_1` over the same pages halftoned beforehand (8x8 ordered
dither, packed as `numpy.packbits`; halftoning is the caller's in printcloud),
each page written to /dev/null as it is encoded, as the peers write theirs (`-o
/dev/null`) and as the conversion workers stream pages on. Until 2026-12-08 ours
joined the 10 pages into one 50 MB `bytes` instead: the page faults of that
memory were a third of our CPU time; that figure stays as the row "joined in
memory".
The peers cannot encode without drawing a page first, so their encode step is
the difference of two runs, output to /dev/null, process start cancelling out:

- MuPDF on **the same pixels** (the goal's peer): our pages written as PPM (RGB)
  and PBM (the halftoned black_1 pages), which `mutool draw` opens as one-image
  documents at 96 dpi, drawn at `-r 96` (1:1, the same 2481 x 3508 pixels):
  `mutool draw -F pwg -c rgb` minus `mutool draw -c rgb` (no `-o`: draws, writes
  nothing), and `-F pwg -c mono` minus `-c gray` for black_1 (its mono writer
  thresholds our 0/255 dots back to themselves);
- MuPDF and Ghostscript **from the PDF**: `mutool draw -F pwg` minus `mutool
  draw` (no output) as above, and `gs -sDEVICE=pwgraster` minus `gs
  -sDEVICE=ppmraw` / `pbmraw` (Ghostscript cannot render without a device;
  writing PPM/PBM costs a little, so its difference slightly understates its
  encode). MuPDF's mono difference includes its halftoning. A difference below
  the runs' noise can come out near zero or negative: it is shown as measured.

**(b) The whole PDF -> PWG raster path** (`srgb_8`). Ours:
pypdfium2 renders each page at 300 dpi as the conversion workers do
(`optimize_mode="print"`, RGB byte order), `pwg_page` encodes it, each page is
written to /dev/null (joined into one stream before 2026-12-08). Peers:
`mutool draw -F pwg -c rgb -r 300` and `gs -sDEVICE=pwgraster
-dcupsColorSpace=19 -dcupsBitsPerColor=8 -r300`, whole processes. Goals (issue
15): encode step >= 3x mutool's; whole path >= 1.2x.

**Time is CPU time** (user + system: `time.process_time()` for ours,
`getrusage(RUSAGE_CHILDREN)` for a peer's process, which includes the few
milliseconds `subprocess` spends starting it), so MP/s are per core and hold
when other work shares the machine; wall-clock medians are printed and saved
beside them.

Checked before timing: our streams decode (`ipp.pwg.read_pages`) to the pages
we encoded, and each peer's PWG file has the pages asked for, so nothing broken
is timed as fast.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from bench.harness import REPO, VAR, BenchError, Options, busy_warning, console, machine

DOC = REPO.parent / "shared" / "bench-data" / "doc10.pdf"
DPI = 300
ENCODE_GOAL = 3.0
PATH_GOAL = 1.2
#: The 8x8 Bayer matrix, thresholds 0-255 (the device's ordered dither uses the same).
_BAYER = np.array(
    [[0, 32, 8, 40, 2, 34, 10, 42], [48, 16, 56, 24, 50, 18, 58, 26],
     [12, 44, 4, 36, 14, 46, 6, 38], [60, 28, 52, 20, 62, 30, 54, 22],
     [3, 35, 11, 43, 1, 33, 9, 41], [51, 19, 59, 27, 49, 17, 57, 25],
     [15, 47, 7, 39, 13, 45, 5, 37], [63, 31, 55, 23, 61, 29, 53, 21]],
    np.uint16,
) * 4 + 2  # fmt: skip


def _render_pages(pages: int) -> list[np.ndarray]:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(DOC))
    try:
        out = []
        for index in range(pages):
            page = doc[index]
            bitmap = page.render(scale=DPI / 72, optimize_mode="print", rev_byteorder=True)
            out.append(np.ascontiguousarray(bitmap.to_numpy()[:, :, :3]))
            bitmap.close()
            page.close()
        return out
    finally:
        doc.close()


def _halftone(rgb: np.ndarray) -> np.ndarray:
    """RGB -> packed 1-bit black (1 = a dot), ordered dither: the bench's input for black_1."""
    wide = rgb.astype(np.uint32)
    luma = (wide[:, :, 0] * 299 + wide[:, :, 1] * 587 + wide[:, :, 2] * 114) // 1000
    h, w = luma.shape
    threshold = np.tile(_BAYER, (h // 8 + 1, w // 8 + 1))[:h, :w]
    return np.packbits(255 - luma > threshold, axis=1)


def _pdf_to_pwg(pages: int, write: Callable[[bytes], object]) -> None:
    """Our whole path: PDFium renders each page as the conversion does, we encode it and
    hand it to `write` (the conversion workers stream each page on; here /dev/null)."""
    import pypdfium2 as pdfium

    from printcloud.ipp import pwg, raster_encode

    options = raster_encode.PageOptions(resolution=(DPI, DPI), media="iso_a4_210x297mm")
    doc = pdfium.PdfDocument(str(DOC))
    write(pwg.SYNC)
    try:
        for index in range(pages):
            page = doc[index]
            bitmap = page.render(scale=DPI / 72, optimize_mode="print", rev_byteorder=True)
            pixels = bitmap.to_numpy()
            write(
                raster_encode.pwg_page(
                    pixels,
                    document_type="srgb_8",
                    options=options,
                    page_number=index + 1,
                    total_pages=pages,
                )
            )
            bitmap.close()
            page.close()
    finally:
        doc.close()


def _joined(produce: Callable[[Callable[[bytes], object]], None]) -> bytes:
    """What `produce` writes, as one stream (for the checks before timing)."""
    parts: list[bytes] = []
    produce(parts.append)
    return b"".join(parts)


def _peer_commands(pages: int, cpu: int, work: Path) -> dict[str, list[str]]:
    pin = ["taskset", "-c", str(cpu)]
    doc, span = str(DOC), f"1-{pages}"
    mutool = [*pin, "mutool", "draw", "-q", "-r", str(DPI)]
    gs = [*pin, "gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", f"-r{DPI}", "-dFirstPage=1",
          f"-dLastPage={pages}"]  # fmt: skip
    return {
        "mutool_pwg_rgb": [*mutool, "-F", "pwg", "-c", "rgb", "-o", "/dev/null", doc, span],
        "mutool_render_rgb": [*mutool, "-c", "rgb", doc, span],
        "mutool_pwg_mono": [*mutool, "-F", "pwg", "-c", "mono", "-o", "/dev/null", doc, span],
        "mutool_render_gray": [*mutool, "-c", "gray", doc, span],
        "gs_pwg_srgb": [*gs, "-sDEVICE=pwgraster", "-dcupsColorSpace=19",
                        "-dcupsBitsPerColor=8", "-sOutputFile=/dev/null", doc],
        "gs_ppm": [*gs, "-sDEVICE=ppmraw", "-sOutputFile=/dev/null", doc],
        "gs_pwg_black1": [*gs, "-sDEVICE=pwgraster", "-dcupsColorSpace=3",
                          "-dcupsBitsPerColor=1", "-sOutputFile=/dev/null", doc],
        "gs_pbm": [*gs, "-sDEVICE=pbmraw", "-sOutputFile=/dev/null", doc],
    }  # fmt: skip


def _write_pnm(
    pages: list[np.ndarray], black: list[np.ndarray], work: Path
) -> tuple[list[str], list[str]]:
    """Our pages as PPM (RGB) and PBM (packed 1-bit, 1 = black, as `numpy.packbits` gives)."""
    ppm, pbm = [], []
    for index, (rgb, dots) in enumerate(zip(pages, black, strict=True)):
        height, width = rgb.shape[:2]
        path = work / f"page{index + 1}.ppm"
        path.write_bytes(f"P6\n{width} {height}\n255\n".encode() + rgb.tobytes())
        ppm.append(str(path))
        path = work / f"page{index + 1}.pbm"
        path.write_bytes(f"P4\n{width} {height}\n".encode() + dots.tobytes())
        pbm.append(str(path))
    return ppm, pbm


def _image_commands(cpu: int, ppm: list[str], pbm: list[str]) -> dict[str, list[str]]:
    # PNM images open at 96 dpi in MuPDF: -r 96 draws them 1:1
    mutool = ["taskset", "-c", str(cpu), "mutool", "draw", "-q", "-r", "96"]
    return {
        "mutool_pwg_rgb_same_pixels": [*mutool, "-F", "pwg", "-c", "rgb", "-o", "/dev/null", *ppm],
        "mutool_draw_rgb_same_pixels": [*mutool, "-c", "rgb", *ppm],
        "mutool_pwg_mono_same_pixels": [
            *mutool,
            "-F",
            "pwg",
            "-c",
            "mono",
            "-o",
            "/dev/null",
            *pbm,
        ],
        "mutool_draw_gray_same_pixels": [*mutool, "-c", "gray", *pbm],
    }


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _process(cmd: list[str]) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"{cmd[3]} failed: {done.stderr.decode(errors='replace')[-500:]}")

    run.command = " ".join(cmd)  # type: ignore[attr-defined]
    return run


def _check_peers(commands: dict[str, list[str]], pages: int, work: Path) -> dict[str, int]:
    """Each peer's PWG output (written to a file once) has `pages` pages: their pixels."""
    from printcloud.ipp import pwg

    pixels = {}
    names = ("mutool_pwg_rgb", "mutool_pwg_mono", "gs_pwg_srgb", "gs_pwg_black1",
             "mutool_pwg_rgb_same_pixels", "mutool_pwg_mono_same_pixels")  # fmt: skip
    for name in names:
        target = work / f"{name}.pwg"
        cmd = [str(target) if arg == "/dev/null" else arg for arg in commands[name]]
        cmd = [f"-sOutputFile={target}" if arg == "-sOutputFile=/dev/null" else arg for arg in cmd]
        _process(cmd)()
        decoded = [page.header for page in pwg.read_pages(target.read_bytes())]
        if len(decoded) != pages:
            raise BenchError(f"{name} wrote {len(decoded)} pages, not {pages}")
        pixels[name] = sum(header.width * header.height for header in decoded)
        target.unlink()
    return pixels


def run(options: Options, out_dir: Path) -> bool:
    from printcloud.ipp import pwg, raster_encode

    for tool in ("mutool", "gs", "taskset"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is missing (Debian: apt-get install mupdf-tools ghostscript)")
    if not DOC.is_file():
        raise BenchError(f"benchmark input missing: {DOC}")
    runs = options.runs or (3 if options.quick else 7)
    pages = 2 if options.quick else 10
    out_dir.mkdir(parents=True, exist_ok=True)
    work = VAR / "raster_encode"
    work.mkdir(parents=True, exist_ok=True)
    cpu = max(os.sched_getaffinity(0))
    if warning := busy_warning():
        console.print(f"[yellow]{warning}[/]")

    raster_encode.warm_up()
    with console.status(f"raster_encode: PDFium renders {pages} pages at {DPI} dpi"):
        rgb_pages = _render_pages(pages)
        black_pages = [_halftone(page) for page in rgb_pages]
    widths = [page.shape[1] for page in rgb_pages]
    our_pixels = sum(page.shape[0] * page.shape[1] for page in rgb_pages)
    page_options = raster_encode.PageOptions(resolution=(DPI, DPI), media="iso_a4_210x297mm")

    # Ours writes each page to /dev/null as it is encoded, as the peers' `-o /dev/null`
    # and as the conversion workers stream pages on (`printing/raster_stream.py`); the
    # `_joined` case keeps the document in memory as one bytes object (the figure before
    # 2026-12-08: its page faults were a third of our time over 10 pages, 50 MB).

    def srgb_to(write: Callable[[bytes], object]) -> None:
        write(pwg.SYNC)
        for page in rgb_pages:
            write(raster_encode.pwg_page(page, document_type="srgb_8", options=page_options))

    def black_to(write: Callable[[bytes], object]) -> None:
        write(pwg.SYNC)
        for page, width in zip(black_pages, widths, strict=True):
            write(
                raster_encode.pwg_page(
                    page, width=width, document_type="black_1", options=page_options
                )
            )

    # nothing broken is timed: our streams decode to our pages, the peers write their pages
    for stream, want in ((_joined(srgb_to), rgb_pages), (_joined(black_to), black_pages)):
        got = list(pwg.read_pages(stream))
        if len(got) != pages or any(
            g.data.tobytes() != w.tobytes() for g, w in zip(got, want, strict=True)
        ):
            raise BenchError("printcloud's PWG raster does not decode to the pages encoded")
    whole = list(pwg.read_pages(_joined(lambda write: _pdf_to_pwg(pages, write))))
    if len(whole) != pages or whole[0].data.tobytes() != rgb_pages[0].tobytes():
        raise BenchError("printcloud's PDF -> PWG path does not give the rendered pages")
    ppm, pbm = _write_pnm(rgb_pages, black_pages, work)
    commands = {**_image_commands(cpu, ppm, pbm), **_peer_commands(pages, cpu, work)}
    with console.status("raster_encode: checking the peers' PWG output"):
        peer_pixels = _check_peers(commands, pages, work)

    cases: dict[str, Callable[[], object]] = {
        "printcloud_encode_srgb_8": lambda: srgb_to(sink.write),
        "printcloud_encode_srgb_8_joined": lambda: _joined(srgb_to),
        "printcloud_encode_black_1": lambda: black_to(sink.write),
        "printcloud_pdf_to_pwg": lambda: _pdf_to_pwg(pages, sink.write),
        **{name: _process(cmd) for name, cmd in commands.items()},
    }
    with open(os.devnull, "wb", buffering=0) as sink:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        try:
            for func in cases.values():
                func()  # warm: page cache, allocator, numba
            times: dict[str, list[float]] = {name: [] for name in cases}
            cpu_times: dict[str, list[float]] = {name: [] for name in cases}
            for index in range(runs):
                with console.status(f"raster_encode: round {index + 1} of {runs}"):
                    for name, func in cases.items():
                        cpu_start = _cpu_seconds()
                        start = time.perf_counter()
                        func()
                        times[name].append(time.perf_counter() - start)
                        cpu_times[name].append(_cpu_seconds() - cpu_start)
        finally:
            os.sched_setaffinity(0, before)

    wall = {name: statistics.median(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in cpu_times.items()}
    mutool_rgb, mutool_mono = peer_pixels["mutool_pwg_rgb"], peer_pixels["mutool_pwg_mono"]
    gs_rgb, gs_black = peer_pixels["gs_pwg_srgb"], peer_pixels["gs_pwg_black1"]

    for path in (*ppm, *pbm):
        Path(path).unlink()
    same_rgb = peer_pixels["mutool_pwg_rgb_same_pixels"]
    same_mono = peer_pixels["mutool_pwg_mono_same_pixels"]

    def mps(pixels: int, seconds: float) -> float:
        return pixels / 1e6 / seconds

    rows: dict[str, dict[str, Any]] = {
        # (a) the encode step
        "encode srgb_8: printcloud": {"s": median["printcloud_encode_srgb_8"], "px": our_pixels},
        "encode srgb_8: printcloud, joined in memory": {
            "s": median["printcloud_encode_srgb_8_joined"], "px": our_pixels},
        "encode srgb_8: mutool, same pixels (pwg - draw)": {
            "s": median["mutool_pwg_rgb_same_pixels"] - median["mutool_draw_rgb_same_pixels"],
            "px": same_rgb},
        "encode srgb_8: mutool (pwg - render)": {
            "s": median["mutool_pwg_rgb"] - median["mutool_render_rgb"], "px": mutool_rgb},
        "encode srgb_8: gs (pwgraster - ppmraw)": {
            "s": median["gs_pwg_srgb"] - median["gs_ppm"], "px": gs_rgb},
        "encode black_1: printcloud": {"s": median["printcloud_encode_black_1"], "px": our_pixels},
        "encode black_1: mutool, same pixels (pwg mono - draw gray)": {
            "s": median["mutool_pwg_mono_same_pixels"] - median["mutool_draw_gray_same_pixels"],
            "px": same_mono},
        "encode black_1: mutool (pwg mono - render gray)": {
            "s": median["mutool_pwg_mono"] - median["mutool_render_gray"], "px": mutool_mono},
        "encode black_1: gs (pwgraster - pbmraw)": {
            "s": median["gs_pwg_black1"] - median["gs_pbm"], "px": gs_black},
        # (b) the whole path
        "PDF -> PWG srgb_8: printcloud": {"s": median["printcloud_pdf_to_pwg"], "px": our_pixels},
        "PDF -> PWG srgb_8: mutool": {"s": median["mutool_pwg_rgb"], "px": mutool_rgb},
        "PDF -> PWG srgb_8: gs": {"s": median["gs_pwg_srgb"], "px": gs_rgb},
    }  # fmt: skip
    for row in rows.values():
        row["mp_per_s"] = round(mps(row["px"], row["s"]), 1) if row["s"] > 0 else None
        row["ms"] = round(row["s"] * 1000, 1)
    table = Table(title=f"raster_encode: doc10.pdf pages 1-{pages}, {DPI} dpi, CPU {cpu}, "
                  f"median of {runs}")  # fmt: skip
    for column in ("case", "CPU ms", "MP/s per core"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for name, row in rows.items():
        speed = "n/a" if row["mp_per_s"] is None else f"{row['mp_per_s']:.1f}"
        table.add_row(name, f"{row['ms']:.1f}", speed)
    console.print(table)
    raw = Table(title="raster_encode: every case's medians (whole runs)")
    for column in ("case", "CPU ms", "wall ms", "command"):
        raw.add_column(column)
    for name, func in cases.items():
        raw.add_row(
            name,
            f"{median[name] * 1000:.1f}",
            f"{wall[name] * 1000:.1f}",
            getattr(func, "command", "in process"),
        )
    console.print(raw)

    pairs = {
        "encode_srgb_8_vs_mutool": ("encode srgb_8: printcloud",
                                    "encode srgb_8: mutool, same pixels (pwg - draw)",
                                    ENCODE_GOAL),
        "encode_srgb_8_joined_vs_mutool": ("encode srgb_8: printcloud, joined in memory",
                                           "encode srgb_8: mutool, same pixels (pwg - draw)",
                                           None),
        "encode_srgb_8_vs_mutool_pdf": ("encode srgb_8: printcloud",
                                        "encode srgb_8: mutool (pwg - render)", None),
        "encode_srgb_8_vs_gs": ("encode srgb_8: printcloud",
                                "encode srgb_8: gs (pwgraster - ppmraw)", None),
        "encode_black_1_vs_mutool": ("encode black_1: printcloud",
                                     "encode black_1: mutool, same pixels (pwg mono - draw gray)",
                                     ENCODE_GOAL),
        "encode_black_1_vs_mutool_pdf": ("encode black_1: printcloud",
                                         "encode black_1: mutool (pwg mono - render gray)", None),
        "encode_black_1_vs_gs": ("encode black_1: printcloud",
                                 "encode black_1: gs (pwgraster - pbmraw)", None),
        "pdf_to_pwg_vs_mutool": ("PDF -> PWG srgb_8: printcloud", "PDF -> PWG srgb_8: mutool",
                                 PATH_GOAL),
        "pdf_to_pwg_vs_gs": ("PDF -> PWG srgb_8: printcloud", "PDF -> PWG srgb_8: gs", None),
    }  # fmt: skip
    ratios: dict[str, Any] = {}
    for key, (ours, peer, goal) in pairs.items():
        if rows[peer]["s"] <= 0:
            console.print(f"{key}: n/a (the peer's difference is within the noise)")
            ratios[key] = {"ratio": None, "goal": goal, "met": None}
            continue
        ratio = rows[ours]["mp_per_s"] / rows[peer]["mp_per_s"]
        met = None if goal is None else ratio >= goal
        ratios[key] = {"ratio": round(ratio, 2), "goal": goal, "met": met}
        if goal is None:
            console.print(f"{key}: {ratio:.2f}x (ours / peer, MP/s)")
        else:
            colour = "green" if ratio >= goal else "red"
            console.print(f"{key}: [{colour}]{ratio:.2f}x[/] (goal >= {goal:.1f}x)")
    summary = {
        "benchmark": "raster_encode",
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "info": {
            "input": f"{DOC.name} pages 1-{pages}, {DPI} dpi",
            "cpu": cpu,
            "runs": runs,
            "pixels": {"printcloud": our_pixels, **peer_pixels},
        },
        "cases": {
            name: {
                "median_cpu_ms": round(median[name] * 1000, 1),
                "median_wall_ms": round(wall[name] * 1000, 1),
                "runs_cpu_ms": [round(t * 1000, 1) for t in cpu_times[name]],
                "runs_wall_ms": [round(t * 1000, 1) for t in times[name]],
                "command": getattr(func, "command", "in process"),
            }
            for name, func in cases.items()
        },
        "rows": rows,
        "ratios": ratios,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return True
