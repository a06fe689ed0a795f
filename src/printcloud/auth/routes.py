"""OAuth 2.0 endpoints of each issuer, its RFC 8414 metadata and `/api/me`."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from printcloud.core.errors import InvalidRequest, PayloadTooLarge, RateLimited
from printcloud.core.guard import Principal

from .oauth import IssuerServer, NeedsSession, rfc9068
from .oauth import Request as OAuthRequest
from .runtime import Runtime, runtime_dependency
from .service import CARD_GRANT

router = APIRouter()
RuntimeDep = Annotated[Runtime, Depends(runtime_dependency)]

MAX_FORM_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        },
    }
}


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def parse_form(content_type: str | None, body: bytes) -> list[tuple[str, str]]:
    """The urlencoded body as (key, value) pairs; refuses other types, big bodies, repeats."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidRequest(
            "the body must be application/x-www-form-urlencoded", field="content-type"
        )
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"the body must be at most {MAX_FORM_BYTES} bytes")
    try:
        items = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the body is not valid UTF-8") from exc
    for key, value in items:
        if "\x00" in key or "\x00" in value:
            raise InvalidRequest(
                "NUL characters are not allowed in requests", field=key.replace("\x00", "") or None
            )
    keys = [k for k, _ in items]
    if len(keys) != len(set(keys)):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise InvalidRequest(
            f"parameters must not be repeated: {', '.join(repeated)}", field=repeated[0]
        )
    return items


def to_response(result: tuple[int, Any, dict[str, str]]) -> Response:
    status, body, headers = result
    if "Location" in headers:
        return RedirectResponse(
            headers["Location"], status_code=302 if status in (200, 302) else status
        )
    headers = {**headers, **NO_STORE}
    headers.pop("Content-Type", None)
    return JSONResponse(body if isinstance(body, dict) else {}, status_code=status, headers=headers)


def _readable_basic(value: str | None) -> bool:
    """Whether Authlib can read these Basic credentials: it decodes them as ASCII
    base64 of UTF-8 and raises (a 500) on anything else; it percent-decodes them,
    and a NUL in a client id breaks PostgreSQL (another 500)."""
    parts = (value or "").split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "basic":
        return True
    try:
        decoded = base64.b64decode(parts[1]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    return "\x00" not in unquote(decoded)


def oauth_request(
    request: Request, form: list[tuple[str, str]], rt: Runtime, issuer: str
) -> OAuthRequest:
    uri = f"{rt.settings.public_url}{request.url.path}"
    if request.url.query:
        uri += f"?{request.url.query}"
    return OAuthRequest(
        request.method, uri, request.headers, list(request.query_params.multi_items()), form
    )


#: The OAuth endpoints that take a form POST, by the last segment of their path.
ENDPOINTS: dict[str, Callable[[IssuerServer, OAuthRequest], Any]] = {
    "token": lambda s, r: s.create_token_response(r),
    "introspect": lambda s, r: s.create_endpoint_response("introspection", r),
    "revoke": lambda s, r: s.create_endpoint_response("revocation", r),
    "device_authorization": lambda s, r: s.create_endpoint_response("device_authorization", r),
}


async def oauth_post(
    rt: Runtime,
    issuer: str,
    endpoint: str,
    *,
    path: str,
    query: str,
    headers: Headers,
    body: bytes,
    ip: str,
) -> tuple[int, Any, dict[str, str]]:
    """One form POST to an OAuth endpoint, whatever served the HTTP (FastAPI or the fast lane)."""
    rt.server(issuer)
    rt.client_auth_limiter.check(ip)
    form = parse_form(headers.get("content-type"), body)
    if headers.get("authorization") and any(key == "client_secret" for key, _ in form):
        # RFC 6749 §2.3: one authentication method per request. Answering for whichever one
        # succeeds would let wrong Basic secrets be tried without counting as failures.
        raise InvalidRequest(
            "authenticate the client once: HTTP Basic or client_secret in the body",
            field="client_secret",
        )
    if not _readable_basic(headers.get("authorization")):
        # Credentials nobody can read are no credentials: the answer is invalid_client.
        headers = headers.mutablecopy()
        del headers["authorization"]
    uri = f"{rt.settings.public_url}{path}" + (f"?{query}" if query else "")
    oreq = OAuthRequest("POST", uri, headers, parse_qsl(query, keep_blank_values=True), form)
    call = ENDPOINTS[endpoint]
    grant = oreq.payload.data.get("grant_type") if endpoint == "token" else None
    hot: tuple[int, Any, dict[str, str]] | None = None
    if grant == "client_credentials":
        # A JWT client's plain request: signed here, nothing to write (RFC 9068).
        server = rt.server(issuer)
        answer = rfc9068.client_credentials(
            server.keyring,
            server.clients,
            settings=rt.settings,
            authorization=headers.get("authorization"),
            form=form,
        )
        if answer is not None:
            return 200, answer, {}
    if grant in ("client_credentials", CARD_GRANT):
        # Client credentials need no reads beyond the client cache, and a known card one
        # indexed read: no session, no threadpool; the group-commit writer persists the
        # token row (and the card's login time) before the token is handed out.
        try:
            hot, pending = await rt.hot(rt.oauth_call_hot, issuer, oreq, call)
        except NeedsSession:  # an unknown or expired card, a registration: the full path
            hot = None
        else:
            if pending.pending_access or pending.pending_refresh or pending.pending_logins:
                await rt.persist_tokens(
                    pending.pending_access, pending.pending_refresh, pending.pending_logins
                )
    if hot is not None:
        status, payload, out_headers = hot
    elif endpoint == "introspect":
        status, payload, out_headers = await rt.hot(rt.oauth_read, issuer, oreq, call)
    else:
        status, payload, out_headers = await run_in_threadpool(rt.oauth_call, issuer, oreq, call)
    if isinstance(payload, dict) and payload.get("error") == "invalid_client":
        # This answer already says invalid_client; the next attempt is the one refused.
        with contextlib.suppress(RateLimited):
            rt.client_auth_limiter.hit(ip)
    return status, payload, out_headers


async def _endpoint(request: Request, rt: Runtime, issuer: str, endpoint: str) -> Response:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"the body must be at most {MAX_FORM_BYTES} bytes")
    result = await oauth_post(
        rt,
        issuer,
        endpoint,
        path=request.url.path,
        query=request.url.query,
        headers=request.headers,
        body=await request.body(),
        ip=client_ip(request),
    )
    return to_response(result)


def _form_endpoint(name: str) -> Callable[..., Awaitable[Response]]:
    async def endpoint(request: Request, issuer: str, rt: RuntimeDep) -> Response:
        return await _endpoint(request, rt, issuer, name)

    endpoint.__name__ = name
    return endpoint


# The OAuth form endpoints, documented in the OpenAPI. In a running stack the ASGI lane
# (fastlane.py) answers them first, through the same `oauth_post`.
for _name, _summary in (
    ("token", "Token endpoint (RFC 6749 §3.2)"),
    ("introspect", "Token introspection (RFC 7662)"),
    ("revoke", "Token revocation (RFC 7009)"),
    ("device_authorization", "Device authorization (RFC 8628 §3.1)"),
):
    router.add_api_route(
        f"/{{issuer}}/{_name}",
        _form_endpoint(_name),
        methods=["POST"],
        tags=["oauth"],
        summary=_summary,
        openapi_extra=FORM_BODY,
    )


@router.get(
    "/{issuer}/.well-known/oauth-authorization-server",
    tags=["oauth"],
    summary="Authorization server metadata (RFC 8414)",
)
async def metadata(issuer: str, rt: RuntimeDep) -> dict[str, Any]:
    return rt.server(issuer).metadata()


@router.get(
    "/.well-known/oauth-authorization-server/{issuer}",
    tags=["oauth"],
    summary="Authorization server metadata at the RFC 8414 §3.1 location",
)
async def metadata_rfc(issuer: str, rt: RuntimeDep) -> dict[str, Any]:
    return rt.server(issuer).metadata()


@router.get(
    "/{issuer}/jwks",
    tags=["oauth"],
    summary="The issuer's public keys of JWT access tokens (RFC 7517 JWK Set, RFC 9068)",
)
async def jwks(issuer: str, rt: RuntimeDep) -> JSONResponse:
    keys = await run_in_threadpool(rt.server(issuer).keyring.jwks)
    # Caches may keep it briefly: a new key is published long before it signs.
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=60"})


class Me(BaseModel):
    issuer: str
    tenant_id: str
    client_id: str
    user_id: str | None
    local_user: dict[str, Any] | None
    scopes: list[str]
    local_auth_cooperation: bool
    acting_user: str
    acting_kind: str
    #: The issuer's claims computed at introspection (issue 11, items 4 and 8).
    admin: bool
    amr: list[str]
    held_release: str
    #: The tenant's display name (tokens carry the ID; introspection and JWTs both).
    tenant_name: str


async def principal(request: Request, issuer: str, rt: RuntimeDep) -> Principal:
    rt.server(issuer)
    return await rt.guards[issuer].require()(request)


@router.get(
    "/{issuer}/api/me",
    tags=["api"],
    response_model=Me,
    summary="Who the bearer token acts as (seed 001: local authentication cooperation mode)",
)
async def me(p: Annotated[Principal, Depends(principal)]) -> Me:
    return Me(
        issuer=p.issuer,
        tenant_id=p.tenant_id,
        client_id=p.client_id,
        user_id=p.user_id,
        local_user=p.local_user,
        scopes=sorted(p.scopes),
        local_auth_cooperation=p.local_auth_cooperation,
        acting_user=p.acting_user,
        acting_kind=p.acting_kind,
        admin=p.admin,
        amr=sorted(p.amr),
        held_release=p.held_release,
        tenant_name=p.tenant_name or p.tenant_id,
    )
