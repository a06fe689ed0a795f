"""The IPP endpoint of the print service (issue 14; RFC 8010 §4 "Encoding of the
transport layer"): `POST /ipp/print/{tenant}/{queue}` with `Content-Type:
application/ipp` (and `…/{queue}/{job-id}`, the job-uri), served on the print
service's own app (under `/printing` in the embedded stack).

For each request, in order: the body decodes (`ipp.encoding.decode`, bounded) and
passes RFC 8011 §4.1's checks (`ipp.operations.check_request`), or the answer is
the IPP status that says why, with the request's request-id; the caller
authenticates (`ipp_auth`; HTTP 401 with a challenge when it must and did not:
every operation but Get-Printer-Attributes); the queue is the tenant's
(client-error-not-found otherwise: no other tenant's queue is ever seen); then
the operation's handler (`ipp_operations.HANDLERS`). No failure becomes a 500:
anything unexpected answers server-error-internal-error, logged.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache, partial
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from printcloud.core.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PaymentRequired,
    PrintcloudError,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from printcloud.core.logs import get_logger
from printcloud.ipp.encoding import decode, encode
from printcloud.ipp.message import IPPError, Message
from printcloud.ipp.model import Status
from printcloud.ipp.operations import check_request, error_response

from . import changes, ipp_queue
from .deps import RuntimeDep
from .ipp_auth import QueueAuthenticator
from .ipp_documents import FORMATS
from .ipp_memo import QueueMemo
from .ipp_operations import ANONYMOUS, HANDLERS, Call
from .ipp_printer import AttributeCache, QueueFacts
from .ipp_transport import require_transport
from .models import QueueRow
from .queues import IPP_PATH
from .runtime import PrintingRuntime

router = APIRouter(tags=["ipp"])
log = get_logger("printing.ipp")
IPP = "application/ipp"


@dataclass
class IppQueues:
    """What the endpoint keeps between requests: the authenticator and the encodings."""

    authenticator: QueueAuthenticator
    cache: AttributeCache
    memo: QueueMemo

    @classmethod
    def of(cls, rt: PrintingRuntime) -> IppQueues:
        return cls(QueueAuthenticator(rt.settings, rt.guard), AttributeCache(), QueueMemo())

    async def facts(
        self, rt: PrintingRuntime, *, tenant_id: str, queue: str
    ) -> tuple[QueueRow, QueueFacts]:
        """The tenant's queue (NotFound otherwise), from the memo when it is fresh."""
        found = self.memo.facts(tenant_id, queue)
        if found is not None:
            return found
        generation = changes.generation(changes.CONFIG)
        load = partial(
            ipp_queue.facts,
            tenant_id=tenant_id,
            name=queue,
            public_url=rt.settings.public_url,
            ipp_url=rt.settings.ipp_url,
            formats=FORMATS,
        )

        def read() -> tuple[QueueRow, QueueFacts]:
            with rt.db.sessions() as db:
                return load(db)

        found = await run_in_threadpool(read)
        self.memo.keep_facts(tenant_id, queue, found, generation=generation)
        return found


def _ipp(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=IPP)


def _error(error: IPPError) -> Response:
    return _ipp(encode(error_response(error)))


def _status_of(exc: PrintcloudError) -> Status:
    if isinstance(exc, NotFound):
        return Status.CLIENT_ERROR_NOT_FOUND
    if isinstance(exc, Forbidden | PaymentRequired):  # 402: the message names balance and cost
        return Status.CLIENT_ERROR_NOT_AUTHORIZED
    if isinstance(exc, Unavailable):
        return Status.SERVER_ERROR_SERVICE_UNAVAILABLE
    if isinstance(exc, InvalidRequest):
        return Status.CLIENT_ERROR_BAD_REQUEST
    return Status.SERVER_ERROR_INTERNAL_ERROR


def _targets_queue(uri: str | None, *, tenant_id: str, queue: str) -> bool:
    """The request's printer-uri (or job-uri) names this queue (any host: proxies)."""
    if uri is None:
        return True
    path = urlsplit(uri).path.rstrip("/")
    ours = f"{IPP_PATH}/{tenant_id}/{queue}"
    if path.endswith(ours):
        return True
    head, _, tail = path.rpartition("/")
    return tail.isdigit() and head.endswith(ours)


@router.post("/ipp/print/{tenant_id}/{queue}")
@router.post("/ipp/print/{tenant_id}/{queue}/{job}")
async def ipp_request(
    request: Request, tenant_id: str, queue: str, rt: RuntimeDep, job: str | None = None
) -> Response:
    """One IPP request to a queue (RFC 8010 §4: HTTP POST, application/ipp both ways)."""
    require_transport(request, rt.settings)  # 426 for plain IPP from afar (ipp_transport)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != IPP:
        raise InvalidRequest("an IPP request is sent as Content-Type: application/ipp")
    state: IppQueues = request.app.state.ipp_queues
    body = await request.body()
    try:
        message = decode(body)
        checked = check_request(message, operations=frozenset(HANDLERS))
    except IPPError as exc:
        return _error(exc)
    try:
        principal = None
        if checked.operation not in ANONYMOUS:
            principal = await state.authenticator.principal(
                request.headers.get("authorization", ""), tenant_id=tenant_id
            )
        target = checked.job_uri or checked.printer_uri
        if not _targets_queue(target, tenant_id=tenant_id, queue=queue):
            raise NotFound("the request's printer-uri names another queue")
        row, facts = await state.facts(rt, tenant_id=tenant_id, queue=queue)
        call = Call(
            rt=rt,
            request=checked,
            queue=row,
            facts=facts,
            principal=principal,
            cache=state.cache,
            memo=state.memo,
        )
        return _ipp(await HANDLERS[checked.operation](call))
    except IPPError as exc:
        return _error(exc)
    except (Unauthorized, RateLimited):
        raise  # HTTP 401 with the challenge, 429 with Retry-After (RFC 8010 §4)
    except PrintcloudError as exc:
        return _error(_from(message, _status_of(exc), exc.description))
    except Exception:
        log.exception("IPP request failed", extra={"fields": {"tenant": tenant_id}})
        return _error(_from(message, Status.SERVER_ERROR_INTERNAL_ERROR, "internal error"))


def _from(message: Message, status: Status, text: str) -> IPPError:
    return IPPError(status, text, request_id=message.request_id, version=message.version)


@lru_cache(maxsize=1)
def _icon() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (128, 128), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((16, 40, 112, 96), fill=(40, 90, 160))
    draw.rectangle((32, 16, 96, 44), fill=(230, 230, 230), outline=(60, 60, 60))
    draw.rectangle((32, 84, 96, 120), fill=(250, 250, 250), outline=(60, 60, 60))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@router.get("/static/icon.png", include_in_schema=False)
def icon() -> Response:
    """printer-icons (PWG 5100.13): what a print dialog shows for a queue."""
    return Response(_icon(), media_type="image/png", headers={"Cache-Control": "max-age=86400"})
