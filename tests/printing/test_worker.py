"""Stateless conversion workers and the converted-data store (seed 003 FIG. 6–8, 10, 11).

Two workers share only the database and the blob folder; the token request, the
download and the conversion of one job go to different workers and the job still
converts. Each worker is served over real HTTP on loopback, and its guard checks
real tokens at the live authorization server."""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image

from printcloud.core.db import Database
from printcloud.printing.worker import Worker, build_worker, create_worker_app
from tests.conftest import Stack, free_port

TENANT = "1000AA"


def make_pdf(pages: int = 3) -> bytes:
    images = [Image.new("RGB", (200, 280), (40 * i, 120, 200)) for i in range(pages)]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=72)
    return out.getvalue()


class Files(ThreadingHTTPServer):
    content: dict[str, tuple[int, bytes]]


class _Handler(BaseHTTPRequestHandler):
    server: Files

    def do_GET(self) -> None:
        status, body = self.server.content.get(self.path, (404, b"missing"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def files() -> Iterator[tuple[str, dict[str, tuple[int, bytes]]]]:
    """A plain HTTP server on loopback holding the print data to download."""
    server = Files(("127.0.0.1", free_port()), _Handler)
    server.content = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", server.content
    server.shutdown()


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass


def serve_app(app: FastAPI) -> tuple[str, Callable[[], None]]:
    """A real HTTP server on loopback for one worker app."""
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=5)

    return f"http://127.0.0.1:{port}", stop


@dataclass
class Farm:
    workers: list[httpx.Client]
    states: list[Worker]
    auth: dict[str, str]
    files: str
    content: dict[str, tuple[int, bytes]]
    stops: list[Callable[[], None]]


@pytest.fixture
def farm(
    sqlite_stack: Stack, tmp_path: Path, files: tuple[str, dict[str, tuple[int, bytes]]]
) -> Iterator[Farm]:
    # Blobs of their own, the stack's database (its default SQLite path follows data_dir).
    settings = sqlite_stack.settings.model_copy(
        update={"data_dir": tmp_path, "database_url": sqlite_stack.settings.effective_database_url}
    )
    db = Database(settings.effective_database_url)
    states = [
        build_worker(settings, db=db, worker_id=f"w{i}", public_base="http://printing.test")
        for i in (1, 2)
    ]
    servers = [serve_app(create_worker_app(s)) for s in states]
    clients = [httpx.Client(base_url=url, timeout=30) for url, _ in servers]
    client_id, secret = settings.service_client("idp-a", "printing")
    token = httpx.post(
        f"{sqlite_stack.issuer_url()}/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": "print"},
    ).json()["access_token"]
    stops = [stop for _, stop in servers]
    yield Farm(
        workers=clients,
        states=states,
        auth={"Authorization": f"Bearer {token}"},
        files=files[0],
        content=files[1],
        stops=stops,
    )
    for client in clients:
        client.close()
    for stop in stops:
        stop()
    db.dispose()


def serve(farm: Farm, body: bytes, status: int = 200) -> str:
    path = f"/{secrets.token_hex(4)}.pdf"
    farm.content[path] = (status, body)
    return f"{farm.files}{path}"


def new_job(farm: Farm, worker: httpx.Client, printer: str = "prn-1") -> tuple[str, str, str]:
    job = f"job-{secrets.token_hex(3)}"
    issued = worker.post(
        "/sessions",
        json={"tenant_id": TENANT, "job_id": job, "printer_id": printer},
        headers=farm.auth,
    )
    assert issued.status_code == 201, issued.text
    return job, printer, str(issued.json()["token"])


def test_token_download_convert_on_different_workers_then_completion(farm: Farm) -> None:
    w1, w2 = farm.workers
    job, printer, token = new_job(farm, w1)
    down = w2.post(
        f"/sessions/{job}/{printer}/download",
        headers=farm.auth,
        json={"tenant_id": TENANT, "url": serve(farm, make_pdf(3))},
    )
    assert down.status_code == 200, down.text
    assert down.json()["worker"] == "w2" and down.json()["pages"] == 3
    conv = w1.post(
        f"/sessions/{job}/{printer}/convert",
        headers=farm.auth,
        json={"tenant_id": TENANT, "dpi": 72, "color": True},
    )
    assert conv.status_code == 200, conv.text
    assert conv.headers["X-Printcloud-Worker"] == "w1"
    converted_id = conv.json()["converted_id"]
    # The downloaded file is gone once converted; the history names each step's worker.
    session = farm.states[0].sessions.require(tenant_id=TENANT, job_id=job, printer_id=printer)
    assert session.download_path is None
    assert [(e["step"], e["worker"]) for e in session.history] == [
        ("token", "w1"),
        ("download", "w2"),
        ("convert", "w1"),
    ]
    bearer = {"Authorization": f"Bearer {token}"}
    # The printer fetches the metafile and every page from any worker, with the token.
    manifest = w2.get(f"/converted/{converted_id}/manifest.json", headers=bearer)
    assert manifest.status_code == 200
    pages = json.loads(manifest.content)["pages"]
    assert len(pages) == 3
    first = pages[0]["url"].rsplit("/", 1)[1]
    jpeg = w1.get(f"/converted/{converted_id}/{first}", headers=bearer)
    assert jpeg.status_code == 200 and jpeg.content[:3] == b"\xff\xd8\xff"
    # Completion (FIG. 11) leaves no file and no record behind.
    done = w2.delete(f"/sessions/{job}/{printer}", params={"tenant_id": TENANT}, headers=farm.auth)
    assert done.status_code == 204
    assert list(farm.states[0].blobs.keys(prefix=f"converted/{converted_id}")) == []
    assert w1.get(f"/converted/{converted_id}/manifest.json", headers=bearer).status_code == 404
    again = w1.post(
        f"/sessions/{job}/{printer}/convert", headers=farm.auth, json={"tenant_id": TENANT}
    )
    assert again.status_code == 404


def test_a_stored_job_is_read_from_the_shared_blob_store_and_only_that_job(farm: Farm) -> None:
    """The token request names the job's blob (seed 003 session record): another worker
    reads it from the blob store both share, with no URL and no copy; a key of another
    job, or one that climbs out of the store, is refused before any file is opened."""
    w1, w2 = farm.workers
    blobs = farm.states[0].blobs
    job, other = f"job-{secrets.token_hex(3)}", f"job-{secrets.token_hex(3)}"
    blobs.put(f"jobs/{job}/data.pdf", make_pdf(2))
    blobs.put(f"jobs/{other}/data.pdf", make_pdf(5))
    (blobs.root.parent / "outside.pdf").write_bytes(make_pdf(1))

    def token(job_id: str, data_key: str, printer: str = "prn-b") -> httpx.Response:
        body = {"tenant_id": TENANT, "job_id": job_id, "printer_id": printer}
        return w1.post("/sessions", headers=farm.auth, json={**body, "data_key": data_key})

    for bad_job, bad_key in (
        (job, f"jobs/{other}/data.pdf"),  # another job's data
        (job, "jobs/../../outside.pdf"),
        (job, f"jobs/{job}/../{other}/data.pdf"),
        (job, "/etc/passwd"),
        ("..", "jobs/../data.pdf"),
    ):
        refused = token(bad_job, bad_key)
        assert refused.status_code == 400, (bad_key, refused.text)
        assert refused.json()["field"] in ("data_key", "job_id"), refused.text
    issued = token(job, f"jobs/{job}/data.pdf")
    assert issued.status_code == 201, issued.text
    down = w2.post(f"/sessions/{job}/prn-b/download", headers=farm.auth, json={"tenant_id": TENANT})
    assert down.status_code == 200, down.text
    assert down.json()["pages"] == 2 and down.json()["path"] == f"jobs/{job}/data.pdf"
    # A session without a data key takes no other job's key from the download request.
    plain, printer, _ = new_job(farm, w1, "prn-c")
    stolen = w2.post(
        f"/sessions/{plain}/{printer}/download",
        headers=farm.auth,
        json={"tenant_id": TENANT, "data_key": f"jobs/{other}/data.pdf"},
    )
    assert stolen.status_code == 400 and stolen.json()["field"] == "data_key", stolen.text
    conv = w1.post(
        f"/sessions/{job}/prn-b/convert", headers=farm.auth, json={"tenant_id": TENANT, "dpi": 72}
    )
    assert conv.status_code == 200 and conv.json()["pages"] == 2, conv.text
    # The intake's blob stays until the job completes (the print service deletes it);
    # the worker made no copy under downloads/.
    done = w2.delete(f"/sessions/{job}/prn-b", params={"tenant_id": TENANT}, headers=farm.auth)
    assert done.status_code == 204
    assert blobs.exists(f"jobs/{job}/data.pdf") and blobs.exists(f"jobs/{other}/data.pdf")
    assert list(blobs.keys(prefix="downloads")) == []


def test_the_seed_refusals(farm: Farm) -> None:
    w1, w2 = farm.workers
    job, printer = f"job-{secrets.token_hex(3)}", "prn-2"
    # S1206 → S1213: a download for which no token was requested.
    orphan = w1.post(
        f"/sessions/{job}/{printer}/download",
        headers=farm.auth,
        json={"tenant_id": TENANT, "url": serve(farm, make_pdf(1))},
    )
    assert orphan.status_code == 404
    assert "no token was requested" in orphan.json()["error_description"]
    # S1105 → S1111: a second token request for the same job and printer.
    body = {"tenant_id": TENANT, "job_id": job, "printer_id": printer}
    assert w1.post("/sessions", json=body, headers=farm.auth).status_code == 201
    again = w2.post("/sessions", json=body, headers=farm.auth)
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    # Converting before downloading.
    early = w2.post(
        f"/sessions/{job}/{printer}/convert", headers=farm.auth, json={"tenant_id": TENANT}
    )
    assert early.status_code == 409


def test_bad_print_data_and_urls(farm: Farm) -> None:
    w1, _ = farm.workers
    job, printer, _ = new_job(farm, w1, "prn-3")
    url = f"/sessions/{job}/{printer}/download"
    not_pdf = w1.post(url, headers=farm.auth, json={"tenant_id": TENANT, "url": serve(farm, b"hi")})
    assert not_pdf.status_code == 400 and not_pdf.json()["error"] == "invalid_request"
    gone = w1.post(
        url, headers=farm.auth, json={"tenant_id": TENANT, "url": serve(farm, b"", status=404)}
    )
    assert gone.status_code == 502 and gone.json()["error"] == "download_failed"
    dead = w1.post(
        url,
        headers=farm.auth,
        json={"tenant_id": TENANT, "url": f"http://127.0.0.1:{free_port()}/x.pdf"},
    )
    assert dead.status_code == 502 and "did not answer" in dead.json()["error_description"]
    ftp = w1.post(url, headers=farm.auth, json={"tenant_id": TENANT, "url": "ftp://example.com/x"})
    assert ftp.status_code == 400 and ftp.json()["field"] == "url"


def test_private_addresses_are_refused_unless_allowed(farm: Farm) -> None:
    strict = farm.states[0]
    strict.settings = strict.settings.model_copy(update={"egress_allow": []})
    url, stop = serve_app(create_worker_app(strict))
    farm.stops.append(stop)
    w1 = httpx.Client(base_url=url, timeout=30)
    job, printer, _ = new_job(farm, w1, "p")
    answer = w1.post(
        f"/sessions/{job}/{printer}/download",
        headers=farm.auth,
        json={"tenant_id": TENANT, "url": serve(farm, make_pdf(1))},
    )
    w1.close()
    assert answer.status_code == 400 and "loopback" in answer.json()["error_description"]


def test_converted_data_needs_the_right_unexpired_token(farm: Farm) -> None:
    w1, w2 = farm.workers
    job, printer, token = new_job(farm, w1, "prn-4")
    w2.post(
        f"/sessions/{job}/{printer}/download",
        headers=farm.auth,
        json={"tenant_id": TENANT, "url": serve(farm, make_pdf(1))},
    )
    cid = w1.post(
        f"/sessions/{job}/{printer}/convert",
        headers=farm.auth,
        json={"tenant_id": TENANT, "dpi": 72},
    ).json()["converted_id"]
    path = f"/converted/{cid}/manifest.json"
    bearer = {"Authorization": f"Bearer {token}"}
    assert w1.get(path).status_code == 401
    assert w1.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert w1.get(f"/converted/{'0' * 32}/manifest.json", headers=bearer).status_code == 404
    assert w1.get(f"/converted/{cid}/secrets.txt", headers=bearer).status_code == 404
    farm.states[1].sessions.token_timeout = timedelta(seconds=-1)
    expired = w2.get(path, headers=bearer)
    assert expired.status_code == 401 and "timed out" in expired.json()["error_description"]


def test_only_platform_services_call_the_workers(farm: Farm, sqlite_stack: Stack) -> None:
    tenant = sqlite_stack.tenant()
    client_id, secret = sqlite_stack.client(tenant, scope="print")
    assert secret
    token = httpx.post(
        f"{sqlite_stack.issuer_url()}/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    body = {"tenant_id": tenant, "job_id": "j", "printer_id": "p"}
    assert farm.workers[0].post("/sessions", json=body).status_code == 401
    refused = farm.workers[0].post(
        "/sessions", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 403


def _converted(farm: Farm, pages: int = 2) -> tuple[str, str, dict[str, str]]:
    """A job converted by the farm: (converted ID, first page's file name, bearer header)."""
    w1, w2 = farm.workers
    job, printer, token = new_job(farm, w1, f"prn-{secrets.token_hex(2)}")
    down = w2.post(
        f"/sessions/{job}/{printer}/download",
        headers=farm.auth,
        json={"tenant_id": TENANT, "url": serve(farm, make_pdf(pages))},
    )
    assert down.status_code == 200, down.text
    conv = w1.post(
        f"/sessions/{job}/{printer}/convert", headers=farm.auth, json={"tenant_id": TENANT}
    )
    assert conv.status_code == 200, conv.text
    return conv.json()["converted_id"], "page-0001.jpg", {"Authorization": f"Bearer {token}"}


def _blob_file(farm: Farm, converted_id: str, name: str) -> Path:
    (key,) = [k for k in farm.states[0].blobs.keys("converted") if k.endswith(f"/{name}")]
    assert f"/{converted_id}/" in key
    return farm.states[0].blobs.path(key)


def test_a_page_is_sent_from_its_file_and_the_token_is_checked_every_time(farm: Farm) -> None:
    """Issue 13: the page leaves as a file response (no copy through Python: the server
    sends the file, ranges included); the record may be remembered, the token is not."""
    w1 = farm.workers[0]
    converted_id, page, bearer = _converted(farm)
    path = f"/converted/{converted_id}/{page}"
    whole = w1.get(path, headers=bearer)
    assert whole.status_code == 200 and whole.headers["content-type"] == "image/jpeg"
    assert whole.content == _blob_file(farm, converted_id, page).read_bytes()
    assert whole.headers["cache-control"] == "no-store"
    assert "x-accel-redirect" not in whole.headers
    # A file response: byte ranges come from the file itself.
    head = w1.get(path, headers={**bearer, "Range": "bytes=0-9"})
    assert head.status_code == 206 and head.content == whole.content[:10]
    assert len(farm.states[0].index or ()) >= 1  # the record is remembered here now
    # ... and still every request proves its token: wrong, missing, then timed out.
    assert w1.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert w1.get(path).status_code == 401
    farm.states[0].sessions.token_timeout = timedelta(seconds=-1)
    expired = w1.get(path, headers=bearer)
    assert expired.status_code == 401 and "timed out" in expired.json()["error_description"]


def test_behind_nginx_the_answer_names_the_file_for_nginx_after_the_same_check(
    farm: Farm,
) -> None:
    """PRINTCLOUD_CONVERTED_ACCEL: an empty answer whose X-Accel-Redirect names the file
    under nginx's internal location; a refused token gets its 401 and no such header."""
    w2, state = farm.workers[1], farm.states[1]
    state.settings = state.settings.model_copy(update={"converted_accel": "/_pc_converted/"})
    converted_id, page, bearer = _converted(farm)
    path = f"/converted/{converted_id}/{page}"
    answer = w2.get(path, headers=bearer)
    assert answer.status_code == 200 and answer.content == b""
    target = answer.headers["x-accel-redirect"]
    assert target.startswith("/_pc_converted/") and target.endswith(f"/{converted_id}/{page}")
    # the location's folder is the blob store's converted/: the name leads to the file
    file = state.blobs.root / "converted" / target.removeprefix("/_pc_converted/")
    assert file == _blob_file(farm, converted_id, page) and file.is_file()
    manifest = w2.get(f"/converted/{converted_id}/manifest.json", headers=bearer)
    assert manifest.headers["content-type"] == "application/json"
    assert manifest.headers["x-accel-redirect"].endswith("/manifest.json")
    for refused in (
        w2.get(path, headers={"Authorization": "Bearer wrong"}),
        w2.get(path),
        w2.get(f"/converted/{converted_id}/../../secret", headers=bearer),
    ):
        assert refused.status_code in (401, 404) and "x-accel-redirect" not in refused.headers
    state.sessions.token_timeout = timedelta(seconds=-1)
    expired = w2.get(path, headers=bearer)
    assert expired.status_code == 401 and "x-accel-redirect" not in expired.headers


def test_raster_from_any_worker_and_its_refusals(farm: Farm) -> None:
    """Issue 15: `POST S/raster` streams the converted pages as PWG raster from either
    worker, with the conversion token; refusals are clear HTTP errors, never a 500."""
    from printcloud.ipp import pwg

    w1, w2 = farm.workers
    job, printer, token = new_job(farm, w1, "prn-raster")
    path = f"/sessions/{job}/{printer}/raster"
    body = {"tenant_id": TENANT, "token": token, "format": "image/pwg-raster"}
    body |= {"type": "black_1", "dpi": 72}
    # not converted yet: no pages
    early = w2.post(path, headers=farm.auth, json=body)
    assert early.status_code == 404, early.text
    w2.post(
        f"/sessions/{job}/{printer}/download",
        headers=farm.auth,
        json={"tenant_id": TENANT, "url": serve(farm, make_pdf(2))},
    )
    w1.post(
        f"/sessions/{job}/{printer}/convert",
        headers=farm.auth,
        json={"tenant_id": TENANT, "dpi": 72},
    )
    for client, name in ((w1, "w1"), (w2, "w2")):
        answer = client.post(path, headers=farm.auth, json=body)
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Printcloud-Worker"] == name
        assert answer.headers["content-type"] == "image/pwg-raster"
        assert answer.headers["X-Printcloud-Pages"] == "2"
        pages = list(pwg.read_pages(answer.content))
        assert [p.header.color_space for p in pages] == [pwg.ColorSpace.BLACK] * 2
        assert pages[0].header.width == 595  # A4 at 72 dpi, the sheet
    refusals = (
        ({**body, "token": "wrong"}, 401),
        ({**body, "type": "SRGB24"}, 400),  # a URF type for PWG
        ({**body, "format": "image/png"}, 400),
        ({**body, "tenant_id": "2000BB"}, 404),  # another tenant's view of the job
        ({**body, "dpi": 0}, 400),
    )
    for bad, status in refusals:
        refused = w1.post(path, headers=farm.auth, json=bad)
        assert refused.status_code == status, (bad, refused.status_code, refused.text)
        assert refused.json()["error"]
    assert w1.post(path, json=body).status_code == 401  # not a platform service
    unknown = w1.post(f"/sessions/job-none/{printer}/raster", headers=farm.auth, json=body)
    assert unknown.status_code == 404
