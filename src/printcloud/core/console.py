"""The console: what every service's web pages share (issue 16, "one console").

- One base template (`templates/console/base.html`) with one navigation bar: the
  sections the signed-in person may use, the tenant and the user, and sign-out.
- One stylesheet and one favicon, served once by `router` at `/console/` (the auth
  app at `/` includes it; nginx sends `/` there in the distributed run too), with a
  content hash in their URL so browsers keep them for a year.
- The error page (`console/error.html`) that `core.web` renders for browsers.

Services pass the person as a `Viewer` (or their `Principal`, from which one is
made); this module decides which sections to show. It knows the services' public
paths, not their code (core imports no service).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from printcloud.core import words
from printcloud.core.guard import Principal

TEMPLATES = Path(__file__).parent / "templates"
_STATIC = Path(__file__).parent / "static"
_CSS = (_STATIC / "console.css").read_bytes()
_FAVICON = (_STATIC / "favicon.svg").read_bytes()
STYLESHEET = f"/console/console.css?v={hashlib.sha256(_CSS).hexdigest()[:12]}"
FAVICON = f"/console/favicon.svg?v={hashlib.sha256(_FAVICON).hexdigest()[:12]}"
_CACHED = {"Cache-Control": "public, max-age=31536000, immutable"}

#: The services whose pages belong to the platform's issuer (idp-a); the CRM is idp-b's.
PLATFORM_SERVICES = ("printing", "docgen")

router = APIRouter(include_in_schema=False)


@router.get("/console/console.css")
async def stylesheet() -> Response:
    return Response(_CSS, media_type="text/css", headers=_CACHED)


@router.get("/console/favicon.svg")
async def favicon() -> Response:
    return Response(_FAVICON, media_type="image/svg+xml", headers=_CACHED)


@dataclass(frozen=True)
class Viewer:
    """The signed-in person as the navigation shows them."""

    issuer: str
    #: the tenant's display name (the ID when the issuer gives none)
    tenant: str
    user: str
    admin: bool
    #: The CRM's people (idp-b) see the CRM's sections, the platform's the others.
    platform: bool
    #: Where the sign-out form posts (each service signs its own session out).
    sign_out: str
    #: the tenant's ID (what a person types at sign-in), beside its name
    tenant_id: str = ""

    @classmethod
    def of(cls, principal: Principal, service: str) -> Viewer:
        """The person behind a service's signed-in `principal`."""
        return cls(
            issuer=principal.issuer.rstrip("/").rsplit("/", 1)[-1],
            tenant=principal.tenant_name or principal.tenant_id,
            tenant_id=principal.tenant_id,
            user=principal.acting_user,
            admin=principal.admin,
            platform=service in PLATFORM_SERVICES,
            sign_out=f"/{service}/auth/logout",
        )


@dataclass(frozen=True)
class Link:
    key: str
    label: str
    href: str
    current: bool


def navigation(viewer: Viewer | None, current: str | None) -> list[Link]:
    """The sections `viewer` may use, `current` marked. Administrators' sections only
    for administrators; the CRM's people see the CRM (their Documents and batch jobs)."""
    if viewer is None:
        return []
    if viewer.platform:
        sections = [
            ("print", "Print", "/printing/"),
            ("jobs", "Jobs", "/printing/jobs"),
            ("balance", "Balance", "/printing/account"),
        ]
        if viewer.admin:
            sections += [
                ("printers", "Printers and queues", "/printing/queues"),
                ("accounting", "Prices and accounts", "/printing/accounting"),
                ("batch", "Batch printing", "/docgen/settings"),
                ("webhooks", "Webhooks", "/printing/webhooks"),
            ]
    else:
        sections = [("documents", "Documents", "/crm/"), ("batch", "Batch printing", "/crm/jobs")]
    if viewer.admin:
        sections.append(("admin", "Admin", f"/{viewer.issuer}/admin"))
    return [Link(key, label, href, key == current) for key, label, href in sections]


def viewer_for(principal: Principal | None, service: str) -> Viewer | None:
    return Viewer.of(principal, service) if principal is not None else None


def install(env: Any, service: str) -> None:
    """Give a Jinja environment what `console/base.html` reads."""
    env.globals.update(
        console_service=service,
        console_stylesheet=STYLESHEET,
        console_favicon=FAVICON,
        console_navigation=navigation,
        console_viewer=viewer_for,
        words=words,
    )
    env.globals.setdefault("viewer", None)
    env.globals.setdefault("principal", None)
    env.globals.setdefault("area", None)


#: A service's way to tell who is signed in on any request (for its error pages):
#: set as `app.state.console_viewer`.
ViewerHook = Callable[[Request], Awaitable[Viewer | None]]


def service_of(path: str) -> str:
    """The service a public path belongs to (`/printing/...` -> printing; issuers -> auth)."""
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in ("printing", "crm", "docgen") else "auth"
