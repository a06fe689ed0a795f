"""The printer's raster pipeline (seed 003, FIG. 9, ¶0107): separation, halftone, output files."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from printcloud.core.errors import InvalidRequest
from printcloud.device import raster
from printcloud.device.raster import A4, RenderedPage, render_page
from printcloud.imaging import halftone
from tests.conftest import require_peer

DPI = 72  # A4 is 595 x 842 pixels: fast, and every kernel still runs on a whole page
NO_PROFILE = Path("/nonexistent/cmyk.icc")


@pytest.fixture
def cmyk_profile() -> None:
    """A real CMYK output profile (Ghostscript's): a skip on a laptop, a failure in CI."""
    require_peer(
        raster.find_profile() is not None,
        "no CMYK output profile (Debian: apt-get install ghostscript)",
    )


needs_profile = pytest.mark.usefixtures("cmyk_profile")


def jpeg(rgb: tuple[int, int, int], size: tuple[int, int] = (210, 297)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def coverages(page: RenderedPage) -> dict[str, float]:
    return {name: page.coverage(name) for name in page.planes}


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    raster.warm_up()


def test_planes_have_the_media_size_at_the_resolution() -> None:
    page = render_page(jpeg((255, 255, 255)), color=True, dpi=DPI, media=A4)
    assert (page.width, page.height) == A4.pixels(DPI) == (595, 842)
    assert list(page.planes) == ["C", "M", "Y", "K"]
    for plane in page.planes.values():
        assert plane.dtype == np.uint8
        assert plane.shape == (842, (595 + 7) // 8)
    assert page.dots("K").shape == (842, 595)


def test_page_is_fitted_centred_on_white() -> None:
    # A landscape page on portrait A4: full width, white bands above and below.
    page = render_page(jpeg((0, 0, 0), (400, 200)), color=False, dpi=DPI)
    dots = page.dots("K")
    rows = np.flatnonzero(dots.any(axis=1))
    assert dots[:, :592].any(axis=0).all()
    assert abs(rows[0] - (842 - rows[-1] - 1)) <= 1
    assert 290 <= len(rows) <= 300  # 595 * 200 / 400


@pytest.mark.parametrize("profile", [None, NO_PROFILE], ids=["icc", "formula"])
@pytest.mark.parametrize("halftone", ["ordered", "error_diffusion"])
def test_white_page_prints_no_dots(profile: Path | None, halftone: raster.Halftone) -> None:
    page = render_page(
        jpeg((255, 255, 255)), color=True, dpi=DPI, halftone=halftone, profile=profile
    )
    assert all(not plane.any() for plane in page.planes.values())


@needs_profile
def test_icc_separation_is_used_by_default() -> None:
    page = render_page(jpeg((0, 0, 0)), color=True, dpi=DPI)
    assert page.separation.startswith("icc:")
    cover = coverages(page)
    # The profile's rich black: K dominant, CMY under it.
    assert cover["K"] > 0.85
    assert cover["K"] > max(cover["C"], cover["M"], cover["Y"])


@needs_profile
def test_icc_cyan_prints_mostly_cyan() -> None:
    cover = coverages(render_page(jpeg((0, 255, 255)), color=True, dpi=DPI))
    assert cover["C"] > 0.4
    assert cover["M"] < 0.02 and cover["K"] < 0.02
    assert cover["C"] > 3 * cover["Y"]


@needs_profile
def test_icc_grid_matches_littlecms() -> None:
    """The tetrahedral grid against LittleCMS itself, on random colors and the corners."""
    separation = raster.load_separation()
    assert separation.grid is not None
    rng = np.random.default_rng(3)
    corners = np.array(np.meshgrid(*[[0, 255]] * 3, indexing="ij")).reshape(3, -1).T
    rgb = np.concatenate([corners, rng.integers(0, 256, (4000, 3))]).astype(np.uint8)
    # Twice over: the second pass answers from the kernel's color cache.
    twice = np.concatenate([rgb, rgb]).reshape(1, -1, 3)
    both = raster.separate(twice, separation)[:, 0, :].T.astype(int)
    ours = both[: len(rgb)]
    assert np.array_equal(both[len(rgb) :], ours)
    transform = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"),
        ImageCms.getOpenProfile(str(raster.find_profile())),
        "RGB",
        "CMYK",
        renderingIntent=ImageCms.Intent.PERCEPTUAL,
    )
    cmyk = ImageCms.applyTransform(Image.fromarray(rgb.reshape(1, -1, 3), "RGB"), transform)
    assert cmyk is not None
    exact = np.asarray(cmyk).reshape(-1, 4).astype(int)
    assert np.array_equal(ours[:8], exact[:8])  # grid nodes are exact
    error = np.abs(ours - exact)
    assert error.mean() < 1.0
    assert np.percentile(error, 99) <= 4


def test_formula_fallback_without_a_profile(caplog: pytest.LogCaptureFixture) -> None:
    raster.load_separation.cache_clear()  # it warns once per profile
    with caplog.at_level(logging.WARNING, logger="printcloud"):
        page = render_page(jpeg((0, 0, 0)), color=True, dpi=DPI, profile=NO_PROFILE)
    assert page.separation == "formula"
    assert "formula separation" in caplog.text
    cover = coverages(page)
    # Full gray-component replacement: black is K alone.
    assert cover["K"] > 0.97
    assert cover["C"] == cover["M"] == cover["Y"] == 0.0
    cyan = coverages(render_page(jpeg((0, 255, 255)), color=True, dpi=DPI, profile=NO_PROFILE))
    assert cyan["C"] > 0.97
    assert cyan["M"] == cyan["Y"] == cyan["K"] == 0.0


def test_no_profile_anywhere_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(halftone, "PROFILE_SEARCH", (NO_PROFILE,))
    raster.load_separation.cache_clear()
    try:
        assert raster.find_profile() is None
        assert raster.load_separation() is raster.FORMULA
        page = render_page(jpeg((0, 0, 0)), color=True, dpi=DPI)
        assert page.separation == "formula"
    finally:
        raster.load_separation.cache_clear()


def test_a_given_separation_wins_over_the_profile() -> None:
    page = render_page(jpeg((0, 0, 0)), color=True, dpi=DPI, separation=raster.FORMULA)
    assert page.separation == "formula"
    assert page.coverage("C") == 0.0


@pytest.mark.parametrize("halftone", ["ordered", "error_diffusion"])
@pytest.mark.parametrize("tone", [0.25, 0.5, 0.75])
def test_dot_density_follows_the_tone(halftone: raster.Halftone, tone: float) -> None:
    level = round(255 * (1 - tone))
    page = render_page(
        jpeg((level, level, level), (595, 842)),
        color=False,
        dpi=DPI,
        halftone=halftone,
    )
    assert page.coverage("K") == pytest.approx(tone, abs=0.03)


def test_mono_is_one_plane_of_luma() -> None:
    page = render_page(jpeg((0, 255, 255), (595, 842)), color=False, dpi=DPI)
    assert list(page.planes) == ["K"]
    assert page.separation == "gray"
    # BT.601 luma of cyan is 0.587 * 255 + 0.114 * 255 = 179: about 30 % ink.
    assert page.coverage("K") == pytest.approx(1 - 179 / 255, abs=0.03)


def test_grayscale_jpeg_prints_in_color_and_mono() -> None:
    buffer = io.BytesIO()
    Image.new("L", (210, 297), 0).save(buffer, "JPEG")
    color = render_page(buffer.getvalue(), color=True, dpi=DPI, separation=raster.FORMULA)
    mono = render_page(buffer.getvalue(), color=False, dpi=DPI)
    assert color.coverage("K") > 0.97 and color.coverage("C") == 0.0
    assert mono.coverage("K") > 0.97


def test_error_diffusion_differs_from_the_ordered_pattern() -> None:
    page_jpeg = jpeg((128, 128, 128), (595, 842))
    ordered = render_page(page_jpeg, color=True, dpi=DPI, profile=NO_PROFILE)
    diffused = render_page(
        page_jpeg, color=True, dpi=DPI, profile=NO_PROFILE, halftone="error_diffusion"
    )
    assert diffused.halftone == "error_diffusion"
    assert not np.array_equal(ordered.planes["K"], diffused.planes["K"])
    assert diffused.coverage("K") == pytest.approx(ordered.coverage("K"), abs=0.03)


def test_preview_png_shows_the_printed_colors() -> None:
    page = render_page(jpeg((0, 255, 255)), color=True, dpi=DPI, profile=NO_PROFILE)
    preview = Image.open(io.BytesIO(page.preview_png(max_width=300)))
    assert preview.format == "PNG" and preview.mode == "RGB"
    assert preview.width <= 300
    r, g, b = preview.getpixel((preview.width // 2, preview.height // 2))  # type: ignore[misc]
    assert r < 40 and g > 215 and b > 215


def test_write_stores_pbm_planes_and_a_preview(tmp_path: Path) -> None:
    page = render_page(jpeg((60, 60, 60)), color=True, dpi=DPI, profile=NO_PROFILE)
    written = page.write(tmp_path / "job", name="page-001")
    assert [path.name for path in written] == [
        "page-001-C.pbm",
        "page-001-M.pbm",
        "page-001-Y.pbm",
        "page-001-K.pbm",
        "page-001-preview.png",
    ]
    with Image.open(written[3]) as k_plane:
        assert k_plane.mode == "1" and k_plane.size == (595, 842)
        # PBM 1 = black; Pillow reads black as 0.
        black = np.asarray(k_plane) == 0
    assert np.array_equal(black, page.dots("K"))
    with Image.open(written[4]) as preview:
        assert preview.format == "PNG"


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-1.7 not a jpeg", jpeg((10, 20, 30))[:200]],
    ids=["empty", "pdf", "truncated"],
)
def test_corrupt_input_is_an_invalid_request(data: bytes) -> None:
    with pytest.raises(InvalidRequest, match="not a readable JPEG") as caught:
        render_page(data, color=True, dpi=DPI)
    assert caught.value.field == "page"


def test_huge_image_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(halftone, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(InvalidRequest, match="too large"):
        render_page(jpeg((0, 0, 0), (101, 100)), color=False, dpi=DPI)


def test_bad_resolution_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="dpi"):
        render_page(jpeg((255, 255, 255)), color=False, dpi=0)
