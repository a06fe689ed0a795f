"""PWG raster (PWG 5102.4-2012) and Apple raster (URF) encoders, NumPy + numba.

What a conversion worker writes for a printer that asked for `image/pwg-raster`
or `image/urf` (issue 15); the decoders are `ipp/pwg.py` and `ipp/urf.py`.

- **PWG raster** (`pwg_page`, `encode_pwg`): the synchronization word `RaS2`,
  then per page a 1796-byte header (`pwg_header`, PWG 5102.4 section 4.3, every
  number big-endian; `MediaClass` "PwgRaster", `HWResolution`, `PageSize` in
  points, `ImagingBoundingBox` the whole page, `cupsWidth`/`cupsHeight`,
  `cupsBitsPerColor`/`-PerPixel`/`-BytesPerLine`, `cupsColorOrder` 0 (chunky),
  `cupsColorSpace` and `cupsNumColors` from the document type (Table 12),
  `TotalPageCount`, `CrossFeedTransform`/`FeedTransform` (Table 9),
  `ImageBox*` the whole page, `AlternatePrimary` white, `PrintQuality`,
  `Duplex`/`Tumble`, `NumCopies`, the media strings) and the page's lines.
  Types: `sgray_8`, `srgb_8`, `black_1`, `cmyk_8` (`PWG_TYPES`).
- **URF** (`urf_page`, `encode_urf`): `UNIRAST\\0`, the page count, then per
  page a 32-byte header (bits per pixel, colour space, duplex, quality, width,
  height, resolution) and its lines. Types: `W8` (sGray) and `SRGB24`.
- **The line compression** both share (`compress_lines`, section 4.4): a
  line-repeat byte (the line occurs n + 1 times, equal neighbouring lines
  merged, at most 256), then runs until the line is full: 0–127, the next
  pixel n + 1 times; 129–255, 257 − n literal pixels. Two equal neighbours
  start a repeat run; a literal run stops where one starts. Code 128 (the rest
  of the line white) is never written: plain runs say the same in a few more
  bytes, and readers that predate that code (or ignore it) read them alike.
  For `black_1` a "pixel" is a byte (8 dots), as in CUPS's writer.

Input arrays (C order, uint8): `sgray_8`/`W8` (height, width) or (height,
width, 1), 0 black; `srgb_8`/`SRGB24` (height, width, 3) RGB; `cmyk_8`
(height, width, 4), 0 no ink; `black_1` a bitonal page, (height, width) bool or
0/1 with true = a black dot, or already packed as `numpy.packbits` and PBM
store it (height, ceil(width / 8), 1 = black, most significant bit first) with
`width=` given. Halftoning and separation belong to the caller
(`printcloud.imaging.halftone`, as the conversion workers' `printing/raster_stream.py`
uses it).

Why numba: the runs are chosen pixel by pixel, which no NumPy expression does; the
kernel (`_compress`, one call a page) compares each line with the next, makes the
line's equal-neighbour mask in a vectorized loop, finds where it changes 8 bytes at
a time, and writes the runs block by block into one buffer of the worst-case size,
kept from page to page (`compress_lines`). A run of up to 128 pixels takes no
data-dependent branch: literal runs are copied 32 bytes at a time by one unaligned
vector move (`_copy32`, an LLVM memcpy of constant length), the overshoot written
over by what follows. The bytes are those of the plain scan MuPDF's and CUPS's
writers make (comparing each pixel with the next; the tests check both against one).
`warm_up` compiles it (or loads it from numba's cache) at start.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from printcloud.core.errors import InvalidRequest

from . import pwg, urf
from .pwg import ColorSpace

__all__ = [
    "PWG_TYPES",
    "URF_ENCODE_TYPES",
    "PageOptions",
    "compress_lines",
    "encode_pwg",
    "encode_urf",
    "pwg_header",
    "pwg_page",
    "urf_file_header",
    "urf_page",
    "warm_up",
]

#: The `pwg-raster-document-type-supported` keywords this encoder writes:
#: (colour space, bits per colour, colours).
PWG_TYPES: dict[str, tuple[ColorSpace, int, int]] = {
    "sgray_8": (ColorSpace.SGRAY, 8, 1),
    "srgb_8": (ColorSpace.SRGB, 8, 3),
    "black_1": (ColorSpace.BLACK, 1, 1),
    "cmyk_8": (ColorSpace.CMYK, 8, 4),
}

#: The `urf-supported` colour keywords this encoder writes: (URF colour space byte,
#: bits per pixel, colours).
URF_ENCODE_TYPES: dict[str, tuple[int, int, int]] = {
    "W8": (urf.URF_TYPES["W8"][0], 8, 1),
    "SRGB24": (urf.URF_TYPES["SRGB24"][0], 24, 3),
}

#: `print-quality` (RFC 8011 5.2.13) -> PrintQuality / the URF quality byte.
QUALITIES = {"draft": 3, "normal": 4, "high": 5}
#: `sides` -> (Duplex, Tumble).
SIDES = {
    "one-sided": (False, False),
    "two-sided-long-edge": (True, False),
    "two-sided-short-edge": (True, True),
}
#: URF duplex byte for (Duplex, Tumble): 1 one-sided, 2 short edge, 3 long edge.
_URF_DUPLEX = {(False, False): 1, (True, True): 2, (True, False): 3}
#: White in the Apple/PWG "AlternatePrimary" sense (0x00RRGGBB): the paper.
ALTERNATE_PRIMARY = 0x00FFFFFF


@dataclass(frozen=True)
class PageOptions:
    """The job's choices a page header carries (IPP Job Template attribute values).

    `media` is the PWG self-describing media name (PWG 5101.1, `iso_a4_210x297mm`);
    `sheet_back` the printer's `pwg-raster-document-sheet-back` (`normal`,
    `flipped`, `rotated`, `manual-tumble`): with two-sided printing, the back of
    each sheet (even pages) is written transformed as Table 9 says, so the
    printer can print it as it comes.
    """

    resolution: tuple[int, int] = (300, 300)
    sides: str = "one-sided"
    print_quality: str = "normal"
    media: str = ""
    media_type: str = ""
    media_color: str = ""
    print_content_optimize: str = ""
    rendering_intent: str = ""
    copies: int = 1
    sheet_back: str = "normal"

    def __post_init__(self) -> None:
        if self.sides not in SIDES:
            raise InvalidRequest(f"sides {self.sides!r} is not one of {sorted(SIDES)}")
        if self.print_quality not in QUALITIES:
            raise InvalidRequest(
                f"print-quality {self.print_quality!r} is not one of {sorted(QUALITIES)}"
            )
        if self.sheet_back not in ("normal", "flipped", "rotated", "manual-tumble"):
            raise InvalidRequest(f"pwg-raster-document-sheet-back {self.sheet_back!r} is unknown")
        if not all(pwg.MIN_DPI <= dpi <= pwg.MAX_DPI for dpi in self.resolution):
            raise InvalidRequest(f"the resolution {self.resolution} is out of range")
        if not 1 <= self.copies <= 0xFFFF:
            raise InvalidRequest(f"copies {self.copies} is out of range")

    def back_transforms(self, page_number: int) -> tuple[int, int]:
        """(CrossFeedTransform, FeedTransform) of page `page_number` (1-based), Table 9."""
        duplex, tumble = SIDES[self.sides]
        if not duplex or page_number % 2 == 1 or self.sheet_back == "normal":
            return 1, 1
        if self.sheet_back == "rotated":
            return (-1, -1) if not tumble else (1, 1)
        if self.sheet_back == "flipped":
            return (1, -1) if not tumble else (-1, 1)
        return (-1, -1) if tumble else (1, 1)  # manual-tumble


# -- the line compression (PWG 5102.4 section 4.4) ------------------------------------------


# Every kernel below indexes arrays from 0 within row views (`rows[y]`, `row[a:b]`):
# numba wraps negative indices around, and only where an index is provably not
# negative does LLVM drop that check and vectorize the loop (measured: the equal-
# neighbour mask of a 300 dpi page in 1.3 ms this way, 40 ms through offsets).


@njit(cache=True, nogil=True, inline="always")
def _u(index: int) -> Any:
    """An index numba knows is not negative (no wrap-around check: it is not)."""
    return np.uint64(index)


@njit(cache=True, nogil=True, inline="always")
def _same_row(a: Any, b: Any, n: int) -> bool:
    """`a[:n] == b[:n]`, in blocks of 1 KiB with no exit inside a block (vectorized)."""
    for start in range(0, n, 1024):
        stop = min(start + 1024, n)
        x, y = a[start:stop], b[start:stop]
        diff = np.uint8(0)
        for k in range(stop - start):
            diff |= x[k] ^ y[k]
        if diff:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _equal_neighbours(row: Any, npix: int, bpp: int, eq: Any) -> None:
    """eq[i] = 1 where pixel i equals pixel i + 1 (bpp bytes a pixel); eq[npix - 1] = 0."""
    if bpp == 1:
        for i in range(npix - 1):
            eq[i] = row[i] == row[i + 1]
    elif bpp == 3:
        for i in range(npix - 1):
            a = i * 3
            eq[i] = (row[a] == row[a + 3]) & (row[a + 1] == row[a + 4]) & (row[a + 2] == row[a + 5])
    else:
        for i in range(npix - 1):
            a = i * bpp
            same = True
            for c in range(bpp):
                same &= row[a + c] == row[a + bpp + c]
            eq[i] = same
    eq[npix - 1] = 0


def _copy32_typing(typingctx: Any, dst: Any, dst_index: Any, src: Any, src_index: Any) -> Any:
    """Copy 32 bytes, `src[src_index:]` to `dst[dst_index:]`: one unaligned vector load and
    store, no bounds check (the caller keeps both ends inside their buffers)."""
    signature = types.void(dst, dst_index, src, src_index)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        to = context.make_array(sig.args[0])(context, builder, args[0])
        source = context.make_array(sig.args[2])(context, builder, args[2])
        cgutils.raw_memcpy(
            builder,
            builder.gep(to.data, [args[1]]),
            builder.gep(source.data, [args[3]]),
            context.get_constant(types.intp, 32),
            1,
        )
        return context.get_dummy_value()

    return signature, codegen


#: `_copy32(dst, dst_index, src, src_index)` in a kernel.
_copy32: Any = intrinsic(_copy32_typing)


@njit(cache=True, nogil=True, inline="always")
def _copy(row: Any, a: int, size: int, out: Any, o: int, wide: bool) -> None:
    """`row[a:a + size]` into `out[o:]`. `wide`: 32 bytes at a time (most literal runs in
    one copy, no loop of a data-dependent length); up to 32 bytes past either end are
    touched, so only where the caller knows there is room (not on a page's last line)."""
    if wide:
        _copy32(out, o, row, a)  # even for size 0: no branch for the common sizes
        for k in range(32, size, 32):
            _copy32(out, o + k, row, a + k)
    else:
        for k in range(size):
            out[_u(o + k)] = row[_u(a + k)]


@njit(cache=True, nogil=True, inline="always")
def _literal(row: Any, first: int, count: int, bpp: int, out: Any, o: int, wide: bool) -> int:
    """`count` pixels from `first` as literal runs of at most 128; the new `o`."""
    while count > 0:
        c = min(count, 128)
        out[o] = (257 - c) & 255  # one pixel: 0, the same as a run of one
        size = c * bpp
        _copy(row, first * bpp, size, out, o + 1, wide)
        o += 1 + size
        first += c
        count -= c
    return o


@njit(cache=True, nogil=True, inline="always")
def _compress_line(
    row: Any,
    npix: int,
    bpp: int,
    eq: Any,
    flips: Any,
    starts: Any,
    out: Any,
    o: int,
    wide: bool,
) -> int:
    """The runs of one line into `out[o:]`; the new `o`.

    1. `eq`, the equal-neighbour mask (vectorized), and `flips`, where it changes;
    2. `starts`: where each block of equal mask values starts, gathered branch-free
       from the 8-byte words of `flips` that are not zero (most are, on paper);
    3. the blocks alternate: a block of ones from s to e is e - s + 1 equal pixels
       (repeat runs; pixel e is its last, so the next block starts a pixel later),
       a block of zeros is literal pixels. Runs hold at most 128 pixels; a lone
       pixel left over from a repeat joins the literal run after it.

    The common blocks (at most 128 pixels) take no data-dependent branch: a literal
    run's code and bytes are written whether it is empty or not (one 32-byte copy for
    up to 10 RGB pixels), and `o` moves only by what it holds.

    The bytes are those of a scan that compares each pixel with the next one.
    """
    _equal_neighbours(row, npix, bpp, eq)
    m = npix - 1
    for i in range(m):
        flips[i] = eq[i] ^ eq[i + 1]
    words = (m + 7) // 8
    for i in range(m, words * 8):
        flips[i] = 0
    flip_words = flips.view(np.uint64)
    n = 1
    starts[0] = 0
    for j in range(words):
        if flip_words[j] == 0:
            continue
        base = j * 8
        for k in range(8):
            starts[_u(n)] = base + k + 1
            n += flips[_u(base + k)]
    starts[n] = npix
    skip = 0
    ones_first = eq[0]
    for b in range(n):
        s = starts[_u(b)] + skip
        e = starts[_u(b + 1)]
        if ones_first ^ (b & 1):
            count = e - s + 1
            a = s * bpp
            if count <= 128:
                out[_u(o)] = count - 1
                for k in range(bpp):
                    out[_u(o + 1 + k)] = row[_u(a + k)]
                o += 1 + bpp
                skip = 1
            else:
                while count >= 2:
                    c = min(count, 128)
                    out[_u(o)] = c - 1
                    for k in range(bpp):
                        out[_u(o + 1 + k)] = row[_u(a + k)]
                    o += 1 + bpp
                    count -= c
                skip = 1 - count
        else:
            count = e - s
            if count <= 128:
                out[_u(o)] = (257 - count) & 255
                size = count * bpp
                _copy(row, s * bpp, size, out, o + 1, wide)
                o += (1 + size) * (count > 0)
            else:
                o = _literal(row, s, count, bpp, out, o, wide)
            skip = 0
    return o


@njit(cache=True, nogil=True, inline="always")
def _compress_any(rows: Any, bpp: int, out: Any) -> int:
    """Compress `rows` (height x bytes_per_line, C order) into `out`; the bytes written.

    `bpp` is the bytes of one pixel (1 for 1-bit pages: a run unit is a byte);
    `out` must hold the worst case (`_bound`). One call a page: no Python per line.
    """
    height, bpl = rows.shape
    npix = bpl // bpp
    eq = np.empty(npix + 1, np.uint8)
    flips = np.empty((npix + 16) // 8 * 8, np.uint8)
    starts = np.empty(npix + 2, np.int32)
    o = 0
    y = 0
    while y < height:
        row = rows[y]
        repeat = 1
        while y + repeat < height and repeat < 256 and _same_row(row, rows[y + repeat], bpl):
            repeat += 1
        out[o] = repeat - 1
        wide = (y + 1) * bpl + 32 <= height * bpl
        o = _compress_line(row, npix, bpp, eq, flips, starts, out, o + 1, wide)
        y += repeat
    return o


# One kernel per pixel size: `_compress_any` inlined with bpp a constant, so LLVM
# unrolls the per-pixel byte loops (measured ~12 % faster on srgb_8 than one kernel).


@njit(cache=True, nogil=True)
def _compress1(rows: Any, out: Any) -> int:
    return _compress_any(rows, 1, out)


@njit(cache=True, nogil=True)
def _compress3(rows: Any, out: Any) -> int:
    return _compress_any(rows, 3, out)


@njit(cache=True, nogil=True)
def _compress4(rows: Any, out: Any) -> int:
    return _compress_any(rows, 4, out)


def _compress(rows: Any, bpp: int, out: Any) -> int:
    """`_compress_any` for `bpp` 1, 3 or 4 (the kernels the encoders use)."""
    kernel = {1: _compress1, 3: _compress3, 4: _compress4}.get(bpp)
    if kernel is None:
        raise InvalidRequest(f"pixels of {bpp} bytes are not encoded (1, 3 or 4)")
    return int(kernel(rows, out))


#: Room past the last byte written for the 32-byte copies' overshoot (`_copy`).
_SLACK = 64


def _bound(height: int, bytes_per_line: int, bpp: int) -> int:
    """A bound of the compressed size: per line a repeat byte, the bytes, at worst a code per
    pixel (lone literals between two-pixel repeat runs cost 4 codes per 3 pixels). Only
    the bytes written are ever touched, so the slack costs address space, not memory."""
    return height * (1 + bytes_per_line + bytes_per_line // bpp) + _SLACK


#: The largest output buffer kept between pages (an A4 page at 300 dpi needs 35 MB of
#: address space for its worst case, of which only the bytes written are touched).
SCRATCH_MAX = 64 * 1024 * 1024
_scratch_lock = threading.Lock()
_scratch: list[np.ndarray] = []


def _into(buffer: np.ndarray, rows: np.ndarray, bytes_per_pixel: int, header: bytes) -> bytes:
    start = len(header)
    buffer[:start] = np.frombuffer(header, np.uint8)
    size = int(_compress(rows, bytes_per_pixel, buffer[start:]))
    return buffer[: start + size].tobytes()


def compress_lines(rows: np.ndarray, *, bytes_per_pixel: int, header: bytes = b"") -> bytes:
    """One page's lines (height x bytes_per_line uint8) in PWG 5102.4 line compression,
    after `header` (written into the same buffer: one copy of the page's bytes, not two).

    The buffer, sized for the worst case, is kept for the next page (one for the
    process, up to `SCRATCH_MAX`; a page that finds it in use or too small for the
    limit gets its own): a fresh one costs a page fault for every 4 KiB written,
    about 1,200 on a 300 dpi page of text."""
    if rows.ndim != 2 or rows.dtype != np.uint8:
        raise InvalidRequest("the rows of a raster page are a 2-D array of bytes")
    if rows.shape[1] % bytes_per_pixel:
        raise InvalidRequest(
            f"a line of {rows.shape[1]} bytes is not whole pixels of {bytes_per_pixel} bytes"
        )
    rows = np.ascontiguousarray(rows)
    size = len(header) + _bound(rows.shape[0], rows.shape[1], bytes_per_pixel)
    if size <= SCRATCH_MAX and _scratch_lock.acquire(blocking=False):
        try:
            if not _scratch or _scratch[0].size < size:
                _scratch[:] = [np.empty(size, np.uint8)]
            return _into(_scratch[0], rows, bytes_per_pixel, header)
        finally:
            _scratch_lock.release()
    return _into(np.empty(size, np.uint8), rows, bytes_per_pixel, header)


# -- page arrays -> rows ------------------------------------------------------------------------


def _rows(
    pixels: np.ndarray, *, colors: int, bits: int, width: int | None
) -> tuple[np.ndarray, int]:
    """The page as (height, bytes_per_line) bytes, and its width in pixels."""
    pixels = np.asarray(pixels)
    if bits == 1:
        if width is not None:
            if pixels.ndim != 2 or pixels.dtype != np.uint8 or pixels.shape[1] != (width + 7) // 8:
                raise InvalidRequest(
                    f"a packed 1-bit page of width {width} is (height, {(width + 7) // 8}) bytes, "
                    f"not {pixels.shape} {pixels.dtype}"
                )
            return pixels, width
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
        if pixels.ndim != 2:
            raise InvalidRequest(f"a 1-bit page is (height, width), not {pixels.shape}")
        return np.packbits(pixels.astype(bool, copy=False), axis=1), pixels.shape[1]
    if width is not None:
        raise InvalidRequest("width= is only for packed 1-bit pages")
    if pixels.dtype != np.uint8:
        raise InvalidRequest(f"8-bit pages are uint8 arrays, not {pixels.dtype}")
    if pixels.ndim == 2 and colors == 1:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] != colors:
        raise InvalidRequest(
            f"this page type takes (height, width, {colors}) pixels, not {pixels.shape}"
        )
    height, width_px = pixels.shape[:2]
    return np.ascontiguousarray(pixels).reshape(height, width_px * colors), width_px


def _transform(rows: np.ndarray, *, cross: int, feed: int, bits: int, width: int) -> np.ndarray:
    """Turn a back side as its header's transforms say (the reader turns it back)."""
    if cross == -1:
        if bits == 1:
            bits_row = np.unpackbits(rows, axis=1, count=width)[:, ::-1]
            rows = np.packbits(bits_row, axis=1)
        else:
            colors = rows.shape[1] // width
            rows = rows.reshape(rows.shape[0], width, colors)[:, ::-1].reshape(rows.shape[0], -1)
    if feed == -1:
        rows = rows[::-1]
    return np.ascontiguousarray(rows)


# -- PWG raster -------------------------------------------------------------------------------


def _text(value: str, field: str) -> bytes:
    raw = value.encode("ascii", errors="strict") if value.isascii() else b""
    if len(raw) > 63 or (value and not raw):
        raise InvalidRequest(f"{field} {value!r} is not ASCII of at most 63 characters")
    return raw


def pwg_header(
    *,
    document_type: str,
    width: int,
    height: int,
    options: PageOptions,
    total_pages: int,
    transforms: tuple[int, int] = (1, 1),
) -> bytes:
    """One 1796-byte PWG 5102.4 page header (section 4.3, the offsets of `cups_page_header2_t`)."""
    space, bits, colors = PWG_TYPES[document_type]
    xdpi, ydpi = options.resolution
    duplex, tumble = SIDES[options.sides]
    bpp = bits * colors
    points = (round(width * 72 / xdpi), round(height * 72 / ydpi))
    raw = bytearray(pwg.HEADER_SIZE)
    raw[0:9] = b"PwgRaster"  # MediaClass
    for offset, value, field in (
        (64, options.media_color, "media-color"),
        (128, options.media_type, "media-type"),
        (192, options.print_content_optimize, "print-content-optimize"),
        (1668, options.rendering_intent, "print-rendering-intent"),
        (1732, options.media, "media"),
    ):
        text = _text(value, field)
        raw[offset : offset + len(text)] = text
    struct.pack_into(">I", raw, 272, int(duplex))
    struct.pack_into(">2I", raw, 276, xdpi, ydpi)
    struct.pack_into(">4I", raw, 284, 0, 0, *points)  # ImagingBoundingBox: the whole page
    struct.pack_into(">I", raw, 340, options.copies)  # NumCopies
    struct.pack_into(">2I", raw, 352, *points)  # PageSize
    struct.pack_into(">3I", raw, 368, int(tumble), width, height)
    bytes_per_line = (width * bpp + 7) // 8
    struct.pack_into(">6I", raw, 384, bits, bpp, bytes_per_line, 0, int(space), 0)
    struct.pack_into(">I", raw, 420, colors)  # cupsNumColors
    struct.pack_into(">I", raw, 452, total_pages)  # TotalPageCount
    struct.pack_into(">2i", raw, 456, *transforms)  # CrossFeedTransform, FeedTransform
    struct.pack_into(">4I", raw, 464, 0, 0, width, height)  # ImageBoxLeft/Top/Right/Bottom
    struct.pack_into(">I", raw, 480, ALTERNATE_PRIMARY)
    struct.pack_into(">I", raw, 484, QUALITIES[options.print_quality])
    return bytes(raw)


def pwg_page(
    pixels: np.ndarray,
    *,
    document_type: str,
    options: PageOptions,
    page_number: int = 1,
    total_pages: int = 0,
    width: int | None = None,
) -> bytes:
    """One page (header and compressed lines) of a PWG raster stream, after `pwg.SYNC`.

    `page_number` (1-based) places the page on its sheet for two-sided back-side
    transforms; `total_pages` is `TotalPageCount` (0: not known when streaming).
    """
    if document_type not in PWG_TYPES:
        raise InvalidRequest(
            f"PWG raster type {document_type!r} is not one of {', '.join(PWG_TYPES)}",
            field="pwg-raster-document-type",
        )
    _, bits, colors = PWG_TYPES[document_type]
    rows, width_px = _rows(pixels, colors=colors, bits=bits, width=width)
    height = rows.shape[0]
    if width_px <= 0 or height <= 0:
        raise InvalidRequest(f"a page of {width_px}x{height} pixels is empty")
    transforms = options.back_transforms(page_number)
    rows = _transform(rows, cross=transforms[0], feed=transforms[1], bits=bits, width=width_px)
    header = pwg_header(
        document_type=document_type,
        width=width_px,
        height=height,
        options=options,
        total_pages=total_pages,
        transforms=transforms,
    )
    return compress_lines(rows, bytes_per_pixel=max(1, bits * colors // 8), header=header)


def encode_pwg(pages: Iterable[np.ndarray], *, document_type: str, options: PageOptions) -> bytes:
    """A whole `image/pwg-raster` document of `pages`, `TotalPageCount` filled in."""
    pages = list(pages)
    parts = [pwg.SYNC]
    for number, pixels in enumerate(pages, 1):
        parts.append(
            pwg_page(
                pixels,
                document_type=document_type,
                options=options,
                page_number=number,
                total_pages=len(pages),
            )
        )
    return b"".join(parts)


# -- URF --------------------------------------------------------------------------------------


def urf_file_header(page_count: int) -> bytes:
    """`UNIRAST\\0` and the page count (0 when not known)."""
    return urf.SYNC + struct.pack(">I", page_count)


def urf_page(pixels: np.ndarray, *, urf_type: str, options: PageOptions) -> bytes:
    """One URF page: its 32-byte header and compressed lines. URF has one resolution for
    both directions: `options.resolution` must be square."""
    if urf_type not in URF_ENCODE_TYPES:
        raise InvalidRequest(
            f"URF type {urf_type!r} is not one of {', '.join(URF_ENCODE_TYPES)}",
            field="urf-supported",
        )
    xdpi, ydpi = options.resolution
    if xdpi != ydpi:
        raise InvalidRequest(f"URF pages have one resolution, not {xdpi}x{ydpi} dpi")
    space, bpp, colors = URF_ENCODE_TYPES[urf_type]
    rows, width = _rows(pixels, colors=colors, bits=8, width=None)
    height = rows.shape[0]
    if width <= 0 or height <= 0:
        raise InvalidRequest(f"a page of {width}x{height} pixels is empty")
    header = bytearray(urf.PAGE_HEADER_SIZE)
    header[0] = bpp
    header[1] = space
    header[2] = _URF_DUPLEX[SIDES[options.sides]]
    header[3] = QUALITIES[options.print_quality]
    struct.pack_into(">3I", header, 12, width, height, xdpi)
    return compress_lines(rows, bytes_per_pixel=bpp // 8, header=bytes(header))


def encode_urf(pages: Iterable[np.ndarray], *, urf_type: str, options: PageOptions) -> bytes:
    """A whole `image/urf` document of `pages`, its page count filled in."""
    pages = list(pages)
    parts = [urf_file_header(len(pages))]
    parts += [urf_page(pixels, urf_type=urf_type, options=options) for pixels in pages]
    return b"".join(parts)


def warm_up() -> None:
    """Compile (or load from numba's cache) the line encoder, so a first job does not wait."""
    rows = np.zeros((2, 12), np.uint8)
    out = np.empty(_bound(2, 12, 1), np.uint8)
    for bpp in (1, 3, 4):
        _compress(rows, bpp, out)
