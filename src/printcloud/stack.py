"""Composes the services: every one in one process (embedded), or one alone.

The embedded stack mounts each service's ASGI app under its own prefix on one
server; services still call each other over HTTP, through their public APIs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from printcloud import __version__
from printcloud.auth import service as auth_service
from printcloud.core import crypto
from printcloud.core.db import Database, migrate
from printcloud.core.http import trust_certificate
from printcloud.core.logs import configure, get_logger
from printcloud.core.settings import Settings
from printcloud.core.tls import served_certificate

if TYPE_CHECKING:
    from printcloud.docgen.digest import NonceStore
    from printcloud.docgen.runtime import DocgenRuntime
    from printcloud.printing.runtime import PrintingRuntime

# The services' apps are imported where they are built: a conversion worker
# (`--service convert`, one per core beside each print service) imports its own app only,
# not the other services' pages, workflows (DBOS) and IPP (about half its start's CPU).

log = get_logger("stack")
#: What `printcloud serve --service NAME` can run alone.
SERVICES = ("auth", "crm", "docgen", "printing", "convert")
#: What the embedded stack runs by default.
EMBEDDED = ("auth", "crm", "docgen", "printing")


def prepare(settings: Settings, *, serving: bool = True) -> Database:
    """Apply migrations and bootstrap what every deployment needs.

    `serving=True` (a server starting) also brings the platform's service clients in
    line with these settings: their redirect URIs follow this server's public URL.
    Admin commands pass False: whatever their environment says, they never rewrite
    what a running deployment signs its users in with (`printcloud admin bootstrap`
    does, when asked)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    crypto.use_password_parameters(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    if serving:
        crypto.make_password_decoy()
    db = Database(
        settings.effective_database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    migrate(db, "printcloud:migrations")
    with db.session() as session:
        changes = auth_service.bootstrap(session, settings=settings, reconcile=serving)
    for change in changes:
        log.info("bootstrap changed the platform's rows", extra={"fields": {"change": change}})
    return db


def nonces(settings: Settings) -> NonceStore:
    """Where docgen keeps the Digest nonces it has seen: shared by replicas through Redis
    (`PRINTCLOUD_DIGEST_NONCE_STORE`), else this process's memory."""
    from printcloud.docgen.digest import MemoryNonceStore, RedisNonceStore

    if settings.digest_nonce_store:
        return RedisNonceStore(settings.digest_nonce_store)
    return MemoryNonceStore()


def create_stack(
    settings: Settings,
    *,
    service: str | None = None,
    services: tuple[str, ...] = EMBEDDED,
    exit_when_stopped: bool = False,
) -> ASGIApp:
    """One service (`service=`), or the embedded stack of `services` under one server."""
    configure(settings.log_level, json_lines=settings.log_json)
    if service not in (None, *SERVICES):
        raise ValueError(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
    if settings.serves_tls and served_certificate(settings).exists():
        trust_certificate(served_certificate(settings))  # it calls its own https:// URL
    db = prepare(settings)
    if service == "convert":
        from printcloud.printing.app import create_convert_app

        return create_convert_app(settings, db=db)
    from printcloud.auth import housekeeping
    from printcloud.auth.app import create_app as create_auth
    from printcloud.auth.fastlane import OAuthFastLane
    from printcloud.core.tasks import TaskEngine
    from printcloud.crm.app import create_app as create_crm
    from printcloud.docgen.app import create_app as create_docgen
    from printcloud.printing.app import create_app as create_printing
    from printcloud.printing.ipp_fastlane import IppFastLane
    from printcloud.printing.ipp_listener import ipp_listener

    wanted = (service,) if service else services
    printing = create_printing(settings, db=db) if "printing" in wanted else None
    crm = create_crm(settings, db=db) if "crm" in wanted else None
    docgen = (
        create_docgen(settings, db=db, nonce_store=nonces(settings)) if "docgen" in wanted else None
    )
    rt: PrintingRuntime | None = printing.state.printing if printing is not None else None
    # IPP's own port (PRINTCLOUD_IPP_PORT), served on the loop this lifespan runs on
    listener = (
        ipp_listener(settings, app=printing, rt=rt, queues=printing.state.ipp_queues)
        if printing is not None and rt is not None
        else None
    )
    dg: DocgenRuntime | None = docgen.state.docgen if docgen is not None else None

    # One workflow engine per process (DBOS): the print service's job workflows, docgen's
    # batch flow and the authorization server's housekeeping schedule run on it.
    engine = TaskEngine(settings, db=db) if settings.run_workflows else None
    if "auth" in wanted:
        housekeeping.bind(db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if dg is not None and engine is not None:
            dg.start(engine)  # before the launch: recovered batch workflows need it
        if crm is not None:
            crm.state.crm.start(engine)  # before the launch: recovered CRM runs need it
        if rt is not None:
            await run_in_threadpool(rt.start, engine)
        elif engine is not None:
            await run_in_threadpool(engine.launch)
        if dg is not None and engine is not None:
            await run_in_threadpool(dg.started)
        if crm is not None:  # its batch jobs are scheduled on the launched engine
            await run_in_threadpool(crm.state.crm.started)
        if listener is not None:
            await listener.start()
        try:
            yield
        finally:
            if listener is not None:  # its requests in progress end first, answered
                await listener.stop()
            if rt is not None:  # the jobs answered but not started yet, first
                await run_in_threadpool(rt.finish_starts)
            if engine is not None:
                await run_in_threadpool(engine.shutdown)
            if dg is not None:
                dg.stop()
            if crm is not None:
                crm.state.crm.stop()
            if rt is not None:
                await run_in_threadpool(rt.stop)
                await rt.guard.aclose()
            if crm is not None:
                await crm.state.crm.aclose()
            if docgen is not None:
                await docgen.state.docgen.aclose()
            if engine is not None and exit_when_stopped:
                # Workflows waiting for a printer or a release sit in DBOS's executor
                # threads, which Python joins at exit: the process would linger until
                # their wait ends. Their state is durable (they resume at the next
                # start), so the serving process leaves now.
                os._exit(0)

    root = FastAPI(
        title="printcloud",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )

    @root.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    if printing is not None:
        root.mount("/printing", printing)
    if crm is not None:
        root.mount("/crm", crm)
    if docgen is not None:
        root.mount("/docgen", docgen)
    if "auth" not in wanted:
        return root
    auth = create_auth(settings, db=db)
    runtime = auth.state.auth

    @root.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        if printing is not None:
            return RedirectResponse("/printing/")
        return RedirectResponse(f"/{settings.issuers[0]}/account")

    root.mount("/", auth)
    lanes: ASGIApp = OAuthFastLane(root, runtime)
    if printing is not None:
        # Get-Printer-Attributes ahead of the root's routing too (printing/ipp_fastlane.py)
        lanes = IppFastLane(
            lanes, rt=printing.state.printing, state=printing.state.ipp_queues, mount="/printing"
        )
    return lanes


def app_factory() -> ASGIApp:
    """What `printcloud serve` hands the HTTP server (granian), in each worker process."""
    settings = Settings()
    return create_stack(settings, service=settings.service, exit_when_stopped=True)
