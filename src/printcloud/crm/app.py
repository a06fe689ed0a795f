"""The CRM's ASGI app (seed 000, service provider server B)."""

from __future__ import annotations

from fastapi import FastAPI

from printcloud import __version__
from printcloud.core.db import Database
from printcloud.core.settings import Settings
from printcloud.core.web import BodyLimit, RefuseNul, SecurityHeaders, install_error_handlers

from . import pages, print_pages, routes, schedules, service
from .runtime import CrmRuntime, build_runtime


def create_app(settings: Settings, *, db: Database) -> FastAPI:
    """The CRM: business data, batch jobs and the docgen link, for idp-b's tenants.
    Whoever serves it starts its runtime with the process's workflow engine
    (`rt.start(engine)` before launching it, `rt.started()` after: its batch jobs are
    scheduled then), stops it (`rt.stop()`) and closes it (`await rt.aclose()`)."""
    rt: CrmRuntime = build_runtime(settings, db=db)
    app = FastAPI(
        title="printcloud CRM",
        version=__version__,
        summary="Business data, scheduled batch-print jobs and the docgen link (seed 000, B)",
        root_path_in_servers=False,
    )
    app.state.crm = rt
    schedules.install(rt)
    install_error_handlers(app)
    app.include_router(routes.router)
    app.state.console_viewer = pages.site.viewer
    app.include_router(pages.router)
    app.include_router(print_pages.router)
    app.add_middleware(BodyLimit, max_bytes=service.MAX_CSV_BYTES + 64 * 1024)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RefuseNul)
    return app
