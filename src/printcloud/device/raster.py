"""The virtual printer's raster pipeline (seed 003, FIG. 9, ¶0100–0112; gray for mono ¶0107).

A page arrives as JPEG bytes, as the printer downloads it from the print
service. `render_page` decodes it, fits it to the media at the job's
resolution (aspect kept, centred on white, never rotated), separates it into
colorants and binarizes each colorant to one bit per pixel:

- **color** (C, M, Y, K): an ICC-managed separation (the CMYK output profile is
  a parameter; by default Ghostscript's `default_cmyk.icc`; a formula with full
  gray-component replacement when none is readable);
- **mono** (K): the JPEG is decoded straight to gray (BT.601 luma); ink = 255 − luma;

then an 8×8 ordered dither (default) or Floyd–Steinberg error diffusion. The
fitting, the separation and the halftone kernels live in `printcloud.imaging.halftone`,
shared with the conversion workers, which make the same pages as PWG raster
`black_1` and `cmyk_8` for real printers (issue 15).

A plane is packed as `numpy.packbits` packs it (and as PBM stores it): one row
of `ceil(width / 8)` bytes, most significant bit first, 1 = a dot of ink.
`RenderedPage.write` stores one PBM per colorant and a preview PNG that
recomposes the planes to RGB at reduced size, so a person sees what the engine
would have printed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray
from PIL import Image

from printcloud.core.errors import InvalidRequest
from printcloud.imaging import halftone as imaging
from printcloud.imaging.halftone import (
    _CELL,
    _FRAC,
    _NO_GRID,
    _THRESHOLDS,
    FORMULA,
    PROFILE_SEARCH,
    Halftone,
    Separation,
    _floyd_steinberg,
    _ordered_cmyk,
    _ordered_gray,
    _separate,
    decode,
    find_profile,
    load_separation,
    separate,
)

__all__ = [
    "A3",
    "A4",
    "FORMULA",
    "LETTER",
    "PROFILE_SEARCH",
    "Halftone",
    "Media",
    "RenderedPage",
    "Separation",
    "decode",
    "find_profile",
    "load_separation",
    "render_page",
    "separate",
    "warm_up",
]

COLOR_PLANES = ("C", "M", "Y", "K")
MONO_PLANES = ("K",)


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
    # A view (no copy of the page to crop it): the ordered kernels read rows as they are.
    image, x0, y0 = imaging.place_view(jpeg, gray=not color, page=(width, height))
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
            ink = _separate(np.ascontiguousarray(image), grid, _CELL, _FRAC, use_grid)
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
    imaging.warm_up()
    _cell_coverage(np.zeros((8, 1), np.uint8), 8, np.zeros((1, 1), np.float32))
