"""The document of an IPP job (issue 14; RFC 8011 §4.2.1.1 document-format and
compression, §5.2.7 page-ranges): which format it is, and its bytes as the PDF
today's intake takes.

The conversion is `formats.to_pdf` (PDF unchanged; JPEG, PWG raster and Apple raster
to PDF pages; `application/octet-stream` sniffed; gzip/deflate undone, bounded);
here are the request's checks before any job exists (`document_format`), the
mapping of its errors to IPP statuses (`DocumentError`), and `page-ranges` on the
resulting PDF (the pages kept, in order, through pypdfium2).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pypdfium2 as pdfium

from printcloud.core.errors import InvalidRequest
from printcloud.core.settings import Settings
from printcloud.ipp.message import Attribute, IPPError, ValueTag
from printcloud.ipp.model import Range, Status
from printcloud.ipp.operations import Request

from . import formats

OCTET_STREAM = formats.OCTET_STREAM
#: document-format-supported: application/octet-stream first (its default).
FORMATS: tuple[str, ...] = (
    OCTET_STREAM,
    *(f for f in formats.DOCUMENT_FORMATS if f != OCTET_STREAM),
)


class DocumentError(InvalidRequest):
    """A document the queue cannot take, with the IPP status that says why."""

    def __init__(self, status: Status, description: str) -> None:
        super().__init__(description, field="document")
        self.status = status


Fail = Callable[..., IPPError]


def document_format(request: Request, *, formats: tuple[str, ...], fail: Fail) -> str:
    """The request's document-format (default application/octet-stream) when the queue
    takes it and its compression is one the queue undoes; IPPError otherwise."""
    ops = request.operation_attributes
    attr = ops.get("document-format")
    fmt = OCTET_STREAM
    if attr is not None:
        if len(attr.values) != 1 or attr.tag != ValueTag.MIME_MEDIA_TYPE:
            raise fail(Status.CLIENT_ERROR_BAD_REQUEST, "document-format must be one mimeMediaType")
        fmt = str(attr.value).lower().split(";", 1)[0].strip()
        if fmt not in formats:
            raise fail(
                Status.CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED,
                f"document-format {fmt} is not supported",
                [Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, fmt)],
            )
    compression = ops.get("compression")
    if compression is not None and (
        len(compression.values) != 1 or str(compression.value) not in formats_compressions()
    ):
        raise fail(
            Status.CLIENT_ERROR_COMPRESSION_NOT_SUPPORTED,
            f"compression {compression.value!r} is not supported",
            [compression],
        )
    return fmt


def formats_compressions() -> tuple[str, ...]:
    return tuple(formats.COMPRESSIONS)


def compression_of(request: Request) -> str:
    attr = request.operation_attributes.get("compression")
    return str(attr.value) if attr is not None else "none"


def page_ranges(values: list[Range], *, pages: int) -> list[int]:
    """The 0-based pages `page-ranges` keeps, in document order (RFC 8011 §5.2.7)."""
    keep = sorted({p - 1 for r in values for p in range(r.lower, min(r.upper, pages) + 1)})
    return [p for p in keep if 0 <= p < pages]


def select_pages(pdf: bytes, ranges: list[Range]) -> bytes:
    """The PDF with only the pages in `ranges`; DocumentError when none is left."""
    try:
        source = pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as exc:
        raise DocumentError(Status.CLIENT_ERROR_DOCUMENT_FORMAT_ERROR, "unreadable PDF") from exc
    try:
        keep = page_ranges(ranges, pages=len(source))
        if not keep:
            raise DocumentError(
                Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
                f"page-ranges selects none of the document's {len(source)} page(s)",
            )
        out = pdfium.PdfDocument.new()
        try:
            out.import_pages(source, keep)
            buffer = io.BytesIO()
            out.save(buffer)
            return buffer.getvalue()
        finally:
            out.close()
    finally:
        source.close()


def to_pdf(
    data: bytes,
    fmt: str,
    *,
    compression: str,
    settings: Settings,
    ranges: list[Range] | None = None,
) -> bytes:
    """The document as PDF for the intake (which reads and bounds it further)."""
    try:
        converted = formats.to_pdf(
            data,
            document_format=fmt,
            compression=compression,
            limits=formats.FormatLimits.from_settings(settings),
        )
    except (formats.DocumentTooLarge, InvalidRequest) as exc:
        status = getattr(exc, "ipp_status", Status.CLIENT_ERROR_DOCUMENT_FORMAT_ERROR)
        raise DocumentError(Status(status), exc.description) from exc
    if ranges:
        return select_pages(converted.pdf, ranges)
    return converted.pdf
