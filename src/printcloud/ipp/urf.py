"""Apple raster (URF, `image/urf`, "UNIRAST"): a bounded decoder on `ipp/pwg.py`'s lines.

Apple has not published URF; this follows the layout that CUPS's raster reader
and Ghostscript's `urf`/`appleraster` devices agree on (both read here, see
tests/ipp/test_urf.py):

- the file header: `UNIRAST\\0` (8 bytes) and the page count, a big-endian
  unsigned 32-bit integer (0 when the writer did not know it);
- one 32-byte page header per page (`read_header`): byte 0 bits per pixel,
  1 colour space (0 sGray, 1 sRGB, 2 CIELab, 3 AdobeRGB, 4 DeviceW,
  5 DeviceRGB, 6 DeviceCMYK), 2 duplex (1 one-sided, 2 short edge, 3 long
  edge), 3 print quality (3 draft, 4 normal, 5 high), 4 media type,
  5 input slot; bytes 12–15 the width, 16–19 the height, 20–23 the
  resolution in dpi (one value for both directions), all big-endian;
- the page's lines in PWG 5102.4 line compression (`pwg.decode_pixels`):
  line repeat, then runs of repeated and literal pixels; 128 fills the rest of
  the line with white (0xFF for the gray and RGB spaces, 0x00 for CMYK).

URF has 8 or 16 bits per colour (AirPrint's `urf-supported`: W8, SRGB24,
DEVCMYK32, …). Ghostscript's `urf` device writes 1-bit pages when asked for no
depth, labelled sGray although 1 means black there: they are refused, as are
CIELab pages (`RasterError`): no client this service meets sends them, and a
PDF page is RGB, gray or CMYK.
Sizes are checked against `pwg.RasterLimits` before anything is allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .pwg import (
    ColorSpace,
    PageHeader,
    RasterError,
    RasterLimits,
    RasterPage,
    check_geometry,
    decode_stream,
)

__all__ = [
    "FILE_HEADER_SIZE",
    "PAGE_HEADER_SIZE",
    "SYNC",
    "URF_TYPES",
    "UrfFileHeader",
    "file_header",
    "read_header",
    "read_pages",
]

SYNC = b"UNIRAST\0"
FILE_HEADER_SIZE = 12
PAGE_HEADER_SIZE = 32

#: URF colour space byte -> CUPS colour space (2, CIELab, is refused).
_COLOR_SPACES = {
    0: ColorSpace.SGRAY,
    1: ColorSpace.SRGB,
    3: ColorSpace.ADOBE_RGB,
    4: ColorSpace.W,
    5: ColorSpace.RGB,
    6: ColorSpace.CMYK,
}


#: The colour-space-and-depth keywords of `urf-supported` this decoder reads (the
#: printer adds its own: `V1.4`, `CP1`, `RS300-600`, `DM1`…), with their header bytes.
URF_TYPES: dict[str, tuple[int, int]] = {
    "W8": (0, 8),
    "W16": (0, 16),
    "SRGB24": (1, 24),
    "SRGB48": (1, 48),
    "ADOBERGB24": (3, 24),
    "ADOBERGB48": (3, 48),
    "DEVW8": (4, 8),
    "DEVW16": (4, 16),
    "DEVRGB24": (5, 24),
    "DEVRGB48": (5, 48),
    "DEVCMYK32": (6, 32),
    "DEVCMYK64": (6, 64),
}


@dataclass(frozen=True)
class UrfFileHeader:
    page_count: int


def read_header(raw: bytes | memoryview) -> PageHeader:
    """Parse and check one 32-byte URF page header into the PWG header fields it carries."""
    raw = bytes(raw)
    if len(raw) != PAGE_HEADER_SIZE:
        raise RasterError(f"a URF page header is {PAGE_HEADER_SIZE} bytes, not {len(raw)}")
    bpp, space, duplex, quality = raw[0], raw[1], raw[2], raw[3]
    width, height, dpi = struct.unpack_from(">3I", raw, 12)
    color_space = _COLOR_SPACES.get(space)
    if color_space is None:
        name = "CIELab" if space == 2 else str(space)
        raise RasterError(f"URF colour space {name} is not supported")
    colors = color_space.colors
    bits_per_color = bpp // colors if bpp % colors == 0 else 0
    if bits_per_color not in (8, 16):
        raise RasterError(f"{bpp} bits per pixel in URF colour space {space} is not supported")
    bytes_per_line = (width * bpp + 7) // 8
    check_geometry(
        width=width,
        height=height,
        resolution=(dpi, dpi),
        bits_per_color=bits_per_color,
        bits_per_pixel=bpp,
        bytes_per_line=bytes_per_line,
        color_space=color_space,
    )
    return PageHeader(
        width=width,
        height=height,
        resolution=(dpi, dpi),
        bits_per_color=bits_per_color,
        bits_per_pixel=bpp,
        bytes_per_line=bytes_per_line,
        color_space=color_space,
        duplex=duplex >= 2,
        tumble=duplex == 2,
        print_quality=quality,
    )


def read_pages(
    data: bytes, *, limits: RasterLimits | None = None, reuse: bool = False
) -> Iterator[RasterPage]:
    """Yield the pages of a URF stream, one at a time, each checked before decoding.

    `reuse`: as `pwg.read_pages` (a page's data is overwritten by the next one's).
    """
    limits = limits or RasterLimits()
    if data[:8] != SYNC:
        raise RasterError("not Apple raster: the stream does not start with 'UNIRAST'")
    if len(data) < FILE_HEADER_SIZE:
        raise RasterError("the URF file header is cut short")
    yield from decode_stream(
        data,
        start=FILE_HEADER_SIZE,
        header_size=PAGE_HEADER_SIZE,
        read_header=read_header,
        limits=limits,
        reuse=reuse,
        kind="URF",
    )


def file_header(data: bytes) -> UrfFileHeader:
    """The page count the writer announced (0: not known)."""
    if data[:8] != SYNC or len(data) < FILE_HEADER_SIZE:
        raise RasterError("not Apple raster: the stream does not start with 'UNIRAST'")
    (pages,) = struct.unpack_from(">I", data, 8)
    return UrfFileHeader(page_count=pages)
