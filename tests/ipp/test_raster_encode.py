"""ipp/raster_encode.py: PWG raster and URF that our decoders and independent ones read.

Referees: our decoders (`ipp/pwg.py`, `ipp/urf.py`) for the round-trip properties
(hypothesis: random small pages of every type, with runs, literals, repeated
lines, widths that are not a multiple of 8); libcups2's own reader
(`cupsRasterReadPixels`), whose bytes must equal ours; cups-filters'
`rastertopdf` run as CUPS runs a filter, its PDF rendered by `pdftoppm` and
compared with the source page; CUPS's `ippeveps` (raster to PostScript, rendered
by Ghostscript) and `ippevepcl` (raster to PCL), the transforms of
`ippeveprinter`.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from printcloud.core.errors import InvalidRequest
from printcloud.ipp import pwg, raster_encode, urf
from printcloud.ipp.raster_encode import PageOptions
from tests.conftest import require_command, require_peer
from tests.ipp.rasters import DOC10, CupsRasterReader

COLORS = {"sgray_8": 1, "srgb_8": 3, "cmyk_8": 4, "black_1": 1}
URF_COLORS = {"W8": 1, "SRGB24": 3}
RASTERTOPDF = Path("/usr/lib/cups/filter/rastertopdf")
#: At 72 dpi a page of whole pixels is a whole number of points (`PageSize`), so
#: the PDF a decoder writes maps its image 1:1 onto pdftoppm's pixels.
DPI = 72


@st.composite
def pages(draw: st.DrawFn, colors: int, *, bitonal: bool = False) -> np.ndarray:
    """A small page built from a few colours, so it has runs, literals and repeated lines;
    widths up to 300 pixels cross the 128-pixel limit of a run."""
    height = draw(st.integers(1, 12))
    width = draw(st.integers(1, 300))
    palette = draw(
        st.lists(st.binary(min_size=colors, max_size=colors), min_size=1, max_size=4, unique=True)
    )
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # runs of random lengths over the palette, and lines repeated a random number of times
    lines = []
    while len(lines) < height:
        line = np.empty((width, colors), np.uint8)
        x = 0
        while x < width:
            run = int(rng.integers(1, 200))
            line[x : x + run] = np.frombuffer(palette[int(rng.integers(len(palette)))], np.uint8)
            x += run
        if draw(st.booleans()):
            line = rng.integers(0, 256, (width, colors), dtype=np.uint8)
        lines += [line] * int(rng.integers(1, 4))
    page = np.stack(lines[:height])
    if bitonal:
        return page[:, :, 0] >= 128
    return page if colors > 1 else page[:, :, 0]


def _expected_rows(document_type: str, page: np.ndarray) -> np.ndarray:
    if document_type == "black_1":
        return np.packbits(page, axis=1)
    return page.reshape(page.shape[0], -1)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), document_type=st.sampled_from(sorted(COLORS)))
def test_pwg_round_trip(data: st.DataObject, document_type: str) -> None:
    count = data.draw(st.integers(1, 3))
    page_list = [
        data.draw(pages(COLORS[document_type], bitonal=document_type == "black_1"))
        for _ in range(count)
    ]
    stream = raster_encode.encode_pwg(
        page_list, document_type=document_type, options=PageOptions(resolution=(150, 300))
    )
    decoded = list(pwg.read_pages(stream))
    assert len(decoded) == count
    for page, got in zip(page_list, decoded, strict=True):
        assert got.header.total_page_count == count
        assert got.resolution == (150, 300)
        assert got.data.tobytes() == _expected_rows(document_type, page).tobytes()
        if document_type == "black_1":
            assert (got.pixels()[:, :, 0] == np.where(page, 0, 255)).all()
        else:
            assert (got.pixels() == page.reshape(got.pixels().shape)).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), urf_type=st.sampled_from(sorted(URF_COLORS)))
def test_urf_round_trip(data: st.DataObject, urf_type: str) -> None:
    page_list = [
        data.draw(pages(URF_COLORS[urf_type])) for _ in range(data.draw(st.integers(1, 3)))
    ]
    stream = raster_encode.encode_urf(
        page_list, urf_type=urf_type, options=PageOptions(resolution=(300, 300))
    )
    assert urf.file_header(stream).page_count == len(page_list)
    for page, got in zip(page_list, urf.read_pages(stream), strict=True):
        assert got.resolution == (300, 300)
        assert (got.pixels() == page.reshape(got.pixels().shape)).all()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), document_type=st.sampled_from(sorted(COLORS)))
def test_libcups_reads_our_bytes(data: st.DataObject, document_type: str) -> None:
    """CUPS's own reader: every page's size and bytes as we encoded them."""
    reader = CupsRasterReader()
    page = data.draw(pages(COLORS[document_type], bitonal=document_type == "black_1"))
    stream = raster_encode.encode_pwg(
        [page, page], document_type=document_type, options=PageOptions()
    )
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"encode-{os.getpid()}.pwg"
    try:
        path.write_bytes(stream)
        cups = reader.read(path)
    finally:
        path.unlink(missing_ok=True)
    rows = _expected_rows(document_type, page)
    width = page.shape[1]
    assert [size for size, _ in cups] == [(width, page.shape[0], rows.shape[1])] * 2
    assert all(pixels == rows.tobytes() for _, pixels in cups)


def test_compression_uses_line_repeats_and_runs() -> None:
    white = np.full((100, 1000, 3), 255, np.uint8)
    data = raster_encode.pwg_page(white, document_type="srgb_8", options=PageOptions())
    # one line written once for 100 lines: 8 runs of 128 (and one of 104) white pixels
    assert len(data) == pwg.HEADER_SIZE + 1 + 8 * 4


@pytest.mark.parametrize("document_type", sorted(COLORS))
def test_long_runs_broken_at_every_offset(document_type: str) -> None:
    """Long runs take a fast path in 64-bit words once 8 pixels are aligned: a pixel
    out of place at each offset of a wide line (one line per offset) must still show."""
    width = 700
    colors = COLORS[document_type]
    page = np.full((64, width, colors), 200, np.uint8)
    for y in range(64):
        page[y, 3 + y * 7 % 600] = 17
        page[y, 130 + y] = 90
    if document_type == "black_1":
        page = page[:, :, 0] < 128
    elif colors == 1:
        page = page[:, :, 0]
    stream = raster_encode.encode_pwg([page], document_type=document_type, options=PageOptions())
    (got,) = pwg.read_pages(stream)
    assert got.data.tobytes() == _expected_rows(document_type, page).tobytes()


def _reference_lines(rows: np.ndarray, bpp: int) -> bytes:
    """PWG 5102.4 section 4.4 written the plain way, one pixel compared with the next (as
    MuPDF's and CUPS's writers scan): the bytes `compress_lines` must give."""
    out = bytearray()
    height, width = rows.shape[0], rows.shape[1] // bpp
    y = 0
    while y < height:
        repeat = 1
        while y + repeat < height and repeat < 256 and (rows[y + repeat] == rows[y]).all():
            repeat += 1
        out.append(repeat - 1)
        line = rows[y].tobytes()
        px = [line[i * bpp : (i + 1) * bpp] for i in range(width)]
        x = 0
        while x < width:
            if x + 1 < width and px[x] == px[x + 1]:
                count = 2
                while x + count < width and count < 128 and px[x + count] == px[x]:
                    count += 1
                out += bytes([count - 1]) + px[x]
            else:
                count = 1
                while (
                    x + count < width
                    and count < 128
                    and (x + count + 1 == width or px[x + count] != px[x + count + 1])
                ):
                    count += 1
                out += bytes([(257 - count) % 256]) + b"".join(px[x : x + count])
            x += count
        y += repeat
    return bytes(out)


#: Segment lengths at the edges: a run's 128-pixel limit, a line-repeat's 256, and the
#: 32-byte copies of literal runs (10 RGB pixels, 8 CMYK, 32 gray).
_LENGTHS = [1, 2, 3, 7, 8, 9, 10, 11, 12, 21, 22, 31, 32, 33, 127, 128, 129, 130, 255, 256, 257]


@st.composite
def adversarial_rows(draw: st.DrawFn, bpp: int) -> np.ndarray:
    """Lines made of segments that are all equal, all different, alternating (ABAB) or
    pairs (AABB), of lengths at the limits, repeated up to 300 times (past 256)."""
    kinds = ("equal", "different", "alternating", "pairs")
    lines: list[np.ndarray] = []
    for _ in range(draw(st.integers(1, 3))):
        segments = draw(
            st.lists(
                st.tuples(st.sampled_from(kinds), st.sampled_from(_LENGTHS)), min_size=1, max_size=5
            )
        )
        base = draw(st.integers(0, 255))
        parts = []
        for kind, length in segments:
            index = np.arange(length)
            if kind == "equal":
                values = np.zeros(length, np.int64)
            elif kind == "different":
                values = index
            elif kind == "alternating":
                values = index % 2
            else:
                values = index // 2
            pixel = (base + values[:, None] * np.arange(1, bpp + 1)) % 256
            parts.append(pixel.astype(np.uint8))
        line = np.concatenate(parts).reshape(-1)
        if lines and lines[0].size != line.size:
            line = np.resize(line, lines[0].size)
        lines += [line] * draw(st.sampled_from([1, 2, 255, 256, 257, 300]))
    return np.stack(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), bpp=st.sampled_from([1, 3, 4]))
def test_compression_equals_the_plain_scan(data: st.DataObject, bpp: int) -> None:
    """Adversarial lines: the kernel's bytes are the plain scan's, and they decode back."""
    rows = data.draw(adversarial_rows(bpp))
    got = raster_encode.compress_lines(rows, bytes_per_pixel=bpp)
    assert got == _reference_lines(rows, bpp)
    if bpp == 3:
        width = rows.shape[1] // 3
        page = raster_encode.pwg_page(
            rows.reshape(rows.shape[0], width, 3), document_type="srgb_8", options=PageOptions()
        )
        (decoded,) = pwg.read_pages(pwg.SYNC + page)
        assert decoded.data.tobytes() == rows.tobytes()


def test_header_fields() -> None:
    options = PageOptions(
        resolution=(600, 300),
        sides="two-sided-short-edge",
        print_quality="high",
        media="iso_a4_210x297mm",
        media_type="stationery",
        media_color="white",
        copies=2,
    )
    page = np.zeros((30, 20, 4), np.uint8)
    stream = raster_encode.encode_pwg([page], document_type="cmyk_8", options=options)
    assert stream[:4] == pwg.SYNC
    raw = stream[4 : 4 + pwg.HEADER_SIZE]
    assert raw[:9] == b"PwgRaster"
    header = pwg.read_header(raw)
    assert header.color_space is pwg.ColorSpace.CMYK
    assert (header.width, header.height, header.bytes_per_line) == (20, 30, 80)
    assert (header.bits_per_color, header.bits_per_pixel) == (8, 32)
    assert header.resolution == (600, 300)
    assert header.page_size == (2, 7)  # 20 px at 600 dpi, 30 px at 300 dpi, in points
    assert (header.duplex, header.tumble) == (True, True)
    assert header.print_quality == 5
    assert header.num_copies == 2
    assert header.total_page_count == 1
    assert (header.media_type, header.page_size_name) == ("stationery", "iso_a4_210x297mm")
    (num_colors,) = struct.unpack_from(">I", raw, 420)
    assert num_colors == 4
    image_box = struct.unpack_from(">4I", raw, 464)
    assert image_box == (0, 0, 20, 30)
    (alternate,) = struct.unpack_from(">I", raw, 480)
    assert alternate == 0xFFFFFF


@pytest.mark.parametrize(
    ("sheet_back", "sides", "transforms"),
    [
        ("flipped", "two-sided-long-edge", (1, -1)),
        ("flipped", "two-sided-short-edge", (-1, 1)),
        ("rotated", "two-sided-long-edge", (-1, -1)),
        ("manual-tumble", "two-sided-short-edge", (-1, -1)),
        ("normal", "two-sided-long-edge", (1, 1)),
    ],
)
@pytest.mark.parametrize("document_type", ["srgb_8", "black_1"])
def test_back_sides_are_transformed_and_read_back(
    sheet_back: str, sides: str, transforms: tuple[int, int], document_type: str
) -> None:
    rng = np.random.default_rng(7)
    front = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    if document_type == "black_1":
        front = front[:, :, 0] >= 128
    options = PageOptions(sides=sides, sheet_back=sheet_back)
    stream = raster_encode.encode_pwg([front, front], document_type=document_type, options=options)
    one, two = pwg.read_pages(stream)
    assert (one.header.cross_feed_transform, one.header.feed_transform) == (1, 1)
    assert (two.header.cross_feed_transform, two.header.feed_transform) == transforms
    assert (one.pixels() == two.pixels()).all()


def test_packed_black_1_equals_bitonal() -> None:
    rng = np.random.default_rng(3)
    dots = rng.integers(0, 2, (5, 21)).astype(bool)
    options = PageOptions()
    packed = raster_encode.pwg_page(
        np.packbits(dots, axis=1), width=21, document_type="black_1", options=options
    )
    assert packed == raster_encode.pwg_page(dots, document_type="black_1", options=options)


def _page(shape: tuple[int, ...], document_type: str, dtype: type = np.uint8) -> bytes:
    pixels = np.zeros(shape, dtype)
    return raster_encode.pwg_page(pixels, document_type=document_type, options=PageOptions())


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="rgb_16"):
        _page((2, 2, 3), "rgb_16")
    with pytest.raises(InvalidRequest, match=r"\(height, width, 3\)"):
        _page((2, 2), "srgb_8")
    with pytest.raises(InvalidRequest, match="uint16"):
        _page((2, 2, 3), "srgb_8", np.uint16)
    with pytest.raises(InvalidRequest, match="empty"):
        _page((0, 2, 3), "srgb_8")
    with pytest.raises(InvalidRequest, match="one resolution"):
        raster_encode.urf_page(
            np.zeros((2, 2), np.uint8), urf_type="W8", options=PageOptions(resolution=(300, 600))
        )
    with pytest.raises(InvalidRequest, match="sides"):
        PageOptions(sides="both")
    with pytest.raises(InvalidRequest, match="63 characters"):
        raster_encode.pwg_page(
            np.zeros((1, 1), np.uint8), document_type="sgray_8", options=PageOptions(media="x" * 64)
        )


# -- independent decoders: rastertopdf, ippeveps, ippevepcl -------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Page 1 of the shared bench document, as `pdftoppm` renders it at 72 dpi (RGB)."""
    require_peer(DOC10.exists(), f"{DOC10} (the shared bench document) is not here")
    pdftoppm = require_command("pdftoppm")
    prefix = tmp_path_factory.mktemp("encode") / "src"
    subprocess.run(
        [pdftoppm, "-r", str(DPI), "-f", "1", "-l", "1", "-singlefile", "-png", str(DOC10),
         str(prefix)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with Image.open(f"{prefix}.png") as image:
        return np.asarray(image.convert("RGB"))


def _page_of(document_type: str, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(what we encode, the RGB a faithful decoder shows for it)."""
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    if document_type in ("sgray_8", "W8"):
        return gray, np.repeat(gray[:, :, None], 3, axis=2)
    if document_type == "black_1":
        dots = gray < 128
        shown = np.where(dots, 0, 255).astype(np.uint8)
        return dots, np.repeat(shown[:, :, None], 3, axis=2)
    if document_type == "cmyk_8":
        # neutral K only: every renderer turns it into the same gray
        ink = (255 - gray)[:, :, None]
        cmyk = np.concatenate([np.zeros_like(ink)] * 3 + [ink], axis=2)
        return cmyk, np.repeat(gray[:, :, None], 3, axis=2)
    return rgb, rgb


def _stream(kind: str, page: np.ndarray) -> bytes:
    options = PageOptions(resolution=(DPI, DPI), media="iso_a4_210x297mm")
    if kind in raster_encode.URF_ENCODE_TYPES:
        return raster_encode.encode_urf([page, page], urf_type=kind, options=options)
    return raster_encode.encode_pwg([page, page], document_type=kind, options=options)


def _render(pdf: Path, out: Path) -> list[np.ndarray]:
    pdftoppm = require_command("pdftoppm")
    out.mkdir()
    subprocess.run(
        [pdftoppm, "-r", str(DPI), "-png", str(pdf), str(out / "page")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    result = []
    for path in sorted(out.glob("page*.png")):
        with Image.open(path) as image:
            result.append(np.asarray(image.convert("RGB")))
    return result


def _close(got: np.ndarray, want: np.ndarray, *, mean: float) -> None:
    # pdftoppm places the image on its own pixel grid: a row or column may differ
    h, w = min(got.shape[0], want.shape[0]), min(got.shape[1], want.shape[1])
    assert abs(got.shape[0] - want.shape[0]) <= 1 and abs(got.shape[1] - want.shape[1]) <= 1
    diff = np.abs(got[:h, :w].astype(int) - want[:h, :w].astype(int)).mean()
    assert diff < mean, f"mean absolute difference {diff:.2f} >= {mean}"


@pytest.mark.peer("rastertopdf")
@pytest.mark.parametrize("kind", ["srgb_8", "sgray_8", "black_1", "cmyk_8", "SRGB24", "W8"])
def test_rastertopdf_reads_our_pages(source: np.ndarray, tmp_path: Path, kind: str) -> None:
    """cups-filters' rastertopdf, as CUPS runs a filter; its PDF looks like the source."""
    require_peer(RASTERTOPDF.is_file(), f"{RASTERTOPDF} (cups-filters) is not installed")
    page, shown = _page_of(kind, source)
    document = tmp_path / "doc.raster"
    document.write_bytes(_stream(kind, page))
    content_type = "image/urf" if kind in raster_encode.URF_ENCODE_TYPES else "image/pwg-raster"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONTENT_TYPE": content_type,
        "FINAL_CONTENT_TYPE": "application/pdf",
    }
    done = subprocess.run(
        [str(RASTERTOPDF), "1", "user", "title", "1", "", str(document)],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-800:]
    assert done.stdout.startswith(b"%PDF")
    pdf = tmp_path / "out.pdf"
    pdf.write_bytes(done.stdout)
    import pypdfium2 as pdfium

    # rastertopdf decoded our lines: the images in its PDF (Flate, lossless), as
    # PDFium decodes them, are our pixels
    document_pdf = pdfium.PdfDocument(done.stdout)
    try:
        assert len(document_pdf) == 2
        for index in range(2):
            (image,) = document_pdf[index].get_objects()
            pixels = image.get_bitmap(render=False).to_numpy()
            pixels = pixels[:, :, ::-1] if pixels.ndim == 3 else pixels[:, :, None]
            assert pixels.shape[:2] == shown.shape[:2]
            if kind == "cmyk_8":
                # PDFium turns DeviceCMYK into RGB by a formula of its own, not 255 - K:
                # each K level we wrote must give one colour, darker for more ink
                levels = [pixels[shown[:, :, 0] == v] for v in np.unique(shown[:, :, 0])]
                assert all(np.ptp(level, axis=0).max() <= 1 for level in levels)
                means = [level[:, 0].astype(int).mean() for level in levels]
                assert means == sorted(means)
            else:
                diff = np.abs(pixels.astype(int) - shown[:, :, : pixels.shape[2]])
                assert diff.max() <= 1
    finally:
        document_pdf.close()
    # and its pages look like the source as pdftoppm renders both: pdftoppm smooths an
    # image even drawn 1:1 (~6 levels on a text page, measured), so the bound is on
    # 8x8 blocks' means, where a page one pixel off or a line out of place shows
    rendered = _render(pdf, tmp_path / "ours")
    assert len(rendered) == 2
    # rastertopdf tags gray pages with its sGray profile, which poppler applies (white
    # renders as 250, not 255, measured), and poppler turns K into gray by its own
    # formula: a wider bound for those, whose pixels were checked exactly above
    bound = 8.0 if kind in ("sgray_8", "W8", "cmyk_8") else 2.0
    for got in rendered:
        _close(_blocks(got), _blocks(shown), mean=bound)


def _blocks(pixels: np.ndarray, size: int = 8) -> np.ndarray:
    h, w = pixels.shape[0] // size * size, pixels.shape[1] // size * size
    blocks = pixels[:h, :w].reshape(h // size, size, w // size, size, pixels.shape[2])
    return blocks.mean(axis=(1, 3))


def _ippeveprinter_command(name: str) -> str:
    """cups-ipp-utils installs the transforms in /usr/sbin, often not on a user's PATH."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    require_peer(path is not None, f"`{name}` (cups-ipp-utils) is not installed")
    assert path is not None
    return path


@pytest.mark.peer("ippeveps")
@pytest.mark.parametrize("kind", ["srgb_8", "sgray_8", "black_1", "SRGB24", "W8"])
def test_ippeveps_reads_our_pages(source: np.ndarray, tmp_path: Path, kind: str) -> None:
    """ippeveprinter's PostScript transform draws our pages; Ghostscript renders its output."""
    ippeveps = _ippeveprinter_command("ippeveps")
    gs = require_command("gs")
    page, shown = _page_of(kind, source)
    document = tmp_path / "doc.raster"
    document.write_bytes(_stream(kind, page))
    content_type = "image/urf" if kind in raster_encode.URF_ENCODE_TYPES else "image/pwg-raster"
    done = subprocess.run(
        [ippeveps, str(document)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CONTENT_TYPE": content_type},
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and b"ERROR" not in done.stderr, done.stderr[-800:]
    assert b"job-impressions-completed=2" in done.stderr
    postscript = tmp_path / "out.ps"
    postscript.write_bytes(done.stdout)
    subprocess.run(
        [gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=png16m", f"-r{DPI}",
         "-dFIXEDMEDIA", f"-dDEVICEWIDTHPOINTS={page.shape[1] * 72 // DPI}",
         f"-dDEVICEHEIGHTPOINTS={page.shape[0] * 72 // DPI}",
         f"-sOutputFile={tmp_path / 'ps%d.png'}", str(postscript)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    rendered = []
    for number in (1, 2):
        with Image.open(tmp_path / f"ps{number}.png") as image:
            rendered.append(np.asarray(image.convert("RGB")))
    if kind == "black_1":
        # ippeveps 2.4 skips all-zero lines as blank but draws the others as DeviceGray
        # with /Decode [0 1], so a black dot prints white (Ghostscript's own black_1
        # pages come out the same): its drawing is not comparable, its reading is
        # (both pages, no error, above).
        return
    for got in rendered:
        _close(got, shown, mean=3.0)


@pytest.mark.peer("ippevepcl")
@pytest.mark.parametrize("kind", ["sgray_8", "black_1", "W8"])
def test_ippevepcl_reads_our_pages(source: np.ndarray, tmp_path: Path, kind: str) -> None:
    """ippeveprinter's PCL transform (gray and black only, as it documents) takes our
    pages: two pages of raster graphics, every line of each."""
    ippevepcl = _ippeveprinter_command("ippevepcl")
    page, _ = _page_of(kind, source)
    document = tmp_path / "doc.raster"
    document.write_bytes(_stream(kind, page))
    content_type = "image/urf" if kind in raster_encode.URF_ENCODE_TYPES else "image/pwg-raster"
    done = subprocess.run(
        [ippevepcl, str(document)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CONTENT_TYPE": content_type},
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and b"ERROR" not in done.stderr, done.stderr[-800:]
    assert b"job-impressions-completed=2" in done.stderr
    assert done.stdout.count(b"\x1b*r1A") == 2  # start raster graphics, once a page
    assert done.stdout.count(b"\x0c") >= 2  # a form feed ends each page
