"""printcloud's IPP Infrastructure Printer endpoint (issue 15, PWG 5100.18): one per
printer of a tenant, `POST /ipp/infra/{tenant}/{printer}` with `Content-Type:
application/ipp` (`/printing/ipp/infra/…` in the embedded stack), beside the IPP
Everywhere queues (`ipp_routes.py`), for the printer's output device.

For each request, in order: the transport policy (plain IPP from afar: 426); the body
decodes and passes RFC 8011 §4.1's checks (`check_request`), or the answer is the IPP
status that says why; the caller authenticates (`DeviceAuthenticator`; HTTP 401 with a
challenge otherwise); the printer is the token's tenant's (client-error-not-found
otherwise, as for another tenant's queue) and bound to the caller's device client
(client-error-not-authorized: another printer's device is refused); the printer-uri
names this printer; then the operation (`infra_device_ops.HANDLERS`). A user's queue
operation (Print-Job, …: `infra_queue.for_queue`) goes instead, after the transport and
request checks, to the printer's queue with the user's authentication
(`infra_queue.serve`). Nothing unexpected becomes a 500: it answers
server-error-internal-error, logged.

Authentication is the device API's: an OAuth bearer token of idp-a with scope
`device` (seed 001's `local_user` rules apply as there). For clients that can send
only HTTP Basic (CUPS's `ipptool` has no way to send a bearer token), Basic with the
device client's own `client_id:client_secret` is exchanged at idp-a for a token by
the client-credentials grant (RFC 6749 §4.4; §2.3.1 sends those credentials as HTTP
Basic too), then checked like a bearer token. A good exchange is remembered for the
token's life under a keyed hash of the credentials; a wrong one is never remembered.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from functools import partial
from urllib.parse import quote, urlsplit

import httpx
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from printcloud.auth.client import AuthClient, OAuthError
from printcloud.core.db import utcnow
from printcloud.core.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PrintcloudError,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from printcloud.core.guard import Guard, Principal
from printcloud.core.http import client as http_client
from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings
from printcloud.ipp.encoding import decode, encode
from printcloud.ipp.message import IPPError, Message
from printcloud.ipp.model import Status
from printcloud.ipp.operations import check_request, error_response

from . import service
from .deps import RuntimeDep
from .infra import INFRA_PATH, infra_uri
from .infra_device_ops import HANDLERS
from .infra_operations import InfraCall
from .infra_queue import QUEUE_OPERATIONS, for_queue, serve
from .ipp_auth import CredentialsRequired, parse_basic
from .ipp_transport import require_transport
from .runtime import PrintingRuntime

router = APIRouter(tags=["ipp-infra"])
#: What the URI serves: the output device's operations and a user's queue operations.
OPERATIONS = frozenset(HANDLERS) | QUEUE_OPERATIONS
log = get_logger("printing.infra")
IPP = "application/ipp"
#: Remembered Basic exchanges at most (the oldest are dropped beyond).
MAX_REMEMBERED = 1000


class DeviceAuthenticator:
    """Authenticates output devices: a device bearer token, or Basic client credentials."""

    def __init__(self, settings: Settings, guard: Guard) -> None:
        self.guard = guard
        self._issuer_url = settings.issuer_url(settings.issuers[0])
        self._http = http_client(timeout=15)
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        #: keyed digest of (client_id, secret) → (access token, monotonic until)
        self._tokens: dict[str, tuple[str, float]] = {}

    def close(self) -> None:
        self._http.close()

    async def principal(self, authorization: str, *, tenant_id: str) -> Principal:
        realm = f"printcloud {tenant_id}"
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and value.strip():
            principal = await self._verify(value.strip(), realm)
        elif scheme == "basic":
            pair = parse_basic(value)
            if pair is None:
                raise CredentialsRequired("unreadable Basic credentials", realm=realm)
            principal = await self._basic(*pair, realm=realm)
        else:
            raise CredentialsRequired("a device token (scope device) is required", realm=realm)
        if principal.tenant_id != tenant_id:
            raise NotFound("unknown printer")
        return principal

    async def _verify(self, token: str, realm: str) -> Principal:
        try:
            principal = await self.guard.verify(token)
        except Unauthorized as exc:
            raise CredentialsRequired(exc.description, realm=realm) from exc
        if not principal.has_scopes("device"):
            raise CredentialsRequired("the token lacks scope device", realm=realm)
        return principal

    async def _basic(self, client_id: str, secret: str, *, realm: str) -> Principal:
        key = hmac.new(self._key, f"{client_id}\x00{secret}".encode(), hashlib.sha256).hexdigest()
        with self._lock:
            known = self._tokens.get(key)
        if known is not None and known[1] > time.monotonic():
            try:
                return await self._verify(known[0], realm)
            except CredentialsRequired:
                pass  # revoked meanwhile: ask the issuer again
        with self._lock:
            self._tokens.pop(key, None)
        issuer = AuthClient(
            self._issuer_url, client_id=client_id, client_secret=secret, http=self._http
        )
        try:
            issued = await run_in_threadpool(partial(issuer.client_credentials, scope="device"))
        except OAuthError as exc:
            if exc.status == 429:
                raise RateLimited(
                    "too many requests to the token endpoint", retry_after=exc.retry_after or 60
                ) from exc
            if exc.status in (400, 401):
                raise CredentialsRequired(exc.description or "refused", realm=realm) from exc
            raise Unavailable(f"the authorization server refused: {exc.error}") from exc
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise Unavailable("the authorization server is unreachable") from exc
        principal = await self._verify(issued.access_token, realm)
        with self._lock:
            while len(self._tokens) >= MAX_REMEMBERED:
                self._tokens.pop(next(iter(self._tokens)))
            self._tokens[key] = (issued.access_token, time.monotonic() + issued.expires_in - 30)
        return principal


def _ipp(body: bytes) -> Response:
    return Response(body, status_code=200, media_type=IPP)


def _from(message: Message, status: Status, text: str) -> bytes:
    error = IPPError(status, text, request_id=message.request_id, version=message.version)
    return encode(error_response(error))


def _targets_printer(uri: str | None, *, tenant_id: str, printer_id: str) -> bool:
    """The request's printer-uri names this printer's Infrastructure Printer (any host)."""
    if uri is None:
        return False
    path = urlsplit(uri).path.rstrip("/")
    return path.endswith(f"{INFRA_PATH}/{quote(tenant_id, safe='')}/{quote(printer_id, safe='')}")


def _bound_printer(rt: PrintingRuntime, *, tenant_id: str, printer_id: str, client_id: str) -> bool:
    """Whether the tenant's printer (NotFound if none) is driven by `client_id`."""
    with rt.db.session() as db:
        printer = service.get_printer(db, tenant_id=tenant_id, printer_id=printer_id)
        if printer.client_id != client_id:
            return False
        printer.last_seen_at = utcnow()
        return True


@router.post("/ipp/infra/{tenant_id}/{printer_id}")
async def infra_request(
    request: Request, tenant_id: str, printer_id: str, rt: RuntimeDep
) -> Response:
    """One IPP request of an output device to its Infrastructure Printer."""
    require_transport(request, rt.settings)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != IPP:
        raise InvalidRequest("an IPP request is sent as Content-Type: application/ipp")
    authenticator: DeviceAuthenticator = request.app.state.infra_devices
    body = await request.body()
    try:
        message = decode(body)
        checked = check_request(message, operations=OPERATIONS)
    except IPPError as exc:
        return _ipp(encode(error_response(exc)))
    try:
        if for_queue(checked):  # a user's, served by the printer's queue (infra_queue.py)
            if not _targets_printer(
                checked.printer_uri, tenant_id=tenant_id, printer_id=printer_id
            ):
                raise NotFound("the request's printer-uri names another printer")
            return _ipp(
                await serve(request, checked, rt, tenant_id=tenant_id, printer_id=printer_id)
            )
        principal = await authenticator.principal(
            request.headers.get("authorization", ""), tenant_id=tenant_id
        )
        bound = await run_in_threadpool(
            partial(
                _bound_printer,
                rt,
                tenant_id=tenant_id,
                printer_id=printer_id,
                client_id=principal.client_id,
            )
        )
        if not bound:
            return _ipp(
                _from(
                    message,
                    Status.CLIENT_ERROR_NOT_AUTHORIZED,
                    "this printer is driven by another device client",
                )
            )
        if not _targets_printer(checked.printer_uri, tenant_id=tenant_id, printer_id=printer_id):
            raise NotFound("the request's printer-uri names another printer")
        call = InfraCall(
            rt=rt,
            request=checked,
            tenant_id=tenant_id,
            printer_id=printer_id,
            principal=principal,
            printer_uri=infra_uri(
                rt.settings.public_url, tenant_id=tenant_id, printer_id=printer_id
            ),
            operations=OPERATIONS,
        )
        answer = await HANDLERS[checked.operation](call)
        return answer if isinstance(answer, Response) else _ipp(answer)
    except IPPError as exc:
        return _ipp(encode(error_response(exc)))
    except (Unauthorized, RateLimited):
        raise  # HTTP 401 with the challenge, 429 with Retry-After (RFC 8010 §4)
    except NotFound as exc:
        return _ipp(_from(message, Status.CLIENT_ERROR_NOT_FOUND, exc.description))
    except Forbidden as exc:
        return _ipp(_from(message, Status.CLIENT_ERROR_NOT_AUTHORIZED, exc.description))
    except Unavailable as exc:
        return _ipp(_from(message, Status.SERVER_ERROR_SERVICE_UNAVAILABLE, exc.description))
    except PrintcloudError as exc:
        return _ipp(_from(message, Status.CLIENT_ERROR_BAD_REQUEST, exc.description))
    except Exception:
        log.exception("INFRA request failed", extra={"fields": {"tenant": tenant_id}})
        return _ipp(_from(message, Status.SERVER_ERROR_INTERNAL_ERROR, "internal error"))
