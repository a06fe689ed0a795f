"""The print service's ASGI app (seed 003, SVC001/SVC002/SVC004/SVC005)."""

from __future__ import annotations

import threading

from fastapi import FastAPI

from printcloud import __version__
from printcloud.core.db import Database
from printcloud.core.settings import Settings
from printcloud.core.web import BodyLimit, RefuseNul, SecurityHeaders, install_error_handlers

from . import (
    accounting_pages,
    accounting_routes,
    infra_routes,
    ipp_fastlane,
    ipp_routes,
    pages,
    pipeline,
    raster_stream,
    routes,
    webhook_pages,
    webhook_routes,
)
from .pool import die_with_parent
from .runtime import PrintingRuntime, build_runtime
from .worker import build_worker, create_worker_app


def create_app(settings: Settings, *, db: Database) -> FastAPI:
    """The print service. Its runtime (`app.state.printing`) is started by whoever
    serves it (`stack.py`): the conversion pool, the balancer and the workflows."""
    rt: PrintingRuntime = build_runtime(settings, db=db)
    app = FastAPI(
        title="printcloud printing",
        version=__version__,
        summary="Print jobs: intake, load-balanced conversion, printers (seed 003)",
        root_path_in_servers=False,
    )
    app.state.printing = rt
    app.state.ipp_queues = ipp_routes.IppQueues.of(rt)
    app.state.infra_devices = infra_routes.DeviceAuthenticator(settings, rt.guard)
    rt.before_launch.append(lambda engine: pipeline.tune(engine, settings))
    rt.on_started.append(pipeline.adopt_orphans)
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(accounting_routes.router)

    app.include_router(webhook_routes.router)
    app.include_router(ipp_routes.router)
    app.include_router(infra_routes.router)
    app.state.console_viewer = pages.site.viewer
    app.include_router(pages.router)
    app.include_router(accounting_pages.router)

    app.include_router(webhook_pages.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_print_bytes + 64 * 1024)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RefuseNul)
    # outermost: Get-Printer-Attributes is answered ahead of the rest (ipp_fastlane)
    app.add_middleware(ipp_fastlane.IppFastLane, rt=rt, state=app.state.ipp_queues)
    return app


def create_convert_app(settings: Settings, *, db: Database) -> FastAPI:
    """One stateless conversion worker (SVC003), for `printcloud serve --service convert`."""
    die_with_parent()  # a worker whose server process died must not linger on its own
    worker = build_worker(
        settings,
        db=db,
        worker_id=settings.require_worker_id(),
        public_base=f"{settings.public_url}/printing",
    )
    # The raster kernels (PWG/URF for printers that fetch it) compile, or load from
    # numba's cache, beside the start rather than in a printer's first fetch.
    threading.Thread(target=raster_stream.warm_up, name="raster-warm-up", daemon=True).start()
    return create_worker_app(worker)
