"""A real CUPS adds a printcloud queue as a driverless printer and prints through it
(issue 14): `lpadmin -m everywhere` builds its PPD from our Get-Printer-Attributes;
`lp` of a PDF, a text file and a JPEG reaches the tenant's virtual printer with the
right page counts; `lpstat -W completed` lists them; `cancel` reaches the queue."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import require_command, require_peer
from tests.helpers.printing import make_pdf
from tests.ipp.conftest import USER, Cups, IppWorld


def _alice_jobs(world: IppWorld) -> list[dict[str, Any]]:
    jobs = world.tenant.api.get("/api/jobs", params={"limit": 1000}).json()["jobs"]
    return [j for j in jobs if j["owner"] == USER]


def _wait(what: str, check: Any, *, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.3)


def _ppd(cupsd: Cups, name: str) -> str:
    """The PPD cupsd serves for queue `name`. A loaded cupsd has been seen answering 404
    just after `lpadmin` returned: wait for it (a deadline here means stuck)."""

    def served() -> str | None:
        got = httpx.get(f"http://127.0.0.1:{cupsd.port}/printers/{name}.ppd", timeout=30)
        return got.text if got.status_code == 200 else None

    try:
        return str(_wait(f"cupsd to serve {name}.ppd", served, timeout=90))
    except AssertionError as exc:
        queues = cupsd.run("lpstat", "-p", "-v", check=False)
        seen = f"lpstat: {queues.stdout}{queues.stderr}\n{cupsd.log()}"
        raise AssertionError(f"{exc}\n{seen}") from None


def test_cups_prints_through_the_queue(ipp_world: IppWorld, cupsd: Cups, tmp_path: Path) -> None:
    lpadmin, lp, lpstat = (require_command(c) for c in ("lpadmin", "lp", "lpstat"))
    for cups_filter in ("texttopdf", "imagetopdf", "pdftopdf"):
        path = Path("/usr/lib/cups/filter") / cups_filter
        require_peer(path.exists(), f"cups-filters' {cups_filter} is not installed")
    cupsd.run(lpadmin, "-p", "cloud", "-E", "-v", ipp_world.uri_as(), "-m", "everywhere")
    ppd = _ppd(cupsd, "cloud")
    assert "*DefaultPageSize: A4" in ppd and "*PageSize Letter" in ppd
    assert "*ColorDevice: True" in ppd and "*Duplex DuplexNoTumble" in ppd

    before = {j["job_id"] for j in _alice_jobs(ipp_world)}
    pdf = tmp_path / "three.pdf"
    pdf.write_bytes(make_pdf(3))
    text = tmp_path / "note.txt"
    text.write_text("printcloud through CUPS\n" * 10)
    jpeg = tmp_path / "photo.jpg"
    from PIL import Image

    Image.new("RGB", (800, 600), (30, 120, 200)).save(jpeg, "JPEG")
    cups_ids = []
    for path in (pdf, text, jpeg):
        done = cupsd.run(lp, "-d", "cloud", "-t", path.name, str(path))
        cups_ids.append(re.search(r"request id is (\S+)", done.stdout)[1])  # type: ignore[index]

    def printed() -> list[dict[str, Any]] | None:
        new = [j for j in _alice_jobs(ipp_world) if j["job_id"] not in before]
        done = [j for j in new if j["state"] == "printed"]
        return done if len(done) == 3 else None

    jobs = _wait("three printed jobs", printed)
    pages = sorted((j["title"], j["pages_printed"]) for j in jobs)
    assert [p for _, p in pages] == sorted([3, 1, 1]), pages
    by_kind = {("pdf" if j["page_count"] == 3 else j["title"]): j for j in jobs}
    assert by_kind["pdf"]["pages_printed"] == 3

    def completed() -> bool:
        out = cupsd.run(lpstat, "-W", "completed", "-o", "cloud").stdout
        return all(i in out for i in cups_ids)

    _wait("CUPS to list the jobs completed", completed)


def test_cancel_reaches_the_queue(ipp_world: IppWorld, cupsd: Cups, tmp_path: Path) -> None:
    """A job on a printer that is not running waits; CUPS's `cancel` cancels it here."""
    lpadmin, lp, cancel = (require_command(c) for c in ("lpadmin", "lp", "cancel"))
    stack, tenant = ipp_world.stack, ipp_world.tenant
    stack.user(tenant.id, "root2", "admin password 2", admin=True)
    admin = stack.api(stack.user_token(tenant.id, "root2", "admin password 2", "admin"))
    made = admin.post("/api/queues", json={"name": "idle", "printer_id": "mono-1"})
    assert made.status_code == 201, made.text
    uri = ipp_world.uri_as().rsplit("/", 1)[0] + "/idle"
    cupsd.run(lpadmin, "-p", "idle", "-E", "-v", uri, "-m", "everywhere")
    pdf = tmp_path / "wait.pdf"
    pdf.write_bytes(make_pdf(1))
    done = cupsd.run(lp, "-d", "idle", "-t", "waits", str(pdf))
    cups_id = re.search(r"request id is (\S+)", done.stdout)[1]  # type: ignore[index]

    def waiting() -> dict[str, Any] | None:
        for j in _alice_jobs(ipp_world):
            if j["title"] == "waits" and j["state"] == "waiting_for_printer":
                return j
        return None

    job = _wait("the job to wait for its printer", waiting)
    cupsd.run(cancel, cups_id)

    def cancelled() -> bool:
        state = ipp_world.tenant.api.get(f"/api/jobs/{job['job_id']}").json()["state"]
        return bool(state == "cancelled")

    _wait("the queue's job to be cancelled", cancelled)
    assert httpx.get(f"http://127.0.0.1:{cupsd.port}/", timeout=10).status_code < 500
