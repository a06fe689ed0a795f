"""`create_app(settings)`: the authorization server as an ASGI application."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from printcloud import __version__
from printcloud.core import console
from printcloud.core.db import Database
from printcloud.core.settings import Settings
from printcloud.core.web import BodyLimit, RefuseNul, SecurityHeaders, install_error_handlers

from . import admin_api, admin_pages, pages, routes
from .runtime import Runtime


def create_app(settings: Settings, *, db: Database | None = None) -> FastAPI:
    if settings.public_url.startswith("http://"):
        if settings.env == "production":
            raise RuntimeError("PRINTCLOUD_PUBLIC_URL must be https:// in production")
        # Authlib refuses plain-http URIs unless told this is development.
        os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    database = db or Database(settings.effective_database_url)
    rt = Runtime(settings=settings, db=database)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        rt.close_hot_path()
        for guard in rt.guards.values():
            await guard.aclose()

    app = FastAPI(
        title="printcloud auth",
        version=__version__,
        summary="Multi-tenant OAuth 2.0 authorization server (several issuers)",
        lifespan=lifespan,
    )
    app.state.auth = rt
    install_error_handlers(app)
    app.include_router(console.router)  # the console's stylesheet and icon, at /console/
    app.state.console_viewer = pages.console_viewer
    app.include_router(routes.router)
    app.include_router(admin_api.router)
    app.include_router(pages.router)
    app.include_router(admin_pages.router)
    app.add_middleware(BodyLimit, max_bytes=routes.MAX_FORM_BYTES)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RefuseNul)
    return app
