"""Page imaging shared by the conversion tier and the device (issue 15): what a page
becomes on printcloud's printers, so that raster made for a real printer by the
conversion workers (`printing/raster_stream.py`) and the virtual printer's engine
(`device/raster.py`) put the same dots and inks on paper.

- **Fitting** (`decode`, `place`): a page JPEG is decoded (libjpeg-turbo; gray is
  the Y component, BT.601 luma of the RGB) and fitted to the media at the
  resolution (aspect kept, centred on white, never rotated; within 0.5 % of the
  sheet's size it is placed 1:1 and the overhang cropped). The left edge is rounded
  down to a whole byte of a 1-bit plane.
- **Separation** (RGB -> C, M, Y, K ink, 0-255): once per CMYK output profile,
  Pillow's `ImageCms` (LittleCMS) maps a 33x33x33 grid of sRGB values to CMYK;
  pages then go through that grid with tetrahedral interpolation in a numba
  kernel. By default Ghostscript's `default_cmyk.icc` (its SWOP profile, the one
  `-sDEVICE=bitcmyk` uses) is looked up. When no profile can be read the
  separation is a formula, logged once: C' = 255 - R (likewise M', Y'),
  K = min(C', M', Y'), then C = C' - K, M = M' - K, Y = Y' - K (full gray-component
  replacement: neutrals print with K alone). Gray pages are K = 255 - luma alone.
- **Halftone** (ink -> 1 bit): `"ordered"` compares each colorant with an 8x8 Bayer
  matrix anchored at the page's top-left corner, fused with the separation in one
  pass; `"error_diffusion"` is Floyd-Steinberg with a serpentine scan.

Whole pages for PWG raster (`black_1_page`, `cmyk_8_page`, `rgb_page`,
`gray_page`): the sheet at the resolution, white (no ink) around the fitted image.
A 1-bit plane is packed as `numpy.packbits` packs it (and as PBM and PWG `black_1`
store it): one row of `ceil(width / 8)` bytes, most significant bit first, 1 = a dot.

This package imports no service (import-linter), so `printing` and `device` both may
import it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import simplejpeg
from llvmlite import ir
from numba import carray, njit, types
from numba.extending import intrinsic
from numpy.typing import NDArray
from PIL import Image, ImageCms

from printcloud.core.errors import InvalidRequest
from printcloud.core.logs import get_logger

log = get_logger("imaging.halftone")

Halftone = Literal["ordered", "error_diffusion"]

#: Where the default CMYK output profile is looked for, in order (Debian paths).
PROFILE_SEARCH = (
    Path("/usr/share/color/icc/ghostscript/default_cmyk.icc"),
    Path("/usr/share/ghostscript/iccprofiles/default_cmyk.icc"),
    Path("/usr/share/color/icc/ghostscript/ps_cmyk.icc"),
)

GRID_SIZE = 33
# Grid nodes at exact 8-bit values 0, 8, ..., 248, 255, so LittleCMS is fed
# the very values it maps; the last cell is 7 wide instead of 8.
_NODES = np.minimum(np.arange(GRID_SIZE) * 8, 255)
_CELL = np.minimum(np.arange(256) >> 3, GRID_SIZE - 2).astype(np.int64)
_FRAC = np.rint(256 * (np.arange(256) - _NODES[_CELL]) / (_NODES[_CELL + 1] - _NODES[_CELL]))
_FRAC = _FRAC.astype(np.int64)

_BAYER8 = np.array(
    [
        [0, 32, 8, 40, 2, 34, 10, 42],
        [48, 16, 56, 24, 50, 18, 58, 26],
        [12, 44, 4, 36, 14, 46, 6, 38],
        [60, 28, 52, 20, 62, 30, 54, 22],
        [3, 35, 11, 43, 1, 33, 9, 41],
        [51, 19, 59, 27, 49, 17, 57, 25],
        [15, 47, 7, 39, 13, 45, 5, 37],
        [63, 31, 55, 23, 61, 29, 53, 21],
    ]
)
#: A dot where ink > threshold: ink 0 never prints, 255 always, n/64 of the cells at n×4.
_THRESHOLDS = (_BAYER8 * 4 + 2).astype(np.uint8)


@dataclass(frozen=True)
class Separation:
    """RGB → CMYK: an ICC grid (`grid`: 33×33×33×4 uint8 ink, flattened) or the formula."""

    name: str  # "icc:<path>" or "formula"
    grid: NDArray[np.uint8] | None


FORMULA = Separation("formula", None)
# A placeholder of the grid's type, so the formula path shares the grid kernels' signatures.
_NO_GRID = np.zeros(GRID_SIZE**3 * 4, np.uint8)


def find_profile() -> Path | None:
    """The first CMYK output profile of `PROFILE_SEARCH` that exists, if any."""
    return next((path for path in PROFILE_SEARCH if path.is_file()), None)


def _icc_separation(path: Path) -> Separation:
    profile = ImageCms.getOpenProfile(str(path))
    transform = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"),
        profile,
        "RGB",
        "CMYK",
        renderingIntent=ImageCms.Intent.PERCEPTUAL,
    )
    r, g, b = np.meshgrid(_NODES, _NODES, _NODES, indexing="ij")
    rgb = np.stack([r, g, b], axis=-1).astype(np.uint8).reshape(1, -1, 3)
    cmyk = ImageCms.applyTransform(Image.fromarray(rgb, "RGB"), transform)
    if cmyk is None:  # only with inPlace=True; narrows the type
        raise ImageCms.PyCMSError("no output image")
    # 8-bit like LittleCMS's answers: 144 KiB, small enough to stay in cache.
    grid = np.asarray(cmyk, dtype=np.uint8).reshape(-1)
    return Separation(f"icc:{path}", np.ascontiguousarray(grid))


@functools.lru_cache(maxsize=8)
def load_separation(profile: Path | None = None) -> Separation:
    """The separation for a CMYK output profile (default: `find_profile()`), built once.

    A missing or unreadable profile gives the formula separation, with a
    warning in the log (once per profile): a printer prints rather than stops
    for a color profile.
    """
    path = profile if profile is not None else find_profile()
    if path is None:
        log.warning("no CMYK output profile found; using the formula separation")
        return FORMULA
    try:
        return _icc_separation(Path(path).resolve())
    except (OSError, ImageCms.PyCMSError) as exc:
        log.warning("CMYK profile %s unusable (%s); using the formula separation", path, exc)
        return FORMULA


# -- kernels -----------------------------------------------------------------
# Every kernel writes into a zeroed page of packed planes; (x0, y0) is where the
# fitted image starts on the page, so the white margins are never visited.


_SR, _SG = GRID_SIZE * GRID_SIZE * 4, GRID_SIZE * 4  # strides of the flattened grid
# Tetrahedral interpolation without branches: the order of (fr, fg, fb), coded
# as (fr >= fg) << 2 | (fg >= fb) << 1 | (fr >= fb), picks the two middle
# vertices of the cell's tetrahedron (codes 1 and 6 cannot occur).
_VERTEX1 = np.array([4, 0, _SG, _SG, 4, _SR, 0, _SR], np.int64)
_VERTEX2 = np.array([_SG + 4, 0, _SG + 4, _SR + _SG, _SR + 4, _SR + 4, 0, _SR + _SG], np.int64)


@njit(cache=True, nogil=True, inline="always")
def _grid_lookup(grid: Any, cell: Any, frac: Any, r: int, g: int, b: int, ink: Any, x: int) -> None:
    """Tetrahedral interpolation of one RGB value in the flattened 33³×4 grid → ink[:, x].

    Fixed point: `frac` is the position in the cell ×256, the weights sum to 256.
    """
    fr, fg, fb = frac[r], frac[g], frac[b]
    base = cell[r] * _SR + cell[g] * _SG + cell[b] * 4
    code = (fr >= fg) << 2 | (fg >= fb) << 1 | (fr >= fb)
    p1, p2, p3 = base + _VERTEX1[code], base + _VERTEX2[code], base + _SR + _SG + 4
    hi, lo = max(fr, fg, fb), min(fr, fg, fb)
    mid = fr + fg + fb - hi - lo
    w0, w1, w2 = 256 - hi, hi - mid, mid - lo
    for ch in range(4):
        value = w0 * grid[base + ch] + w1 * grid[p1 + ch] + w2 * grid[p2 + ch] + lo * grid[p3 + ch]
        ink[ch, x] = (value + 128) >> 8


#: Colors looked up in the grid are remembered in a direct-mapped cache of
#: 2**14 slots: on doc10's page 1 it cuts the lookups of a 300 dpi page ~13x
#: (anti-aliased text repeats a few hundred colors).
_CACHE_BITS = 14


@njit(cache=True, nogil=True, inline="always")
def _separate_row(
    row: Any, grid: Any, cell: Any, frac: Any, use_grid: bool, ink: Any, keys: Any, values: Any
) -> None:
    """One row of RGB (w, 3) → ink (4, w), through the grid or the GCR formula."""
    w = row.shape[0]
    if use_grid:
        previous = np.int64(-1)
        for x in range(w):
            r, g, b = row[x, 0], row[x, 1], row[x, 2]
            key = (np.int64(r) << 16) | (np.int64(g) << 8) | np.int64(b)
            if key == previous:  # runs of one color: paper, text, rules
                for ch in range(4):
                    ink[ch, x] = ink[ch, x - 1]
                continue
            previous = key
            slot = ((key * 2654435761) & 0xFFFFFFFF) >> (32 - _CACHE_BITS)
            if keys[slot] == key:
                packed = values[slot]
                for ch in range(4):
                    ink[ch, x] = (packed >> (8 * ch)) & 0xFF
            else:
                _grid_lookup(grid, cell, frac, r, g, b, ink, x)
                keys[slot] = key
                values[slot] = (
                    np.int32(ink[0, x])
                    | np.int32(ink[1, x]) << 8
                    | np.int32(ink[2, x]) << 16
                    | np.int32(ink[3, x]) << 24
                )
    else:
        for x in range(w):
            c, m, y = 255 - row[x, 0], 255 - row[x, 1], 255 - row[x, 2]
            k = min(c, m, y)
            ink[0, x] = c - k
            ink[1, x] = m - k
            ink[2, x] = y - k
            ink[3, x] = k


_HIGH = np.uint64(0x8080808080808080)
#: Eight bytes' lowest bits (bit 8i) to one byte, byte i at bit 7 − i (pixel i is 0x80 >> i).
_GATHER = np.uint64(0x8040201008040201)


@njit(cache=True, nogil=True, inline="always")
def _below(x: Any, y: Any) -> Any:
    """For each of the eight bytes, its high bit set where x's byte < y's (unsigned), SWAR:
    the low seven bits are compared without borrows between bytes (x | 0x80 − y & 0x7f),
    the high bits decide where they differ."""
    low = (x | _HIGH) - (y & ~_HIGH)
    return ~((x & ~y) | (~(x ^ y) & low)) & _HIGH


@njit(cache=True, nogil=True, inline="always")
def _dither_row(luma: Any, limits: Any, orow: Any, x0: int) -> None:
    """Ordered dither of one row of luma into packed bytes from x0 (a multiple of 8) on:
    a dot where 255 − luma > threshold, i.e. luma < `limits[i]` = 255 − threshold.

    Eight pixels at a time as one 64-bit word against the row's eight limits."""
    w = luma.shape[0]
    b0 = x0 >> 3
    word = np.uint64(0)
    for i in range(8):
        word |= np.uint64(limits[i]) << np.uint64(8 * i)
    for bx in range(w >> 3):
        dots = _below(_load_u64(luma, bx * 8), word) >> np.uint64(7)
        orow[b0 + bx] = np.uint8((dots * _GATHER) >> np.uint64(56))
    v = 0
    for x in range(w & ~7, w):
        if luma[x] < limits[x & 7]:
            v |= 0x80 >> (x & 7)
    if w & 7:
        orow[b0 + (w >> 3)] = v


@njit(cache=True, nogil=True, inline="always")
def _grid_ink(grid: Any, cell: Any, frac: Any, r: int, g: int, b: int) -> Any:
    """`_grid_lookup` of one RGB value as C | M << 8 | Y << 16 | K << 24."""
    fr, fg, fb = frac[r], frac[g], frac[b]
    base = cell[r] * _SR + cell[g] * _SG + cell[b] * 4
    code = (fr >= fg) << 2 | (fg >= fb) << 1 | (fr >= fb)
    p1, p2, p3 = base + _VERTEX1[code], base + _VERTEX2[code], base + _SR + _SG + 4
    hi, lo = max(fr, fg, fb), min(fr, fg, fb)
    mid = fr + fg + fb - hi - lo
    w0, w1, w2 = 256 - hi, hi - mid, mid - lo
    packed = 0
    for ch in range(4):
        value = w0 * grid[base + ch] + w1 * grid[p1 + ch] + w2 * grid[p2 + ch] + lo * grid[p3 + ch]
        packed |= ((value + 128) >> 8) << (8 * ch)
    return np.uint32(packed)


def _byte_at(context: Any, builder: Any, signature: Any, args: Any) -> tuple[Any, Any]:
    """For an intrinsic called as `(array, offset)`: a byte pointer `offset` bytes into
    the array's memory, and the type of the array's own data pointer."""
    data = context.make_array(signature.args[0])(context, builder, args[0]).data
    index = context.cast(builder, args[1], signature.args[1], types.intp)
    byte = builder.bitcast(data, ir.IntType(8).as_pointer())
    return builder.gep(byte, [index]), data.type


def _load_u64_typer(typingctx: Any, array: Any, offset: Any) -> Any:
    """The eight bytes of an array's memory from byte `offset` on, as one uint64
    (little-endian), whatever their alignment: a row of a page cropped by a view starts
    anywhere. The caller makes sure those bytes are the array's and contiguous."""
    if not (isinstance(array, types.Array) and isinstance(offset, types.Integer)):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        at, _ = _byte_at(context, builder, signature, args)
        return builder.load(builder.bitcast(at, ir.IntType(64).as_pointer()), align=1)

    return types.uint64(array, offset), codegen


# Called as `_load_u64(array, offset)` in kernels (numba passes the typing context).
_load_u64 = cast(Callable[[Any, int], Any], intrinsic(_load_u64_typer))


def _address_typer(typingctx: Any, array: Any, offset: Any) -> Any:
    """A pointer `offset` bytes into an array's memory, for `numba.carray`: a row of a
    page cropped by a view, seen as the contiguous array it is (loops over a
    non-contiguous ("A") array do not vectorize: the gray dither took 3x as long)."""
    if not (isinstance(array, types.Array) and isinstance(offset, types.Integer)):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        at, data_type = _byte_at(context, builder, signature, args)
        return builder.bitcast(at, data_type)

    return types.CPointer(array.dtype)(array, offset), codegen


_address = cast(Callable[[Any, int], Any], intrinsic(_address_typer))


#: Four bits (pixels 0, 2, 4, 6 or 1, 3, 5, 7 of a group) to their places in a byte.
_EVEN = np.array(
    [sum(0x80 >> (2 * k) for k in range(4) if n >> k & 1) for n in range(16)], np.uint8
)
_ODD = _EVEN >> 1


@njit(cache=True, nogil=True, inline="always")
def _dither_packed_row(ink: Any, trow: Any, out: Any, py: int, x0: int) -> None:
    """Ordered dither of one row of packed inks (uint32 C | M << 8 | Y << 16 | K << 24)
    into the four planes' row `py` from x0 (a multiple of 8) on. Eight pixels without
    ink (paper) are skipped: `out` is zeroed.

    SWAR: a group's 32 inks are four 64-bit words of two pixels each, compared with the
    thresholds in one `_below` per word; the four words' answers are interleaved, and
    each colorant's byte is two look-ups of four bits."""
    w = ink.shape[0]
    b0 = x0 >> 3
    limits = np.empty(4, np.uint64)  # pixels 2k and 2k + 1's thresholds, in every byte
    for k in range(4):
        limits[k] = np.uint64(trow[2 * k]) * np.uint64(0x01010101) | (
            np.uint64(trow[2 * k + 1]) * np.uint64(0x0101010100000000)
        )
    for bx in range(w >> 3):
        at = bx * 32
        w0, w1 = _load_u64(ink, at), _load_u64(ink, at + 8)
        w2, w3 = _load_u64(ink, at + 16), _load_u64(ink, at + 24)
        if (w0 | w1 | w2 | w3) == 0:
            continue
        # Byte c of `dots`: colorant c of pixels 0, 2, 4, 6 in bits 0-3; byte c + 4: 1, 3, 5, 7.
        dots = (
            (_below(limits[0], w0) >> np.uint64(7))
            | (_below(limits[1], w1) >> np.uint64(6))
            | (_below(limits[2], w2) >> np.uint64(5))
            | (_below(limits[3], w3) >> np.uint64(4))
        )
        for ch in range(4):
            even = (dots >> np.uint64(8 * ch)) & np.uint64(15)
            odd = (dots >> np.uint64(8 * ch + 32)) & np.uint64(15)
            out[ch, py, b0 + bx] = _EVEN[even] | _ODD[odd]
    if w & 7:
        for ch in range(4):
            v = 0
            for x in range(w & ~7, w):
                if ((ink[x] >> (8 * ch)) & 0xFF) > trow[x & 7]:
                    v |= 0x80 >> (x & 7)
            out[ch, py, b0 + (w >> 3)] = v


@njit(cache=True, nogil=True)
def _ordered_cmyk(
    rgb: Any, grid: Any, cell: Any, frac: Any, use_grid: bool, out: Any, x0: int, y0: int, t: Any
) -> None:
    """Separation + 8×8 ordered dither, row by row; `out` is (4, H, ceil(W/8)) packed, zeroed.

    One row of inks, packed four to a uint32, stays in cache between the two steps.
    Eight pixels equal to the eight above them keep the inks the row above left in it
    (on doc10's page 1 at 300 dpi 70 % of the groups: paper, margins, vertical
    strokes); the others go through the cache of grid lookups pixel by pixel, without
    a branch on runs (which mispredicts on anti-aliased text). `rgb` may be a view
    (the page cropped from a wider decode): rows need not follow each other.
    """
    h, w = rgb.shape[0], rgb.shape[1]
    if (w > 1 and rgb.strides[1] != 3) or rgb.strides[2] != 1:
        raise ValueError("the page's rows must each be contiguous RGB")
    ink = np.zeros(w, np.uint32)
    keys = np.full(1 << _CACHE_BITS, -1, np.int32)
    values = np.zeros(1 << _CACHE_BITS, np.uint32)
    stride = rgb.strides[0]
    for yy in range(h):
        row = carray(_address(rgb, yy * stride), (w, 3))
        above = carray(_address(rgb, (yy - 1) * stride), (w, 3)) if yy else row
        for xs in range(0, w, 8):
            # Eight pixels (24 bytes) against the eight above: three unaligned 64-bit words.
            if yy and xs + 8 <= w:
                j = xs * 3
                same = (
                    (_load_u64(row, j) ^ _load_u64(above, j))
                    | (_load_u64(row, j + 8) ^ _load_u64(above, j + 8))
                    | (_load_u64(row, j + 16) ^ _load_u64(above, j + 16))
                ) == 0
                if same:
                    continue
            for x in range(xs, min(xs + 8, w)):
                r, g, b = row[x, 0], row[x, 1], row[x, 2]
                if use_grid:
                    key = (np.int64(r) << 16) | (np.int64(g) << 8) | np.int64(b)
                    slot = ((key * 2654435761) & 0xFFFFFFFF) >> (32 - _CACHE_BITS)
                    if keys[slot] == key:
                        ink[x] = values[slot]
                    else:
                        packed = _grid_ink(grid, cell, frac, r, g, b)
                        keys[slot] = key
                        values[slot] = packed
                        ink[x] = packed
                else:
                    c, m, y = 255 - r, 255 - g, 255 - b
                    k = min(c, m, y)
                    ink[x] = np.uint32((c - k) | (m - k) << 8 | (y - k) << 16 | k << 24)
        py = y0 + yy
        _dither_packed_row(ink, t[py & 7], out, py, x0)


@njit(cache=True, nogil=True)
def _ordered_gray(gray: Any, out: Any, x0: int, y0: int, t: Any) -> None:
    """Ink = 255 − luma, 8×8 ordered dither; `out` is (H, ceil(W/8)) packed. `gray`
    may be a view whose rows do not follow each other; each row must be contiguous."""
    h, w = gray.shape
    if w > 1 and gray.strides[1] != 1:
        raise ValueError("the page's rows must each be contiguous")
    luma_t = 255 - t  # dot where luma < 255 − threshold
    for yy in range(h):
        py = y0 + yy
        row = carray(_address(gray, yy * gray.strides[0]), w)
        _dither_row(row, luma_t[py & 7], out[py], x0)


@njit(cache=True, nogil=True)
def _separate(rgb: Any, grid: Any, cell: Any, frac: Any, use_grid: bool) -> Any:
    """RGB (h, w, 3) → ink (4, h, w) uint8, for error diffusion."""
    h, w = rgb.shape[0], rgb.shape[1]
    ink = np.empty((4, h, w), np.uint8)
    row = np.empty((4, w), np.uint8)
    keys, values = np.full(1 << _CACHE_BITS, -1, np.int32), np.zeros(1 << _CACHE_BITS, np.int32)
    for yy in range(h):
        _separate_row(rgb[yy], grid, cell, frac, use_grid, row, keys, values)
        ink[:, yy, :] = row
    return ink


@njit(cache=True, nogil=True)
def _floyd_steinberg(ink: Any, out: Any, x0: int, y0: int) -> None:
    """Floyd–Steinberg (7, 3, 5, 1 / 16), serpentine; ink (h, w) uint8 → `out` packed."""
    h, w = ink.shape
    # Errors ×16, with one guard cell either side.
    cur = np.zeros(w + 2, np.int32)
    nxt = np.zeros(w + 2, np.int32)
    for yy in range(h):
        py = y0 + yy
        forward = (yy & 1) == 0
        for n in range(w):
            xx = n if forward else w - 1 - n
            d = 1 if forward else -1
            value = ink[yy, xx] * 16 + cur[xx + 1]
            if value >= 128 * 16:
                px = x0 + xx
                out[py, px >> 3] |= 0x80 >> (px & 7)
                err = value - 255 * 16
            else:
                err = value
            cur[xx + 1 + d] += (err * 7) >> 4
            nxt[xx + 1 - d] += (err * 3) >> 4
            nxt[xx + 1] += (err * 5) >> 4
            nxt[xx + 1 + d] += err >> 4
        cur, nxt = nxt, cur
        nxt[:] = 0


def separate(rgb: NDArray[np.uint8], separation: Separation) -> NDArray[np.uint8]:
    """RGB (h, w, 3) → ink (4, h, w), 0–255 per colorant C, M, Y, K: the separation alone."""
    grid = separation.grid if separation.grid is not None else _NO_GRID
    ink: NDArray[np.uint8] = _separate(
        np.ascontiguousarray(rgb, np.uint8), grid, _CELL, _FRAC, separation.grid is not None
    )
    return ink


# -- fitting a page image to the sheet --------------------------------------------


#: Larger page images are refused before decoding (A3 at 1200 dpi is 280 MP).
MAX_IMAGE_PIXELS = 400_000_000
#: Page images this close to the sheet's size are placed 1:1 (an overhanging
#: pixel row from rounding is cropped) instead of resampled.
_SNAP = 0.005


def _fit(size: tuple[int, int], page: tuple[int, int]) -> tuple[int, int]:
    (w, h), (pw, ph) = size, page
    scale = min(pw / w, ph / h)
    if abs(scale - 1.0) <= _SNAP:
        return w, h
    return max(1, min(pw, round(w * scale))), max(1, min(ph, round(h * scale)))


def decode(jpeg: bytes, *, gray: bool, page: tuple[int, int]) -> NDArray[np.uint8]:
    """Decode and fit a page JPEG into `page` pixels: (h, w, 3) RGB or (h, w) gray."""
    return np.ascontiguousarray(_fitted(jpeg, gray=gray, page=page))


def _fitted(jpeg: bytes, *, gray: bool, page: tuple[int, int]) -> NDArray[np.uint8]:
    """`decode`, but the overhang is cropped by a view, not a copy: the rows may not
    follow each other (each row's pixels do). Copying a 300 dpi A4 page to drop its
    2,481st column cost more than the whole dither (page faults on 26 MB of RGB)."""
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
        if width * height > MAX_IMAGE_PIXELS:
            raise InvalidRequest(
                f"page image of {width} x {height} pixels is too large", field="page"
            )
        fw, fh = _fit((width, height), page)
        # libjpeg-turbo scales by 1/2, 1/4, 1/8 while decoding: cheap when a
        # large page image meets a coarse printer resolution.
        image = simplejpeg.decode_jpeg(
            jpeg, colorspace="GRAY" if gray else "RGB", min_width=fw, min_height=fh
        )
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"page is not a readable JPEG: {exc}", field="page") from exc
    if gray:
        image = image.reshape(image.shape[0], image.shape[1])
    if (image.shape[1], image.shape[0]) != (fw, fh):
        mode = "L" if gray else "RGB"
        resized = Image.fromarray(image, mode).resize((fw, fh), Image.Resampling.BILINEAR)
        image = np.asarray(resized)
    # Crop what overhangs the sheet (at most a rounding pixel or two), centred.
    (pw, ph), (h, w) = page, image.shape[:2]
    top, left = max(0, (h - ph) // 2), max(0, (w - pw) // 2)
    return image[top : top + min(h, ph), left : left + min(w, pw)]


def place(jpeg: bytes, *, gray: bool, page: tuple[int, int]) -> tuple[NDArray[np.uint8], int, int]:
    """`decode` and where the fitted image goes on the sheet: (image, x0, y0), centred,
    the left edge rounded down to a whole byte of a 1-bit plane (as the engine prints)."""
    image, x0, y0 = place_view(jpeg, gray=gray, page=page)
    return np.ascontiguousarray(image), x0, y0


def place_view(
    jpeg: bytes, *, gray: bool, page: tuple[int, int]
) -> tuple[NDArray[np.uint8], int, int]:
    """`place`, but the image may be a view on a wider decode (see `_fitted`): for the
    ordered-dither kernels, which read it row by row."""
    image = _fitted(jpeg, gray=gray, page=page)
    fh, fw = image.shape[0], image.shape[1]
    return image, (page[0] - fw) // 2 & ~7, (page[1] - fh) // 2


# -- whole pages for PWG raster (issue 15) -----------------------------------------------


@njit(cache=True, nogil=True)
def _separate_chunky(
    rgb: Any, grid: Any, cell: Any, frac: Any, use_grid: bool, out: Any, x0: int, y0: int
) -> None:
    """RGB (h, w, 3) -> ink into `out` (H, W, 4) chunky C, M, Y, K from (x0, y0)."""
    h, w = rgb.shape[0], rgb.shape[1]
    ink = np.empty((4, w), np.uint8)
    keys, values = np.full(1 << _CACHE_BITS, -1, np.int32), np.zeros(1 << _CACHE_BITS, np.int32)
    for yy in range(h):
        _separate_row(rgb[yy], grid, cell, frac, use_grid, ink, keys, values)
        orow = out[y0 + yy]
        for x in range(w):
            for ch in range(4):
                orow[x0 + x, ch] = ink[ch, x]


def black_1_page(jpeg: bytes, *, page: tuple[int, int]) -> NDArray[np.uint8]:
    """The sheet (`page` = width, height in pixels) as the engine prints it in mono: K =
    255 - luma, 8x8 ordered dither; packed (height, ceil(width / 8)), 1 = a dot."""
    image, x0, y0 = place_view(jpeg, gray=True, page=page)
    out = np.zeros((page[1], (page[0] + 7) // 8), np.uint8)
    _ordered_gray(image, out, x0, y0, _THRESHOLDS)
    return out


def cmyk_8_page(
    jpeg: bytes, *, page: tuple[int, int], color: bool, separation: Separation | None = None
) -> NDArray[np.uint8]:
    """The sheet as (height, width, 4) C, M, Y, K ink (0 none): a colour page through the
    separation the engine uses (`load_separation()` unless given), a mono one K alone."""
    width, height = page
    out = np.zeros((height, width, 4), np.uint8)
    if color:
        image, x0, y0 = place(jpeg, gray=False, page=page)
        sep = separation if separation is not None else load_separation()
        grid = sep.grid if sep.grid is not None else _NO_GRID
        _separate_chunky(image, grid, _CELL, _FRAC, sep.grid is not None, out, x0, y0)
    else:
        image, x0, y0 = place(jpeg, gray=True, page=page)
        out[y0 : y0 + image.shape[0], x0 : x0 + image.shape[1], 3] = 255 - image
    return out


def rgb_page(jpeg: bytes, *, page: tuple[int, int]) -> NDArray[np.uint8]:
    """The sheet as (height, width, 3) sRGB, white around the fitted image."""
    image, x0, y0 = place(jpeg, gray=False, page=page)
    if image.shape[:2] == (page[1], page[0]):
        return image
    out = np.full((page[1], page[0], 3), 255, np.uint8)
    out[y0 : y0 + image.shape[0], x0 : x0 + image.shape[1]] = image
    return out


def gray_page(jpeg: bytes, *, page: tuple[int, int]) -> NDArray[np.uint8]:
    """The sheet as (height, width) sGray (luma, 255 white), white around the image."""
    image, x0, y0 = place(jpeg, gray=True, page=page)
    if image.shape[:2] == (page[1], page[0]):
        return image
    out = np.full((page[1], page[0]), 255, np.uint8)
    out[y0 : y0 + image.shape[0], x0 : x0 + image.shape[1]] = image
    return out


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel on a tiny page."""
    tiny = np.full((8, 9, 3), 128, np.uint8)
    page = np.zeros((4, 8, 2), np.uint8)
    chunky = np.zeros((8, 9, 4), np.uint8)
    # The ordered kernels get pages whole (contiguous) or cropped by a view: both layouts.
    for use_grid in (True, False):
        for image in (tiny, tiny[:, :8]):
            _ordered_cmyk(image, _NO_GRID, _CELL, _FRAC, use_grid, page, 0, 0, _THRESHOLDS)
        ink = _separate(tiny, _NO_GRID, _CELL, _FRAC, use_grid)
        _separate_chunky(tiny, _NO_GRID, _CELL, _FRAC, use_grid, chunky, 0, 0)
    gray = tiny[:, :, 0].copy()
    for plane in (gray, gray[:, :8]):
        _ordered_gray(plane, page[0], 0, 0, _THRESHOLDS)
    _floyd_steinberg(ink[0], page[0], 0, 0)
