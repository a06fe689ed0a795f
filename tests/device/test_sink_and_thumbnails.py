"""A sink printer and the printed pages' thumbnails (issue 13, goals 2 and 3).

A sink printer (`printcloud device --sink`) takes every job of its work list
through the normal calls — started (S1401), metafile and every page downloaded
with the conversion token (S1404–S1406), result (S1413) — and counts the pages
printed without rendering them: no raster, no engine output, no thumbnail unless
asked. A printing printer uploads small thumbnails (at most 256 px on the long
side) that it makes itself, and a printer configured with no previews sends none;
the job's web page then says so instead of showing pictures.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from printcloud.device import thumbnails
from printcloud.device.agent import DeviceAgent, DeviceEvent, Journal
from printcloud.device.raster import A4, render_page
from tests.helpers.browser import PrintBrowser
from tests.helpers.printing import Tenant, assert_no_leftovers, make_pdf, wait_completed

WAITING = ("accepted", "token_issued", "downloaded", "converted", "waiting_for_printer", "printing")


def print_job(t: Tenant, agent: DeviceAgent, job_id: str) -> dict[str, Any]:
    """Poll with `agent` until the job is no longer waiting for it; the job then."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job = dict(t.api.get(f"/api/jobs/{job_id}").json())
        if job["state"] not in WAITING:
            return job
        if job["state"] in ("waiting_for_printer", "printing"):
            agent.poll_once()
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} was never printed")


def thumbnail(t: Tenant, job_id: str, number: int) -> Image.Image:
    answer = t.api.get(f"/api/jobs/{job_id}/pages/{number}/preview")
    assert answer.status_code == 200, answer.text
    assert answer.content.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(answer.content))
    image.load()
    return image


def test_a_sink_printer_completes_a_job_and_renders_nothing(
    make_print_stack: Any, tmp_path: Path
) -> None:
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    job = t.submit(make_pdf(3), "color-1", dpi=300)
    events: list[DeviceEvent] = []
    with t.device("color-1", tmp_path, sink=True) as agent:
        agent.on_event = events.append
        done = print_job(t, agent, job["job_id"])

    assert done["state"] == "printed", done
    assert done["pages_printed"] == 3 and done["page_count"] == 3
    steps = [e["step"] for e in done["history"]]
    for step in ("S108", "S109", "S110", "S111"):
        assert step in steps, steps
    # No raster: the job's folder holds the journal and nothing else (no PBM, no PNG).
    folder = tmp_path / job["job_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["journal.json"]
    journal = Journal.load(folder)
    assert journal is not None and journal.outcome == "printed" and journal.reported
    assert journal.pages_done == [1, 2, 3] and journal.previews_uploaded == []
    pages = [e for e in events if e.kind == "page"]
    assert [e.page for e in pages] == [1, 2, 3] and all(e.path is None for e in pages)
    # No thumbnails by default: the user's job has no previews.
    assert done["previews"] == 0
    assert t.api.get(f"/api/jobs/{job['job_id']}/pages/1/preview").status_code == 404
    wait_completed(t, job["job_id"])
    assert_no_leftovers(stack, job["job_id"])


def test_a_sink_printer_asked_for_previews_sends_thumbnails_of_the_pages_it_fetched(
    make_print_stack: Any, tmp_path: Path
) -> None:
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    job = t.submit(make_pdf(2), "color-1")
    with t.device("color-1", tmp_path, sink=True, previews=True) as agent:
        done = print_job(t, agent, job["job_id"])
    assert done["state"] == "printed" and done["pages_printed"] == 2 and done["previews"] == 2
    assert sorted(p.name for p in (tmp_path / job["job_id"]).iterdir()) == ["journal.json"]
    for number in (1, 2):
        image = thumbnail(t, job["job_id"], number)
        assert max(image.size) == thumbnails.THUMBNAIL_SIDE
        # The page's own colour (make_pdf: page i is ((50 i) % 256, 120, (255 - 30 i) % 256)):
        # the thumbnail was made from the page the printer downloaded.
        i = number - 1
        centre = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
        assert isinstance(centre, tuple)
        expected = ((50 * i) % 256, 120, (255 - 30 * i) % 256)
        assert all(abs(a - b) <= 12 for a, b in zip(centre, expected, strict=True)), centre


def test_a_printer_uploads_thumbnails_it_made_of_what_it_printed(
    make_print_stack: Any, tmp_path: Path
) -> None:
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    color = t.submit(make_pdf(1), "color-1", dpi=300)
    mono = t.submit(make_pdf(1), "mono-1", dpi=300)
    for printer, job, mode in (("color-1", color, "RGB"), ("mono-1", mono, "L")):
        with t.device(printer, tmp_path) as agent:
            done = print_job(t, agent, job["job_id"])
        assert done["state"] == "printed" and done["previews"] == 1
        # The engine output and the full-size local preview are written as before...
        folder = tmp_path / job["job_id"]
        assert (folder / "page-0001-K.pbm").is_file()
        assert (folder / "page-0001-preview.png").is_file()
        # ...and the platform gets a thumbnail: at most 256 px, gray for a mono page.
        image = thumbnail(t, job["job_id"], 1)
        assert max(image.size) <= thumbnails.THUMBNAIL_SIDE
        assert max(image.size) >= thumbnails.THUMBNAIL_SIDE * 0.9
        assert image.mode == mode


def test_a_printer_without_previews_prints_and_the_job_page_says_so(
    make_print_stack: Any, tmp_path: Path
) -> None:
    stack = make_print_stack(workers=1)
    tenant = stack.tenant()
    stack.user(tenant, "alice", "alice's password")
    device_id, device_secret = stack.client(tenant, kind="device", scope="device print")
    stack.printer(tenant, "p1", color=False, client_id=device_id)
    alice = PrintBrowser(stack, (tenant, "alice", "alice's password"))
    assert alice.open("/printing/").status_code == 200
    answer = alice.submit(printer="p1", pdf=make_pdf(2), color="mono")
    assert answer.status_code == 303, answer.text[:1000]
    job_id = answer.headers["location"].rsplit("/", 1)[-1]

    from printcloud.device.agent import DeviceConfig

    config = DeviceConfig(
        server=stack.base_url,
        tenant_id=tenant,
        printer_id="p1",
        client_id=device_id,
        client_secret=device_secret,
        out_dir=tmp_path,
        previews=False,
    )
    assert not config.sends_previews
    with DeviceAgent(config) as agent:
        deadline = time.monotonic() + 90
        while True:
            page = alice.http.get(f"/printing/jobs/{job_id}")
            assert page.status_code == 200, page.text[:1000]
            if 'class="badge printed"' in page.text:
                break
            assert time.monotonic() < deadline, "the job was never printed"
            agent.poll_once()
            time.sleep(0.1)
    assert (tmp_path / job_id / "page-0002-K.pbm").is_file()  # printed for real
    assert 'class="previews"' not in page.text and "/preview.png" not in page.text
    assert '<p class="muted" id="no-previews">2 page(s) printed;' in page.text
    assert "No page printed yet." not in page.text
    assert alice.http.get(f"/printing/jobs/{job_id}/pages/1/preview.png").status_code == 404


def test_printcloud_device_sink_once(make_print_stack: Any, tmp_path: Path) -> None:
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    job = t.submit(make_pdf(2), "mono-1")
    stack.wait_for(t.api, job["job_id"], "waiting_for_printer")
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "printcloud",
            "device",
            "--server",
            stack.base_url,
            "--tenant",
            t.id,
            "--printer-id",
            "mono-1",
            "--client-id",
            t.dev_id,
            "--out",
            str(tmp_path),
            "--sink",
            "--once",
        ],
        env={**stack.env, "PRINTCLOUD_DEVICE_SECRET": t.dev_secret},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert printed.returncode == 0, printed.stdout + printed.stderr
    assert "printed" in printed.stdout and "preview" not in printed.stdout
    done = stack.wait_for(t.api, job["job_id"], "printed")
    assert done["pages_printed"] == 2 and done["previews"] == 0
    journal = json.loads((tmp_path / job["job_id"] / "journal.json").read_text())
    assert journal["pages_done"] == [1, 2]
    assert not list(tmp_path.rglob("*.pbm")) and not list(tmp_path.rglob("*.png"))


# -- thumbnails without a stack -----------------------------------------------------


def _page_jpeg(color: tuple[int, int, int], size: tuple[int, int] = (1240, 1754)) -> bytes:
    pixels = np.empty((size[1], size[0], 3), np.uint8)
    pixels[:] = color
    return bytes(simplejpeg.encode_jpeg(pixels, quality=85, colorspace="RGB"))


@pytest.mark.parametrize(("color", "mode"), [(True, "RGB"), (False, "L")])
def test_a_rendered_page_makes_a_thumbnail_of_at_most_256_px(color: bool, mode: str) -> None:
    page = render_page(_page_jpeg((200, 40, 40)), color=color, dpi=150, media=A4)
    image = Image.open(io.BytesIO(thumbnails.of_rendered(page)))
    assert max(image.size) <= 256 and max(image.size) >= 230
    assert image.mode == mode
    # A4 keeps its shape.
    assert abs(image.height / image.width - 297 / 210) < 0.02


def test_a_jpeg_thumbnail_keeps_the_page_and_refuses_what_is_not_a_jpeg() -> None:
    image = Image.open(io.BytesIO(thumbnails.of_jpeg(_page_jpeg((20, 90, 200)))))
    assert image.size[1] == 256 and image.mode == "RGB"
    centre = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(centre, tuple)
    assert all(abs(a - b) <= 6 for a, b in zip(centre, (20, 90, 200), strict=True)), centre
    with pytest.raises(ValueError):
        thumbnails.of_jpeg(b"\x89PNG\r\n\x1a\nnot a jpeg")
