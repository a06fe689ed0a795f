"""Document formats in, PDF out: what an IPP client may send, made into today's print data.

The print path takes PDF (seed 003, S1307–S1308 convert PDF pages). IPP Everywhere
clients also send JPEG, PWG raster and Apple raster (IPP Everywhere, PWG 5100.14,
requires `image/pwg-raster` of a printer; phones send `image/jpeg`; AirPrint sends
`image/urf`), maybe compressed (RFC 8011 §4.2.1.1 `compression`, §5.4.32 `compression-supported`).
`to_pdf` turns any of them into PDF bytes for the intake:

- `application/pdf`: unchanged (the intake inspects it as today);
- `image/jpeg`: one page, the JPEG's own bytes embedded (DCTDecode), not
  re-encoded, unless it is CMYK or EXIF-rotated; its page is its pixel size at
  its resolution (JFIF/EXIF density, 72 dpi when it has none), scaled down to fit
  A4 when larger (IPP `print-scaling` `auto`: fit what is too large, never enlarge);
- `image/pwg-raster` (`ipp/pwg.py`), `image/urf` (`ipp/urf.py`): one page per
  raster page, exactly its pixel size at its resolution; gray and colour pages as
  JPEG (simplejpeg, quality 90, 4:4:4), 1-bit pages lossless (FlateDecode, 1 bit per
  pixel); CMYK pages become sRGB through Ghostscript's CMYK profile (`cmyk_to_rgb`),
  the one the virtual printer separates with again;
- `application/octet-stream`: sniffed by magic (`%PDF-`, JPEG's SOI `FF D8 FF`,
  `RaS2`, `UNIRAST`), then as above.

`compression` is `none`, `gzip` (RFC 1952) or `deflate` (RFC 1951; a zlib-wrapped
RFC 1950 stream, which some clients send, is accepted too). Decompression stops
as soon as the output passes `FormatLimits.max_bytes`, so a decompression bomb
costs at most that much memory; raster headers are checked against the pixel
limits before any page buffer exists (`ipp/pwg.RasterLimits`).

Errors (each a `core.errors` class with its HTTP status, and `ipp_status`, the
RFC 8011 Appendix B.1.4 client-error status code the IPP handlers answer with):

    DocumentFormatNotSupported  400  0x040A client-error-document-format-not-supported
    CompressionNotSupported     400  0x040F client-error-compression-not-supported
    CompressionError            400  0x0410 client-error-compression-error
    DocumentFormatError         400  0x0411 client-error-document-format-error
    DocumentTooLarge            413  0x0408 client-error-request-entity-too-large
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from printcloud.core.errors import InvalidRequest, PayloadTooLarge
from printcloud.ipp import pwg, urf

from .convert import DEFAULT_MAX_PAGE_PIXELS, DEFAULT_MAX_PAGES

log = logging.getLogger(__name__)

__all__ = [
    "COMPRESSIONS",
    "DOCUMENT_FORMATS",
    "CompressionError",
    "CompressionNotSupported",
    "ConvertedDocument",
    "DocumentFormatError",
    "DocumentFormatNotSupported",
    "DocumentTooLarge",
    "FormatLimits",
    "decompress",
    "sniff",
    "to_pdf",
]

PDF = "application/pdf"
JPEG = "image/jpeg"
PWG_RASTER = "image/pwg-raster"
URF = "image/urf"
OCTET_STREAM = "application/octet-stream"
#: `document-format-supported`, in the order a printer lists them.
DOCUMENT_FORMATS = (PDF, JPEG, PWG_RASTER, URF, OCTET_STREAM)
#: `compression-supported`.
COMPRESSIONS = ("none", "deflate", "gzip")

JPEG_QUALITY = 90
#: The page a JPEG larger than it is fitted into (A4 in points, either way round).
FIT_PAGE = (595.276, 841.89)
_CHUNK = 1024 * 1024


class DocumentFormatNotSupported(InvalidRequest):
    error = "document_format_not_supported"
    ipp_status = 0x040A


class CompressionNotSupported(InvalidRequest):
    error = "compression_not_supported"
    ipp_status = 0x040F


class CompressionError(InvalidRequest):
    error = "compression_error"
    ipp_status = 0x0410


class DocumentFormatError(InvalidRequest):
    error = "document_format_error"
    ipp_status = 0x0411


class DocumentTooLarge(PayloadTooLarge):
    error = "document_too_large"
    ipp_status = 0x0408


@dataclass(frozen=True)
class FormatLimits:
    """Bounds of one document: decompressed bytes, pixels per page and in all, pages."""

    max_bytes: int = 200 * 1024 * 1024
    max_megapixels: int = 10_000
    max_page_pixels: int = DEFAULT_MAX_PAGE_PIXELS
    max_pages: int = DEFAULT_MAX_PAGES

    @classmethod
    def from_settings(cls, settings: Any) -> FormatLimits:
        """From `PRINTCLOUD_MAX_PRINT_BYTES` and `PRINTCLOUD_MAX_JOB_MEGAPIXELS`."""
        return cls(max_bytes=settings.max_print_bytes, max_megapixels=settings.max_job_megapixels)

    @property
    def raster(self) -> pwg.RasterLimits:
        return pwg.RasterLimits(
            max_page_pixels=self.max_page_pixels,
            max_total_pixels=self.max_megapixels * 1_000_000,
            max_pages=self.max_pages,
        )


@dataclass(frozen=True)
class ConvertedDocument:
    """The PDF to print, the format the data turned out to be, and its pages (None: PDF)."""

    pdf: bytes
    document_format: str
    page_count: int | None


def _media_type(document_format: str | None) -> str:
    # "image/pwg-raster; foo=bar" and "Image/JPEG" name the same format (RFC 2046).
    return (document_format or OCTET_STREAM).split(";", 1)[0].strip().lower()


def sniff(data: bytes) -> str | None:
    """The format named by the data's first bytes, or None."""
    if data.startswith(pwg.SYNC):
        return PWG_RASTER
    if data.startswith(urf.SYNC):
        return URF
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    # PDF readers accept (and some producers write) bytes before the header.
    if b"%PDF-" in data[:1024]:
        return PDF
    return None


def decompress(data: bytes, *, compression: str | None, max_bytes: int) -> bytes:
    """Undo `compression`, never producing more than `max_bytes` (`DocumentTooLarge`)."""
    name = (compression or "none").strip().lower()
    if name == "none":
        if len(data) > max_bytes:
            raise DocumentTooLarge(f"the document is larger than {max_bytes} bytes")
        return data
    if name == "gzip":
        return _inflate(data, wbits=16 + zlib.MAX_WBITS, name=name, max_bytes=max_bytes)
    if name != "deflate":
        raise CompressionNotSupported(
            f"compression {compression!r} is not supported (one of {', '.join(COMPRESSIONS)})"
        )
    # A zlib header (RFC 1950): method 8, and the first two bytes a multiple of 31. Raw
    # DEFLATE can start like one by chance (about 1 in 500), so it gets its turn after.
    if len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0:
        try:
            return _inflate(data, wbits=zlib.MAX_WBITS, name=name, max_bytes=max_bytes)
        except CompressionError as wrapped:
            try:
                return _inflate(data, wbits=-zlib.MAX_WBITS, name=name, max_bytes=max_bytes)
            except CompressionError:
                raise wrapped from None  # it looked like zlib: say what zlib found
    return _inflate(data, wbits=-zlib.MAX_WBITS, name=name, max_bytes=max_bytes)


def _inflate(data: bytes, *, wbits: int, name: str, max_bytes: int) -> bytes:
    out = bytearray()
    rest = data
    try:
        while True:  # gzip allows several members one after the other (RFC 1952 §2.2)
            engine = zlib.decompressobj(wbits)
            pending = rest
            while pending:
                # One byte over the limit is enough to know the limit is passed.
                out += engine.decompress(pending, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise DocumentTooLarge(
                        f"the document decompresses to more than {max_bytes} bytes"
                    )
                pending = engine.unconsumed_tail
                if engine.eof:
                    break
            if not engine.eof:
                raise CompressionError(f"the {name} stream is truncated")
            rest = engine.unused_data
            if name != "gzip" or not rest:
                break
    except zlib.error as exc:
        raise CompressionError(f"the {name} stream is corrupt: {exc}") from exc
    if rest:
        raise CompressionError(f"{len(rest)} bytes follow the end of the {name} stream")
    return bytes(out)


def to_pdf(
    data: bytes,
    *,
    document_format: str | None,
    compression: str | None = None,
    limits: FormatLimits | None = None,
) -> ConvertedDocument:
    """Document bytes as sent (`document-format`, `compression`) → PDF for the intake."""
    limits = limits or FormatLimits()
    declared = _media_type(document_format)
    if declared not in DOCUMENT_FORMATS:
        raise DocumentFormatNotSupported(
            f"document-format {declared!r} is not supported (one of {', '.join(DOCUMENT_FORMATS)})"
        )
    data = decompress(data, compression=compression, max_bytes=limits.max_bytes)
    if not data:
        raise DocumentFormatError("the document is empty (0 bytes)")
    found = sniff(data)
    if declared == OCTET_STREAM:
        if found is None:
            raise DocumentFormatNotSupported(
                "application/octet-stream: the data is not PDF, JPEG, PWG raster or Apple "
                "raster (by its first bytes)"
            )
        declared = found
    elif found != declared:
        raise DocumentFormatError(
            f"the data is not {declared}"
            + (f": it looks like {found}" if found else " (by its first bytes)")
        )
    if declared == PDF:
        return ConvertedDocument(pdf=data, document_format=PDF, page_count=None)
    if declared == JPEG:
        return ConvertedDocument(pdf=_jpeg_pdf(data, limits), document_format=JPEG, page_count=1)
    reader = pwg.read_pages if declared == PWG_RASTER else urf.read_pages
    builder = PdfBuilder()
    try:
        for page in reader(data, limits=limits.raster, reuse=True):
            _add_raster_page(builder, page)
    except pwg.RasterTooLarge as exc:
        raise DocumentTooLarge(exc.description) from exc
    except pwg.RasterError as exc:
        raise DocumentFormatError(exc.description) from exc
    return ConvertedDocument(
        pdf=builder.finish(), document_format=declared, page_count=builder.page_count
    )


# -- raster pages ---------------------------------------------------------------------


def _add_raster_page(builder: PdfBuilder, page: pwg.RasterPage) -> None:
    h = page.header
    size = page.size_points
    if h.bits_per_color == 1 and -1 not in (h.cross_feed_transform, h.feed_transform):
        # Lossless and small: the rows are already PDF's 1-bit rows (padded to bytes).
        builder.add_image_page(
            zlib.compress(page.data.tobytes(), 6),
            width=h.width,
            height=h.height,
            size=size,
            color_space="/DeviceGray",
            bits=1,
            filter_name="/FlateDecode",
            decode_inverted=not h.color_space.additive,
        )
        return
    pixels = page.pixels()
    if pixels.shape[2] == 4:
        pixels = cmyk_to_rgb(pixels)
    jpeg = _encode(pixels)
    space = "/DeviceGray" if pixels.shape[2] == 1 else "/DeviceRGB"
    builder.add_image_page(
        jpeg,
        width=h.width,
        height=h.height,
        size=size,
        color_space=space,
        bits=8,
        filter_name="/DCTDecode",
    )


def _encode(pixels: np.ndarray) -> bytes:
    if pixels.shape[2] == 1:
        return bytes(simplejpeg.encode_jpeg(pixels, JPEG_QUALITY, "GRAY", "Gray"))
    return bytes(simplejpeg.encode_jpeg(pixels, JPEG_QUALITY, "RGB", "444"))


#: The CMYK profile a CMYK page is read with: Ghostscript's (SWOP), the one the virtual
#: printer separates with (device/raster.py), so a CMYK page comes back near its inks.
CMYK_PROFILES = (
    Path("/usr/share/color/icc/ghostscript/default_cmyk.icc"),
    Path("/usr/share/ghostscript/iccprofiles/default_cmyk.icc"),
)


@functools.cache
def _cmyk_transform() -> ImageCms.ImageCmsTransform | None:
    for path in CMYK_PROFILES:
        try:
            return ImageCms.buildTransform(
                ImageCms.getOpenProfile(str(path)),
                ImageCms.createProfile("sRGB"),
                "CMYK",
                "RGB",
                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            )
        except (OSError, ImageCms.PyCMSError):
            continue
    log.warning("no CMYK profile in %s: CMYK pages use the naive formula", CMYK_PROFILES)
    return None


def cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    """CMYK pixels to sRGB through the CMYK profile (LittleCMS), or when there is none
    the naive formula of PDF (ISO 32000-1 §10.3.5): R = 255 − min(255, C + K)…"""
    transform = _cmyk_transform()
    if transform is not None:
        image = ImageCms.applyTransform(Image.fromarray(cmyk, "CMYK"), transform)
        if image is not None:
            return np.asarray(image)
    wide = cmyk.astype(np.uint16)
    return (255 - np.minimum(255, wide[..., :3] + wide[..., 3:4])).astype(np.uint8)


# -- JPEG -----------------------------------------------------------------------------


def _jpeg_pdf(data: bytes, limits: FormatLimits) -> bytes:
    try:
        with warnings.catch_warnings():
            # The page limit below is ours; Pillow's own bomb check is not.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["JPEG"])
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DocumentFormatError(f"the JPEG cannot be read: {exc}") from exc
    width, height = image.size
    if width * height > limits.max_page_pixels:
        raise DocumentTooLarge(
            f"a JPEG of {width}x{height} pixels is larger than the limit of "
            f"{limits.max_page_pixels} pixels per page"
        )
    orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation
    dpi = _density(image.info.get("dpi"))
    try:
        if image.mode in ("L", "RGB") and orientation == 1:
            # Decode at 1/8 scale: every entropy-coded byte is still read, so a
            # truncated or corrupt JPEG fails here and not in the conversion worker.
            image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
            jpeg, space = data, "/DeviceGray" if image.mode == "L" else "/DeviceRGB"
        else:
            image.load()
            upright = ImageOps.exif_transpose(image)
            rgb = np.asarray(upright.convert("L" if upright.mode in ("L", "1") else "RGB"))
            if rgb.ndim == 2:
                rgb = rgb[..., None]
            width, height = rgb.shape[1], rgb.shape[0]
            jpeg = _encode(np.ascontiguousarray(rgb))
            space = "/DeviceGray" if rgb.shape[2] == 1 else "/DeviceRGB"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DocumentFormatError(f"the JPEG cannot be decoded: {exc}") from exc
    builder = PdfBuilder()
    builder.add_image_page(
        jpeg,
        width=width,
        height=height,
        size=jpeg_page_size(width, height, dpi),
        color_space=space,
        bits=8,
        filter_name="/DCTDecode",
    )
    return builder.finish()


def _density(value: object) -> float | None:
    if isinstance(value, tuple) and len(value) == 2:
        try:
            x, y = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            return None
        if x >= 1 and abs(x - y) < 0.5:
            return x
    return None


def jpeg_page_size(width: int, height: int, dpi: float | None) -> tuple[float, float]:
    """The page of a JPEG, in points: its size at `dpi` (72 if None), fitted into A4."""
    scale = 72.0 / (dpi or 72.0)
    w, h = width * scale, height * scale
    box_w, box_h = FIT_PAGE if h >= w else FIT_PAGE[::-1]
    fit = min(1.0, box_w / w, box_h / h)
    return w * fit, h * fit


# -- PDF ------------------------------------------------------------------------------


class PdfBuilder:
    """A PDF 1.4 of full-page images (ISO 32000-1 §7.5 file structure, §8.9 images).

    Pages hold compressed image bytes only, so a 1000-page raster job costs its
    JPEGs in memory, not its pixels.
    """

    def __init__(self) -> None:
        self._out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self._offsets: dict[int, int] = {}
        self._pages: list[int] = []
        self._next = 3  # 1: catalog, 2: page tree (written last)

    @property
    def page_count(self) -> int:
        return len(self._pages)

    def _object(self, number: int, body: bytes, stream: bytes | None = None) -> None:
        self._offsets[number] = len(self._out)
        self._out += b"%d 0 obj\n" % number + body
        if stream is not None:
            self._out += b"\nstream\n" + stream + b"\nendstream"
        self._out += b"\nendobj\n"

    def add_image_page(
        self,
        image: bytes,
        *,
        width: int,
        height: int,
        size: tuple[float, float],
        color_space: str,
        bits: int,
        filter_name: str,
        decode_inverted: bool = False,
    ) -> None:
        page, contents, xobject = self._next, self._next + 1, self._next + 2
        self._next += 3
        w, h = (f"{v:.4f}".rstrip("0").rstrip(".") for v in size)
        decode = " /Decode [1 0]" if decode_inverted else ""
        self._object(
            xobject,
            (
                f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
                f"/ColorSpace {color_space} /BitsPerComponent {bits}{decode} "
                f"/Filter {filter_name} /Length {len(image)} >>"
            ).encode(),
            image,
        )
        draw = f"q {w} 0 0 {h} 0 0 cm /Im0 Do Q".encode()
        self._object(contents, b"<< /Length %d >>" % len(draw), draw)
        self._object(
            page,
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w} {h}] "
                f"/Resources << /XObject << /Im0 {xobject} 0 R >> >> /Contents {contents} 0 R >>"
            ).encode(),
        )
        self._pages.append(page)

    def finish(self) -> bytes:
        kids = " ".join(f"{n} 0 R" for n in self._pages)
        self._object(2, f"<< /Type /Pages /Kids [{kids}] /Count {len(self._pages)} >>".encode())
        self._object(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        xref = len(self._out)
        count = self._next
        lines = [b"xref\n0 %d\n" % count, b"0000000000 65535 f \n"]
        lines += [b"%010d 00000 n \n" % self._offsets[n] for n in range(1, count)]
        self._out += b"".join(lines)
        self._out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            count,
            xref,
        )
        return bytes(self._out)
