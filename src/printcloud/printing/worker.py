"""Conversion workers (seed 003, SVC003) and the converted-data store (SVC004/SVC005).

A worker keeps no state of its own: everything a later step needs is in the
session store (`sessions.py`) and the blob store, so a balancer may send the
token request, the download and the conversion of one job to different workers
(LB001, ¶0050–0051). Each answer names the worker that served it.

| request (`S` = `/sessions/{job}/{printer}`) | seed | refused when |
|---|---|---|
| `POST /sessions` | FIG. 6, S1101–S1111 | job + printer has a record (409) |
| `POST S/download` | FIG. 7, S1201–S1213 | no record (404); URL refused (400) or fails (502) |
| `POST S/convert` | FIG. 8, S1301–S1318 (+ previews) | no record (404); not downloaded (409) |
| `POST S/raster` | issue 15 | no record or pages (404); bad or old token (401); bad type (400) |
| `DELETE S` | FIG. 11 | — (deletes converted data and the record) |
| `GET /converted/{id}/{file}` | FIG. 10 | unknown ID (404); bad or old token (401) |

Print data reaches a worker in one of two ways. A job whose data the intake
stored (an upload, or a URL job the intake fetched to check it) names that blob
in its token request (`data_key`, kept in the session record): the download
step reads it from the blob store the worker shares with the print service, no
HTTP and no copy. Only a URL with no stored blob (a job accepted before this
was so) is fetched over HTTP, through the egress policy's pinned client
(`core/egress.py`): the address that is checked is the one connected to, on
every connection, and redirects are not followed.

The session calls are internal: only platform services (tokens of the issuer's
system tenant, checked by the core guard) may make them. The converted data is
fetched by printers with the conversion token in the `Authorization` header,
never in the URL.

A peer that is down for a moment — the session store, the database —
answers 503 naming it (`Unavailable`): the balancer passes the reason on and
the workflow's step retries; only a refusal that repeating cannot cure (a bad
or refused URL, a file that is not a PDF) ends the job.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from starlette.concurrency import run_in_threadpool

from printcloud import __version__
from printcloud.core import crypto, egress
from printcloud.core.blobs import FileBlobStore
from printcloud.core.db import Database
from printcloud.core.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PrintcloudError,
)
from printcloud.core.guard import Guard, Principal
from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings
from printcloud.core.web import RefuseNul, SecurityHeaders, install_error_handlers

from . import previews
from .convert import MANIFEST_NAME, inspect_pdf
from .convert_child import ConversionLimits, Converter
from .converted import ConvertedIndex, answer_converted
from .models import ConvertedDataRow
from .raster_stream import RasterRequest, encode_pages
from .sessions import SessionStore, check_data_key, make_store

log = get_logger("printing.worker")
SYSTEM_TENANT = "system"
_CONVERTING = threading.Lock()


class DownloadFailed(PrintcloudError):
    """The print data URL did not deliver (S1208 → S1213)."""

    status_code = 502
    error = "download_failed"


@dataclass
class Worker:
    settings: Settings
    db: Database
    blobs: FileBlobStore
    sessions: SessionStore
    guard: Guard
    worker_id: str
    #: Where this app's `/converted/...` is reachable from printers.
    public_base: str
    #: Converts in a child process with the conversion limits (convert_child.py).
    converter: Converter | None = None
    #: The converted-data records looked up here, kept while their token lives.
    index: ConvertedIndex | None = None


# -- schemas --------------------------------------------------------------------------------


class TokenRequest(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=64)
    job_id: str = Field(min_length=1, max_length=128)
    printer_id: str = Field(min_length=1, max_length=128)
    #: The blob key of the job's print data, when the intake stored it (`job_data_key`).
    data_key: str | None = Field(default=None, max_length=500)


class TokenIssued(BaseModel):
    session_key: str
    token: str
    worker: str


class DownloadRequest(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=64)
    #: The tenant's URL of a job whose data is not in the blob store.
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    #: The job's blob key, for a session opened without it (before `data_key` existed).
    data_key: str | None = Field(default=None, max_length=500)


class Downloaded(BaseModel):
    path: str
    bytes: int
    pages: int
    worker: str


class ConvertRequest(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=64)
    dpi: int = Field(default=300, ge=72, le=600)
    color: bool = True
    quality: int = Field(default=85, ge=30, le=100)
    #: Also make the job's page previews from the JPEG pages (a job its printer fetches
    #: as PDF: its device sends none, `previews.py`).
    previews: bool = False


class Converted(BaseModel):
    converted_id: str
    manifest_url: str
    pages: int
    worker: str
    #: Page previews made (with `previews`).
    previews: int = 0


# -- the steps --------------------------------------------------------------------------------


def _blob_name(session_key: str) -> str:
    return crypto.token_digest(session_key)[:40]


def _converted_folder(session_key: str) -> str:
    return f"converted/{_blob_name(session_key)}"


_DOWNLOADS = "downloads"


def _worker_copy(path: str | None) -> bool:
    """Whether `path` is a download a worker made (its to delete), not the intake's blob."""
    return bool(path) and str(path).startswith(f"{_DOWNLOADS}/")


async def fetch_print_data(url: str, *, settings: Settings) -> bytes:
    """S1207: download a tenant's print data URL, bounded in size and time, through the
    egress policy's pinned client (a server-side request forgery guard): the address
    checked is the address connected to, and a redirect is not followed.

    Raises InvalidRequest naming `url` when its form or its address is refused."""
    egress.url_host_port(url, field="url")
    limit = settings.max_print_bytes
    try:
        async with (
            egress.async_client(
                settings.egress_policy, timeout=httpx.Timeout(30.0, connect=5.0)
            ) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise DownloadFailed(f"the print data URL answered HTTP {response.status_code}")
            length = response.headers.get("content-length")
            if length and length.isdigit() and int(length) > limit:
                raise PayloadTooLarge(f"the print data is larger than {limit} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the print data is larger than {limit} bytes")
                chunks.append(chunk)
    except egress.EgressRefused as exc:
        raise InvalidRequest(f"url: {exc.description}", field="url") from None
    except httpx.HTTPError as exc:
        raise DownloadFailed(f"the print data URL did not answer: {type(exc).__name__}") from exc
    return b"".join(chunks)


async def internal_caller(request: Request) -> Principal:
    """Only platform services (tokens of the issuer's system tenant) call the workers."""
    worker: Worker = request.app.state.worker
    principal = await worker.guard.require("print")(request)
    if principal.tenant_id != SYSTEM_TENANT:
        raise Forbidden("only platform services may call the conversion workers")
    return principal


Internal = Annotated[Principal, Depends(internal_caller)]


def create_worker_app(worker: Worker) -> FastAPI:
    app = FastAPI(
        title="printcloud conversion worker",
        version=__version__,
        summary="Seed 003 SVC003/SVC004: stateless download and conversion",
    )
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RefuseNul)
    app.state.worker = worker
    router = APIRouter()

    @app.middleware("http")
    async def name_the_worker(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["X-Printcloud-Worker"] = worker.worker_id
        return response

    @router.get("/healthz", tags=["worker"])
    async def healthz() -> dict[str, str | int | None]:
        converter = worker.converter.pid if worker.converter is not None else None
        return {
            "status": "ok",
            "worker": worker.worker_id,
            "pid": os.getpid(),
            "converter_pid": converter,
        }

    @router.post(
        "/sessions",
        status_code=201,
        tags=["worker"],
        response_model=TokenIssued,
        summary="Token request (seed 003 FIG. 6)",
    )
    def token_request(body: TokenRequest, _: Internal) -> TokenIssued:
        key, token = worker.sessions.open_session(
            tenant_id=body.tenant_id,
            job_id=body.job_id,
            printer_id=body.printer_id,
            worker=worker.worker_id,
            data_key=body.data_key,
        )
        return TokenIssued(session_key=key, token=token, worker=worker.worker_id)

    @router.post(
        "/sessions/{job_id}/{printer_id}/download",
        tags=["worker"],
        response_model=Downloaded,
        summary="Download the print data (seed 003 FIG. 7)",
    )
    async def download(
        job_id: str, printer_id: str, body: DownloadRequest, _: Internal
    ) -> Downloaded:
        session = await run_in_threadpool(
            worker.sessions.require, tenant_id=body.tenant_id, job_id=job_id, printer_id=printer_id
        )
        stored = session.data_key or body.data_key
        if session.download_path and worker.blobs.exists(session.download_path):
            path = session.download_path
            data = worker.blobs.get(path)  # a repeated step: same answer
        elif stored is not None:
            # The intake stored the data in the blob store this worker shares: read it
            # there (only this job's blob), no HTTP and no copy.
            path = check_data_key(stored, job_id=job_id)
            try:
                data = await run_in_threadpool(worker.blobs.get, path)
            except NotFound:
                raise NotFound("the job's print data is gone (the job has ended)") from None
        elif body.url is not None:
            path = f"{_DOWNLOADS}/{_blob_name(session.key)}.pdf"
            data = await fetch_print_data(body.url, settings=worker.settings)
            inspect_pdf(data)  # refuse what is not a readable PDF before storing it
            await run_in_threadpool(worker.blobs.put, path, data)
        else:
            raise InvalidRequest(
                "url is required: the session names no stored print data", field="url"
            )
        pages = inspect_pdf(data).page_count
        if session.download_path != path:
            await run_in_threadpool(
                worker.sessions.record_download,
                tenant_id=body.tenant_id,
                job_id=job_id,
                printer_id=printer_id,
                path=path,
                worker=worker.worker_id,
            )
        return Downloaded(path=path, bytes=len(data), pages=pages, worker=worker.worker_id)

    @router.post(
        "/sessions/{job_id}/{printer_id}/convert",
        tags=["worker"],
        response_model=Converted,
        summary="Convert to JPEG pages and a metafile (seed 003 FIG. 8)",
    )
    def convert(job_id: str, printer_id: str, body: ConvertRequest, _: Internal) -> Converted:
        # One conversion at a time per worker process: it is CPU work, so a worker is
        # one core and the balancer's worker count is the core count (LB001).
        with _CONVERTING:
            done = _convert(job_id, printer_id, body)
        if body.previews:  # outside the lock: the next conversion need not wait for them
            with worker.db.sessions() as s:
                row = s.get(ConvertedDataRow, done.converted_id)
                prefix = row.blob_prefix if row is not None else None
            if prefix is not None:
                done.previews = previews.make(
                    worker.blobs, prefix=prefix, job_id=job_id, pages=done.pages
                )
        return done

    def _convert(job_id: str, printer_id: str, body: ConvertRequest) -> Converted:
        session = worker.sessions.require(
            tenant_id=body.tenant_id, job_id=job_id, printer_id=printer_id
        )
        if session.converted_id:  # a repeated step: answer what the first one made
            with worker.db.sessions() as s:
                done = s.get(ConvertedDataRow, session.converted_id)
                if done is not None:
                    return Converted(
                        converted_id=done.converted_id,
                        manifest_url=done.manifest_url,
                        pages=done.page_count,
                        worker=worker.worker_id,
                    )
        if not session.download_path:
            raise Conflict("the print data of this job has not been downloaded yet", field="job_id")
        converted_id = secrets.token_hex(16)
        # under the session's folder, so completion also removes what a killed try left
        prefix = f"{_converted_folder(session.key)}/{converted_id}"
        base = f"{worker.public_base}/converted/{converted_id}"
        assert worker.converter is not None
        manifest = worker.converter.convert(
            data_key=session.download_path,
            dpi=body.dpi,
            color=body.color,
            quality=body.quality,
            prefix=prefix,
            base_url=base,
        )
        manifest_url = f"{base}/{MANIFEST_NAME}"
        with worker.db.session() as s:
            s.add(
                ConvertedDataRow(
                    converted_id=converted_id,
                    tenant_id=body.tenant_id,
                    session_key=session.key,
                    job_id=job_id,
                    printer_id=printer_id,
                    blob_prefix=prefix,
                    manifest_url=manifest_url,
                    page_count=manifest.page_count,
                    token_digest=session.token_digest,
                    token_created_at=session.token_created_at,
                )
            )
        worker.sessions.record_conversion(
            tenant_id=body.tenant_id,
            job_id=job_id,
            printer_id=printer_id,
            converted_id=converted_id,
            worker=worker.worker_id,
        )
        # S1315: the downloaded file is no longer needed (the intake's own blob of the job
        # stays until the job completes: a repeated try may still need it)
        if _worker_copy(session.download_path):
            worker.blobs.delete(session.download_path)
        return Converted(
            converted_id=converted_id,
            manifest_url=manifest_url,
            pages=manifest.page_count,
            worker=worker.worker_id,
        )

    @router.post(
        "/sessions/{job_id}/{printer_id}/raster",
        tags=["worker"],
        summary="The converted pages as PWG raster or URF, streamed (issue 15)",
        response_class=StreamingResponse,
        responses={200: {"content": {"image/pwg-raster": {}, "image/urf": {}}}},
    )
    def raster(job_id: str, printer_id: str, body: RasterRequest, _: Internal) -> StreamingResponse:
        # Any worker serves any job: the pages are in the shared blob store, the
        # session and its token in the shared session store.
        body.check()
        session = worker.sessions.require(
            tenant_id=body.tenant_id, job_id=job_id, printer_id=printer_id
        )
        worker.sessions.check_token(session, body.token)
        with worker.db.sessions() as s:
            row = s.get(ConvertedDataRow, session.converted_id or "")
            if row is None or row.tenant_id != body.tenant_id or row.session_key != session.key:
                raise NotFound("the job has no converted pages")
            prefix, count = row.blob_prefix, row.page_count
        # Every page opened now, while the token is good: a completion that deletes
        # them meanwhile leaves the open files readable to the end.
        pages = []
        try:
            for number in range(1, count + 1):
                pages.append(worker.blobs.path(f"{prefix}/page-{number:04d}.jpg").open("rb"))
        except FileNotFoundError:
            for page in pages:
                page.close()
            raise NotFound("the job's converted pages are no longer stored") from None
        return StreamingResponse(
            encode_pages(body, pages),
            media_type=body.format,
            headers={"Cache-Control": "no-store", "X-Printcloud-Pages": str(count)},
        )

    @router.delete(
        "/sessions/{job_id}/{printer_id}",
        status_code=204,
        tags=["worker"],
        summary="Print completion: delete converted data and the record (seed 003 FIG. 11)",
    )
    def complete(job_id: str, printer_id: str, tenant_id: str, _: Internal) -> Response:
        try:
            session = worker.sessions.require(
                tenant_id=tenant_id, job_id=job_id, printer_id=printer_id
            )
        except NotFound:
            return Response(status_code=204)  # already completed: deleting twice is fine
        discard(
            worker,
            session_key=session.key,
            tenant_id=tenant_id,
            download_path=session.download_path,
        )
        worker.sessions.close(tenant_id=tenant_id, job_id=job_id, printer_id=printer_id)
        return Response(status_code=204)

    @router.get(
        "/converted/{converted_id}/{name}",
        tags=["store"],
        summary="Converted data for the printer, with its token (seed 003 FIG. 10)",
    )
    async def converted(converted_id: str, name: str, request: Request) -> Response:
        return await answer_converted(
            db=worker.db,
            blobs=worker.blobs,
            sessions=worker.sessions,
            converted_id=converted_id,
            name=name,
            authorization=request.headers.get("authorization", ""),
            index=worker.index,
            accel=worker.settings.converted_accel,
        )

    app.include_router(router)
    return app


def discard_session(
    *,
    db: Database,
    blobs: FileBlobStore,
    session_key: str,
    tenant_id: str,
    download_path: str | None,
) -> int:
    """Delete a session's converted data (blobs and records) and leftover download."""
    with db.session() as s:
        rows = list(
            s.scalars(
                select(ConvertedDataRow).where(
                    ConvertedDataRow.session_key == session_key,
                    ConvertedDataRow.tenant_id == tenant_id,
                )
            )
        )
        for row in rows:
            blobs.delete_prefix(row.blob_prefix)
        s.execute(
            delete(ConvertedDataRow).where(
                ConvertedDataRow.session_key == session_key, ConvertedDataRow.tenant_id == tenant_id
            )
        )
    blobs.delete_prefix(_converted_folder(session_key))
    if download_path and _worker_copy(download_path):
        blobs.delete(download_path)
    return len(rows)


def discard(worker: Worker, *, session_key: str, tenant_id: str, download_path: str | None) -> int:
    return discard_session(
        db=worker.db,
        blobs=worker.blobs,
        session_key=session_key,
        tenant_id=tenant_id,
        download_path=download_path,
    )


def sweep_stores(
    *, db: Database, blobs: FileBlobStore, sessions: SessionStore, older_than: timedelta
) -> int:
    """Remove converted data and session records of jobs that never completed."""
    swept = 0
    for session in sessions.stale(older_than=older_than):
        discard_session(
            db=db,
            blobs=blobs,
            session_key=session.key,
            tenant_id=session.tenant_id,
            download_path=session.download_path,
        )
        if sessions.forget(session):
            swept += 1
    return swept


def sweep(worker: Worker, *, older_than: timedelta) -> int:
    return sweep_stores(
        db=worker.db, blobs=worker.blobs, sessions=worker.sessions, older_than=older_than
    )


def build_worker(
    settings: Settings,
    *,
    db: Database,
    worker_id: str,
    public_base: str,
) -> Worker:
    """A worker with the deployment's stores and a guard for the platform issuer (idp-a)."""
    issuer = settings.issuers[0]
    guard = Guard.of_issuer(settings, issuer, service="printing")
    sessions = make_store(
        url=settings.session_store,
        db=db,
        token_timeout=timedelta(seconds=settings.conversion_token_timeout),
    )
    return Worker(
        settings=settings,
        db=db,
        blobs=FileBlobStore(settings.data_dir / "blobs"),
        sessions=sessions,
        guard=guard,
        worker_id=worker_id,
        public_base=public_base.rstrip("/"),
        index=ConvertedIndex(),
        converter=Converter(
            ConversionLimits(
                memory_mb=settings.convert_memory_mb,
                page_seconds=settings.convert_page_seconds,
                max_job_megapixels=settings.max_job_megapixels,
            ),
            blob_root=settings.data_dir / "blobs",
        ),
    )
