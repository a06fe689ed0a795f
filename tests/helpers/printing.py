"""A print tenant (a submitting client, a device client, two printers), PDFs to print, and
the checks the print path tests share: what a finished job leaves behind, its completion."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import func, select

from printcloud.device.agent import DeviceAgent, DeviceConfig, Fault
from printcloud.printing.models import ConversionSessionRow, ConvertedDataRow, PrintJobRow
from tests.helpers.print_stack import PrintStack

DEBIAN_PDFS = (
    Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"),
    Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
)


def make_pdf(pages: int, *, size: tuple[int, int] = (420, 595)) -> bytes:
    images = [
        Image.new("RGB", size, ((50 * i) % 256, 120, (255 - 30 * i) % 256)) for i in range(pages)
    ]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=72)
    return out.getvalue()


def pdf_text(data: bytes) -> str:
    """The text of every page of a PDF (pypdfium2), pages joined by a newline."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


class Tenant:
    """A tenant with a submitting client, a device client and a color and a mono printer."""

    def __init__(self, stack: PrintStack) -> None:
        self.stack = stack
        self.id = stack.tenant()
        self.app_id, self.app_secret = stack.client(self.id, scope="print")
        self.dev_id, self.dev_secret = stack.client(self.id, kind="device", scope="device print")
        stack.printer(self.id, "color-1", color=True, client_id=self.dev_id)
        stack.printer(self.id, "mono-1", color=False, client_id=self.dev_id)
        self.api = stack.api(stack.token(self.app_id, self.app_secret, "print"))

    def submit(self, data: bytes, printer: str = "color-1", **fields: Any) -> dict[str, Any]:
        form = {"printer_id": printer, "dpi": "150", **{k: str(v) for k, v in fields.items()}}
        resp = self.api.post(
            "/api/jobs", files={"file": ("doc.pdf", data, "application/pdf")}, data=form
        )
        assert resp.status_code == 202, resp.text
        return dict(resp.json())

    def device(self, printer: str, out: Path, *faults: str, **config: Any) -> DeviceAgent:
        """A virtual printer of this tenant; `config`: further `DeviceConfig` fields."""
        return DeviceAgent(
            DeviceConfig(
                server=self.stack.base_url,
                tenant_id=self.id,
                printer_id=printer,
                client_id=self.dev_id,
                client_secret=self.dev_secret,
                out_dir=out,
                faults=[Fault.parse(f) for f in faults],
                **config,
            )
        )

    def print_all(self, printer: str, out: Path, job_id: str, *faults: str) -> None:
        """Run the printer until the job is no longer waiting for it."""
        with self.device(printer, out, *faults) as agent:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                state = self.api.get(f"/api/jobs/{job_id}").json()["state"]
                if state not in ("accepted", "token_issued", "downloaded", "converted"):
                    if state not in ("waiting_for_printer", "printing"):
                        return
                    agent.poll_once()
                time.sleep(0.1)
        raise AssertionError("the printer never got the job")


def planes(folder: Path, page: int) -> list[str]:
    return sorted(p.name for p in folder.glob(f"page-{page:04d}*.pbm"))


def assert_no_leftovers(
    stack: PrintStack, job_id: str, *, keeps_document: bool | None = None
) -> None:
    """FIG. 11: completion leaves no converted data, no download and no session record;
    a job the printer stopped (`printer_cancelled`) keeps its document alone (to print
    the rest or print again, issue 16). `keeps_document` states which is expected; by
    default it follows the job's state."""
    with stack.db.sessions() as s:
        if keeps_document is None:
            job = s.get(PrintJobRow, job_id)
            keeps_document = job is not None and job.state == "printer_cancelled"
        assert (
            s.scalar(
                select(func.count())
                .select_from(ConvertedDataRow)
                .where(ConvertedDataRow.job_id == job_id)
            )
            == 0
        )
        assert (
            s.scalar(
                select(func.count())
                .select_from(ConversionSessionRow)
                .where(ConversionSessionRow.job_id == job_id)
            )
            == 0
        )
    blobs = stack.settings.data_dir / "blobs"
    for folder in ("converted", "downloads", f"jobs/{job_id}"):
        left = (
            [p for p in (blobs / folder).rglob("*") if p.is_file()]
            if (blobs / folder).exists()
            else []
        )
        if keeps_document and folder == f"jobs/{job_id}":
            assert [p.name for p in left] == ["data.pdf"], left
            continue
        assert left == [], f"left behind in {folder}: {left}"
    if stack.settings.session_store:
        import redis

        r = redis.Redis.from_url(stack.settings.session_store)
        assert not [k for k in r.scan_iter(f"pc:cnv:*{job_id}*")]


def wait_completed(t: Tenant, job_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = t.api.get(f"/api/jobs/{job_id}").json()
        if any(e["step"] == "S112" for e in job["history"]):
            return
        time.sleep(0.1)
    raise AssertionError("S112 (print completion) never ran")


def serve_file(folder: Path, file: Path) -> str:
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _file_server.append(server)
    return f"http://127.0.0.1:{server.server_address[1]}/{file.name}"


def stop_file_server() -> None:
    while _file_server:
        server = _file_server.pop()
        server.shutdown()
        server.server_close()


_file_server: list[Any] = []
