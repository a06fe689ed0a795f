"""Raster for printers that fetch it (issue 15): a job's converted pages as PWG raster or
Apple raster (URF), encoded by a conversion worker as it is sent.

A conversion worker answers `POST /sessions/{job}/{printer}/raster` (`worker.py`) with
the document, streamed page by page (chunked: its length is known only at the end):
each converted JPEG page is read from the blob store, fitted to the sheet at the
printer's resolution, made into the asked type and encoded (`ipp.raster_encode`), so
one page's pixels are in memory at a time. The print service's Fetch-Document
(`infra_operations.py`) streams it on to the output device behind its IPP answer.

Types, and what each page becomes (`printcloud.imaging.halftone`, the code the virtual
printer's engine prints with, so a real printer gets the dots and inks printcloud's
own printer would put on paper):

| type | page |
|---|---|
| `srgb_8`, `SRGB24` | sRGB (a mono job: its gray in three channels) |
| `sgray_8`, `W8` | luma, decoded as gray |
| `black_1` | 255 - luma, 8x8 ordered dither: the engine's mono plane |
| `cmyk_8` | the engine's separation before halftoning (a mono job: K alone) |

`choose` picks the type and resolution from the printer's registered attributes
(Update-Output-Device-Attributes: `pwg-raster-document-type-supported`,
`pwg-raster-document-resolution-supported`, `pwg-raster-document-sheet-back`,
`urf-supported`); a printer that registered none of them gets what every IPP
Everywhere printer reads: `srgb_8`/`sgray_8`, `SRGB24`/`W8`, at the job's resolution.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, Field

from printcloud.core.errors import InvalidRequest
from printcloud.imaging import halftone
from printcloud.ipp import pwg, raster_encode
from printcloud.ipp.message import Attribute
from printcloud.ipp.model import Resolution, ResolutionUnits

PWG, URF = "image/pwg-raster", "image/urf"
#: The types a page may be made into, per format.
TYPES = {PWG: tuple(raster_encode.PWG_TYPES), URF: tuple(raster_encode.URF_ENCODE_TYPES)}
#: printcloud's order of preference among the types a printer reads: continuous tone
#: first (the printer halftones for its own engine), then the engine's halftone
#: (black_1) or separation (cmyk_8); a colour job keeps its colour while it can.
PREFERENCE = {
    (PWG, True): ("srgb_8", "cmyk_8", "sgray_8", "black_1"),
    (PWG, False): ("sgray_8", "black_1", "srgb_8", "cmyk_8"),
    (URF, True): ("SRGB24", "W8"),
    (URF, False): ("W8", "SRGB24"),
}
#: What a printer that registered no raster attributes is sent (IPP Everywhere's own).
DEFAULT_TYPES = {PWG: ("srgb_8", "sgray_8"), URF: ("SRGB24", "W8")}
#: Page sizes at most (pixels), as the engine refuses larger page images.
MAX_PAGE_PIXELS = halftone.MAX_IMAGE_PIXELS
#: The bytes of the document yielded at a time.
CHUNK = 1024 * 1024
#: One page encoded at a time per worker process: it is CPU work (a worker is a core).
_ENCODING = threading.Lock()


class RasterRequest(BaseModel):
    """What a conversion worker needs to make a job's raster (`POST S/raster`)."""

    tenant_id: str = Field(min_length=1, max_length=64)
    #: The job's conversion token (FIG. 10): the worker checks it as for its pages.
    token: str = Field(min_length=1, max_length=200)
    format: Literal["image/pwg-raster", "image/urf"]
    type: str = Field(min_length=1, max_length=16)
    dpi: int = Field(ge=pwg.MIN_DPI, le=2400)
    #: The job's colour: a colour page is decoded as RGB, a mono one as gray.
    color: bool = True
    #: The PWG self-describing media name, and its size in hundredths of a millimetre.
    media: str = Field(default="iso_a4_210x297mm", max_length=63)
    media_width: int = Field(default=21000, ge=100, le=200_000)
    media_height: int = Field(default=29700, ge=100, le=200_000)
    sides: Literal["one-sided", "two-sided-long-edge", "two-sided-short-edge"] = "one-sided"
    sheet_back: Literal["normal", "flipped", "rotated", "manual-tumble"] = "normal"

    def page_pixels(self) -> tuple[int, int]:
        """The sheet in pixels at `dpi`, as the engine counts them (`Media.pixels`)."""
        return (
            round(self.media_width / 2540 * self.dpi),
            round(self.media_height / 2540 * self.dpi),
        )

    def check(self) -> None:
        """Refuse what cannot be made (InvalidRequest, HTTP 400)."""
        if self.type not in TYPES[self.format]:
            raise InvalidRequest(
                f"{self.format} type {self.type!r} is not one of {', '.join(TYPES[self.format])}",
                field="type",
            )
        width, height = self.page_pixels()
        if width * height > MAX_PAGE_PIXELS:
            raise InvalidRequest(f"a page of {width} x {height} pixels is too large", field="dpi")


def _pixels(request: RasterRequest, jpeg: bytes) -> tuple[Any, int | None]:
    """One page as the type's array (and the width of a packed 1-bit page)."""
    page = request.page_pixels()
    kind = request.type
    if kind in ("srgb_8", "SRGB24"):
        if request.color:
            return halftone.rgb_page(jpeg, page=page), None
        gray = halftone.gray_page(jpeg, page=page)
        return gray[:, :, None].repeat(3, axis=2), None
    if kind in ("sgray_8", "W8"):
        return halftone.gray_page(jpeg, page=page), None
    if kind == "black_1":
        return halftone.black_1_page(jpeg, page=page), page[0]
    return halftone.cmyk_8_page(jpeg, page=page, color=request.color), None


def encode_pages(request: RasterRequest, pages: Sequence[BinaryIO]) -> Iterator[bytes]:
    """The document: its file header, then each page encoded as it is reached, in chunks
    of at most `CHUNK` bytes. The pages are closed at the end (or when it is abandoned)."""
    options = raster_encode.PageOptions(
        resolution=(request.dpi, request.dpi),
        sides=request.sides,
        media=request.media,
        sheet_back=request.sheet_back,
    )
    try:
        if request.format == URF:
            yield raster_encode.urf_file_header(len(pages))
        else:
            yield pwg.SYNC
        for number, source in enumerate(pages, 1):
            with source:
                jpeg = source.read()
            with _ENCODING:
                pixels, width = _pixels(request, jpeg)
                del jpeg
                if request.format == URF:
                    data = raster_encode.urf_page(pixels, urf_type=request.type, options=options)
                else:
                    data = raster_encode.pwg_page(
                        pixels,
                        document_type=request.type,
                        options=options,
                        page_number=number,
                        total_pages=len(pages),
                        width=width,
                    )
                del pixels
            view = memoryview(data)
            for start in range(0, len(view), CHUNK):
                yield bytes(view[start : start + CHUNK])
    finally:
        for source in pages:
            source.close()


# -- what a printer is sent --------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """The type, resolution and back-side handling a printer is sent for one format."""

    format: str
    type: str
    dpi: int
    sheet_back: str = "normal"


def _values(attributes: Sequence[Attribute], name: str) -> list[Any] | None:
    for attribute in attributes:
        if attribute.name == name:
            return list(attribute.values)
    return None


def _nearest(dpi: int, offered: Sequence[int]) -> int | None:
    """The job's resolution when offered, else the lowest offered above it (no detail
    lost), else the highest offered."""
    if not offered:
        return None
    if dpi in offered:
        return dpi
    above = [d for d in offered if d > dpi]
    return min(above) if above else max(offered)


def choose(fmt: str, *, color: bool, dpi: int, attributes: Sequence[Attribute]) -> Choice | None:
    """What a printer with the registered `attributes` is sent as `fmt` (PWG or URF), or
    None when it reads none of the types printcloud makes in that format."""
    if fmt == PWG:
        types = _values(attributes, "pwg-raster-document-type-supported")
        kinds = [str(t) for t in types] if types is not None else list(DEFAULT_TYPES[PWG])
        resolutions = _values(attributes, "pwg-raster-document-resolution-supported")
        square = [
            r.x
            for r in resolutions or []
            if isinstance(r, Resolution)
            and r.units == ResolutionUnits.DOTS_PER_INCH
            and r.x == r.y
            and pwg.MIN_DPI <= r.x <= 2400
        ]
        if resolutions is not None and not square:
            return None  # printcloud's pages have one resolution for both directions
        chosen_dpi = _nearest(dpi, square) if square else dpi
        back = _values(attributes, "pwg-raster-document-sheet-back")
        sheet_back = str(back[0]) if back else "normal"
        if sheet_back not in ("normal", "flipped", "rotated", "manual-tumble"):
            sheet_back = "normal"
    else:
        urf_supported = _values(attributes, "urf-supported")
        keywords = [str(k) for k in urf_supported] if urf_supported is not None else None
        kinds = keywords if keywords is not None else list(DEFAULT_TYPES[URF])
        offered: list[int] = []
        for keyword in keywords or []:
            if keyword.startswith("RS"):
                offered += [int(v) for v in keyword[2:].split("-") if v.isdigit()]
        chosen_dpi = _nearest(dpi, offered) if offered else dpi
        sheet_back = "normal"
    kind = next((k for k in PREFERENCE[(fmt, color)] if k in kinds), None)
    if kind is None or chosen_dpi is None:
        return None
    return Choice(format=fmt, type=kind, dpi=chosen_dpi, sheet_back=sheet_back)


def warm_up() -> None:
    """Compile (or load from numba's cache) the encoder's and the imaging kernels."""
    raster_encode.warm_up()
    halftone.warm_up()
