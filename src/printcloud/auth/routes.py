"""OAuth 2.0 endpoints of each issuer, its RFC 8414 metadata and `/api/me`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from printcloud.core.errors import InvalidRequest, PayloadTooLarge, RateLimited
from printcloud.core.guard import Principal

from .oauth import Request as OAuthRequest
from .runtime import Runtime, runtime

router = APIRouter()
RuntimeDep = Annotated[Runtime, Depends(runtime)]

MAX_FORM_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}},
    }
}


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def read_form(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body as (key, value) pairs; refuses other types, big bodies, repeats."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded", field="content-type")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"the body must be at most {MAX_FORM_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"the body must be at most {MAX_FORM_BYTES} bytes")
    from urllib.parse import parse_qsl

    try:
        items = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the body is not valid UTF-8") from exc
    keys = [k for k, _ in items]
    if len(keys) != len(set(keys)):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise InvalidRequest(f"parameters must not be repeated: {', '.join(repeated)}", field=repeated[0])
    return items


def to_response(result: tuple[int, Any, dict[str, str]]) -> Response:
    status, body, headers = result
    if "Location" in headers:
        return RedirectResponse(headers["Location"], status_code=302 if status in (200, 302) else status)
    headers = {**headers, **NO_STORE}
    headers.pop("Content-Type", None)
    return JSONResponse(body if isinstance(body, dict) else {}, status_code=status, headers=headers)


def oauth_request(request: Request, form: list[tuple[str, str]], rt: Runtime, issuer: str) -> OAuthRequest:
    uri = f"{rt.settings.public_url}{request.url.path}"
    if request.url.query:
        uri += f"?{request.url.query}"
    return OAuthRequest(request.method, uri, request.headers, list(request.query_params.multi_items()), form)


async def _endpoint(request: Request, rt: Runtime, issuer: str, call: Any) -> Response:
    rt.server(issuer)
    ip = client_ip(request)
    rt.client_auth_limiter.check(ip)
    form = await read_form(request)
    oreq = oauth_request(request, form, rt, issuer)
    status, body, headers = await run_in_threadpool(rt.oauth_call, issuer, oreq, call)
    if isinstance(body, dict) and body.get("error") == "invalid_client":
        try:
            rt.client_auth_limiter.hit(ip)
        except RateLimited:
            pass  # this answer already says invalid_client; the next one is refused
    return to_response((status, body, headers))


@router.post("/{issuer}/token", tags=["oauth"], summary="Token endpoint (RFC 6749 §3.2)", openapi_extra=FORM_BODY)
async def token(request: Request, issuer: str, rt: RuntimeDep) -> Response:
    return await _endpoint(request, rt, issuer, lambda s, r: s.create_token_response(r))


@router.post("/{issuer}/introspect", tags=["oauth"], summary="Token introspection (RFC 7662)",
             openapi_extra=FORM_BODY)
async def introspect(request: Request, issuer: str, rt: RuntimeDep) -> Response:
    return await _endpoint(request, rt, issuer, lambda s, r: s.create_endpoint_response("introspection", r))


@router.post("/{issuer}/revoke", tags=["oauth"], summary="Token revocation (RFC 7009)", openapi_extra=FORM_BODY)
async def revoke(request: Request, issuer: str, rt: RuntimeDep) -> Response:
    return await _endpoint(request, rt, issuer, lambda s, r: s.create_endpoint_response("revocation", r))


@router.post("/{issuer}/device_authorization", tags=["oauth"], summary="Device authorization (RFC 8628 §3.1)",
             openapi_extra=FORM_BODY)
async def device_authorization(request: Request, issuer: str, rt: RuntimeDep) -> Response:
    return await _endpoint(request, rt, issuer,
                           lambda s, r: s.create_endpoint_response("device_authorization", r))


@router.get("/{issuer}/.well-known/oauth-authorization-server", tags=["oauth"],
            summary="Authorization server metadata (RFC 8414)")
async def metadata(issuer: str, rt: RuntimeDep) -> dict[str, Any]:
    return rt.server(issuer).metadata()


@router.get("/.well-known/oauth-authorization-server/{issuer}", tags=["oauth"],
            summary="Authorization server metadata at the RFC 8414 §3.1 location")
async def metadata_rfc(issuer: str, rt: RuntimeDep) -> dict[str, Any]:
    return rt.server(issuer).metadata()


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


async def principal(request: Request, issuer: str, rt: RuntimeDep) -> Principal:
    rt.server(issuer)
    return await rt.guards[issuer].require()(request)


@router.get("/{issuer}/api/me", tags=["api"], response_model=Me,
            summary="Who the bearer token acts as (seed 001: local authentication cooperation mode)")
async def me(p: Annotated[Principal, Depends(principal)]) -> Me:
    return Me(
        issuer=p.issuer, tenant_id=p.tenant_id, client_id=p.client_id, user_id=p.user_id,
        local_user=p.local_user, scopes=sorted(p.scopes), local_auth_cooperation=p.local_auth_cooperation,
        acting_user=p.acting_user, acting_kind=p.acting_kind,
    )
