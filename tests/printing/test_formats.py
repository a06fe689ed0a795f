"""printing/formats.py: documents as IPP clients send them, made into PDF for the intake.

Referees: PDFium (pypdfium2) opens every PDF made here and renders it; Ghostscript
makes the PWG raster and Apple raster documents from a PDF and renders the same
page as PNG, which the PDF's rendering must match within JPEG's tolerance.
Every refusal is its own class with its own IPP status code.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from printcloud.core.errors import InvalidRequest, PayloadTooLarge
from printcloud.ipp import pwg, urf
from printcloud.printing import formats
from printcloud.printing.convert import PDFIUM_LOCK
from tests.conftest import require_command
from tests.ipp.rasters import encode_lines, ghostscript, image_pdf, png_pixels, pwg_header

DPI = 100


def render(pdf: bytes, *, scale: float = 1.0) -> list[tuple[tuple[float, float], np.ndarray]]:
    """Every page's size in points and its RGB rendering, by PDFium."""
    out = []
    with PDFIUM_LOCK:
        document = pdfium.PdfDocument(pdf)
        try:
            for index in range(len(document)):
                page = document[index]
                bitmap = page.render(scale=scale)
                out.append((page.get_size(), np.asarray(bitmap.to_pil().convert("RGB"))))
                bitmap.close()
                page.close()
        finally:
            document.close()
    return out


def jpeg_bytes(width: int = 640, height: int = 480, **save: object) -> bytes:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x % 256, y % 256, (x + y) % 256], axis=2).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=90, **save)
    return out.getvalue()


@pytest.fixture(scope="module")
def image_doc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("formats") / "image.pdf"
    image_pdf(path, dpi=DPI)
    return path


def test_pdf_is_unchanged_and_sniffed(image_doc: Path) -> None:
    data = image_doc.read_bytes()
    for declared in ("application/pdf", "application/octet-stream", "Application/PDF; x=1", None):
        converted = formats.to_pdf(data, document_format=declared)
        assert converted.pdf == data
        assert converted.document_format == "application/pdf"
        assert converted.page_count is None


@pytest.mark.peer("gs")
@pytest.mark.parametrize(
    ("device", "args", "declared"),
    [
        ("pwgraster", ("-dcupsColorSpace=19", "-dcupsBitsPerColor=8"), "image/pwg-raster"),
        ("pwgraster", ("-dcupsColorSpace=18", "-dcupsBitsPerColor=8"), "application/octet-stream"),
        ("pwgraster", ("-dcupsColorSpace=6", "-dcupsBitsPerColor=8"), "image/pwg-raster"),
        ("urf", ("-dcupsColorSpace=19", "-dcupsBitsPerColor=8"), "image/urf"),
        ("urf", ("-dcupsColorSpace=18", "-dcupsBitsPerColor=8"), "application/octet-stream"),
    ],
)
def test_raster_becomes_a_pdf_page_at_its_resolution(
    image_doc: Path, tmp_path: Path, device: str, args: tuple[str, ...], declared: str
) -> None:
    raster = ghostscript(image_doc, tmp_path / "doc.raster", device, dpi=DPI, args=args)
    if "-dcupsColorSpace=6" in args:  # the CMYK Ghostscript separated to, through the profile
        tiff = ghostscript(image_doc, tmp_path / "p.tif", "tiff32nc", dpi=DPI)
        expected = formats.cmyk_to_rgb(png_pixels(tiff, "CMYK"))
    else:
        gray = "-dcupsColorSpace=18" in args
        png = ghostscript(image_doc, tmp_path / "p.png", "pnggray" if gray else "png16m", dpi=DPI)
        expected = png_pixels(png, "RGB")
    converted = formats.to_pdf(raster.read_bytes(), document_format=declared)
    assert converted.document_format == ("image/urf" if device == "urf" else "image/pwg-raster")
    assert converted.page_count == 1
    ((size, pixels),) = render(converted.pdf, scale=DPI / 72)
    assert size == pytest.approx((216.0, 144.0))  # 300x200 pixels at 100 dpi
    assert pixels.shape == expected.shape
    difference = np.abs(pixels.astype(int) - expected.astype(int))
    assert difference.mean() < 3  # JPEG q90 4:4:4 of a synthetic picture


@pytest.mark.peer("gs")
def test_one_bit_pages_stay_lossless(image_doc: Path, tmp_path: Path) -> None:
    raster = ghostscript(
        image_doc,
        tmp_path / "doc.pwg",
        "pwgraster",
        dpi=DPI,
        args=("-dcupsColorSpace=3", "-dcupsBitsPerColor=1"),
    )
    converted = formats.to_pdf(raster.read_bytes(), document_format="image/pwg-raster")
    ((_, pixels),) = render(converted.pdf, scale=DPI / 72)
    (page,) = pwg.read_pages(raster.read_bytes())
    assert np.array_equal(pixels[..., :1], page.pixels())


def test_several_pages_and_compression() -> None:
    rows = np.full((50, 300), 200, np.uint8)
    page = pwg_header(width=100, height=50, dpi=(100, 50)) + encode_lines(rows, 3)
    raw = pwg.SYNC + page * 3
    for compression, data in [
        ("none", raw),
        ("gzip", gzip.compress(raw)),
        ("gzip", gzip.compress(raw[:1000]) + gzip.compress(raw[1000:])),  # two members
        ("deflate", zlib.compress(raw)),  # zlib-wrapped
        ("deflate", zlib.compress(raw, wbits=-15)),  # raw RFC 1951
        ("Deflate", zlib.compress(raw, wbits=-15)),
    ]:
        converted = formats.to_pdf(
            data, document_format="image/pwg-raster", compression=compression
        )
        assert converted.page_count == 3
        pages = render(converted.pdf)
        assert [size for size, _ in pages] == [pytest.approx((72.0, 72.0))] * 3


def test_jpeg_is_embedded_as_it_is_and_sized_by_its_density() -> None:
    data = jpeg_bytes(600, 300, dpi=(300, 300))
    converted = formats.to_pdf(data, document_format="image/jpeg")
    assert converted.document_format == "image/jpeg"
    assert data in converted.pdf  # not re-encoded
    ((size, _),) = render(converted.pdf)
    assert size == pytest.approx((144.0, 72.0))
    # no density: 72 dpi; larger than A4: fitted into A4, landscape for a landscape picture
    ((size, _),) = render(formats.to_pdf(jpeg_bytes(640, 480), document_format="image/jpeg").pdf)
    assert size == pytest.approx((640.0, 480.0))
    ((size, _),) = render(formats.to_pdf(jpeg_bytes(4000, 3000), document_format="image/jpeg").pdf)
    assert size == pytest.approx((595.276 * 4 / 3, 595.276), rel=1e-3)  # A4 height binds


def test_exif_rotated_and_cmyk_jpegs_are_made_upright_rgb() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    rotated = formats.to_pdf(jpeg_bytes(200, 100, exif=exif), document_format="image/jpeg")
    ((size, _),) = render(rotated.pdf)
    assert size == pytest.approx((100.0, 200.0))
    out = io.BytesIO()
    Image.new("CMYK", (50, 40), (0, 255, 255, 0)).save(out, "JPEG")
    ((size, pixels),) = render(formats.to_pdf(out.getvalue(), document_format="image/jpeg").pdf)
    assert size == pytest.approx((50.0, 40.0))
    red = pixels[20, 25].astype(int)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


@pytest.mark.parametrize(
    ("data", "kwargs", "error", "status", "message"),
    [
        (
            b"%PDF-1.4",
            {"document_format": "text/plain"},
            formats.DocumentFormatNotSupported,
            0x040A,
            "text/plain",
        ),
        (
            b"hello",
            {"document_format": "application/octet-stream"},
            formats.DocumentFormatNotSupported,
            0x040A,
            "first bytes",
        ),
        (
            b"%PDF-1.4",
            {"document_format": "image/jpeg"},
            formats.DocumentFormatError,
            0x0411,
            "looks like application/pdf",
        ),
        (
            b"\xff\xd8\xff\xe0 broken",
            {"document_format": "image/jpeg"},
            formats.DocumentFormatError,
            0x0411,
            "JPEG cannot be",
        ),
        (
            b"RaS2" + bytes(100),
            {"document_format": "image/pwg-raster"},
            formats.DocumentFormatError,
            0x0411,
            "cut short",
        ),
        (b"", {"document_format": "application/pdf"}, formats.DocumentFormatError, 0x0411, "empty"),
        (
            b"%PDF-1.4",
            {"document_format": "application/pdf", "compression": "compress"},
            formats.CompressionNotSupported,
            0x040F,
            "compress",
        ),
        (
            b"not gzip",
            {"document_format": "application/pdf", "compression": "gzip"},
            formats.CompressionError,
            0x0410,
            "corrupt",
        ),
        (
            gzip.compress(b"%PDF-1.4 " * 100, mtime=0)[:30],
            {"document_format": "application/pdf", "compression": "gzip"},
            formats.CompressionError,
            0x0410,
            "truncated",
        ),
        (
            zlib.compress(b"%PDF-1.4") + b"junk",
            {"document_format": "application/pdf", "compression": "deflate"},
            formats.CompressionError,
            0x0410,
            "follow",
        ),
    ],
)
def test_refusals_name_the_problem(
    data: bytes, kwargs: dict[str, str], error: type[Exception], status: int, message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        formats.to_pdf(data, **kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, InvalidRequest)
    assert caught.value.ipp_status == status  # type: ignore[attr-defined]


def test_decompression_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)  # 64 MB from ~64 KB
    limits = formats.FormatLimits(max_bytes=1024 * 1024)
    with pytest.raises(formats.DocumentTooLarge, match="more than 1048576 bytes") as caught:
        formats.to_pdf(bomb, document_format="application/pdf", compression="gzip", limits=limits)
    assert isinstance(caught.value, PayloadTooLarge)
    assert caught.value.ipp_status == 0x0408
    with pytest.raises(formats.DocumentTooLarge):
        formats.to_pdf(
            b"%PDF-" + bytes(2000),
            document_format="application/pdf",
            limits=formats.FormatLimits(max_bytes=1000),
        )


def test_absurd_raster_and_jpeg_sizes_are_refused() -> None:
    huge = pwg.SYNC + pwg_header(width=100_000, height=100_000) + b"\x00\x80"
    with pytest.raises(formats.DocumentTooLarge, match="pixels per page"):
        formats.to_pdf(huge, document_format="image/pwg-raster")
    page = pwg_header(width=1000, height=1000) + encode_lines(np.zeros((1000, 3000), np.uint8), 3)
    limits = formats.FormatLimits(max_megapixels=2)
    with pytest.raises(formats.DocumentTooLarge, match="add up"):
        formats.to_pdf(pwg.SYNC + page * 3, document_format="image/pwg-raster", limits=limits)
    big = (
        urf.SYNC
        + bytes(4)
        + bytes([24, 1, 1, 4])
        + bytes(8)
        + bytes.fromhex("00ffffff00ffffff0000012c")
        + bytes(8)
    )
    with pytest.raises(formats.DocumentTooLarge):
        formats.to_pdf(big, document_format="image/urf")
    with pytest.raises(formats.DocumentTooLarge, match="JPEG of 640x480"):
        formats.to_pdf(
            jpeg_bytes(),
            document_format="image/jpeg",
            limits=formats.FormatLimits(max_page_pixels=1000),
        )


def test_limits_come_from_the_settings() -> None:
    class Settings:
        max_print_bytes = 1234
        max_job_megapixels = 7

    limits = formats.FormatLimits.from_settings(Settings())
    assert (limits.max_bytes, limits.raster.max_total_pixels) == (1234, 7_000_000)


def test_each_refusal_has_its_own_class_and_status() -> None:
    classes = [
        formats.DocumentFormatNotSupported,
        formats.CompressionNotSupported,
        formats.CompressionError,
        formats.DocumentFormatError,
        formats.DocumentTooLarge,
    ]
    assert len({c.ipp_status for c in classes}) == len({c.error for c in classes}) == 5


_REFUSALS = (
    formats.DocumentFormatNotSupported,
    formats.CompressionNotSupported,
    formats.CompressionError,
    formats.DocumentFormatError,
    formats.DocumentTooLarge,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        [
            b"",
            b"%PDF-",
            b"\xff\xd8\xff",
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
            b"RaS2",
            b"UNIRAST\x00",
        ]
    ),
    st.binary(max_size=3000),
    st.sampled_from(
        [
            "application/octet-stream",
            "image/jpeg",
            "image/pwg-raster",
            "image/urf",
            "application/pdf",
        ]
    ),
    st.sampled_from(["none", "gzip", "deflate"]),
    st.booleans(),
)
def test_any_bytes_get_a_converted_document_or_a_named_refusal(
    prefix: bytes, rest: bytes, declared: str, compression: str, compress: bool
) -> None:
    data = prefix + rest
    if compress and compression == "gzip":
        data = gzip.compress(data)
    elif compress and compression == "deflate":
        data = zlib.compress(data)
    limits = formats.FormatLimits(max_bytes=1 << 20, max_megapixels=2, max_page_pixels=1_000_000)
    with contextlib.suppress(*_REFUSALS):
        formats.to_pdf(data, document_format=declared, compression=compression, limits=limits)


def test_a_real_jpeg_cut_anywhere_is_refused_or_printed() -> None:
    whole = jpeg_bytes(64, 48)
    for cut in range(0, len(whole), 7):
        try:
            converted = formats.to_pdf(whole[:cut], document_format="image/jpeg")
        except _REFUSALS:
            continue
        assert render(converted.pdf)  # what was accepted opens in PDFium


@pytest.mark.peer("pdfinfo")
def test_the_pdf_is_clean_for_poppler_and_ghostscript(tmp_path: Path) -> None:
    """Beyond PDFium: poppler reads the file without a syntax warning, and Ghostscript
    interprets every page with -dPDFSTOPONERROR."""
    rows = np.full((40, 60), 90, np.uint8)
    one_bit = pwg_header(width=160, height=40, colors=1, color_space=3, bpc=1)
    raw = (
        pwg.SYNC
        + pwg_header(width=20, height=40, dpi=(150, 150))
        + encode_lines(rows, 3)
        + one_bit
        + encode_lines(np.zeros((40, 20), np.uint8), 1)
    )
    path = tmp_path / "out.pdf"
    path.write_bytes(formats.to_pdf(raw, document_format="image/pwg-raster").pdf)
    info = subprocess.run(
        [require_command("pdfinfo"), str(path)], capture_output=True, text=True, check=True
    )
    assert info.stderr == ""
    assert "Pages:           2" in info.stdout
    done = subprocess.run(
        [require_command("gs"), "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-dPDFSTOPONERROR",
         "-sDEVICE=nullpage", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""
