"""The previews of a job's pages on its status page (seed 003, S110).

A JSON-API printer sends each printed page's thumbnail itself (`jobs.store_preview`,
made by the device, `device/thumbnails.py`). An IPP INFRA output device has no
operation for that, so for a job its printer fetches as the PDF itself (PDF
pass-through, issue 15: `pipeline`'s `convert_beside`) the conversion worker makes
them from the JPEG pages it converted beside the printing (`make`): the same
`previews/{job}/page-NNNN.png` blobs, at most `SIDE` pixels on the long side.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from PIL import Image

from printcloud.core.blobs import FileBlobStore

from .convert import page_name

#: The long side of a preview, in pixels (as the devices' thumbnails).
SIDE = 256


def preview_key(job_id: str, number: int) -> str:
    return f"previews/{job_id}/page-{number:04d}.png"


def thumbnail(jpeg: BinaryIO, side: int = SIDE) -> bytes:
    """A PNG of at most `side` pixels of a page JPEG: libjpeg scales by 1/2 … 1/8 while
    decoding (`draft`), so a 300 dpi page costs a fraction of a full decode. A gray page
    stays gray (a third of the bytes)."""
    with Image.open(jpeg) as image:
        image.draft(image.mode, (side, side))
        small = image.convert("L" if image.mode == "L" else "RGB")
    small.thumbnail((side, side), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    small.save(out, "PNG", compress_level=6)
    return out.getvalue()


def make(blobs: FileBlobStore, *, prefix: str, job_id: str, pages: int) -> int:
    """The previews of a converted job's `pages` (JPEGs under `prefix`), those not made
    yet (a repeated call finishes what a cut-short one began); answers how many exist."""
    for number in range(1, pages + 1):
        key = preview_key(job_id, number)
        if blobs.exists(key):
            continue
        with blobs.path(f"{prefix}/{page_name(number)}").open("rb") as page:
            blobs.put(key, thumbnail(page))
    return pages
