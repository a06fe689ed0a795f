"""Web helpers shared by every service: error handlers, security headers,
templates and CSRF protection for HTML forms."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from printcloud.core import console, crypto
from printcloud.core.errors import PrintcloudError
from printcloud.core.guard import Principal
from printcloud.core.logs import get_logger

log = get_logger("web")

_STATUS_CODES = {
    400: "invalid_request",
    401: "invalid_token",
    403: "access_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


#: Status -> the error page's heading and sentence, in the words a person uses.
_PAGES = {
    400: ("Check what you sent", "Something in the request could not be used."),
    401: ("Sign in first", "This page needs you to be signed in."),
    403: ("Not allowed", "Your account may not open this page. Ask your administrator."),
    404: ("Page not found", "There is nothing at this address. It may have been moved or removed."),
    405: (
        "This page cannot be opened this way",
        "This address only takes a form's answer. Use the navigation to go on.",
    ),
    413: ("Too large", "What you sent is too large."),
    429: ("Too many attempts", "Wait a minute, then try again."),
    503: ("Temporarily unavailable", "A part of printcloud does not answer. Try again shortly."),
}
_SERVER_ERROR = ("Something went wrong on our side", "It has been logged. Try again shortly.")
#: Starlette's own descriptions, which say nothing the heading does not.
_BARE = {"Not Found", "Method Not Allowed", "Forbidden", "Unauthorized", "Bad Request"}
_error_pages = Jinja2Templates(directory=str(console.TEMPLATES))
_error_pages.env.autoescape = True
console.install(_error_pages.env, "auth")


def error_response(
    request: Request,
    status: int,
    error: str,
    description: str,
    headers: dict[str, str] | None = None,
    field: str | None = None,
    viewer: console.Viewer | None = None,
) -> Any:
    """The error as JSON `{"error", "error_description"}`, or for a browser the console's
    error page: a plain heading and sentence, the navigation, the description below."""
    body: dict[str, Any] = {"error": error, "error_description": description}
    if field:
        body["field"] = field
    headers = {"Cache-Control": "no-store", **(headers or {})}
    if _wants_html(request):
        heading, text = _PAGES.get(status, _SERVER_ERROR if status >= 500 else _PAGES[400])
        detail = "" if status >= 500 or description in _BARE else description
        detail = (
            detail[:1].upper() + detail[1:] + ("" if detail.endswith(".") or not detail else ".")
        )
        service = console.service_of(request.url.path)
        context = {
            "heading": heading,
            "text": text,
            "detail": detail,
            # For a support request; a missing page or a wrong method needs none.
            "code": "" if status in (404, 405) else error,
            "viewer": viewer,
            "console_service": service,
            "home": "/crm/" if service == "crm" else "/printing/",
            "csrf": csrf_token(request),
        }
        template = _error_pages.get_template("console/error.html")
        response = HTMLResponse(template.render(context), status_code=status, headers=headers)
        set_csrf_cookie(request, response, secure=request.url.scheme == "https")
        return response
    return JSONResponse(body, status_code=status, headers=headers)


async def _viewer(request: Request) -> console.Viewer | None:
    """Who is signed in, for the error page's navigation: the principal a page's
    dependency found, or the service's hook (`app.state.console_viewer`)."""
    if not _wants_html(request):
        return None
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        return console.Viewer.of(principal, console.service_of(request.url.path))
    hook: console.ViewerHook | None = getattr(request.app.state, "console_viewer", None)
    if hook is None:
        return None
    try:
        return await hook(request)
    except Exception:  # an error page must render even when the sign-in cannot be checked
        log.warning("no viewer for the error page", exc_info=True)
        return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PrintcloudError)
    async def _printcloud_error(request: Request, exc: PrintcloudError) -> Any:
        return error_response(
            request,
            exc.status_code,
            exc.error,
            exc.description,
            exc.headers(),
            exc.field,
            viewer=await _viewer(request),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Any:
        parts = []
        first_field = None
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
            field = ".".join(loc) or "request"
            first_field = first_field or field
            parts.append(f"{field}: {err.get('msg', 'invalid')}")
        return error_response(
            request,
            400,
            "invalid_request",
            "; ".join(parts) or "invalid request",
            field=first_field,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        code = _STATUS_CODES.get(
            exc.status_code, "server_error" if exc.status_code >= 500 else "error"
        )
        return error_response(
            request,
            exc.status_code,
            code,
            str(exc.detail),
            dict(exc.headers or {}),
            viewer=await _viewer(request),
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_down(request: Request, exc: Exception) -> Any:
        log.error("database unavailable", extra={"fields": {"path": request.url.path}})
        return error_response(
            request,
            503,
            "temporarily_unavailable",
            "the database is unavailable; try again shortly",
            {"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Any:
        log.exception("unhandled error", extra={"fields": {"path": request.url.path}})
        return error_response(
            request,
            500,
            "server_error",
            "internal error; it has been logged",
            viewer=await _viewer(request),
        )


class SecurityHeaders:
    """Pure ASGI middleware adding conservative security headers to every response."""

    HEADERS = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]
    HTML_CSP = (
        b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        b"form-action 'self' http: https:; frame-ancestors 'none'"
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self.HEADERS)
                if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers.append((b"content-security-policy", self.HTML_CSP))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


class BodyLimit:
    """Pure ASGI middleware answering 413 to request bodies over `max_bytes`,
    declared or streamed, before any handler or form parser reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        description = f"the body must be at most {self.max_bytes} bytes"
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(Request(scope), 413, "payload_too_large", description)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes FastAPI's body parsing unchanged (others become 400).
                    raise StarletteHTTPException(413, description)
            return message

        await self.app(scope, limited, send)


def templates(*directories: Path, service: str) -> Jinja2Templates:
    """A service's templates: its own folders, then the console's (`console/base.html`,
    the error page), with what the console's base template reads."""
    tmpl = Jinja2Templates(directory=[*(str(d) for d in directories), str(console.TEMPLATES)])
    tmpl.env.autoescape = True
    console.install(tmpl.env, service)
    return tmpl


CSRF_COOKIE = "pc_csrf"


def csrf_token(request: Request) -> str:
    """The CSRF token for this browser (double-submit cookie), creating one if needed."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(24)
        request.state.new_csrf = token
    return str(token)


def set_csrf_cookie(request: Request, response: Any, *, secure: bool, path: str = "/") -> None:
    token = getattr(request.state, "new_csrf", None)
    if token:
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="lax", secure=secure, path=path
        )


def check_csrf(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    return bool(cookie and submitted and crypto.equal(cookie, submitted))


class RefuseNul:
    """Pure ASGI middleware: a NUL character in the query or in a form/JSON body is
    refused with 400 naming the field, before any handler sees it. PostgreSQL cannot
    store NUL in text, and no legitimate field here contains one. Path parameters are
    left to the routes, which know their names; other bodies (file uploads) pass."""

    CHECKED = (b"application/x-www-form-urlencoded", b"application/json")
    MAX_BUFFER = 1 << 20

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            await _refuse_nul(send, _form_field(query))
            return
        headers = dict(scope.get("headers", []))
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype not in self.CHECKED:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body"))
            if size > self.MAX_BUFFER:
                break
        body = b"".join(chunks)
        if b"\x00" in body or b"%00" in body or b"\\u0000" in body:
            field = _json_field(body) if ctype == b"application/json" else _form_field(body)
            await _refuse_nul(send, field)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)


def _form_field(raw: bytes) -> str | None:
    for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        if "\x00" in key or "\x00" in value:
            return key.replace("\x00", "") or None
    return None


def _json_field(raw: bytes) -> str | None:
    try:
        document = json.loads(raw)
    except ValueError:
        return None

    def walk(value: Any, path: str) -> str | None:
        if isinstance(value, str):
            return path if "\x00" in value else None
        if isinstance(value, dict):
            for key, item in value.items():
                found = walk(item, f"{path}.{key}" if path else str(key))
                if found is not None or "\x00" in str(key):
                    return found or path or "request"
        if isinstance(value, list):
            for index, item in enumerate(value):
                found = walk(item, f"{path}.{index}")
                if found is not None:
                    return found
        return None

    return walk(document, "")


async def _refuse_nul(send: Send, field: str | None) -> None:
    body: dict[str, str] = {
        "error": "invalid_request",
        "error_description": "NUL characters are not allowed in requests",
    }
    if field:
        body["field"] = field
    raw = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
