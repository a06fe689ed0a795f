"""The virtual printer's raster pipeline (seed 003, FIG. 9, ¶0100–0112; gray for mono ¶0107).

A page arrives as JPEG bytes, as the printer downloads it from the print
service. `render_page` decodes it, fits it to the media at the job's
resolution (aspect kept, centred on white, never rotated), separates it into
colorants and binarizes each colorant to one bit per pixel:

- **color** (C, M, Y, K): an ICC-managed separation. Once per CMYK output
  profile, Pillow's `ImageCms` (LittleCMS) maps a 33×33×33 grid of sRGB values
  to CMYK; pages then go through that grid with tetrahedral interpolation in a
  numba kernel. The profile is a parameter; by default Ghostscript's
  `default_cmyk.icc` (its SWOP profile, the one `-sDEVICE=bitcmyk` uses) is
  looked up. When no profile can be read the separation falls back to a
  formula, logged once: C′ = 255 − R (likewise M′, Y′), K = min(C′, M′, Y′),
  then C = C′ − K, M = M′ − K, Y = Y′ − K (full gray-component replacement:
  neutrals print with K alone).
- **mono** (K): the JPEG is decoded straight to gray; libjpeg-turbo takes the
  Y component, which is the BT.601 luma of the page's RGB. Ink = 255 − luma.

Halftone: `"ordered"` (default) compares each colorant with an 8×8 Bayer
matrix anchored at the page's top-left corner, fused with the separation in
one pass; `"error_diffusion"` is Floyd–Steinberg with a serpentine scan.

A plane is packed as `numpy.packbits` packs it (and as PBM stores it): one row
of `ceil(width / 8)` bytes, most significant bit first, 1 = a dot of ink.
`RenderedPage.write` stores one PBM per colorant and a preview PNG that
recomposes the planes to RGB at reduced size, so a person sees what the engine
would have printed.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import simplejpeg
from numba import njit
from numpy.typing import NDArray
from PIL import Image, ImageCms

from printcloud.core.errors import InvalidRequest
from printcloud.core.logs import get_logger

log = get_logger("device.raster")

Halftone = Literal["ordered", "error_diffusion"]
COLOR_PLANES = ("C", "M", "Y", "K")
MONO_PLANES = ("K",)

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
class Media:
    """A sheet size in millimetres (portrait)."""

    name: str
    width_mm: float
    height_mm: float

    def pixels(self, dpi: int) -> tuple[int, int]:
        """(width, height) in device pixels at `dpi`."""
        return round(self.width_mm / 25.4 * dpi), round(self.height_mm / 25.4 * dpi)


A4 = Media("A4", 210.0, 297.0)
A3 = Media("A3", 297.0, 420.0)
LETTER = Media("Letter", 215.9, 279.4)


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


@njit(cache=True, nogil=True, inline="always")
def _dither_row(ink: Any, trow: Any, orow: Any, x0: int, invert: bool) -> None:
    """Ordered dither of one row into packed bytes from x0 (a multiple of 8) on.

    A dot where ink > threshold; with `invert`, `ink` is luma and a dot goes
    where 255 − luma > threshold, i.e. luma < 255 − threshold (`trow` is then
    given as 255 − threshold).
    """
    w = ink.shape[0]
    b0 = x0 >> 3
    for bx in range(w >> 3):
        x = bx * 8
        v = 0
        for i in range(8):
            hit = ink[x + i] < trow[i] if invert else ink[x + i] > trow[i]
            if hit:
                v |= 0x80 >> i
        orow[b0 + bx] = v
    v = 0
    for x in range(w & ~7, w):
        i = x & 7
        hit = ink[x] < trow[i] if invert else ink[x] > trow[i]
        if hit:
            v |= 0x80 >> i
    if w & 7:
        orow[b0 + (w >> 3)] = v


@njit(cache=True, nogil=True)
def _ordered_cmyk(
    rgb: Any, grid: Any, cell: Any, frac: Any, use_grid: bool, out: Any, x0: int, y0: int, t: Any
) -> None:
    """Separation + 8×8 ordered dither, row by row; `out` is (4, H, ceil(W/8)) packed."""
    h, w = rgb.shape[0], rgb.shape[1]
    ink = np.empty((4, w), np.uint8)  # one row, kept in cache between the two steps
    keys, values = np.full(1 << _CACHE_BITS, -1, np.int32), np.zeros(1 << _CACHE_BITS, np.int32)
    for yy in range(h):
        _separate_row(rgb[yy], grid, cell, frac, use_grid, ink, keys, values)
        py = y0 + yy
        trow = t[py & 7]
        for ch in range(4):
            _dither_row(ink[ch], trow, out[ch, py], x0, False)


@njit(cache=True, nogil=True)
def _ordered_gray(gray: Any, out: Any, x0: int, y0: int, t: Any) -> None:
    """Ink = 255 − luma, 8×8 ordered dither; `out` is (H, ceil(W/8)) packed."""
    h = gray.shape[0]
    luma_t = 255 - t  # dot where luma < 255 − threshold
    for yy in range(h):
        py = y0 + yy
        _dither_row(gray[yy], luma_t[py & 7], out[py], x0, True)


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


@njit(cache=True, nogil=True)
def _cell_coverage(plane: Any, factor: int, out: Any) -> None:
    """The share of inked dots in each `factor`×`factor` cell of a packed plane → out (h, w).

    Counts straight from the packed bytes (one pass, no unpacked copy of the page)."""
    h, w = out.shape
    counts = np.zeros(w, np.int32)
    scale = np.float32(1.0 / (factor * factor))
    for cy in range(h):
        counts[:] = 0
        for y in range(cy * factor, cy * factor + factor):
            row = plane[y]
            for x in range(w * factor):
                if row[x >> 3] & (0x80 >> (x & 7)):
                    counts[x // factor] += 1
        for cx in range(w):
            out[cy, cx] = counts[cx] * scale


# -- the page ------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedPage:
    """What the engine prints for one page: packed 1-bit planes, one per colorant."""

    width: int
    height: int
    dpi: int
    media: Media
    separation: str  # "icc:<path>", "formula" or "gray"
    halftone: Halftone
    planes: dict[str, NDArray[np.uint8]]

    def dots(self, colorant: str) -> NDArray[np.bool_]:
        """The plane of `colorant` unpacked: (height, width), True where ink goes."""
        plane = self.planes[colorant]
        return np.unpackbits(plane, axis=1, count=self.width).astype(np.bool_)

    def coverage(self, colorant: str) -> float:
        """The share of the page's pixels that get a dot of `colorant`."""
        dots = int(np.unpackbits(self.planes[colorant], axis=1, count=self.width).sum())
        return dots / (self.width * self.height)

    def preview(self, max_width: int = 620) -> Image.Image:
        """An RGB picture of the printed sheet: dot coverage per cell, inks multiplied."""
        return self._recompose(max(1, -(-self.width // max_width)))

    def thumbnail(self, max_side: int = 256) -> Image.Image:
        """`preview` at most `max_side` pixels on the long side (what the printer uploads)."""
        return self._recompose(max(1, -(-max(self.width, self.height) // max_side)))

    def _recompose(self, factor: int) -> Image.Image:
        """One pixel per `factor` x `factor` cell of dots: its coverage, inks multiplied."""
        h, w = self.height // factor, self.width // factor
        light = np.ones((h, w, 3), np.float32)
        # Paper reflectance multiplied by each ink's (an ideal ink absorbs its complement).
        absorbs = {"C": (0,), "M": (1,), "Y": (2,), "K": (0, 1, 2)}
        cover = np.empty((h, w), np.float32)
        for name in self.planes:
            _cell_coverage(self.planes[name], factor, cover)
            for channel in absorbs[name]:
                light[:, :, channel] *= 1.0 - cover
        return Image.fromarray(np.rint(light * 255).astype(np.uint8), "RGB")

    def preview_png(self, max_width: int = 620) -> bytes:
        buffer = io.BytesIO()
        self.preview(max_width).save(buffer, "PNG", compress_level=1)  # fast; previews are small
        return buffer.getvalue()

    def pbm(self, colorant: str) -> bytes:
        """One plane as a binary PBM (P4): exactly the packed layout, 1 = black."""
        header = f"P4\n{self.width} {self.height}\n".encode()
        return header + np.ascontiguousarray(self.planes[colorant]).tobytes()

    def write(self, folder: Path, *, name: str = "page") -> list[Path]:
        """Write `<name>-<colorant>.pbm` for each plane and `<name>-preview.png`."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for colorant in self.planes:
            path = folder / f"{name}-{colorant}.pbm"
            path.write_bytes(self.pbm(colorant))
            written.append(path)
        path = folder / f"{name}-preview.png"
        path.write_bytes(self.preview_png())
        written.append(path)
        return written


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
    image = image[top : top + min(h, ph), left : left + min(w, pw)]
    return np.ascontiguousarray(image)


def render_page(
    jpeg: bytes,
    *,
    color: bool,
    dpi: int = 300,
    media: Media = A4,
    halftone: Halftone = "ordered",
    profile: Path | None = None,
    separation: Separation | None = None,
) -> RenderedPage:
    """Render one page as the engine prints it: C, M, Y, K planes (`color`) or K alone.

    The separation is `separation` when given (e.g. `FORMULA`, or one loaded
    at start-up), else `load_separation(profile)`: the CMYK output profile,
    by default `find_profile()`, and the formula when none is readable.
    Raises `InvalidRequest` for bytes that are not a JPEG.
    """
    if dpi <= 0 or dpi > 2400:
        raise InvalidRequest(f"resolution {dpi} dpi is out of range (1–2400)", field="dpi")
    if halftone not in ("ordered", "error_diffusion"):
        raise InvalidRequest(f"unknown halftone {halftone!r}", field="halftone")
    width, height = media.pixels(dpi)
    image = decode(jpeg, gray=not color, page=(width, height))
    fh, fw = image.shape[0], image.shape[1]
    # Centred, the left edge rounded down to a whole byte of the packed planes.
    x0, y0 = (width - fw) // 2 & ~7, (height - fh) // 2
    row_bytes = (width + 7) // 8
    names = COLOR_PLANES if color else MONO_PLANES
    out = np.zeros((len(names), height, row_bytes), np.uint8)
    sep_name = "gray"
    if color:
        if separation is None:
            separation = load_separation(profile)
        sep_name = separation.name
        grid = separation.grid if separation.grid is not None else _NO_GRID
        use_grid = separation.grid is not None
        if halftone == "ordered":
            _ordered_cmyk(image, grid, _CELL, _FRAC, use_grid, out, x0, y0, _THRESHOLDS)
        else:
            ink = _separate(image, grid, _CELL, _FRAC, use_grid)
            for index in range(4):
                _floyd_steinberg(ink[index], out[index], x0, y0)
    elif halftone == "ordered":
        _ordered_gray(image, out[0], x0, y0, _THRESHOLDS)
    else:
        _floyd_steinberg(255 - image, out[0], x0, y0)
    return RenderedPage(
        width=width,
        height=height,
        dpi=dpi,
        media=media,
        separation=sep_name,
        halftone=halftone,
        planes={name: out[index] for index, name in enumerate(names)},
    )


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel on a tiny page.

    Call it at start-up so the first job does not pay the compile time.
    """
    tiny = np.full((8, 8, 3), 128, np.uint8)
    page = np.zeros((4, 8, 1), np.uint8)
    for use_grid in (True, False):
        _ordered_cmyk(tiny, _NO_GRID, _CELL, _FRAC, use_grid, page, 0, 0, _THRESHOLDS)
        ink = _separate(tiny, _NO_GRID, _CELL, _FRAC, use_grid)
    _ordered_gray(tiny[:, :, 0].copy(), page[0], 0, 0, _THRESHOLDS)
    _floyd_steinberg(ink[0], page[0], 0, 0)
