"""Intake of batch-print requests (seed 000, S1501–S1512, S1525; FIG. 19, S1901).

- `batch_caller` (S1901): a bearer token of idp-a in `Authorization` is a signed-in
  user's request (with their idp-b token in `X-CRM-Token`); anything else is the
  CRM's scheduled job, checked by `batch_guard`;
- `batch_guard` (S1503–S1512): HTTP Digest (RFC 7616, SHA-256) with the tenant's
  secret key, and during a rotation's overlap with the rotated-out key too;
- `record_refusal` (S1512): a refused job is recorded as `suspended` with its reason,
  for a tenant docgen knows, within the tenant's refusal budget;
- `receive` (S1525): the request is recorded as `received` and answered at once;
  the batch flow (`batch/`) runs on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from printcloud.core.errors import Forbidden, InvalidRequest, RateLimited
from printcloud.core.logs import get_logger

from . import batch, service, tokens
from .digest import DigestRefused, digest_guard
from .runtime import REALM, DocgenRuntime
from .schemas import BatchAccepted, BatchRequestCreate

log = get_logger("docgen.intake")
#: Refusals that are not a failed batch: the challenge leg (no credentials yet) and a
#: stale nonce, which every client answers again at once (RFC 7616 §3.3).
_NOT_RECORDED = ("missing", "stale_nonce")
#: What the tenant's admin reads for a refusal (the client only reads the generic text,
#: which does not tell whether the tenant exists).
_ADMIN_REASONS = {
    "unknown_tenant": "no secret key is issued for this tenant",
    "wrong_response": "wrong secret key (the CRM may hold a rotated-out key)",
}


def record_refusal(rt: DocgenRuntime, tenant_id: str, refused: DigestRefused) -> None:
    """S1512: the refused job is suspended with its reason, on a tenant docgen knows."""
    fields = {"tenant": tenant_id, "code": refused.code}
    with rt.db.session() as db:
        if not service.has_settings(db, tenant_id=tenant_id):
            log.info("batch-print refused for an unknown tenant", extra={"fields": fields})
            return
        try:
            rt.refusals.hit(tenant_id)
        except RateLimited:
            log.warning("batch-print refused (not recorded: too many)", extra={"fields": fields})
            return
        reason = _ADMIN_REASONS.get(refused.code, refused.reason)
        service.record_request(
            db,
            tenant_id=tenant_id,
            source="crm",
            state="suspended",
            step="S1512",
            reason=f"Digest authentication refused: {reason}",
            detail=f"Digest authentication refused ({refused.code}): {reason}",
        )
    log.info("batch-print refused", extra={"fields": fields})


def batch_guard(request: Request, rt: DocgenRuntime, *, record: bool = True) -> str:
    """The Digest guard of the batch-print endpoint: the authenticated tenant ID.
    `record`: a refusal is recorded as a suspended batch (S1512); not for the CRM's
    questions that start no batch (`choices`).

    `digest.verify` checks one key. During a rotation's overlap the tenant has
    two: the response is checked against the current key and, only when it does
    not match it (`wrong_response`, raised before the nonce is used), against
    the previous one. Synchronous: FastAPI runs it in a worker thread."""
    keys: list[str] | None = None

    def key(index: int) -> Callable[[str], str | None]:
        def lookup(tenant_id: str) -> str | None:
            nonlocal keys
            if keys is None:
                with rt.db.session() as db:
                    keys = service.key_for(db, tenant_id=tenant_id, box=rt.box)
            return keys[index] if index < len(keys) else None

        return lookup

    def attempt(index: int) -> str:
        guard = digest_guard(REALM, key(index), rt.nonce_store, rt.nonce_secret)
        return guard(request)

    try:
        try:
            return attempt(0)
        except DigestRefused as first:
            if first.code != "wrong_response" or keys is None or len(keys) < 2:
                raise
            return attempt(1)
    except DigestRefused as refused:
        if record and refused.code not in _NOT_RECORDED:
            record_refusal(rt, request.query_params["tenant_ID"], refused)
        raise


#: The header a user-initiated request carries its CRM (idp-b) access token in.
CRM_TOKEN_HEADER = "X-CRM-Token"  # noqa: S105 - a header name


@dataclass(frozen=True)
class Caller:
    """Who sent a batch-print request (S1901): the CRM under system authority (Digest),
    or a signed-in user with their session (idp-a bearer + their idp-b token)."""

    tenant_id: str
    user: str | None = None
    print_token: str | None = field(default=None, repr=False)
    crm_token: str | None = field(default=None, repr=False)


async def batch_caller(request: Request, rt: DocgenRuntime) -> Caller:
    """S1901: a bearer token of idp-a in `Authorization` is a user's session (FIG. 19);
    anything else (a Digest answer, or nothing: the challenge leg) is the batch path."""
    scheme, _, _ = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return Caller(tenant_id=await run_in_threadpool(batch_guard, request, rt))
    principal = await rt.guard.require(tokens.PRINT_SCOPE)(request)
    tenant_param = request.query_params.get("tenant_ID")
    if principal.tenant_id != tenant_param:
        raise Forbidden("the user's session belongs to another tenant than tenant_ID")
    if principal.acting_kind != "user":
        raise Forbidden("a user-initiated print request needs a user's token, not a client's")
    crm_token = request.headers.get(CRM_TOKEN_HEADER, "").strip()
    if not crm_token:
        raise InvalidRequest(
            f"a user-initiated print request carries the user's CRM token in {CRM_TOKEN_HEADER}",
            field=CRM_TOKEN_HEADER,
        )
    _, _, bearer = request.headers["authorization"].partition(" ")
    return Caller(
        tenant_id=principal.tenant_id,
        user=principal.acting_user,
        print_token=bearer.strip(),
        crm_token=crm_token,
    )


def _record(
    rt: DocgenRuntime, caller: Caller, body: BatchRequestCreate
) -> tuple[BatchAccepted, bool]:
    reserved = (batch.SESSION_KEY, batch.REQUESTER_KEY)  # docgen's own, never the caller's
    parameters = {k: v for k, v in body.parameters.items() if k not in reserved}
    if caller.user is None:
        source, step = "crm", "S1512"
        detail = "Digest authentication accepted; batch printing received"
    else:
        source, step = "user", "S1901"
        detail = f"print request of the signed-in user {caller.user}: acting with their session"
        parameters[batch.REQUESTER_KEY] = caller.user
        parameters[batch.SESSION_KEY] = batch.seal_session(
            rt, user=caller.user, print_token=caller.print_token, crm_token=caller.crm_token
        )
    with rt.db.session() as db:
        row, created = service.record_request(
            db,
            tenant_id=caller.tenant_id,
            source=source,
            state="received",
            step=step,
            detail=detail,
            run_id=body.run_id,
            job=body.job,
            parameters=parameters,
        )
        accepted = BatchAccepted(
            request_id=row.request_id,
            tenant_id=row.tenant_id,
            state=row.state,
            received_at=row.received_at,
        )
    return accepted, created


async def receive(rt: DocgenRuntime, caller: Caller, body: BatchRequestCreate) -> BatchAccepted:
    """S1503–S1512 then S1525: the request is recorded and answered at once; the
    batch flow runs on its own (verify the print token, fetch, render, send)."""
    tenant_id = caller.tenant_id
    accepted, created = await run_in_threadpool(_record, rt, caller, body)
    if created:
        log.info(
            "batch-print accepted",
            extra={"fields": {"tenant": tenant_id, "request": accepted.request_id}},
        )
        for hook in rt.on_accepted:
            try:
                hook(tenant_id, accepted.request_id)
            except Exception:  # the request stays `received`; the batch flow adopts it
                log.exception("batch-print hook failed", extra={"fields": {"tenant": tenant_id}})
    return accepted
