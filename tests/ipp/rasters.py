"""Raster documents for the decoder tests, made by real producers, and a real reader.

- `ghostscript`: `gs -sDEVICE=pwgraster|urf|appleraster|png16m|pnggray|pngmono|tiff32nc`
  renders a PDF page at a resolution (Ghostscript's raster devices write through
  CUPS's own raster writer, libcups);
- `mutool`: `mutool draw -F pwg|png` (MuPDF's own PWG writer);
- `CupsRasterReader`: CUPS's own decoder, `cupsRasterReadHeader2` and
  `cupsRasterReadPixels` of libcups2, through ctypes: the reference our bytes
  must equal;
- `image_pdf`: a one-image PDF whose image lands 1:1 on the device pixels, so a
  renderer's PNG and its raster carry the very same pixels;
- `encode_pwg`: a small writer of PWG 5102.4 compressed lines, written from the
  specification for the round-trip properties (independent of the decoder).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tests.conftest import require_command, require_peer

REPO = Path(__file__).resolve().parents[2]
DOC10 = REPO.parent / "shared" / "bench-data" / "doc10.pdf"


def ghostscript(
    pdf: Path,
    out: Path,
    device: str,
    *,
    dpi: int,
    args: tuple[str, ...] = (),
    pages: tuple[int, int] = (1, 1),
) -> Path:
    gs = require_command("gs")
    subprocess.run(
        [
            gs,
            "-q",
            "-dSAFER",
            "-dBATCH",
            "-dNOPAUSE",
            f"-sDEVICE={device}",
            f"-r{dpi}",
            f"-dFirstPage={pages[0]}",
            f"-dLastPage={pages[1]}",
            *args,
            f"-sOutputFile={out}",
            str(pdf),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def mutool(pdf: Path, out: Path, fmt: str, *, dpi: int, colorspace: str, page: int = 1) -> Path:
    tool = require_command("mutool")
    subprocess.run(
        [
            tool,
            "draw",
            "-q",
            "-F",
            fmt,
            "-r",
            str(dpi),
            "-c",
            colorspace,
            "-o",
            str(out),
            str(pdf),
            str(page),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def image_pdf(path: Path, *, dpi: int = 100) -> Image.Image:
    """A 300x200 RGB picture (gradients, flat shapes, text) as a PDF at `dpi`."""
    h, w = 200, 300
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x * 3 + y) % 256], axis=2).astype(np.uint8)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 120, 90), fill=(255, 255, 255))
    draw.ellipse((150, 50, 280, 180), fill=(10, 200, 30))
    draw.text((30, 150), "PWG 5102.4", fill=(0, 0, 0))
    image.save(path, resolution=dpi)
    return image


def png_pixels(path: Path, mode: str) -> np.ndarray:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert(mode))
    return pixels[..., None] if pixels.ndim == 2 else pixels


class CupsRasterReader:
    """libcups2's raster reader: every page's header fields and decoded bytes."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("cups")
        require_peer(name is not None, "libcups2 (CUPS's raster reader) is not installed")
        lib = ctypes.CDLL(name)
        lib.cupsRasterOpen.restype = ctypes.c_void_p
        lib.cupsRasterOpen.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.cupsRasterReadHeader2.restype = ctypes.c_uint
        lib.cupsRasterReadHeader2.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.cupsRasterReadPixels.restype = ctypes.c_uint
        lib.cupsRasterReadPixels.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]
        lib.cupsRasterClose.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def read(self, path: Path) -> list[tuple[tuple[int, int, int], bytes]]:
        """[((width, height, bytes per line), pixels)] for each page of the file;
        `OSError` when libcups cannot read a page's pixels."""
        fd = os.open(path, os.O_RDONLY)
        raster = self.lib.cupsRasterOpen(fd, 0)  # CUPS_RASTER_READ
        pages = []
        try:
            header = ctypes.create_string_buffer(4096)  # cups_page_header2_t is 1796 bytes
            while self.lib.cupsRasterReadHeader2(raster, header):
                width, height = struct.unpack_from("=2I", header, 372)
                (bpl,) = struct.unpack_from("=I", header, 392)
                buffer = ctypes.create_string_buffer(bpl * height)
                got = self.lib.cupsRasterReadPixels(raster, buffer, bpl * height)
                if got != bpl * height:
                    raise OSError(f"libcups read {got} of {bpl * height} bytes")
                pages.append(((width, height, bpl), buffer.raw))
        finally:
            self.lib.cupsRasterClose(raster)
            os.close(fd)
        return pages


# -- an independent PWG writer for the round-trip properties ------------------------------


def pwg_header(
    *,
    width: int,
    height: int,
    dpi: tuple[int, int] = (300, 300),
    bpc: int = 8,
    colors: int = 3,
    color_space: int = 19,
    bpl: int | None = None,
    order: int = 0,
    transforms: tuple[int, int] = (1, 1),
) -> bytes:
    """A 1796-byte PWG 5102.4 page header with the given fields, the rest zero."""
    raw = bytearray(1796)
    raw[0:9] = b"PwgRaster"
    bpp = bpc * colors
    struct.pack_into(">2I", raw, 276, *dpi)
    struct.pack_into(">2I", raw, 352, width * 72 // max(1, dpi[0]), height * 72 // max(1, dpi[1]))
    struct.pack_into(">3I", raw, 368, 0, width, height)
    line = (width * bpp + 7) // 8 if bpl is None else bpl
    struct.pack_into(">5I", raw, 384, bpc, bpp, line, order, color_space)
    struct.pack_into(">I", raw, 420, colors)
    struct.pack_into(">I", raw, 452, 1)
    struct.pack_into(">2i", raw, 456, *transforms)
    return bytes(raw)


def encode_lines(rows: np.ndarray, bpp: int) -> bytes:
    """PWG 5102.4 lines: equal neighbouring lines share a line-repeat byte; in a line, runs of equal
    pixels become repeat runs and the rest literal runs (at most 128 pixels each)."""
    out = bytearray()
    height = rows.shape[0]
    y = 0
    while y < height:
        repeat = 1
        while y + repeat < height and repeat < 256 and np.array_equal(rows[y + repeat], rows[y]):
            repeat += 1
        out.append(repeat - 1)
        pixels = [bytes(rows[y, i : i + bpp]) for i in range(0, rows.shape[1], bpp)]
        i = 0
        while i < len(pixels):
            run = 1
            while i + run < len(pixels) and run < 128 and pixels[i + run] == pixels[i]:
                run += 1
            if run > 1:
                out.append(run - 1)
                out += pixels[i]
                i += run
                continue
            start = i
            while (
                i < len(pixels)
                and i - start < 128
                and (i + 1 >= len(pixels) or pixels[i + 1] != pixels[i])
            ):
                i += 1
            # 129-255 stand for 128-2 literal pixels: a lone pixel is a repeat of one
            out.append(257 - (i - start) if i - start > 1 else 0)
            out += b"".join(pixels[start:i])
        y += repeat
    return bytes(out)
