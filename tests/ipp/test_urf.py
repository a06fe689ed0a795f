"""ipp/urf.py: Apple raster made by Ghostscript's `urf` and `appleraster` devices.

Both devices write through libcups's Apple raster writer; libcups2's reader and
Ghostscript's own PNG of the page at the same resolution are the referees.
Hypothesis: truncated or mutated URF raises nothing but the decoder's errors.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from printcloud.ipp import pwg, urf
from tests.ipp.rasters import (
    DOC10,
    CupsRasterReader,
    encode_lines,
    ghostscript,
    image_pdf,
    png_pixels,
)

DPI = 100

#: (cupsColorSpace asked of Ghostscript, URF colour space written, reference, mode, tolerance)
CASES = [
    (19, pwg.ColorSpace.SRGB, "png16m", "RGB", 0),
    (1, pwg.ColorSpace.RGB, "png16m", "RGB", 0),
    (18, pwg.ColorSpace.SGRAY, "pnggray", "L", 1),
    (0, pwg.ColorSpace.W, "pnggray", "L", 1),
]


@pytest.fixture(scope="module")
def image_doc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("urf") / "image.pdf"
    image_pdf(path, dpi=DPI)
    return path


def urf_page_header(
    *, width: int, height: int, bpp: int = 24, space: int = 1, dpi: int = 300, duplex: int = 1
) -> bytes:
    raw = bytearray(32)
    raw[0:4] = bytes([bpp, space, duplex, 4])
    struct.pack_into(">3I", raw, 12, width, height, dpi)
    return bytes(raw)


@pytest.mark.peer("gs")
@pytest.mark.parametrize("device", ["urf", "appleraster"])
@pytest.mark.parametrize(("space", "written", "reference", "mode", "tolerance"), CASES)
def test_ghostscript_urf_equals_ghostscript_png(
    image_doc: Path,
    tmp_path: Path,
    device: str,
    space: int,
    written: pwg.ColorSpace,
    reference: str,
    mode: str,
    tolerance: int,
) -> None:
    raster = ghostscript(
        image_doc,
        tmp_path / "page.urf",
        device,
        dpi=DPI,
        args=(f"-dcupsColorSpace={space}", "-dcupsBitsPerColor=8"),
    )
    expected = png_pixels(ghostscript(image_doc, tmp_path / "p.png", reference, dpi=DPI), mode)
    (page,) = urf.read_pages(raster.read_bytes())
    assert page.header.color_space is written
    assert page.resolution == (DPI, DPI)
    difference = np.abs(page.pixels().astype(int) - expected.astype(int))
    assert difference.max() <= tolerance
    assert (difference > 0).mean() < 0.005


@pytest.mark.peer("gs")
@pytest.mark.parametrize("space", [19, 18, 6])
def test_doc10_decodes_like_libcups(tmp_path: Path, space: int) -> None:
    if not DOC10.exists():
        pytest.skip(f"{DOC10} (the shared bench document) is not here")
    raster = ghostscript(
        DOC10,
        tmp_path / "doc.urf",
        "urf",
        dpi=150,
        pages=(1, 3),
        args=(f"-dcupsColorSpace={space}", "-dcupsBitsPerColor=8"),
    )
    cups = CupsRasterReader().read(raster)
    ours = list(urf.read_pages(raster.read_bytes()))
    assert len(ours) == len(cups) == 3
    for page, ((width, height, bpl), data) in zip(ours, cups, strict=True):
        assert (page.header.width, page.header.height, page.header.bytes_per_line) == (
            width,
            height,
            bpl,
        )
        assert page.data.tobytes() == data


@pytest.mark.peer("gs")
def test_ghostscript_one_bit_urf_is_refused(image_doc: Path, tmp_path: Path) -> None:
    """With no depth asked, the `urf` device writes 1-bit pages labelled sGray whose 1 is
    black: not URF as AirPrint clients write it, so it is refused with a clear error."""
    raster = ghostscript(image_doc, tmp_path / "page.urf", "urf", dpi=DPI)
    with pytest.raises(pwg.RasterError, match="1 bits per pixel"):
        list(urf.read_pages(raster.read_bytes()))


def test_header_fields_and_two_pages() -> None:
    rows = np.arange(2 * 12, dtype=np.uint8).reshape(2, 12)
    page = urf_page_header(width=4, height=2, dpi=600, duplex=2) + encode_lines(rows, 3)
    data = urf.SYNC + struct.pack(">I", 2) + page + page
    assert urf.file_header(data).page_count == 2
    decoded = list(urf.read_pages(data))
    assert len(decoded) == 2
    assert decoded[0].header.duplex and decoded[0].header.tumble
    assert decoded[0].resolution == (600, 600)
    assert np.array_equal(decoded[1].data, rows)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"space": 2}, "CIELab"),
        ({"space": 9}, "colour space 9"),
        ({"bpp": 8, "space": 1}, "8 bits per pixel"),
        ({"bpp": 1, "space": 0}, "1 bits per pixel"),
        ({"dpi": 0}, "resolution"),
        ({"height": 0}, "positive"),
    ],
)
def test_bad_headers_are_named(header: dict[str, int], message: str) -> None:
    args = {"width": 4, "height": 2} | header
    data = urf.SYNC + bytes(4) + urf_page_header(**args) + bytes(64)
    with pytest.raises(pwg.RasterError, match=message):
        list(urf.read_pages(data))


def test_absurd_sizes_are_refused_before_allocating() -> None:
    data = urf.SYNC + bytes(4) + urf_page_header(width=1 << 30, height=1 << 30) + b"\x00\x80"
    with pytest.raises(pwg.RasterTooLarge, match="pixels per page"):
        list(urf.read_pages(data))


def test_not_urf_and_cut_short() -> None:
    with pytest.raises(pwg.RasterError, match="UNIRAST"):
        list(urf.read_pages(b"RaS2" + bytes(100)))
    with pytest.raises(pwg.RasterError, match="cut short"):
        list(urf.read_pages(urf.SYNC + b"\0\0"))
    with pytest.raises(pwg.RasterError, match="no pages"):
        list(urf.read_pages(urf.SYNC + bytes(4)))
    with pytest.raises(pwg.RasterError, match="header is cut short"):
        list(urf.read_pages(urf.SYNC + bytes(4) + bytes(10)))
    body = urf.SYNC + bytes(4) + urf_page_header(width=4, height=3) + bytes([0, 3])
    with pytest.raises(pwg.RasterError, match="ends in line 1"):
        list(urf.read_pages(body))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 30),
    st.integers(1, 8),
    st.sampled_from([(24, 1), (8, 0), (32, 6), (48, 1)]),
    st.data(),
)
def test_truncated_or_mutated_urf_raises_only_raster_errors(
    width: int, height: int, form: tuple[int, int], data: st.DataObject
) -> None:
    bpp, space = form
    bpl = width * bpp // 8
    rows = np.frombuffer(
        data.draw(st.binary(min_size=bpl * height, max_size=bpl * height)), np.uint8
    )
    body = (
        urf.SYNC
        + bytes(4)
        + urf_page_header(width=width, height=height, bpp=bpp, space=space)
        + encode_lines(rows.reshape(height, bpl), bpp // 8)
    )
    (page,) = urf.read_pages(body)
    assert np.array_equal(page.data, rows.reshape(height, bpl))
    mutated = bytearray(body)
    for _ in range(data.draw(st.integers(1, 6))):
        mutated[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    limits = pwg.RasterLimits(max_page_pixels=1_000_000, max_total_pixels=2_000_000, max_pages=3)
    for candidate in (body[: data.draw(st.integers(0, len(body) - 1))], bytes(mutated)):
        try:
            for decoded in urf.read_pages(candidate, limits=limits):
                decoded.pixels()
        except (pwg.RasterError, pwg.RasterTooLarge):
            pass


@pytest.mark.parametrize("keyword", sorted(urf.URF_TYPES))
def test_every_advertised_urf_type_decodes(keyword: str) -> None:
    """`urf-supported`'s colour keywords list only what the decoder reads."""
    space, bpp = urf.URF_TYPES[keyword]
    width, height = 5, 2
    bpl = width * bpp // 8
    rows = (np.arange(height * bpl) % 251).astype(np.uint8).reshape(height, bpl)
    body = urf_page_header(width=width, height=height, bpp=bpp, space=space)
    (page,) = urf.read_pages(urf.SYNC + bytes(4) + body + encode_lines(rows, bpp // 8))
    assert np.array_equal(page.data, rows)
    assert page.pixels().shape[:2] == (height, width)
