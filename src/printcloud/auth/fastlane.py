"""A pure-ASGI lane for the OAuth form endpoints (token, introspect, revoke,
device authorization), placed in front of the FastAPI app.

The work is the same `routes.oauth_post` the FastAPI routes call (they stay,
documented in the OpenAPI); this lane only skips the framework's per-request
machinery, which cost more than issuing a token (docs/adr/0005-token-hot-path.md).
Every other request passes through untouched.
"""

from __future__ import annotations

import json

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from printcloud.core.errors import PayloadTooLarge, PrintcloudError
from printcloud.core.logs import get_logger

from .routes import ENDPOINTS, MAX_FORM_BYTES, oauth_post
from .runtime import Runtime

log = get_logger("auth.fastlane")

_BASE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class OAuthFastLane:
    def __init__(self, app: ASGIApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            parts = scope["path"].split("/")
            if len(parts) == 3 and parts[2] in ENDPOINTS and parts[1] in self.rt.servers:
                await self._serve(scope, receive, send, parts[1], parts[2])
                return
        await self.app(scope, receive, send)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, issuer: str, endpoint: str
    ) -> None:
        headers = Headers(scope=scope)
        extra: dict[str, str] = {}
        try:
            body = await _read_body(receive, headers)
            client = scope.get("client")
            status, payload, extra = await oauth_post(
                self.rt,
                issuer,
                endpoint,
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                body=body,
                ip=client[0] if client else "unknown",
            )
        except PrintcloudError as exc:
            status, payload, extra = exc.status_code, exc.as_dict(), exc.headers()
        except (OperationalError, InterfaceError):
            log.error("database unavailable", extra={"fields": {"path": scope["path"]}})
            status, extra = 503, {"Retry-After": "5"}
            payload = {
                "error": "temporarily_unavailable",
                "error_description": "the database is unavailable; try again shortly",
            }
        except Exception:  # answered as a JSON 500, logged with its trace
            log.exception("unhandled error", extra={"fields": {"path": scope["path"]}})
            status, payload = (
                500,
                {
                    "error": "server_error",
                    "error_description": "internal error; it has been logged",
                },
            )
        raw = json.dumps(
            payload if isinstance(payload, dict) else {}, separators=(",", ":")
        ).encode()
        out: list[tuple[bytes, bytes]] = list(_BASE_HEADERS)
        for key, value in extra.items():
            if key.lower() not in ("content-type", "cache-control", "pragma"):
                out.append((key.lower().encode("latin-1"), str(value).encode("latin-1")))
        out.append((b"content-length", str(len(raw)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": raw})


async def _read_body(receive: Receive, headers: Headers) -> bytes:
    length = headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"the body must be at most {MAX_FORM_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"the body must be at most {MAX_FORM_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)
