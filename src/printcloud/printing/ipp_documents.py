"""The document of an IPP job (issue 14; RFC 8011 §4.2.1.1 document-format and
compression, §5.4.32 compression-supported): which format it is, and its bytes as
the PDF today's intake takes.

`compression` gzip (RFC 1952) and deflate (RFC 1951, or zlib-wrapped as some clients
send it) are undone here with a bound: no more than `PRINTCLOUD_MAX_PRINT_BYTES`
come out, however small the compressed document (no decompression bombs).
`application/octet-stream` is answered by sniffing the first bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from printcloud.core.errors import InvalidRequest
from printcloud.core.settings import Settings
from printcloud.ipp.message import Attribute, IPPError, ValueTag
from printcloud.ipp.model import Status
from printcloud.ipp.operations import Request

OCTET_STREAM = "application/octet-stream"
PDF = "application/pdf"
#: The formats a queue takes, `application/octet-stream` first (its default).
FORMATS: tuple[str, ...] = (OCTET_STREAM, PDF)
COMPRESSIONS = ("none", "gzip", "deflate")
_MAGIC = ((b"%PDF-", PDF),)


class DocumentError(InvalidRequest):
    """A document the queue cannot take, with the IPP status that says why."""

    def __init__(self, status: Status, description: str) -> None:
        super().__init__(description, field="document")
        self.status = status


Fail = Callable[..., IPPError]


def document_format(request: Request, *, formats: tuple[str, ...], fail: Fail) -> str:
    """The request's document-format (default application/octet-stream) if the queue
    takes it, and its compression; IPPError with the RFC 8011 status otherwise."""
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
        len(compression.values) != 1 or str(compression.value) not in COMPRESSIONS
    ):
        raise fail(
            Status.CLIENT_ERROR_COMPRESSION_NOT_SUPPORTED,
            f"compression {compression.value!r} is not supported",
            [compression],
        )
    return fmt


def compression_of(request: Request) -> str:
    attr = request.operation_attributes.get("compression")
    return str(attr.value) if attr is not None else "none"


def decompress(data: bytes, compression: str, *, limit: int) -> bytes:
    """`data` uncompressed, refused past `limit` bytes or when it does not inflate."""
    if compression == "none":
        return data
    if compression == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif data[:1] == b"\x78":  # a zlib header: RFC 1950-wrapped deflate
        wbits = zlib.MAX_WBITS
    else:
        wbits = -zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise DocumentError(
            Status.CLIENT_ERROR_COMPRESSION_ERROR, f"the {compression} document does not inflate"
        ) from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise DocumentError(
            Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE,
            f"the document is larger than {limit} bytes uncompressed",
        )
    if not inflater.eof:
        raise DocumentError(
            Status.CLIENT_ERROR_COMPRESSION_ERROR, f"the {compression} document is truncated"
        )
    return out


def sniff(data: bytes) -> str | None:
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def to_pdf(data: bytes, fmt: str, *, compression: str, settings: Settings) -> bytes:
    """The document as PDF for the intake (which reads and bounds it further)."""
    raw = decompress(data, compression, limit=settings.max_print_bytes)
    if fmt == OCTET_STREAM:
        found = sniff(raw)
        if found is None:
            raise DocumentError(
                Status.CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED,
                "the document's format could not be recognised",
            )
        fmt = found
    if fmt == PDF:
        return raw
    raise DocumentError(
        Status.CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED, f"document-format {fmt} is not supported"
    )
