"""ipp/pwg.py: PWG raster made by Ghostscript and MuPDF, decoded byte for byte like CUPS.

Referees: Ghostscript's `pwgraster` device (through libcups's writer) and MuPDF's
own PWG writer produce the documents; libcups2's `cupsRasterReadPixels` decodes the
same files, and our bytes must equal its bytes; the renderers' own PNGs of the
same page at the same resolution must equal our pixels (stated tolerances below).
Hypothesis: pages written by an independent encoder decode to their pixels, and
truncated or mutated streams raise nothing but `RasterError`/`RasterTooLarge`.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from printcloud.ipp import pwg
from tests.ipp.rasters import (
    DOC10,
    CupsRasterReader,
    encode_lines,
    ghostscript,
    image_pdf,
    mutool,
    png_pixels,
    pwg_header,
)

DPI = 100

#: (cupsColorSpace, bits per colour, reference device, PNG mode, the largest difference)
#: RGB spaces are exact; gray differs by one level on ~0.2% of pixels (Ghostscript's
#: gray conversion rounds differently in its cups and png devices); 1-bit pages are
#: dithered from that gray, so a few pixels (< 0.5%) flip.
CASES = [
    (19, 8, "png16m", "RGB", 0),
    (1, 8, "png16m", "RGB", 0),
    (20, 8, "png16m", "RGB", 0),
    (18, 8, "pnggray", "L", 1),
    (3, 8, "pnggray", "L", 1),
    (18, 16, "pnggray", "L", 1),
]


@pytest.fixture(scope="module")
def image_doc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pwg") / "image.pdf"
    image_pdf(path, dpi=DPI)
    return path


@pytest.mark.peer("gs")
@pytest.mark.parametrize(("space", "bits", "device", "mode", "tolerance"), CASES)
def test_ghostscript_pwg_equals_ghostscript_png(
    image_doc: Path,
    tmp_path: Path,
    space: int,
    bits: int,
    device: str,
    mode: str,
    tolerance: int,
) -> None:
    raster = ghostscript(
        image_doc,
        tmp_path / "page.pwg",
        "pwgraster",
        dpi=DPI,
        args=(f"-dcupsColorSpace={space}", f"-dcupsBitsPerColor={bits}"),
    )
    reference = png_pixels(ghostscript(image_doc, tmp_path / "page.png", device, dpi=DPI), mode)
    (page,) = pwg.read_pages(raster.read_bytes())
    assert page.header.color_space == space
    assert page.header.bits_per_color == bits
    assert page.resolution == (DPI, DPI)
    assert page.size_points == (216.0, 144.0)
    pixels = page.pixels()
    assert pixels.shape == reference.shape
    difference = np.abs(pixels.astype(int) - reference.astype(int))
    assert difference.max() <= tolerance
    assert (difference > 0).mean() < 0.005


@pytest.mark.peer("gs")
@pytest.mark.parametrize("space", [18, 3])
def test_ghostscript_one_bit_pages(image_doc: Path, tmp_path: Path, space: int) -> None:
    raster = ghostscript(
        image_doc,
        tmp_path / "page.pwg",
        "pwgraster",
        dpi=DPI,
        args=(f"-dcupsColorSpace={space}", "-dcupsBitsPerColor=1"),
    )
    reference = png_pixels(ghostscript(image_doc, tmp_path / "m.png", "pngmono", dpi=DPI), "L")
    (page,) = pwg.read_pages(raster.read_bytes())
    assert page.header.bytes_per_line == (300 + 7) // 8
    pixels = page.pixels()
    assert set(np.unique(pixels)) <= {0, 255}
    assert (pixels != reference).mean() < 0.005  # black is black in sGray and in Black


@pytest.mark.peer("gs")
def test_ghostscript_cmyk_equals_ghostscript_tiff(image_doc: Path, tmp_path: Path) -> None:
    raster = ghostscript(
        image_doc,
        tmp_path / "page.pwg",
        "pwgraster",
        dpi=DPI,
        args=("-dcupsColorSpace=6", "-dcupsBitsPerColor=8"),
    )
    reference = png_pixels(
        ghostscript(image_doc, tmp_path / "page.tif", "tiff32nc", dpi=DPI), "CMYK"
    )
    (page,) = pwg.read_pages(raster.read_bytes())
    difference = np.abs(page.pixels().astype(int) - reference.astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.005


@pytest.mark.peer("gs")
@pytest.mark.parametrize(("space", "bits"), [(19, 8), (18, 8), (3, 1), (6, 8), (18, 16)])
def test_doc10_decodes_like_libcups(tmp_path: Path, space: int, bits: int) -> None:
    """Two pages of the shared bench document: our bytes are CUPS's bytes, page by page."""
    if not DOC10.exists():
        pytest.skip(f"{DOC10} (the shared bench document) is not here")
    raster = ghostscript(
        DOC10,
        tmp_path / "doc.pwg",
        "pwgraster",
        dpi=150,
        pages=(1, 2),
        args=(f"-dcupsColorSpace={space}", f"-dcupsBitsPerColor={bits}"),
    )
    cups = CupsRasterReader().read(raster)
    ours = list(pwg.read_pages(raster.read_bytes()))
    assert len(ours) == len(cups) == 2
    for page, ((width, height, bpl), data) in zip(ours, cups, strict=True):
        assert (page.header.width, page.header.height, page.header.bytes_per_line) == (
            width,
            height,
            bpl,
        )
        if bits == 16:  # libcups swaps 16-bit samples to the host's byte order
            assert np.array_equal(
                page.data.view(">u2"), np.frombuffer(data, "=u2").reshape(height, bpl // 2)
            )
        else:
            assert page.data.tobytes() == data


@pytest.mark.peer("gs")
def test_doc10_against_ghostscript_png(tmp_path: Path) -> None:
    """A real page (text, vectors, photo): the cups and png devices render text and
    gradients a little differently, so the bound is statistical, not exact."""
    if not DOC10.exists():
        pytest.skip(f"{DOC10} (the shared bench document) is not here")
    raster = ghostscript(
        DOC10,
        tmp_path / "p.pwg",
        "pwgraster",
        dpi=DPI,
        args=("-dcupsColorSpace=19", "-dcupsBitsPerColor=8"),
    )
    reference = png_pixels(ghostscript(DOC10, tmp_path / "p.png", "png16m", dpi=DPI), "RGB")
    (page,) = pwg.read_pages(raster.read_bytes())
    difference = np.abs(page.pixels().astype(int) - reference.astype(int)).max(axis=2)
    assert page.pixels().shape == reference.shape
    assert difference.mean() < 8  # measured 5.2 (a misdecoded page is near 100)
    assert (difference > 8).mean() < 0.05  # measured 2.2%


@pytest.mark.peer("mutool")
@pytest.mark.parametrize(("colorspace", "mode"), [("rgb", "RGB"), ("gray", "L")])
def test_mupdf_pwg_equals_mupdf_png(tmp_path: Path, colorspace: str, mode: str) -> None:
    """MuPDF's own PWG writer (not libcups): exact against its own PNG of the page."""
    if not DOC10.exists():
        pytest.skip(f"{DOC10} (the shared bench document) is not here")
    raster = mutool(DOC10, tmp_path / "p.pwg", "pwg", dpi=DPI, colorspace=colorspace)
    reference = png_pixels(
        mutool(DOC10, tmp_path / "p.png", "png", dpi=DPI, colorspace=colorspace), mode
    )
    (page,) = pwg.read_pages(raster.read_bytes())
    assert np.array_equal(page.pixels(), reference)
    assert np.array_equal(
        page.data,
        np.frombuffer(CupsRasterReader().read(raster)[0][1], np.uint8).reshape(page.data.shape),
    )


# -- headers and limits ------------------------------------------------------------------


def test_flipped_back_side_is_turned_back() -> None:
    rows = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 9)
    data = pwg.SYNC + pwg_header(width=3, height=2, transforms=(-1, -1)) + encode_lines(rows, 3)
    (page,) = pwg.read_pages(data)
    assert np.array_equal(page.pixels(), rows.reshape(2, 3, 3)[::-1, ::-1])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"order": 1}, "cupsColorOrder 1"),
        ({"color_space": 7}, "cupsColorSpace 7"),
        ({"color_space": 0, "colors": 1}, "DeviceW"),
        ({"bpc": 4}, "4 bits per colour"),
        ({"bpc": 1}, "1 bits per colour"),
        ({"bpl": 10}, "10 bytes per line"),
        ({"dpi": (0, 300)}, "resolution"),
        ({"dpi": (300, 4_000_000_000)}, "outside 10-10000 dpi"),
        ({"width": 0}, "positive"),
    ],
)
def test_bad_headers_are_named(fields: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"width": 4, "height": 2} | fields
    data = pwg.SYNC + pwg_header(**args) + bytes(100)  # type: ignore[arg-type]
    with pytest.raises(pwg.RasterError, match=message):
        list(pwg.read_pages(data))


def test_absurd_sizes_are_refused_before_allocating() -> None:
    """A 1796-byte header claiming 2^24 x 2^24 pixels: refused, nothing allocated."""
    data = pwg.SYNC + pwg_header(width=1 << 24, height=1 << 24) + b"\x00\x80"
    with pytest.raises(pwg.RasterTooLarge, match="pixels per page"):
        list(pwg.read_pages(data))
    small = pwg.RasterLimits(max_page_pixels=10_000, max_total_pixels=15_000, max_pages=2)
    page = pwg_header(width=100, height=100) + encode_lines(np.zeros((100, 300), np.uint8), 3)
    assert len(list(pwg.read_pages(pwg.SYNC + page, limits=small))) == 1
    with pytest.raises(pwg.RasterTooLarge, match="add up"):
        list(pwg.read_pages(pwg.SYNC + page * 2, limits=small))
    with pytest.raises(pwg.RasterTooLarge, match="more than 2 pages"):
        list(pwg.read_pages(pwg.SYNC + page * 3, limits=pwg.RasterLimits(max_pages=2)))
    wide = pwg_header(width=3000, height=3000, bpc=16, colors=4, color_space=6)
    with pytest.raises(pwg.RasterTooLarge, match="bytes per page"):
        list(pwg.read_pages(pwg.SYNC + wide, limits=pwg.RasterLimits(max_page_pixels=10**7)))


def test_not_pwg_and_empty() -> None:
    with pytest.raises(pwg.RasterError, match="RaS2"):
        list(pwg.read_pages(b"RaS3" + bytes(2000)))
    with pytest.raises(pwg.RasterError, match="no pages"):
        list(pwg.read_pages(pwg.SYNC))


def test_fill_with_white_follows_the_colour_space() -> None:
    """Run 128 fills the rest of the line with white: 0xFF in sRGB, 0x00 in CMYK/Black."""
    for space, colors, white in ((19, 3, 255), (6, 4, 0), (3, 1, 0), (18, 1, 255)):
        header = pwg_header(width=4, height=3, colors=colors, color_space=space)
        body = bytes([2, 0]) + bytes(range(1, colors + 1)) + bytes([128])
        (page,) = pwg.read_pages(pwg.SYNC + header + body)
        expected = np.full((3, 4 * colors), white, np.uint8)
        expected[:, :colors] = np.arange(1, colors + 1)
        assert np.array_equal(page.data, expected)


# -- properties ----------------------------------------------------------------------------

_FORMATS = st.sampled_from([(19, 3, 8), (18, 1, 8), (6, 4, 8), (18, 1, 16), (3, 1, 1)])


@st.composite
def pages(draw: st.DrawFn) -> tuple[bytes, np.ndarray]:
    space, colors, bits = draw(_FORMATS)
    width = draw(st.integers(1, 40))
    height = draw(st.integers(1, 12))
    bpl = (width * colors * bits + 7) // 8
    palette = draw(st.lists(st.binary(min_size=bpl, max_size=bpl), min_size=1, max_size=3))
    rows = np.frombuffer(
        b"".join(draw(st.sampled_from(palette)) for _ in range(height)), np.uint8
    ).reshape(height, bpl)
    if draw(st.booleans()):  # runs of equal pixels, not only noise
        step = max(1, colors * bits // 8)
        rows = np.repeat(rows[:, :step], bpl // step, axis=1)
        rows = np.ascontiguousarray(rows)
    header = pwg_header(width=width, height=height, colors=colors, color_space=space, bpc=bits)
    return header + encode_lines(rows, max(1, colors * bits // 8)), rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pages(), min_size=1, max_size=3))
def test_round_trip(documents: list[tuple[bytes, np.ndarray]]) -> None:
    data = pwg.SYNC + b"".join(body for body, _ in documents)
    decoded = list(pwg.read_pages(data))
    assert len(decoded) == len(documents)
    for page, (_, rows) in zip(decoded, documents, strict=True):
        assert np.array_equal(page.data, rows)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages(), st.data())
def test_truncated_or_mutated_raster_raises_only_raster_errors(
    document: tuple[bytes, np.ndarray], data: st.DataObject
) -> None:
    body = pwg.SYNC + document[0]
    cut = data.draw(st.integers(0, len(body) - 1))
    mutated = bytearray(body)
    for _ in range(data.draw(st.integers(0, 6))):
        mutated[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):  # a field of the header, as any 32-bit value
        offset = data.draw(st.sampled_from([276, 372, 376, 384, 388, 392, 396, 400, 452, 456]))
        struct.pack_into(">I", mutated, 4 + offset, data.draw(st.integers(0, 2**32 - 1)))
    small = pwg.RasterLimits(max_page_pixels=1_000_000, max_total_pixels=2_000_000, max_pages=4)
    for candidate in (
        body[:cut],
        bytes(mutated),
        bytes(mutated) + data.draw(st.binary(max_size=64)),
    ):
        try:
            for page in pwg.read_pages(candidate, limits=small):
                page.pixels()
        except (pwg.RasterError, pwg.RasterTooLarge):
            pass


def test_reused_buffers_give_the_same_pages() -> None:
    rows = [np.full((4, 9), value, np.uint8) for value in (10, 20, 30)]
    page = [pwg_header(width=3, height=4) + encode_lines(r, 3) for r in rows]
    data = pwg.SYNC + b"".join(page)
    reused = [p.data.copy() for p in pwg.read_pages(data, reuse=True)]
    assert all(np.array_equal(a, b) for a, b in zip(reused, rows, strict=True))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(pages(), st.data())
def test_mutated_raster_decodes_like_libcups(
    tmp_path: Path, document: tuple[bytes, np.ndarray], data: st.DataObject
) -> None:
    """Differential: whenever both decoders read a mutated stream whole, they agree byte
    for byte (runs that cross the line's end are cut as CUPS cuts them)."""
    reader = CupsRasterReader()
    body = bytearray(pwg.SYNC + document[0])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(4 + pwg.HEADER_SIZE, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    path = tmp_path / "mutated.pwg"
    path.write_bytes(bytes(body))
    try:
        ours = [
            # libcups swaps 16-bit samples to the host's byte order
            page.data.view(">u2").astype("=u2").tobytes()
            if page.header.bits_per_color == 16
            else page.data.tobytes()
            for page in pwg.read_pages(bytes(body))
        ]
        theirs = [pixels for _, pixels in reader.read(path)]
    except (pwg.RasterError, OSError):
        return
    if len(ours) == len(theirs):  # libcups stops quietly where we name a fault
        assert ours == theirs


@pytest.mark.parametrize("keyword", sorted(pwg.DOCUMENT_TYPES))
def test_every_advertised_type_decodes(keyword: str) -> None:
    """`pwg-raster-document-type-supported` lists only what the decoder reads."""
    space, bits = pwg.DOCUMENT_TYPES[keyword]
    colors = space.colors
    width, height = 9, 3
    bpl = (width * colors * bits + 7) // 8
    rows = (np.arange(height * bpl) % 251).astype(np.uint8).reshape(height, bpl)
    header = pwg_header(width=width, height=height, colors=colors, color_space=space, bpc=bits)
    (page,) = pwg.read_pages(pwg.SYNC + header + encode_lines(rows, max(1, colors * bits // 8)))
    assert np.array_equal(page.data, rows)
    assert page.pixels().shape == (height, width, colors)


def test_warm_up_compiles_what_read_pages_runs() -> None:
    """One compiled signature serves warm-up and decoding: a first job never compiles."""
    pwg.warm_up()
    before = list(pwg._unpack_lines.signatures)
    sizes = [(3, 2), (5, 4)]  # two page sizes: a buffer reused, then a new one
    data = pwg.SYNC + b"".join(
        pwg_header(width=w, height=h) + encode_lines(np.zeros((h, w * 3), np.uint8), 3)
        for w, h in sizes
    )
    pages = [(p.header.width, p.data.shape) for p in pwg.read_pages(data, reuse=True)]
    assert pages == [(3, (2, 9)), (5, (4, 15))]
    assert list(pwg._unpack_lines.signatures) == before
