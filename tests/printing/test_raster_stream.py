"""printing/raster_stream.py: what a conversion worker sends a printer that fetches raster.

- `choose`: the type and resolution from the printer's registered attributes, in
  printcloud's documented order;
- `encode_pages`: `black_1` is the virtual printer's mono plane bit for bit, and
  `cmyk_8` dithered with the engine's matrix is its C, M, Y, K planes (the same
  separation and fitting, from `printcloud.imaging`);
- independent decoders read the pages a worker makes from a converted page:
  cups-filters' `rastertopdf` (its images are our pixels; its PDF, rendered by
  `pdftoppm`, looks like `pdftoppm`'s rendering of the source PDF) and
  ippeveprinter's `ippevepcl`.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from printcloud.device.raster import A4, render_page
from printcloud.imaging import halftone
from printcloud.ipp import pwg, urf
from printcloud.ipp.message import Attribute, ValueTag
from printcloud.ipp.model import Resolution, ResolutionUnits
from printcloud.printing import raster_stream
from printcloud.printing.raster_stream import PWG, URF, Choice, RasterRequest, choose
from tests.conftest import require_command, require_peer
from tests.ipp.rasters import DOC10

RASTERTOPDF = Path("/usr/lib/cups/filter/rastertopdf")
#: At 72 dpi an A4 page is 595 x 842 pixels: whole points, so decoders map it 1:1.
DPI = 72


def _kw(name: str, *values: str) -> Attribute:
    return Attribute(name, ValueTag.KEYWORD, list(values))


def _dpis(*values: int) -> Attribute:
    return Attribute(
        "pwg-raster-document-resolution-supported",
        ValueTag.RESOLUTION,
        [Resolution(v, v) for v in values],
    )


def test_unregistered_printers_get_ipp_everywheres_types() -> None:
    assert choose(PWG, color=True, dpi=300, attributes=[]) == Choice(PWG, "srgb_8", 300)
    assert choose(PWG, color=False, dpi=150, attributes=[]) == Choice(PWG, "sgray_8", 150)
    assert choose(URF, color=True, dpi=300, attributes=[]) == Choice(URF, "SRGB24", 300)
    assert choose(URF, color=False, dpi=300, attributes=[]) == Choice(URF, "W8", 300)


def test_the_registered_types_in_printclouds_order() -> None:
    types = "pwg-raster-document-type-supported"
    both = [_kw(types, "black_1", "cmyk_8", "sgray_8", "srgb_8")]
    assert choose(PWG, color=True, dpi=300, attributes=both).type == "srgb_8"  # type: ignore[union-attr]
    assert choose(PWG, color=False, dpi=300, attributes=both).type == "sgray_8"  # type: ignore[union-attr]
    no_rgb = [_kw(types, "black_1", "cmyk_8", "sgray_8")]
    assert choose(PWG, color=True, dpi=300, attributes=no_rgb).type == "cmyk_8"  # type: ignore[union-attr]
    bitonal = [_kw(types, "black_1")]
    assert choose(PWG, color=True, dpi=300, attributes=bitonal).type == "black_1"  # type: ignore[union-attr]
    assert choose(PWG, color=False, dpi=300, attributes=[_kw(types, "srgb_8", "black_1")]) == (
        Choice(PWG, "black_1", 300)
    )
    # types printcloud does not make: PWG raster is not offered
    assert choose(PWG, color=True, dpi=300, attributes=[_kw(types, "adobe-rgb_16")]) is None
    assert choose(URF, color=True, dpi=300, attributes=[_kw("urf-supported", "V1.4")]) is None


def test_the_printers_resolutions_and_back_side() -> None:
    attrs = [_dpis(150, 600), _kw("pwg-raster-document-sheet-back", "rotated")]
    assert choose(PWG, color=True, dpi=300, attributes=attrs) == Choice(
        PWG, "srgb_8", 600, "rotated"
    )
    assert choose(PWG, color=True, dpi=700, attributes=attrs) == Choice(
        PWG, "srgb_8", 600, "rotated"
    )
    assert choose(PWG, color=True, dpi=100, attributes=attrs).dpi == 150  # type: ignore[union-attr]
    assert choose(PWG, color=True, dpi=600, attributes=[_dpis(300, 600)]).dpi == 600  # type: ignore[union-attr]
    non_square = Attribute(
        "pwg-raster-document-resolution-supported", ValueTag.RESOLUTION, Resolution(300, 600)
    )
    assert choose(PWG, color=True, dpi=300, attributes=[non_square]) is None
    per_cm = Attribute(
        "pwg-raster-document-resolution-supported",
        ValueTag.RESOLUTION,
        Resolution(118, 118, ResolutionUnits.DOTS_PER_CM),
    )
    assert choose(PWG, color=True, dpi=300, attributes=[per_cm]) is None
    urf_attrs = [_kw("urf-supported", "V1.4", "W8", "SRGB24", "RS300-600", "DM1")]
    assert choose(URF, color=False, dpi=200, attributes=urf_attrs) == Choice(URF, "W8", 300)
    assert choose(URF, color=False, dpi=1200, attributes=urf_attrs).dpi == 600  # type: ignore[union-attr]
    assert choose(URF, color=False, dpi=1200, attributes=urf_attrs).dpi == 600  # type: ignore[union-attr]


def _jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """`pdftoppm`'s rendering of page 1 of the shared bench document at 72 dpi (RGB, A4:
    about 595 x 842), and its folder."""
    require_peer(DOC10.exists(), f"{DOC10} (the shared bench document) is not here")
    pdftoppm = require_command("pdftoppm")
    folder = tmp_path_factory.mktemp("stream")
    subprocess.run(
        [pdftoppm, "-r", str(DPI), "-f", "1", "-l", "1", "-singlefile", "-png", str(DOC10),
         str(folder / "src")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with Image.open(folder / "src.png") as image:
        rgb = np.asarray(image.convert("RGB"))
    assert rgb.shape[0] == 842 and abs(rgb.shape[1] - 595) <= 1
    return folder, rgb


def _request(fmt: str, kind: str, *, color: bool = True, sides: str = "one-sided") -> RasterRequest:
    return RasterRequest(
        tenant_id="t",
        token="x",
        format=fmt,  # type: ignore[arg-type]
        type=kind,
        dpi=DPI,
        color=color,
        sides=sides,  # type: ignore[arg-type]
    )


def _stream(request: RasterRequest, jpegs: list[bytes]) -> bytes:
    return b"".join(raster_stream.encode_pages(request, [io.BytesIO(j) for j in jpegs]))


def test_black_1_is_the_engines_mono_plane(source: tuple[Path, np.ndarray]) -> None:
    jpeg = _jpeg(source[1])
    pages = list(pwg.read_pages(_stream(_request(PWG, "black_1", color=True), [jpeg, jpeg])))
    engine = render_page(jpeg, color=False, dpi=DPI, media=A4)
    assert len(pages) == 2
    for page in pages:
        assert page.header.color_space == pwg.ColorSpace.BLACK
        assert (page.header.width, page.header.height) == (engine.width, engine.height)
        assert np.array_equal(page.data, engine.planes["K"])
        assert 0.01 < np.unpackbits(page.data).mean() < 0.5  # text, not blank or black


def test_cmyk_8_is_the_engines_separation(source: tuple[Path, np.ndarray]) -> None:
    jpeg = _jpeg(source[1])
    (page,) = pwg.read_pages(_stream(_request(PWG, "cmyk_8"), [jpeg]))
    assert page.header.color_space == pwg.ColorSpace.CMYK
    engine = render_page(jpeg, color=True, dpi=DPI, media=A4)
    ink = page.data.reshape(page.header.height, page.header.width, 4)
    # the engine's ordered dither of these inks: its very planes
    h, w = ink.shape[:2]
    thresholds = np.tile(halftone._THRESHOLDS, (h // 8 + 1, w // 8 + 1))[:h, :w]
    for index, name in enumerate("CMYK"):
        dots = np.packbits(ink[:, :, index] > thresholds, axis=1)
        assert np.array_equal(dots, engine.planes[name]), name
    assert ink[:, :, 3].max() > 200  # black text in K
    # a mono job in cmyk_8: K = 255 - luma alone, as the engine's mono plane's ink
    (mono,) = pwg.read_pages(_stream(_request(PWG, "cmyk_8", color=False), [jpeg]))
    mono_ink = mono.data.reshape(h, w, 4)
    assert not mono_ink[:, :, :3].any()
    gray = halftone.gray_page(jpeg, page=(w, h))
    assert np.array_equal(mono_ink[:, :, 3], 255 - gray)


def test_pages_are_the_sheet_at_the_printers_resolution(source: tuple[Path, np.ndarray]) -> None:
    jpeg = _jpeg(source[1])  # 72 dpi
    request = RasterRequest(
        tenant_id="t", token="x", format=PWG, type="srgb_8", dpi=36, sides="two-sided-long-edge",
        sheet_back="rotated",
    )  # fmt: skip
    pages = list(pwg.read_pages(_stream(request, [jpeg, jpeg])))
    assert [(p.header.width, p.header.height) for p in pages] == [A4.pixels(36)] * 2
    assert pages[0].header.total_page_count == 2
    assert [p.header.resolution for p in pages] == [(36, 36)] * 2
    # the back of the sheet turned as pwg-raster-document-sheet-back says (Table 9)
    assert (pages[1].header.cross_feed_transform, pages[1].header.feed_transform) == (-1, -1)
    urf_pages = list(urf.read_pages(_stream(_request(URF, "W8"), [jpeg])))
    assert len(urf_pages) == 1 and urf_pages[0].header.width == 595


def test_a_bad_request_is_refused() -> None:
    with pytest.raises(Exception, match="not one of"):
        _request(PWG, "SRGB24").check()
    with pytest.raises(Exception, match="too large"):
        RasterRequest(
            tenant_id="t", token="x", format=PWG, type="srgb_8", dpi=2400,
            media_width=200_000, media_height=200_000,
        ).check()  # fmt: skip


def _rastertopdf(document: bytes, content_type: str, tmp_path: Path) -> bytes:
    require_peer(RASTERTOPDF.is_file(), f"{RASTERTOPDF} (cups-filters) is not installed")
    path = tmp_path / "doc.raster"
    path.write_bytes(document)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONTENT_TYPE": content_type,
        "FINAL_CONTENT_TYPE": "application/pdf",
    }
    done = subprocess.run(
        [str(RASTERTOPDF), "1", "user", "title", "1", "", str(path)],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-800:]
    assert done.stdout.startswith(b"%PDF")
    return done.stdout


def _pdftoppm(pdf: bytes, folder: Path, *, gray: bool) -> list[np.ndarray]:
    pdftoppm = require_command("pdftoppm")
    folder.mkdir()
    (folder / "in.pdf").write_bytes(pdf)
    subprocess.run(
        [pdftoppm, "-r", str(DPI), *(["-gray"] if gray else []), "-png",
         str(folder / "in.pdf"), str(folder / "page")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pages = []
    for path in sorted(folder.glob("page*.png")):
        with Image.open(path) as image:
            pages.append(np.asarray(image.convert("L" if gray else "RGB"), dtype=np.float64))
    return pages


def _blocks(pixels: np.ndarray, size: int = 8) -> np.ndarray:
    h, w = pixels.shape[0] // size * size, pixels.shape[1] // size * size
    cut = pixels[:h, :w].reshape(h // size, size, w // size, size, -1)
    return cut.mean(axis=(1, 3))


@pytest.mark.peer("rastertopdf")
@pytest.mark.parametrize("kind", ["black_1", "cmyk_8", "srgb_8"])
def test_rastertopdf_reads_the_workers_pages(
    source: tuple[Path, np.ndarray], tmp_path: Path, kind: str
) -> None:
    """cups-filters' rastertopdf decodes what a worker sends to our very pixels, and its
    PDF as pdftoppm renders it looks like pdftoppm's rendering of the source PDF."""
    import pypdfium2 as pdfium

    rgb = source[1]
    jpeg = _jpeg(rgb)
    document = _stream(_request(PWG, kind), [jpeg, jpeg])
    ours = list(pwg.read_pages(document))
    pdf = _rastertopdf(document, "image/pwg-raster", tmp_path)
    decoded = pdfium.PdfDocument(pdf)
    try:
        assert len(decoded) == 2
        for index in range(2):
            (image,) = decoded[index].get_objects()
            bitmap = image.get_bitmap(render=False).to_numpy()
            assert bitmap.shape[:2] == (ours[index].header.height, ours[index].header.width)
            if kind == "black_1":
                # 1 = a dot in PWG; PDFium shows the image's gray, dots black
                dots = np.unpackbits(ours[index].data, axis=1, count=ours[index].header.width)
                assert np.array_equal(bitmap.reshape(dots.shape) == 0, dots == 1)
            elif kind == "srgb_8":
                want = ours[index].data.reshape(bitmap.shape[0], bitmap.shape[1], 3)
                assert np.abs(bitmap[:, :, 2::-1][:, :, :3].astype(int) - want).max() <= 1
    finally:
        decoded.close()
    # the looks, against pdftoppm's rendering of the source page, in gray, by 8x8 blocks
    # (one cell of the dither): JPEG, the engine's separation and halftone, and
    # poppler's CMYK -> gray formula each move a block a little, a wrong page far more
    want = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)
    got = _pdftoppm(pdf, tmp_path / "ours", gray=True)
    assert len(got) == 2
    bound = {"srgb_8": 3.0, "black_1": 5.0, "cmyk_8": 16.0}[kind]  # measured: 1.6, 2.4, 11.7
    for page in got:
        # the sheet is 595 pixels wide, pdftoppm's page may be a pixel more
        h, w = min(page.shape[0], want.shape[0]), min(page.shape[1], want.shape[1])
        assert abs(page.shape[1] - want.shape[1]) <= 1 and page.shape[0] == want.shape[0]
        diff = np.abs(_blocks(page[:h, :w]) - _blocks(want[:h, :w])).mean()
        assert diff < bound, f"{kind}: mean block difference {diff:.2f} >= {bound}"
    # and a blank page is not "close": the bound means something on this page
    blank = np.full_like(want, 255.0)
    assert np.abs(_blocks(blank) - _blocks(want)).mean() > 2 * bound


@pytest.mark.peer("ippevepcl")
def test_ippevepcl_reads_the_workers_black_1(
    source: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path = shutil.which("ippevepcl") or shutil.which("ippevepcl", path="/usr/sbin")
    require_peer(path is not None, "`ippevepcl` (cups-ipp-utils) is not installed")
    assert path is not None
    jpeg = _jpeg(source[1])
    document = tmp_path / "doc.pwg"
    document.write_bytes(_stream(_request(PWG, "black_1"), [jpeg, jpeg]))
    done = subprocess.run(
        [path, str(document)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CONTENT_TYPE": "image/pwg-raster"},
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and b"ERROR" not in done.stderr, done.stderr[-800:]
    assert b"job-impressions-completed=2" in done.stderr
    assert done.stdout.count(b"\x1b*r1A") == 2
