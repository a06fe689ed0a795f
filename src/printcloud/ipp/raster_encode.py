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
`width=` given. Halftoning belongs to the caller (the printer's pipeline lives
in `device/`, which `ipp/` may not import).

Why numba: the runs are chosen byte by byte, which no NumPy expression does;
the kernel writes into one preallocated buffer of the worst-case size.
`warm_up` compiles it (or loads it from numba's cache) at start.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

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


@njit(cache=True, nogil=True)
def _same_line(flat: Any, words: Any, a: int, b: int, n: int) -> bool:
    """`flat[a:a+n] == flat[b:b+n]`, 8 bytes at a time through the word views, in blocks
    of 32 words with no exit inside a block, so LLVM vectorizes the block."""
    va, vb = words[a % 8], words[b % 8]
    ia, ib = a // 8, b // 8
    count = n // 8
    for block in range(0, count, 32):
        diff = False
        for k in range(block, min(block + 32, count)):
            diff |= va[ia + k] != vb[ib + k]
        if diff:
            return False
    tail = True  # the last 0-7 bytes
    for k in range(count * 8, n):
        tail &= flat[a + k] == flat[b + k]
    return tail


@njit(cache=True, nogil=True, inline="always")
def _key(src: Any, at: int, bpp: int) -> Any:
    """A pixel as one integer, so neighbours compare in one step (1, 3 or 4 bytes)."""
    if bpp == 1:
        return np.int64(src[at])
    if bpp == 3:
        return np.int64(src[at]) | (np.int64(src[at + 1]) << 8) | (np.int64(src[at + 2]) << 16)
    value = np.int64(0)
    for k in range(bpp):
        value |= np.int64(src[at + k]) << (8 * k)
    return value


@njit(cache=True, nogil=True)
def _compress_line(flat: Any, words: Any, base: int, npix: int, bpp: int, out: Any, o: int) -> int:
    """The runs of one line (`npix` pixels from `flat[base]`) into `out[o:]`; the new `o`.

    Each pixel is read once, as a key: `cur` is pixel i's, `nxt` pixel i + 1's.
    `words` are `flat` as 64-bit words from each byte offset 0-7 (`_words`).
    """
    i = 0
    cur = _key(flat, base, bpp)
    while i < npix:
        nxt = _key(flat, base + (i + 1) * bpp, bpp) if i + 1 < npix else np.int64(-1)
        at = base + i * bpp
        if nxt == cur:
            # a repeat run: pixels i and i + 1 are equal; extend it to at most 128
            run = 2
            # A long run (paper, a flat fill) in blocks of 8 pixels: once the run has 8
            # pixels, the next 8 (bpp words) repeat it when they equal the 8 before them,
            # word for word: bpp compares instead of 8 pixel keys.
            while run < 8 and i + run < npix and _key(flat, at + run * bpp, bpp) == cur:
                run += 1
            if run == 8:
                start = at + run * bpp
                view = words[start % 8]
                q = start // 8
                while i + run + 8 <= npix and run + 8 <= 128:
                    same = True
                    for k in range(bpp):
                        same &= view[q + k] == view[q + k - bpp]
                    if not same:
                        break
                    run += 8
                    q += bpp
            while i + run < npix and run < 128:
                nxt = _key(flat, at + run * bpp, bpp)
                if nxt != cur:
                    break
                run += 1
            out[o] = run - 1
            for k in range(bpp):
                out[o + 1 + k] = flat[at + k]
            o += 1 + bpp
            i += run
            if i < npix:
                cur = nxt if run < 128 else _key(flat, base + i * bpp, bpp)
        else:
            # a literal run: up to the pixel where a repeat run starts (or 128 pixels)
            start = i
            i += 1
            cur = nxt
            while i < npix and i - start < 128:
                if i + 1 < npix:
                    nxt = _key(flat, base + (i + 1) * bpp, bpp)
                    if nxt == cur:
                        break
                    cur = nxt
                i += 1
            count = i - start
            out[o] = 257 - count if count > 1 else 0
            o += 1
            size = count * bpp
            if size < 32:  # a slice copy costs more than a short loop (measured)
                for k in range(size):
                    out[o + k] = flat[at + k]
            else:
                out[o : o + size] = flat[at : at + size]
            o += size
    return o


@njit(cache=True, nogil=True)
def _compress(rows: Any, words: Any, bpp: int, out: Any) -> int:
    """Compress `rows` (height x bytes_per_line, C order) into `out`; the bytes written.

    `bpp` is the bytes of one pixel (1 for 1-bit pages: a run unit is a byte).
    `words` are `rows`' bytes as words (`_words`); `out` must hold the worst case (`_bound`).
    """
    height, bpl = rows.shape
    flat = rows.reshape(-1)
    npix = bpl // bpp
    o = 0
    y = 0
    while y < height:
        base = y * bpl
        repeat = 1
        while y + repeat < height and repeat < 256:
            if not _same_line(flat, words, base, (y + repeat) * bpl, bpl):
                break
            repeat += 1
        out[o] = repeat - 1
        o = _compress_line(flat, words, base, npix, bpp, out, o + 1)
        y += repeat
    return o


def _words(rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """The page's bytes as 64-bit words, 8 views, one from each byte offset: view
    `p % 8`, index `p // 8` is the word of bytes p to p + 7, wherever p is (numba has
    no unaligned load). Views, not copies; seven of them are not 8-byte aligned, which
    x86-64 and ARM64 load as they are (numba types them as aligned arrays)."""
    flat = rows.reshape(-1)
    n = flat.size
    return tuple(flat[m : m + max(0, n - m) // 8 * 8].view(np.uint64) for m in range(8))


def _bound(height: int, bytes_per_line: int, bpp: int) -> int:
    """A bound of the compressed size: per line a repeat byte, the bytes, at worst a code per
    pixel (lone literals between two-pixel repeat runs cost 4 codes per 3 pixels). Only
    the bytes written are ever touched, so the slack costs address space, not memory."""
    return height * (1 + bytes_per_line + bytes_per_line // bpp)


def compress_lines(rows: np.ndarray, *, bytes_per_pixel: int, header: bytes = b"") -> bytes:
    """One page's lines (height x bytes_per_line uint8) in PWG 5102.4 line compression,
    after `header` (written into the same buffer: one copy of the page's bytes, not two)."""
    if rows.ndim != 2 or rows.dtype != np.uint8:
        raise InvalidRequest("the rows of a raster page are a 2-D array of bytes")
    if rows.shape[1] % bytes_per_pixel:
        raise InvalidRequest(
            f"a line of {rows.shape[1]} bytes is not whole pixels of {bytes_per_pixel} bytes"
        )
    rows = np.ascontiguousarray(rows)
    start = len(header)
    out = np.empty(start + _bound(rows.shape[0], rows.shape[1], bytes_per_pixel), np.uint8)
    out[:start] = np.frombuffer(header, np.uint8)
    size = int(_compress(rows, _words(rows), bytes_per_pixel, out[start:]))
    return out[: start + size].tobytes()


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
        _compress(rows, _words(rows), bpp, out)
