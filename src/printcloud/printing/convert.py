"""PDF → one JPEG per page + a metafile (seed 003, FIG. 8, step S1308).

The download/convert server reads the print data (S1307), converts "the PDF
data into several pages of JPEG data and a metafile in which the URL of each
page's JPEG data is written" (S1308, ¶0096); the metafile is final once the
download URL is decided (S1314, ¶0099). The printer downloads the metafile
and then each page from the URLs it lists (FIG. 9, S1404–S1406).

Here the metafile is `{prefix}/manifest.json`, a `Manifest` in JSON; the pages
are `{prefix}/page-0001.jpg`… in a `FileBlobStore`, and `{base_url}/page-0001.jpg`
is the URL the printer fetches with its token. The manifest is written last,
so its presence means the conversion is complete.

Rendering is pypdfium2 (PDFium); encoding is simplejpeg, which takes PDFium's
BGR or gray buffer as it is and encodes it about twice as fast as Pillow
(measured on `bench-data/doc10.pdf`; see `bench/conversion.py`).

Threads: PDFium is not thread-safe — no two PDFium calls may run at the same
time in one process, not even on different documents (pypdfium2's "Python
API" preface). Every PDFium call here holds `PDFIUM_LOCK`; JPEG encoding and
blob writes run outside it. One conversion is a two-stage pipeline: the
calling thread renders page N + 1 while the conversion's encoder thread
encodes, hashes and stores page N; both run without the GIL (PDFium through
ctypes, libjpeg-turbo through simplejpeg), so a conversion keeps up to two
cores busy, and at most one rendered page waits for the encoder (memory: two
pages' bitmaps). To convert in parallel, run one conversion per process (the
conversion workers do). Code elsewhere in the process that calls pypdfium2
must hold `PDFIUM_LOCK` too.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import simplejpeg
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from printcloud.core.blobs import FileBlobStore
from printcloud.core.errors import InvalidRequest, PayloadTooLarge

__all__ = [
    "ENCODER_THREAD",
    "MANIFEST_NAME",
    "MAX_DPI",
    "MIN_DPI",
    "PDFIUM_LOCK",
    "Manifest",
    "PageEntry",
    "PageSize",
    "PdfInfo",
    "check_job_pixels",
    "convert_pdf",
    "inspect_pdf",
    "manifest_key",
    "page_name",
]

MIN_DPI = 72
MAX_DPI = 600
DEFAULT_MAX_PAGES = 1000
#: One rendered page may hold at most this many pixels (A3 at 600 dpi is 69.6 MP):
#: a 200-inch page at 600 dpi would otherwise allocate gigabytes.
DEFAULT_MAX_PAGE_PIXELS = 120_000_000
MANIFEST_NAME = "manifest.json"

#: Held around every PDFium call in this process (see the module docstring).
PDFIUM_LOCK = threading.RLock()

ColorMode = Literal["color", "mono"]


@dataclass(frozen=True)
class PageSize:
    """A page's size in PDF points (1/72 inch), after its /Rotate."""

    width: float
    height: float

    def pixels(self, dpi: int) -> tuple[int, int]:
        """The rendered size at `dpi`, rounded up as PDFium does."""
        scale = dpi / 72
        return math.ceil(self.width * scale), math.ceil(self.height * scale)


@dataclass(frozen=True)
class PdfInfo:
    page_count: int
    page_sizes: tuple[PageSize, ...]


class PageEntry(BaseModel):
    """One page of the converted data, as the metafile lists it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(ge=1)
    url: str
    width: int = Field(ge=1, description="pixels")
    height: int = Field(ge=1, description="pixels")
    dpi: int
    color_mode: ColorMode
    content_type: Literal["image/jpeg"] = "image/jpeg"
    size: int = Field(ge=0, description="bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Manifest(BaseModel):
    """The metafile of seed 003: the document and the URL of each page's JPEG."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    page_count: int = Field(ge=1)
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    source_size: int = Field(ge=0, description="bytes")
    dpi: int
    color_mode: ColorMode
    quality: int
    pages: tuple[PageEntry, ...]

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        try:
            manifest = cls.model_validate_json(data)
        except ValidationError as exc:
            raise InvalidRequest(f"not a page manifest: {exc}", field="manifest") from exc
        if len(manifest.pages) != manifest.page_count:
            raise InvalidRequest(
                f"manifest lists {len(manifest.pages)} pages but says page_count "
                f"{manifest.page_count}",
                field="manifest",
            )
        return manifest


def page_name(number: int) -> str:
    return f"page-{number:04d}.jpg"


def manifest_key(prefix: str) -> str:
    return f"{prefix.strip('/')}/{MANIFEST_NAME}"


# -- inspecting ------------------------------------------------------------------


def inspect_pdf(data: bytes, *, max_pages: int = DEFAULT_MAX_PAGES) -> PdfInfo:
    """Page count and page sizes, or `InvalidRequest` saying why the PDF cannot be printed."""
    with PDFIUM_LOCK:
        doc = _open(data)
        try:
            count = _check_page_count(len(doc), max_pages)
            sizes = tuple(_page_size(doc, index) for index in range(count))
        finally:
            doc.close()
    return PdfInfo(page_count=count, page_sizes=sizes)


def check_job_pixels(info: PdfInfo, *, dpi: int, max_megapixels: int) -> int:
    """The pixels the job renders to, all pages at `dpi`, or `PayloadTooLarge` (413)
    naming the limit: a page larger than one page may be (`DEFAULT_MAX_PAGE_PIXELS`),
    or the pages together more than `max_megapixels` (`PRINTCLOUD_MAX_JOB_MEGAPIXELS`).

    Page sizes only (from the PDF's page tree, nothing rendered), so it is cheap at intake.
    """
    total = 0
    for number, size in enumerate(info.page_sizes, start=1):
        width, height = size.pixels(dpi)
        if width * height > DEFAULT_MAX_PAGE_PIXELS:
            raise PayloadTooLarge(
                f"page {number} is {size.width:.0f}x{size.height:.0f} pt: {width}x{height} px "
                f"at {dpi} dpi is more than {DEFAULT_MAX_PAGE_PIXELS // 1_000_000} megapixels, "
                "the limit per page",
                field="file",
            )
        total += width * height
    if total > max_megapixels * 1_000_000:
        raise PayloadTooLarge(
            f"the PDF's {info.page_count} page(s) are {math.ceil(total / 1_000_000):,} megapixels "
            f"at {dpi} dpi; a job may be at most {max_megapixels:,} megapixels "
            "(PRINTCLOUD_MAX_JOB_MEGAPIXELS)",
            field="file",
        )
    return total


def _open(data: bytes) -> pdfium.PdfDocument:
    if not data:
        raise InvalidRequest("the file is empty", field="file")
    # PDF 2.0 §7.5.2 lets the header start anywhere in the first 1024 bytes; PDFium agrees.
    if b"%PDF-" not in data[:1024]:
        raise InvalidRequest("not a PDF: no %PDF- header in the first 1024 bytes", field="file")
    # PDFium refuses a document with an empty page tree without setting its
    # last error, which still holds the previous failure's code. A failed
    # file open sets FPDF_ERR_FILE, which loading from memory never sets, so
    # finding it after the load means "no error set": no pages.
    pdfium_c.FPDF_LoadDocument(_NO_SUCH_FILE, None)
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise InvalidRequest(_load_error(exc.err_code), field="file") from exc


_NO_SUCH_FILE = b"/dev/null/printcloud-no-such-file"


def _load_error(code: int | None) -> str:
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        return "the PDF is password-protected; send it without a password to print it"
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return "the PDF is encrypted with an unsupported security handler"
    if code in (pdfium_c.FPDF_ERR_FILE, pdfium_c.FPDF_ERR_SUCCESS):
        return "the PDF has no pages"
    return "the PDF is damaged or truncated and cannot be read"


def _check_page_count(count: int, max_pages: int) -> int:
    if count < 1:
        raise InvalidRequest("the PDF has no pages", field="file")
    if count > max_pages:
        raise InvalidRequest(
            f"the PDF has {count} pages; at most {max_pages} are accepted", field="file"
        )
    return count


def _load_page(doc: pdfium.PdfDocument, index: int) -> pdfium.PdfPage:
    try:
        return doc[index]
    except pdfium.PdfiumError as exc:
        raise InvalidRequest(f"page {index + 1} of the PDF cannot be read", field="file") from exc


def _page_size(doc: pdfium.PdfDocument, index: int) -> PageSize:
    page = _load_page(doc, index)
    try:
        return _size_of(page, index)
    finally:
        page.close()


def _size_of(page: pdfium.PdfPage, index: int) -> PageSize:
    width, height = page.get_size()
    if not (width > 0 and height > 0):
        raise InvalidRequest(f"page {index + 1} of the PDF has no area", field="file")
    return PageSize(float(width), float(height))


# -- converting ------------------------------------------------------------------


def convert_pdf(
    data: bytes,
    *,
    dpi: int,
    color: bool,
    quality: int = 85,
    store: FileBlobStore,
    prefix: str,
    base_url: str,
    on_page: Callable[[int, int], None] | None = None,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_page_pixels: int = DEFAULT_MAX_PAGE_PIXELS,
    max_total_pixels: int | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Manifest:
    """Render every page, store `prefix/page-NNNN.jpg` and `prefix/manifest.json`.

    Page N + 1 is rendered while page N is encoded and written (see the module
    docstring), so memory holds two pages' bitmaps and one JPEG, plus `data`.
    `on_start(total)` is called once the document is open and checked, before the
    first page; `on_page(done, total)` after each page is stored, in page order, from
    the conversion's encoder thread (a callback that raises fails the conversion).
    An encoder failure is the job's: a page libjpeg-turbo refuses (a side over 65,500
    pixels) raises `InvalidRequest` naming it, and a failure of the page in the
    encoder wins over one of the page being rendered after it. The encoder thread
    has ended when this returns or raises. `max_total_pixels` bounds all pages together at `dpi`
    (checked from the page sizes before any page is rendered, as intake does: the
    data a worker downloads may not be what intake saw). Mono pages are
    rendered by PDFium in grayscale and stored as one-channel JPEGs. On any
    error the pages written so far are deleted and nothing is left under
    `prefix` by this call.
    """
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise InvalidRequest(f"dpi must be between {MIN_DPI} and {MAX_DPI}, not {dpi}", field="dpi")
    if not 1 <= quality <= 100:
        raise InvalidRequest(
            f"JPEG quality must be between 1 and 100, not {quality}", field="quality"
        )
    prefix = prefix.strip("/")
    store.path(manifest_key(prefix))  # refuses a bad prefix before any work
    base_url = base_url.rstrip("/")
    mode: ColorMode = "color" if color else "mono"
    written: list[str] = []
    try:
        pages = _convert(
            data,
            dpi=dpi,
            mode=mode,
            quality=quality,
            store=store,
            prefix=prefix,
            base_url=base_url,
            on_page=on_page,
            max_pages=max_pages,
            max_page_pixels=max_page_pixels,
            max_total_pixels=max_total_pixels,
            on_start=on_start,
            written=written,
        )
        manifest = Manifest(
            page_count=len(pages),
            source_sha256=hashlib.sha256(data).hexdigest(),
            source_size=len(data),
            dpi=dpi,
            color_mode=mode,
            quality=quality,
            pages=tuple(pages),
        )
        store.put(manifest_key(prefix), manifest.to_json())
    except BaseException:
        for key in written:
            store.delete(key)
        raise
    return manifest


def _convert(
    data: bytes,
    *,
    dpi: int,
    mode: ColorMode,
    quality: int,
    store: FileBlobStore,
    prefix: str,
    base_url: str,
    on_page: Callable[[int, int], None] | None,
    max_pages: int,
    max_page_pixels: int,
    max_total_pixels: int | None,
    on_start: Callable[[int], None] | None,
    written: list[str],
) -> list[PageEntry]:
    with PDFIUM_LOCK:
        doc = _open(data)
    try:
        with PDFIUM_LOCK:
            total = _check_page_count(len(doc), max_pages)
            if max_total_pixels is not None:
                _check_total_pixels(doc, total, dpi=dpi, limit=max_total_pixels)
            # Filled-in form fields are part of what the user sees, so they are printed.
            doc.init_forms()
        if on_start is not None:
            on_start(total)
        # The pipeline: this thread renders page N + 1 while one encoder thread encodes,
        # hashes and stores page N (PDFium and libjpeg-turbo both run without the GIL).
        # At most one page waits for the encoder, so memory holds two pages' bitmaps.
        # The executor's exit joins the encoder, on success and on failure alike.
        pages: list[PageEntry] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=ENCODER_THREAD) as encoder:
            pending: _Pending | None = None
            try:
                for index in range(total):
                    bitmap = _render_page(
                        doc, index, dpi=dpi, mode=mode, max_pixels=max_page_pixels
                    )
                    try:
                        if pending is not None:
                            done, pending = pending, None
                            pages.append(done.finish())
                        name = page_name(index + 1)
                        key = f"{prefix}/{name}"
                        written.append(key)  # before the encoder may store it
                        future = encoder.submit(
                            _store_page,
                            bitmap.to_numpy(),
                            number=index + 1,
                            total=total,
                            key=key,
                            url=f"{base_url}/{name}",
                            dpi=dpi,
                            mode=mode,
                            quality=quality,
                            store=store,
                            on_page=on_page,
                        )
                    except BaseException:
                        _close_bitmap(bitmap)
                        raise
                    pending = _Pending(future, bitmap)
                if pending is not None:
                    done, pending = pending, None
                    pages.append(done.finish())
            except Exception:
                if pending is not None:
                    earlier = pending.abandon()
                    if earlier is not None:
                        # The page in the encoder came first: its failure is the job's.
                        raise earlier from None
                raise
            except BaseException:
                if pending is not None:
                    pending.abandon()
                raise
        return pages
    finally:
        with PDFIUM_LOCK:
            doc.close()


#: The name (prefix) of a conversion's encoder thread.
ENCODER_THREAD = "printcloud-jpeg"


class _Pending:
    """A page handed to the encoder: its future and the PDFium bitmap it reads."""

    def __init__(self, future: Future[PageEntry], bitmap: pdfium.PdfBitmap) -> None:
        self.future = future
        self.bitmap = bitmap

    def finish(self) -> PageEntry:
        """The page's entry once stored; the encoder's exception if it failed."""
        try:
            return self.future.result()
        finally:
            _close_bitmap(self.bitmap)  # the encoder is done with its pixels either way

    def abandon(self) -> BaseException | None:
        """Wait for the encoder to let go of the bitmap (PDFium frees the pixels it reads),
        free it, and return the encoder's exception, if any. Not cancelled: which page
        failed first must not depend on how far the encoder had got."""
        try:
            exc = self.future.exception()
        finally:
            _close_bitmap(self.bitmap)
        return exc


def _close_bitmap(bitmap: pdfium.PdfBitmap) -> None:
    with PDFIUM_LOCK:
        bitmap.close()


def _store_page(
    pixels: np.ndarray[Any, Any],
    *,
    number: int,
    total: int,
    key: str,
    url: str,
    dpi: int,
    mode: ColorMode,
    quality: int,
    store: FileBlobStore,
    on_page: Callable[[int, int], None] | None,
) -> PageEntry:
    """The encoder thread's work on one page: JPEG, SHA-256, store, progress."""
    try:
        jpeg, width, height = _encode(pixels, mode=mode, quality=quality)
    except ValueError as exc:  # libjpeg-turbo's refusal, e.g. a side over 65,500 pixels
        raise InvalidRequest(
            f"page {number} could not be encoded as JPEG: {exc}", field="file"
        ) from exc
    del pixels
    store.put(key, jpeg)
    entry = PageEntry(
        number=number,
        url=url,
        width=width,
        height=height,
        dpi=dpi,
        color_mode=mode,
        size=len(jpeg),
        sha256=hashlib.sha256(jpeg).hexdigest(),
    )
    if on_page is not None:
        on_page(number, total)
    return entry


def _check_total_pixels(doc: pdfium.PdfDocument, count: int, *, dpi: int, limit: int) -> None:
    pixels = 0
    for index in range(count):
        width, height = _page_size(doc, index).pixels(dpi)
        pixels += width * height
    if pixels > limit:
        raise InvalidRequest(
            f"the PDF's {count} page(s) are {math.ceil(pixels / 1_000_000):,} megapixels at "
            f"{dpi} dpi; a job may be at most {limit // 1_000_000:,} megapixels",
            field="file",
        )


def _render_page(
    doc: pdfium.PdfDocument, index: int, *, dpi: int, mode: ColorMode, max_pixels: int
) -> pdfium.PdfBitmap:
    """One page rendered: BGR, or one gray byte per pixel for mono (PDFium's own
    grayscale render, no RGB pass). The caller closes the bitmap (under the lock)."""
    with PDFIUM_LOCK:
        page = _load_page(doc, index)
        try:
            size = _size_of(page, index)
            width, height = size.pixels(dpi)
            if width * height > max_pixels:
                raise InvalidRequest(
                    f"page {index + 1} is {size.width:.0f}x{size.height:.0f} pt: "
                    f"{width}x{height} px at {dpi} dpi is more than {max_pixels} pixels",
                    field="dpi",
                )
            # optimize_mode="print" sets FPDF_PRINTING: annotations follow their
            # print flags, as a viewer's Print command does.
            return page.render(scale=dpi / 72, grayscale=mode == "mono", optimize_mode="print")
        finally:
            page.close()


def _encode(
    pixels: np.ndarray[Any, Any], *, mode: ColorMode, quality: int
) -> tuple[bytes, int, int]:
    # `pixels` is a view on PDFium's buffer: BGR, or one gray byte per pixel.
    height, width = pixels.shape[:2]
    pixels = np.ascontiguousarray(pixels)  # a copy only if PDFium padded the rows
    if mode == "mono":
        jpeg = simplejpeg.encode_jpeg(
            pixels.reshape(height, width, 1), quality=quality, colorspace="GRAY"
        )
    else:
        # 4:2:0, as Pillow does by default below quality 90.
        jpeg = simplejpeg.encode_jpeg(
            pixels, quality=quality, colorspace="BGR", colorsubsampling="420"
        )
    return bytes(jpeg), width, height
