"""Issue 15's referee for a job that comes from CUPS: a PDF printed with `lp` on a private
cupsd, whose queue is a printcloud IPP Everywhere queue (`lpadmin -m everywhere`), goes
through printcloud to the printer's INFRA output device, the virtual printer as a proxy
(`InfraAgent` with `--forward`), and on to Debian's `ippeveprinter -k` as the office
printer. It must arrive there in the format the printer asked for (the PDF when it
takes PDF; PWG raster when it takes only that), with the right page count and pages
that look like `pdftoppm`'s of the source; the job ends `printed` in printcloud and
completed in CUPS, with its converted data and session gone."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from printcloud.demo.printing import make_brochure
from tests.conftest import require_command, require_peer
from tests.helpers.print_stack import PrintStack, print_stacks
from tests.helpers.printing import Tenant, assert_no_leftovers, wait_completed
from tests.ipp.conftest import Cups, Ippeve, ippeveprinter_running
from tests.ipp.rasters import CupsRasterReader
from tests.ipp.test_infra_device import Running, World, _key, _pdf_pages

USER, PASSWORD = "alice", "correct horse"
PAGES = 3
#: pdftoppm's resolution for comparing pages (enough for the brochure's shapes and text
#: lines, small enough to be quick).
COMPARE_DPI = 50


@dataclass
class CupsWorld(World):
    """A tenant with user alice and printcloud queues `pdf` (on color-1) and `raster`
    (on mono-1), each a CUPS queue of the same name on a private cupsd."""

    cups: Cups


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, cupsd: Cups) -> Iterator[CupsWorld]:
    lpadmin = require_command("lpadmin")
    require_peer(Path("/usr/lib/cups/filter/pdftopdf").exists(), "cups-filters is missing")
    with print_stacks(tmp_path_factory) as make_print_stack:
        stack: PrintStack = make_print_stack(workers=1)
        tenant = Tenant(stack)
        stack.user(tenant.id, USER, PASSWORD)
        stack.user(tenant.id, "root", "admin password", admin=True)
        admin = stack.api(stack.user_token(tenant.id, "root", "admin password", "admin print"))
        for name, printer in (("pdf", "color-1"), ("raster", "mono-1")):
            made = admin.post("/api/queues", json={"name": name, "printer_id": printer})
            assert made.status_code == 201, made.text
            creds = f"{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@"
            uri = made.json()["uri"].replace("ipp://", f"ipp://{creds}", 1)
            cupsd.run(lpadmin, "-p", f"infra-{name}", "-E", "-v", uri, "-m", "everywhere")
        yield CupsWorld(stack=stack, tenant=tenant, cups=cupsd)


def _lp(world: CupsWorld, queue: str, source: Path, title: str) -> str:
    # The source's size: without it this CUPS lays the A4 pages out on Letter.
    lp = require_command("lp")
    done = world.cups.run(lp, "-d", f"infra-{queue}", "-o", "media=A4", "-t", title, str(source))
    found = re.search(r"request id is (\S+)", done.stdout)
    assert found, done.stdout
    return found[1]


def _printed(world: CupsWorld, title: str) -> dict[str, Any]:
    """The printcloud job CUPS made with `title`, once it is final (180 s at most)."""
    deadline = time.monotonic() + 180
    while True:
        jobs = world.tenant.api.get("/api/jobs", params={"limit": 1000}).json()["jobs"]
        mine = [j for j in jobs if j["title"] == title and j["owner"] == USER]
        if mine and mine[0]["state"] in ("printed", "printer_cancelled", "cancelled", "expired"):
            return dict(mine[0])
        assert time.monotonic() < deadline, mine
        time.sleep(0.3)


def _kept(printer: Ippeve, suffix: str) -> Path:
    """The one document ippeveprinter kept (-k), once it is there (60 s at most)."""
    deadline = time.monotonic() + 60
    while not (kept := sorted(printer.spool.rglob(f"*.{suffix}"))):
        assert time.monotonic() < deadline, sorted(printer.spool.rglob("*"))
        time.sleep(0.2)
    assert len(kept) == 1, kept
    return kept[0]


def _completed_in_cups(world: CupsWorld, queue: str, cups_id: str) -> None:
    lpstat = require_command("lpstat")
    deadline = time.monotonic() + 120
    while cups_id not in world.cups.run(lpstat, "-W", "completed", "-o", f"infra-{queue}").stdout:
        assert time.monotonic() < deadline, f"CUPS never listed {cups_id} completed"
        time.sleep(0.3)


def _pdftoppm(pdf: Path, out: Path, *, dpi: int, gray: bool = False) -> list[np.ndarray]:
    out.mkdir()
    subprocess.run(
        [require_command("pdftoppm"), "-r", str(dpi), *(["-gray"] if gray else []), "-png",
         str(pdf), str(out / "page")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pages = []
    for path in sorted(out.glob("page*.png")):
        with Image.open(path) as image:
            pages.append(np.asarray(image.convert("L" if gray else "RGB")))
    return pages


def _blocks(pixels: np.ndarray, size: int = 4) -> np.ndarray:
    """Means of size x size blocks: where a page shifted, scaled or lost a shape shows,
    while two renderers' anti-aliasing of the same text does not."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w = pixels.shape[0] // size * size, pixels.shape[1] // size * size
    blocks = pixels[:h, :w].reshape(h // size, size, w // size, size, pixels.shape[2])
    return blocks.mean(axis=(1, 3))


def _looks_like(got: np.ndarray, want: np.ndarray, *, bound: float) -> None:
    h, w = min(got.shape[0], want.shape[0]), min(got.shape[1], want.shape[1])
    assert abs(got.shape[0] - want.shape[0]) <= 2 and abs(got.shape[1] - want.shape[1]) <= 2, (
        got.shape,
        want.shape,
    )
    diff = np.abs(_blocks(got[:h, :w]) - _blocks(want[:h, :w])).mean()
    assert diff < bound, f"mean absolute difference of the blocks {diff:.2f} >= {bound}"


@pytest.mark.peer("ippeveprinter")
def test_lp_to_a_printer_that_takes_pdf(
    world: CupsWorld, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """ippeveprinter takes PDF: the proxy fetches the PDF (printcloud's first choice)
    and ippeveprinter keeps a PDF whose pages are the source's."""
    source = tmp_path / "brochure.pdf"
    source.write_bytes(make_brochure(PAGES))
    with (
        ippeveprinter_running(tmp_path_factory) as office,
        Running(world.config("color-1", tmp_path / "proxy", forward=office.uri)) as proxy,
    ):
        cups_id = _lp(world, "pdf", source, "infra-pdf")
        job = _printed(world, "infra-pdf")
        assert job["state"] == "printed", job
        assert job["page_count"] == PAGES and job["pages_printed"] == PAGES
        wait_completed(world.tenant, job["job_id"])
        assert_no_leftovers(world.stack, job["job_id"])
        kept = _kept(office, "pdf")
        assert not list(office.spool.rglob("*.pwg")) and not list(office.spool.rglob("*.urf"))
        done = proxy.done(_key(job["job_id"])).outcome
        assert done is not None and done.outcome == "printed"
        assert (done.folder / "document.pdf").is_file()
    _completed_in_cups(world, "pdf", cups_id)
    assert kept.read_bytes().startswith(b"%PDF")
    assert _pdf_pages(kept) == PAGES
    want = _pdftoppm(source, tmp_path / "source", dpi=COMPARE_DPI)
    got = _pdftoppm(kept, tmp_path / "kept", dpi=COMPARE_DPI)
    assert len(got) == len(want) == PAGES
    for page_got, page_want in zip(got, want, strict=True):
        _looks_like(page_got, page_want, bound=3.0)


@pytest.mark.peer("ippeveprinter")
@pytest.mark.parametrize(
    ("document_format", "suffix"), [("image/pwg-raster", "pwg"), ("image/urf", "urf")]
)
def test_lp_to_a_printer_that_takes_only_raster(
    world: CupsWorld,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    document_format: str,
    suffix: str,
) -> None:
    """ippeveprinter started with `-f image/pwg-raster` (or `image/urf`) only: the proxy
    registers that, asks Fetch-Document for it, and forwards it; libcups reads every
    page, 8-bit gray (the mono printer's `sgray_8`, `W8`) at the job's resolution, and
    each looks like pdftoppm's gray rendering of the source at that resolution."""
    source = tmp_path / "brochure.pdf"
    source.write_bytes(make_brochure(PAGES))
    title = f"infra-{suffix}"
    with (
        ippeveprinter_running(tmp_path_factory, formats=document_format) as office,
        Running(world.config("mono-1", tmp_path / "proxy", forward=office.uri)) as proxy,
    ):
        cups_id = _lp(world, "raster", source, title)
        job = _printed(world, title)
        assert job["state"] == "printed", job
        assert job["page_count"] == PAGES and job["pages_printed"] == PAGES
        wait_completed(world.tenant, job["job_id"])
        assert_no_leftovers(world.stack, job["job_id"])
        kept = _kept(office, suffix)
        assert not list(office.spool.rglob("*.pdf"))
        done = proxy.done(_key(job["job_id"])).outcome
        assert done is not None and done.outcome == "printed"
        assert (done.folder / f"document.{suffix}").read_bytes() == kept.read_bytes()
    _completed_in_cups(world, "raster", cups_id)
    dpi = int(job["options"]["dpi"])
    raw = kept.read_bytes()
    if suffix == "pwg":
        header = raw[4 : 4 + 1796]
        assert header[:9] == b"PwgRaster"
        # PWG 5102.4: HWResolution at 276, BitsPerColor 384, ColorSpace 400 (18: sGray)
        assert int.from_bytes(header[276:280], "big") == dpi
        assert int.from_bytes(header[384:388], "big") == 8
        assert int.from_bytes(header[400:404], "big") == 18
    else:
        # UNIRAST, the page count, then the first page's header: 8 bits per pixel,
        # colour space 0 (sGray), the resolution at bytes 20-23
        assert raw[:8] == b"UNIRAST\0"
        assert int.from_bytes(raw[8:12], "big") == PAGES
        assert raw[12] == 8 and raw[13] == 0
        assert int.from_bytes(raw[12 + 20 : 12 + 24], "big") == dpi
    pages = CupsRasterReader().read(kept)
    assert len(pages) == PAGES
    want = _pdftoppm(source, tmp_path / "source", dpi=dpi, gray=True)
    assert len(want) == PAGES
    for ((width, height, bpl), pixels), page_want in zip(pages, want, strict=True):
        assert bpl == width  # 8 bits, one colorant
        got = np.frombuffer(pixels, np.uint8).reshape(height, width)
        _looks_like(got, page_want, bound=6.0)
