"""Composes the services: every one in one process (embedded), or one alone.

The embedded stack mounts each service's ASGI app under its own prefix on one
server; services still call each other over HTTP, through their public APIs.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp

from printcloud import __version__
from printcloud.auth import service as auth_service
from printcloud.auth.app import create_app as create_auth
from printcloud.auth.fastlane import OAuthFastLane
from printcloud.core.db import Database, migrate
from printcloud.core.logs import configure, get_logger
from printcloud.core.settings import Settings

log = get_logger("stack")
SERVICES = ("auth",)


def prepare(settings: Settings) -> Database:
    """Apply migrations and bootstrap what every deployment needs."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    migrate(db, "printcloud:migrations")
    with db.session() as session:
        auth_service.bootstrap(session, settings=settings)
    return db


def create_stack(settings: Settings, *, service: str | None = None) -> ASGIApp:
    configure(settings.log_level, json_lines=settings.log_json)
    if service not in (None, *SERVICES):
        raise ValueError(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
    db = prepare(settings)
    auth = create_auth(settings, db=db)
    runtime = auth.state.auth
    if service == "auth":
        return OAuthFastLane(auth, runtime)
    root = FastAPI(
        title="printcloud", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )

    @root.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @root.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse(f"/{settings.issuers[0]}/account")

    root.mount("/", auth)
    return OAuthFastLane(root, runtime)


def app_factory() -> ASGIApp:
    """What `printcloud serve` hands the HTTP server (granian), in each worker process."""
    settings = Settings()
    return create_stack(settings, service=settings.service)
