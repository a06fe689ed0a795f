"""The printed pages' thumbnails the printer sends to the print service (seed 003,
S110: the user's job page shows each page as printed; issue 13 goal 2).

A thumbnail is a PNG of at most `THUMBNAIL_SIDE` pixels on its long side, made by
the printer, and only when the printer is configured to send previews
(`DeviceConfig.sends_previews`); the platform makes them only for an IPP INFRA job
fetched as PDF, which has no way to send them (`printing/previews.py`). Three sources:

- `of_rendered`: a rendered page (what the engine printed), its ink coverage
  averaged over cells of whole dots (`RenderedPage.thumbnail`);
- `of_jpeg`: the downloaded page itself, for a sink printer that renders nothing;
  libjpeg-turbo scales by 1/2 … 1/8 while decoding, so this costs a fraction of a
  full decode;
- `of_file`: the local preview written beside the engine output, for a page
  printed before a restart whose thumbnail never reached the server.

Gray pages (mono, or a colour page without chroma) are stored as 8-bit gray PNG:
a third of the RGB bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image

from printcloud.device.raster import RenderedPage

__all__ = ["THUMBNAIL_SIDE", "of_file", "of_jpeg", "of_rendered", "png"]

#: The long side of a thumbnail, in pixels (the job page shows them about 160 px wide).
THUMBNAIL_SIDE = 256


def png(image: Image.Image) -> bytes:
    """`image` as PNG; gray when its channels are equal everywhere."""
    if image.mode == "RGB":
        pixels = np.asarray(image)
        if np.array_equal(pixels[:, :, 0], pixels[:, :, 1]) and np.array_equal(
            pixels[:, :, 1], pixels[:, :, 2]
        ):
            image = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]), "L")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def of_rendered(page: RenderedPage, side: int = THUMBNAIL_SIDE) -> bytes:
    return png(page.thumbnail(side))


def of_jpeg(jpeg: bytes, side: int = THUMBNAIL_SIDE) -> bytes:
    """A thumbnail of a page JPEG; `ValueError` when the bytes are not a JPEG."""
    height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
    scale = side / max(width, height, 1)
    # The smallest DCT-scaled size at least as large as the thumbnail, then a filter.
    pixels = simplejpeg.decode_jpeg(
        jpeg,
        colorspace="RGB",
        min_width=max(1, int(width * scale)),
        min_height=max(1, int(height * scale)),
    )
    image = Image.fromarray(pixels, "RGB")
    image.thumbnail((side, side), Image.Resampling.BILINEAR)
    return png(image)


def of_file(path: Path, side: int = THUMBNAIL_SIDE) -> bytes:
    with Image.open(path) as stored:
        image = stored.convert("RGB")
    image.thumbnail((side, side), Image.Resampling.BILINEAR)
    return png(image)
