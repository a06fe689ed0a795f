"""docgen's ASGI app (seed 000, server A): the batch-print endpoint, the tenant's
batch-print settings (API and pages)."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from printcloud import __version__
from printcloud.core.db import Database
from printcloud.core.settings import Settings
from printcloud.core.web import BodyLimit, RefuseNul, SecurityHeaders, install_error_handlers

from . import batch, pages, routes
from .digest import NonceStore
from .runtime import DocgenRuntime, build_runtime

#: Largest request body (a batch-print request's parameters; forms come later).
MAX_BODY = 1024 * 1024


def create_app(
    settings: Settings,
    *,
    db: Database,
    nonce_store: NonceStore | None = None,
    public_url: str | None = None,
) -> FastAPI:
    """docgen, to be mounted at `/docgen`. `nonce_store`: the Digest nonces' (this
    process's memory by default; Redis for replicas). `public_url`: where the stack
    that mounts docgen is reachable, when not `settings.public_url` (tests)."""
    rt: DocgenRuntime = build_runtime(
        settings, db=db, nonce_store=nonce_store, public_url=public_url
    )
    app = FastAPI(
        title="printcloud docgen",
        version=__version__,
        summary="Document generation: batch printing for the CRM (seed 000, server A)",
        root_path_in_servers=False,
    )
    app.state.docgen = rt
    # The batch flow (FIG. 15B–16): started for each accepted request, and for any left
    # `received` once the process's engine is up (see `DocgenRuntime.start`).
    rt.on_accepted.append(partial(batch.start, rt))
    rt.on_started.append(batch.adopt_orphans)
    install_error_handlers(app)
    app.include_router(routes.router)
    app.state.console_viewer = pages.site.viewer
    app.include_router(pages.router)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RefuseNul)
    return app
