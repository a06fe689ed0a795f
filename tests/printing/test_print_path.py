"""The whole print path of seed 003 over real HTTP on loopback.

`printcloud serve` in its own process (the intake, the SVC002 workflows on
DBOS, the balancer and two conversion worker processes), the virtual printer
(`printcloud.device.agent`) in this one, both on SQLite and PostgreSQL, with
the session store in the database or in Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_command, require_peer
from tests.helpers.printing import (
    DEBIAN_PDFS,
    Tenant,
    assert_no_leftovers,
    make_pdf,
    planes,
    serve_file,
    stop_file_server,
    wait_completed,
)


def workers_of(job: dict[str, Any], step: str) -> str:
    return next(e["worker"] for e in job["history"] if e["step"] == step)


# -- the whole path -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("database", "sessions"),
    [("sqlite", "sql"), ("postgresql", "redis"), ("postgresql", "sql")],
)
def test_a_job_prints_in_color_and_mono_through_two_workers(
    make_print_stack: Any, tmp_path: Path, database: str, sessions: str
) -> None:
    stack = make_print_stack(database=database, sessions=sessions, workers=2)
    assert len(stack.health()["workers"]) == 2
    t = Tenant(stack)
    pdf = make_pdf(3)
    # one job at a time through the balancer, so its round-robin turns are the job's own
    color = t.submit(pdf, "color-1", copies=2)
    stack.wait_for(t.api, color["job_id"], "waiting_for_printer")
    mono = t.submit(pdf, "mono-1")
    stack.wait_for(t.api, mono["job_id"], "waiting_for_printer")
    assert color["state"] == "accepted" and color["page_count"] == 3

    t.print_all("color-1", tmp_path / "color", color["job_id"])
    t.print_all("mono-1", tmp_path / "mono", mono["job_id"])

    for job_id, folder, colorants in (
        (color["job_id"], tmp_path / "color", ["C", "K", "M", "Y"]),
        (mono["job_id"], tmp_path / "mono", ["K"]),
    ):
        job = stack.wait_for(t.api, job_id, "printed")
        job = t.api.get(f"/api/jobs/{job_id}").json()
        assert job["pages_printed"] == 3 and job["reason"] is None
        steps = [e["step"] for e in job["history"]]
        for step in ("S105", "S106", "S107", "S108", "S109", "S110", "S111"):
            assert step in steps, steps
        # LB001: no stickiness — the download and the conversion ran on different workers
        assert workers_of(job, "S107") != workers_of(job, "S108")
        assert {workers_of(job, s) for s in ("S106", "S107", "S108")} <= {"convert-1", "convert-2"}
        for page in (1, 2, 3):
            names = planes(folder / job_id, page)
            assert [n.rsplit("-", 1)[-1].removesuffix(".pbm") for n in names] == colorants, names
            assert (folder / job_id / f"page-{page:04d}-preview.png").exists()
        # the user sees what was printed
        preview = t.api.get(f"/api/jobs/{job_id}/pages/1/preview")
        assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
        wait_completed(t, job_id)
        assert_no_leftovers(stack, job_id)


def test_printer_faults_end_in_named_states_and_the_owner_can_cancel(
    make_print_stack: Any, tmp_path: Path
) -> None:
    stack = make_print_stack()
    t = Tenant(stack)
    pdf = make_pdf(3)
    for fault in ("paper_out@2", "toner_out@1", "engine_error@3", "user_cancel@2"):
        job = t.submit(pdf, "mono-1")
        t.print_all("mono-1", tmp_path / fault, job["job_id"], fault)
        done = stack.wait_for(t.api, job["job_id"], "printer_cancelled")
        name, page = fault.split("@")
        assert done["reason"] == name
        assert done["pages_printed"] == int(page) - 1
        wait_completed(t, job["job_id"])
        assert_no_leftovers(stack, job["job_id"], keeps_document=True)

    # the owner cancels a job waiting for its printer; the workflow cleans up
    job = t.submit(pdf, "color-1")
    stack.wait_for(t.api, job["job_id"], "waiting_for_printer")
    resp = t.api.post(f"/api/jobs/{job['job_id']}/cancel")
    assert resp.status_code == 200 and resp.json()["state"] == "cancelled"
    wait_completed(t, job["job_id"])
    assert_no_leftovers(stack, job["job_id"])
    again = t.api.post(f"/api/jobs/{job['job_id']}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["error_description"]
    # the printer no longer sees it
    with t.device("color-1", tmp_path / "late") as agent:
        assert agent.poll_once() == []

    # another tenant sees none of it
    other = Tenant(stack)
    assert other.api.get(f"/api/jobs/{job['job_id']}").status_code == 404
    assert other.api.post(f"/api/jobs/{job['job_id']}/cancel").status_code == 404
    assert other.api.get("/api/jobs").json()["jobs"] == []


def test_a_pdf_from_a_debian_package_prints_every_page(
    make_print_stack: Any, tmp_path: Path
) -> None:
    pdfinfo = require_command("pdfinfo")
    found = [p for p in DEBIAN_PDFS if p.exists()]
    require_peer(bool(found), "no PDF from a Debian package (shared-mime-info, libtasn1-doc)")
    source = found[0]
    info = subprocess.run([pdfinfo, str(source)], capture_output=True, text=True, check=True)
    pages = int(
        next(line.split()[-1] for line in info.stdout.splitlines() if line.startswith("Pages:"))
    )
    stack = make_print_stack()
    t = Tenant(stack)
    job = t.submit(source.read_bytes(), "mono-1")
    assert job["page_count"] == pages
    t.print_all("mono-1", tmp_path, job["job_id"])
    done = stack.wait_for(t.api, job["job_id"], "printed")
    assert done["pages_printed"] == pages
    assert len(list((tmp_path / job["job_id"]).glob("page-*-K.pbm"))) == pages


# -- bad input ---------------------------------------------------------------------------


def test_bad_input_is_refused_before_a_job_exists(make_print_stack: Any, tmp_path: Path) -> None:
    gs = require_command("gs")
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(make_pdf(1))
    locked = tmp_path / "locked.pdf"
    subprocess.run(
        [
            gs,
            "-q",
            "-dBATCH",
            "-dNOPAUSE",
            "-sDEVICE=pdfwrite",
            "-sOwnerPassword=owner",
            "-sUserPassword=secret",
            f"-sOutputFile={locked}",
            str(plain),
        ],
        check=True,
    )

    def refused(resp: httpx.Response, status: int, words: str, field: str | None = None) -> None:
        assert resp.status_code == status, resp.text
        body = resp.json()
        assert words in body["error_description"], body
        if field:
            assert body.get("field") == field, body

    post = t.api.post
    refused(
        post(
            "/api/jobs",
            files={"file": ("a.txt", b"hello, not a pdf", "text/plain")},
            data={"printer_id": "color-1"},
        ),
        400,
        "not a PDF",
        "file",
    )
    refused(
        post(
            "/api/jobs",
            files={"file": ("l.pdf", locked.read_bytes(), "application/pdf")},
            data={"printer_id": "color-1"},
        ),
        400,
        "password-protected",
        "file",
    )
    refused(
        post(
            "/api/jobs",
            files={"file": ("e.pdf", b"", "application/pdf")},
            data={"printer_id": "color-1"},
        ),
        400,
        "empty",
        "file",
    )
    refused(
        post(
            "/api/jobs",
            files={"file": ("a.pdf", plain.read_bytes(), "application/pdf")},
            data={"printer_id": "no-such-printer"},
        ),
        400,
        "unknown printer",
        "printer_id",
    )
    refused(
        post(
            "/api/jobs",
            json={"printer_id": "color-1", "url": "http://127.0.0.1:9/nothing-listens-here.pdf"},
        ),
        502,
        "did not answer",
    )
    refused(
        post("/api/jobs", json={"printer_id": "color-1", "url": "ftp://example.org/a.pdf"}),
        400,
        "http",
        "url",
    )
    refused(
        post(
            "/api/jobs",
            files={"file": ("a.pdf", plain.read_bytes(), "application/pdf")},
            data={"printer_id": "color-1", "copies": "0"},
        ),
        400,
        "copies",
        "copies",
    )
    refused(
        post(
            "/api/jobs",
            files={"file": ("a.pdf", plain.read_bytes(), "application/pdf")},
            data={"printer_id": "color-1", "media": "napkin"},
        ),
        400,
        "media",
        "media",
    )
    refused(
        post("/api/jobs", content=b"%PDF-1.4", headers={"content-type": "application/pdf"}),
        400,
        "multipart",
    )
    refused(
        post("/api/jobs", content=b"{", headers={"content-type": "application/json"}),
        400,
        "invalid JSON",
    )
    assert t.api.get("/api/jobs").json()["jobs"] == []  # nothing was created
    # no token, wrong scope, a job that does not exist
    assert httpx.get(f"{stack.printing}/api/jobs").status_code == 401
    device_api = stack.api(stack.token(t.dev_id, t.dev_secret, "device"))
    assert device_api.get("/api/jobs").status_code == 403
    assert t.api.get("/api/jobs/" + "x" * 300).status_code == 404
    # a URL job that answers a PDF is accepted (the workers download it again, S107)
    served = serve_file(tmp_path, plain)
    try:
        ok = post("/api/jobs", json={"printer_id": "mono-1", "url": served})
        assert ok.status_code == 202, ok.text
        assert ok.json()["source"] == "url"
        stack.wait_for(t.api, ok.json()["job_id"], "waiting_for_printer")
    finally:
        stop_file_server()


# -- faults of the platform itself ----------------------------------------------------------


def test_killed_workers_and_a_killed_workflow_process_lose_nothing(
    make_print_stack: Any, tmp_path: Path
) -> None:
    """SIGKILL the conversion workers mid-conversion, then the whole print service
    mid-job: after restart the job completes and each page is printed once."""
    stack = make_print_stack(workers=2)
    t = Tenant(stack)
    pdf = make_pdf(24, size=(595, 842))
    job = t.submit(pdf, "color-1", dpi="300")
    stack.wait_for(t.api, job["job_id"], "downloaded", "converted", "waiting_for_printer")
    pids = [stack.worker_pid(w["url"]) for w in stack.workers()]
    for pid in pids:  # the conversion is running on one of them
        os.kill(pid, signal.SIGKILL)
    stack.wait_for(t.api, job["job_id"], "waiting_for_printer", timeout=120)

    # kill the whole service (server, workflows, workers) while the job waits for its
    # printer and a second job is mid-flight; start it again on the same data
    second = t.submit(make_pdf(2), "mono-1")
    old = stack.health()["pid"]
    stack.kill_all()
    stack.start()
    assert stack.health()["pid"] != old
    with t.device("color-1", tmp_path) as agent:
        agent.poll_once()
    done = stack.wait_for(t.api, job["job_id"], "printed", timeout=60)
    assert done["pages_printed"] == 24
    # the printer is handed nothing twice; every page was printed exactly once
    with t.device("color-1", tmp_path) as agent:
        assert agent.poll_once() == []
    for page in range(1, 25):
        assert len(planes(tmp_path / job["job_id"], page)) == 4
    t.print_all("mono-1", tmp_path / "mono", second["job_id"])
    stack.wait_for(t.api, second["job_id"], "printed", timeout=60)
    wait_completed(t, job["job_id"])
    assert_no_leftovers(stack, job["job_id"])


def test_a_held_job_waits_for_its_owner(make_print_stack: Any, tmp_path: Path) -> None:
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    held = t.submit(make_pdf(2), "mono-1", hold="true")
    stack.wait_for(t.api, held["job_id"], "held")
    with t.device("mono-1", tmp_path) as agent:
        assert agent.poll_once() == []  # nothing to print until it is released
    other = Tenant(stack)
    assert other.api.post(f"/api/jobs/{held['job_id']}/release").status_code == 404
    released = t.api.post(f"/api/jobs/{held['job_id']}/release")
    assert released.status_code == 200, released.text
    t.print_all("mono-1", tmp_path, held["job_id"])
    done = stack.wait_for(t.api, held["job_id"], "printed")
    assert any("released by" in e["detail"] for e in done["history"])
    again = t.api.post(f"/api/jobs/{held['job_id']}/release")
    assert again.status_code == 409 and "not held" in again.json()["error_description"]

    dropped = t.submit(make_pdf(1), "mono-1", hold="true")
    stack.wait_for(t.api, dropped["job_id"], "held")
    assert t.api.post(f"/api/jobs/{dropped['job_id']}/cancel").json()["state"] == "cancelled"
    wait_completed(t, dropped["job_id"])
    assert_no_leftovers(stack, dropped["job_id"])


def test_the_printer_gets_its_pages_as_files_from_the_served_stack(make_print_stack: Any) -> None:
    """Issue 13: `printcloud serve` (granian) sends a converted page from its blob file
    (a file response: ranges work, no X-Accel-Redirect without nginx in front), after
    the conversion-token check, which still refuses a wrong token."""
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    job_id = t.submit(make_pdf(2), "color-1")["job_id"]
    stack.wait_for(t.api, job_id, "waiting_for_printer")
    device_api = stack.api(stack.token(t.dev_id, t.dev_secret, "device"))
    (item,) = [j for j in device_api.get("/api/device/printers/color-1/work").json()["jobs"]]
    bearer = {"Authorization": f"Bearer {item['token']}"}
    page_url = httpx.get(item["manifest_url"], headers=bearer).json()["pages"][1]["url"]
    page = httpx.get(page_url, headers=bearer)
    assert page.status_code == 200 and page.headers["content-type"] == "image/jpeg"
    assert "x-accel-redirect" not in page.headers
    converted_id = page_url.rsplit("/", 2)[1]
    (stored,) = (stack.settings.data_dir / "blobs" / "converted").rglob(
        f"*/{converted_id}/page-0002.jpg"
    )
    assert page.content == stored.read_bytes()
    tail = httpx.get(page_url, headers={**bearer, "Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == page.content[-16:]
    refused = httpx.get(page_url, headers={"Authorization": "Bearer not-it"})
    assert refused.status_code == 401 and refused.content != page.content
    device_api.close()
