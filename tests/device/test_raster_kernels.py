"""The fused ordered-dither kernels against a plain NumPy reference (issue 17, "The kernels").

`render_page`'s colour kernel separates and dithers in one pass, keeps the inks of eight
pixels equal to the eight above them, and skips paper; whatever it skips, its planes
must be exactly the separation (`separate`, the pixel-by-pixel path error diffusion
uses) thresholded by the 8×8 matrix and packed."""

from __future__ import annotations

import io

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from printcloud.device import raster
from printcloud.imaging import halftone


def reference_planes(
    ink: NDArray[np.uint8], page: tuple[int, int], x0: int, y0: int
) -> NDArray[np.uint8]:
    """ink (n, h, w) → (n, H, ceil(W/8)) packed: a dot where ink > the page's threshold."""
    n, h, w = ink.shape
    width, height = page
    ys = (np.arange(h) + y0)[:, None] & 7
    xs = (np.arange(w) + x0)[None, :] & 7
    thresholds = halftone._THRESHOLDS[ys, xs]
    dots = np.zeros((n, height, width), np.bool_)
    dots[:, y0 : y0 + h, x0 : x0 + w] = ink > thresholds
    return np.packbits(dots, axis=2)


def textured(rng: np.random.Generator, h: int, w: int) -> NDArray[np.uint8]:
    """Paper with rules, blocks of colour repeated down the page, and noisy "text"."""
    image = np.full((h, w, 3), 255, np.uint8)
    image[h // 4 : h // 4 + 3, :] = (20, 20, 20)  # a rule: rows equal to the row above
    image[:, w // 3 : w // 3 + 5] = (200, 30, 90)  # a vertical stroke
    block = rng.integers(0, 256, (1, max(1, w // 2), 3), dtype=np.uint8)
    image[h // 2 : h // 2 + h // 5, : block.shape[1]] = block  # columns of one colour each
    noise = rng.integers(0, 256, (h // 6 + 1, w, 3), dtype=np.uint8)
    image[-noise.shape[0] :] = noise
    image[1, min(3, w - 1)] = (255, 254, 255)  # one pixel off the paper, a row down
    return image


@pytest.mark.parametrize("width", [1, 7, 8, 9, 63, 64, 250])
@pytest.mark.parametrize("use_grid", [True, False], ids=["icc", "formula"])
def test_ordered_cmyk_is_the_separation_thresholded(width: int, use_grid: bool) -> None:
    rng = np.random.default_rng(width)
    image = textured(rng, 70, width)
    separation = raster.load_separation() if use_grid else raster.FORMULA
    if use_grid and separation.grid is None:
        pytest.skip("no CMYK output profile installed (Ghostscript's default_cmyk.icc)")
    grid = separation.grid if separation.grid is not None else halftone._NO_GRID
    page = (width + 21, 70 + 5)
    for x0, y0 in ((0, 0), (8, 3), (16, 5)):
        out = np.zeros((4, page[1], (page[0] + 7) // 8), np.uint8)
        halftone._ordered_cmyk(
            image, grid, halftone._CELL, halftone._FRAC, use_grid, out, x0, y0, halftone._THRESHOLDS
        )
        expected = reference_planes(halftone.separate(image, separation), page, x0, y0)
        assert np.array_equal(out, expected), (x0, y0)


@pytest.mark.parametrize("width", [1, 9, 64, 250])
def test_ordered_gray_is_the_luma_thresholded(width: int) -> None:
    gray = textured(np.random.default_rng(width), 40, width)[:, :, 1].copy()
    page = (width + 8, 43)
    out = np.zeros((page[1], (page[0] + 7) // 8), np.uint8)
    halftone._ordered_gray(gray, out, 8, 3, halftone._THRESHOLDS)
    expected = reference_planes((255 - gray)[None], page, 8, 3)[0]
    assert np.array_equal(out, expected)


def test_a_rendered_page_is_the_reference_on_a_real_picture() -> None:
    """A photo-like page (gradients, noise) through JPEG, as the printer gets it."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:300, 0:212]
    picture = np.stack([x * 255 // 211, y * 255 // 299, (x + y) % 256], axis=-1)
    picture = np.clip(picture + rng.integers(-20, 21, picture.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(picture, "RGB").save(buffer, "JPEG", quality=85)
    media = raster.Media("small", 212 / 300 * 25.4, 300 / 300 * 25.4)
    separation = raster.load_separation()
    page = raster.render_page(
        buffer.getvalue(), color=True, dpi=300, media=media, separation=separation
    )
    image, x0, y0 = halftone.place(buffer.getvalue(), gray=False, page=(page.width, page.height))
    expected = reference_planes(
        halftone.separate(image, separation), (page.width, page.height), x0, y0
    )
    for index, name in enumerate(raster.COLOR_PLANES):
        assert np.array_equal(page.planes[name], expected[index]), name


@pytest.mark.parametrize("width", [9, 64, 250])
def test_the_kernels_read_a_page_cropped_by_a_view(width: int) -> None:
    """`render_page` crops the overhang of a decode by a view: rows that do not follow
    each other, starting at any byte. The planes are those of the contiguous copy."""
    wider = textured(np.random.default_rng(width), 60, width + 3)
    view = wider[1:, 1 : width + 1]  # rows 3 pixels apart, starting one pixel in
    separation = raster.load_separation()
    grid = separation.grid if separation.grid is not None else halftone._NO_GRID
    use_grid = separation.grid is not None
    page = (width + 16, 64)
    planes = []
    for image in (view, view.copy()):
        out = np.zeros((4, page[1], (page[0] + 7) // 8), np.uint8)
        halftone._ordered_cmyk(
            image, grid, halftone._CELL, halftone._FRAC, use_grid, out, 8, 2, halftone._THRESHOLDS
        )
        planes.append(out)
    assert np.array_equal(planes[0], planes[1])
    gray = wider[:, :, 1]  # a row's pixels 3 bytes apart: refused, not misread
    with pytest.raises(ValueError, match="contiguous"):
        halftone._ordered_gray(gray, np.zeros((64, 40), np.uint8), 0, 0, halftone._THRESHOLDS)
    gray = gray.copy()[1:, 1 : width + 1]
    outs = []
    for image in (gray, gray.copy()):
        out = np.zeros(((64, (page[0] + 7) // 8)), np.uint8)
        halftone._ordered_gray(image, out, 8, 2, halftone._THRESHOLDS)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])
