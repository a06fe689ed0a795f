"""The PDF workload's limits (issue 11, item 9).

Intake refuses a job whose pages, all together at the job's dpi, are more
pixels than `PRINTCLOUD_MAX_JOB_MEGAPIXELS` (413, no job), reading only the
page sizes. Conversion runs in a child of the worker with an address-space
limit and a per-page deadline: a page that breaks either ends the job
`conversion_failed` with the reason, and the worker goes on serving.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pypdfium2 as pdfium
import pytest

from printcloud.core.errors import PayloadTooLarge
from printcloud.printing.convert import check_job_pixels, inspect_pdf
from tests.helpers.print_stack import PrintStack
from tests.helpers.printing import Tenant, make_pdf, serve_file, stop_file_server


def blank_pdf(*sizes: tuple[float, float]) -> bytes:
    """Empty pages of the given sizes in points: a few hundred bytes, however large."""
    doc = pdfium.PdfDocument.new()
    try:
        for width, height in sizes:
            doc.new_page(width, height)
        out = io.BytesIO()
        doc.save(out)
        return out.getvalue()
    finally:
        doc.close()


# 2000 x 2000 pt is 8334 x 8334 px at 300 dpi: 69.5 megapixels, under the page limit.
LARGE = (2000.0, 2000.0)
# 30 of them: 2,084 megapixels at 300 dpi (over the stack's 2,000 below), 521 at 150 dpi.
MANY_LARGE = blank_pdf(*[LARGE] * 30)


def test_the_job_pixels_are_counted_from_the_page_sizes() -> None:
    info = inspect_pdf(MANY_LARGE)
    assert check_job_pixels(info, dpi=150, max_megapixels=2000) == 30 * 4167 * 4167
    with pytest.raises(PayloadTooLarge) as caught:
        check_job_pixels(info, dpi=300, max_megapixels=2000)
    assert caught.value.status_code == 413 and caught.value.field == "file"
    assert caught.value.description == (
        "the PDF's 30 page(s) are 2,084 megapixels at 300 dpi; a job may be at most "
        "2,000 megapixels (PRINTCLOUD_MAX_JOB_MEGAPIXELS)"
    )
    with pytest.raises(PayloadTooLarge) as caught:  # one page over the page limit
        check_job_pixels(
            inspect_pdf(blank_pdf((595, 842), (5000, 5000))), dpi=300, max_megapixels=2000
        )
    assert caught.value.description.startswith("page 2 is 5000x5000 pt")
    assert "more than 120 megapixels, the limit per page" in caught.value.description


def test_a_job_too_many_pixels_at_its_dpi_is_refused_at_intake(
    make_print_stack: Any, tmp_path: Path
) -> None:
    stack = make_print_stack(workers=1, max_job_megapixels=2000)
    t = Tenant(stack)

    def post(data: bytes, dpi: str) -> httpx.Response:
        return t.api.post(
            "/api/jobs",
            files={"file": ("big.pdf", data, "application/pdf")},
            data={"printer_id": "mono-1", "dpi": dpi},
        )

    refused = post(MANY_LARGE, "300")
    assert refused.status_code == 413, refused.text
    body = refused.json()
    assert body["error"] == "payload_too_large" and body["field"] == "file"
    assert "at most 2,000 megapixels (PRINTCLOUD_MAX_JOB_MEGAPIXELS)" in body["error_description"]
    one_page = post(blank_pdf((595, 842), (5000, 5000)), "300")
    assert one_page.status_code == 413, one_page.text
    assert "the limit per page" in one_page.json()["error_description"]
    # the same through a URL: fetched at intake, refused before any job exists
    path = tmp_path / "big.pdf"
    path.write_bytes(MANY_LARGE)
    served = serve_file(tmp_path, path)
    try:
        by_url = t.api.post(
            "/api/jobs", json={"printer_id": "mono-1", "url": served, "options": {"dpi": 300}}
        )
        assert by_url.status_code == 413, by_url.text
    finally:
        stop_file_server()
    assert t.api.get("/api/jobs").json()["jobs"] == []  # nothing was created
    # at 150 dpi the same pages are a quarter of the pixels: accepted
    accepted = post(MANY_LARGE, "150")
    assert accepted.status_code == 202, accepted.text


def converter_pid(stack: PrintStack) -> int:
    (worker,) = stack.workers()
    pid = httpx.get(f"{worker['url']}/healthz", timeout=60).json()["converter_pid"]
    assert isinstance(pid, int), pid
    return pid


PAGE_SECONDS = 20


def test_a_page_over_the_conversion_limits_fails_its_job_and_the_worker_goes_on(
    make_print_stack: Any,
) -> None:
    stack = make_print_stack(
        workers=1,
        convert_memory_mb=400,
        convert_page_seconds=PAGE_SECONDS,
        printer_concurrency=10,  # the jobs that wait for the printer hold no slot from others
    )
    t = Tenant(stack)
    (worker,) = stack.workers()
    worker_pid = stack.worker_pid(worker["url"])
    small = make_pdf(2)

    first = t.submit(small, "color-1", dpi="300")
    stack.wait_for(t.api, first["job_id"], "waiting_for_printer")

    # memory: one 108-megapixel page at 300 dpi (under the page and job limits) needs
    # more than 400 MB in color
    hungry = t.submit(blank_pdf((2500, 2500)), "color-1", dpi="300")
    failed = stack.wait_for(t.api, hungry["job_id"], "conversion_failed", "waiting_for_printer")
    assert failed["state"] == "conversion_failed", failed
    assert "page 1 of 1" in failed["reason"] and "400 MB" in failed["reason"], failed

    # time: a converter that does not finish its page is stopped at the page deadline;
    # frozen, the page takes as long as the test wants, whatever the machine's speed
    warm = t.submit(small, "color-1", dpi="300")
    stack.wait_for(t.api, warm["job_id"], "waiting_for_printer")
    frozen = converter_pid(stack)
    os.kill(frozen, signal.SIGSTOP)
    try:
        slow = t.submit(small, "color-1", dpi="300")
        failed = stack.wait_for(
            t.api, slow["job_id"], "conversion_failed", "waiting_for_printer", timeout=180
        )
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed and reaped by its worker
            os.kill(frozen, signal.SIGCONT)
    assert failed["state"] == "conversion_failed", failed
    # (frozen before it opened the document, the converter never said how many pages)
    assert failed["reason"] == (
        f"page 1 took longer than {PAGE_SECONDS} s to convert, the limit per page"
    )
    deadline = time.monotonic() + 60
    while Path(f"/proc/{frozen}").exists() and b"Z" not in _state(frozen):
        assert time.monotonic() < deadline, "the stuck converter was not stopped"
        time.sleep(0.1)

    # the same worker process serves the next job, with a new converter
    after = t.submit(small, "color-1", dpi="300")
    stack.wait_for(t.api, after["job_id"], "waiting_for_printer")
    assert stack.worker_pid(worker["url"]) == worker_pid
    assert converter_pid(stack) != frozen


def _state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except FileNotFoundError:
        return b"Z"
