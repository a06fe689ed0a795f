"""The batch flow's checkpointed steps up to the documents: load, identify (S1515–S1516),
verify (S1520–S1521, refreshed S1607–S1611), fetch (S1517–S1518, S1601–S1606, S1902),
render (S1519), complete (S1525) and end.

The step names (`docgen.batch.<step>`) are durable identities: a renamed step breaks
the recovery of pending workflows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from printcloud.core import tasks
from printcloud.core.errors import Conflict, InvalidRequest, NotFound
from printcloud.core.logs import get_logger
from printcloud.crm.client import CrmClient, CrmError, TokenRejected

from .. import forms, service, tenant_forms, tokens
from ..runtime import DocgenRuntime, current
from ..sandbox import FormLimitExceeded
from .mapping import BATCH_FORMS, invoices_from, statement_from
from .rendering import DocumentFailed, render_documents
from .session import SESSION_EXPIRED, SESSION_KEY, advance, drop_session, user_session

#: One logger for the whole flow, as before it was split in modules.
log = get_logger("docgen.batch")


@tasks.step(name="docgen.batch.end", retries=8, retry_interval=0.5, backoff=1.5)
def end(tenant_id: str, request_id: str, state: str, step: str, reason: str) -> None:
    """`suspended` or `failed` with the reason (a request that already ended stays so)."""
    rt = current()
    drop_session(rt, tenant_id, request_id)
    try:
        advance(rt, tenant_id, request_id, state, step, reason, reason=reason)
    except Conflict:
        return
    log.warning(
        "batch request ended",
        extra={"fields": {"tenant": tenant_id, "request": request_id, "state": state}},
    )


@tasks.step(name="docgen.batch.load", retries=8, retry_interval=0.5, backoff=1.5)
def load(tenant_id: str, request_id: str) -> dict[str, Any]:
    with current().db.session() as db:
        row = service.get_request(db, tenant_id=tenant_id, request_id=request_id)
        params = {k: v for k, v in (row.parameters or {}).items() if k != SESSION_KEY}
        return {"state": row.state, "job": row.job, "source": row.source, "parameters": params}


# -- S1515–S1516, S1520–S1521 (S1607–S1611) -----------------------------------------------


@tasks.step(name="docgen.batch.identify", retries=8, retry_interval=0.5, backoff=1.5)
def identify(tenant_id: str, request_id: str) -> str | None:
    """The tenant's two token sets; None when both are there, else the reason."""
    rt = current()
    with rt.db.session() as db:
        found = service.tokens_for(db, tenant_id=tenant_id, box=rt.box)
    if found.crm is None:
        return "no CRM token registered"
    if found.print is None:
        return "no print token registered"
    advance(
        rt,
        tenant_id,
        request_id,
        "verifying",
        "S1515-S1516",
        f"CRM token of {found.crm.issuer} tenant {found.crm.tenant_id} and print token "
        f"of {found.print.issuer} user {found.print.user or '?'} found",
    )
    return None


def _verify_user(
    rt: DocgenRuntime, tenant_id: str, request_id: str, state: str, label: str
) -> str | None:
    """FIG. 19: the user's idp-a token introspected; never refreshed."""
    session = user_session(rt, tenant_id, request_id)
    if session is None or not session.get("print"):
        return SESSION_EXPIRED
    verdict = tokens.verify_user_print_token(rt, tenant_id=tenant_id, token=session["print"])
    if not verdict.valid:
        return f"{SESSION_EXPIRED} ({verdict.reason})"
    advance(
        rt, tenant_id, request_id, state, "S1520-S1521", f"{label}: the user's print token valid"
    )
    return None


@tasks.step(name="docgen.batch.verify", retries=4, retry_interval=1.0, backoff=2.0)
def verify(
    tenant_id: str, request_id: str, state: str, label: str, user: bool = False
) -> str | None:
    """S1520–S1521: the print token is valid, or refreshed (S1607–S1611); None when
    it may be used, else why not. `Unavailable` (idp-a silent) is retried. A user's
    session (`user`) is verified the same way but never refreshed."""
    rt = current()
    if user:
        return _verify_user(rt, tenant_id, request_id, state, label)
    verdict = tokens.verify_print_token(rt, tenant_id=tenant_id)
    if verdict.valid:
        advance(rt, tenant_id, request_id, state, "S1520-S1521", f"{label}: print token valid")
        return None
    stale = verdict.tokens.access_token if verdict.tokens is not None else None
    try:
        tokens.refresh_print(rt, tenant_id=tenant_id, stale_access=stale)
    except tokens.TokenRefused as exc:
        return f"{verdict.reason}; {exc.reason}"
    again = tokens.verify_print_token(rt, tenant_id=tenant_id)
    if not again.valid:
        return f"the refreshed print token is not valid either: {again.reason}"
    advance(
        rt,
        tenant_id,
        request_id,
        state,
        "S1607-S1611",
        f"{label}: {verdict.reason}; refreshed at {rt.platform_issuer}",
    )
    return None


# -- S1517–S1518 (S1601–S1606) --------------------------------------------------------------


def _records_key(request_id: str) -> str:
    return f"docgen/{request_id}/records.json"


def _crm_token(rt: DocgenRuntime, tenant_id: str) -> str | None:
    with rt.db.session() as db:
        found = service.token_set(db, tenant_id=tenant_id, kind="crm", box=rt.box)
    return found.access_token if found is not None else None


def _query(rt: DocgenRuntime, token: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    crm = CrmClient(f"{rt.public_url}/crm", http=rt.http)
    limit = params.get("limit")
    return crm.query_all(
        token,
        record_set=str(params.get("record_set") or ""),
        filters=list(params.get("filters") or []),
        order=list(params.get("order") or []),
        limit=int(limit) if limit is not None else None,
    )


def _crm_reason(exc: CrmError) -> str:
    return f"the CRM refused the query: {exc.description}"


def _fetch_as_user(
    rt: DocgenRuntime, tenant_id: str, request_id: str, params: dict[str, Any]
) -> list[dict[str, Any]] | str:
    """S1902: the records with the user's idp-b token (no refresh); else why not."""
    session = user_session(rt, tenant_id, request_id)
    if session is None or not session.get("crm"):
        return SESSION_EXPIRED
    try:
        return _query(rt, session["crm"], params)
    except TokenRejected as exc:
        return f"{SESSION_EXPIRED} (the CRM refused the token: {exc.description})"


@tasks.step(name="docgen.batch.fetch", retries=4, retry_interval=1.0, backoff=2.0)
def fetch(
    tenant_id: str, request_id: str, params: dict[str, Any], user: bool = False
) -> dict[str, Any]:
    """The records, kept as a blob: {"key", "count"} or {"reason"} (suspend). A user's
    request (`user`) fetches with the user's CRM token (S1902)."""
    rt = current()
    if not params.get("record_set"):
        return {"reason": "the request names no record_set to print"}
    token = None if user else _crm_token(rt, tenant_id)
    if token is None and not user:
        return {"reason": "no CRM token registered"}
    try:
        if user:
            got = _fetch_as_user(rt, tenant_id, request_id, params)
            if isinstance(got, str):
                return {"reason": got}
            rows = got
        else:
            assert token is not None
            rows = _fetch_as_tenant(rt, tenant_id, request_id, params, token)
    except TokenRejected as exc:
        return {"reason": f"the CRM refused even the refreshed token: {exc.description}"}
    except _Refused as exc:
        return {"reason": exc.reason}
    except CrmError as exc:
        if exc.status == 0 or exc.status >= 500:
            raise  # the CRM is down: retried, then the request fails
        return {"reason": _crm_reason(exc)}
    key = _records_key(request_id)
    rt.blobs.put(key, json.dumps(rows, ensure_ascii=False).encode())
    advance(
        rt,
        tenant_id,
        request_id,
        "fetching",
        "S1902" if user else "S1517-S1518",
        f"{len(rows)} records of {params['record_set']} fetched from the CRM"
        + (" as the user" if user else ""),
    )
    return {"key": key, "count": len(rows)}


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _fetch_as_tenant(
    rt: DocgenRuntime, tenant_id: str, request_id: str, params: dict[str, Any], token: str
) -> list[dict[str, Any]]:
    """S1517–S1518 with the stored CRM token; refreshed once on a 401 (S1601–S1605)."""
    try:
        return _query(rt, token, params)
    except TokenRejected as rejected:
        try:
            fresh = tokens.refresh_crm(rt, tenant_id=tenant_id, stale_access=token)
        except tokens.TokenRefused as exc:
            raise _Refused(
                f"the CRM token was refused ({rejected.description}); {exc.reason}"
            ) from exc
        advance(
            rt,
            tenant_id,
            request_id,
            "fetching",
            "S1601-S1605",
            f"the CRM refused the token ({rejected.description}); refreshed at "
            f"{fresh.issuer}, query again",
        )
        return _query(rt, fresh.access_token, params)


@tasks.step(name="docgen.batch.render", retries=2, retry_interval=1.0, backoff=2.0)
def render(tenant_id: str, request_id: str, params: dict[str, Any], records_key: str) -> Any:
    """S1519: the documents as blobs: {"keys"} or {"reason"} (suspend)."""
    rt = current()
    form_name = str(params.get("form") or "invoice")
    if form_name in BATCH_FORMS:
        form = forms.builtin_form(form_name)
    else:
        try:  # the tenant's own form: only ever looked for under this tenant
            form = tenant_forms.get_form(rt.blobs, tenant_id=tenant_id, name=form_name).form(
                tenant_id
            )
        except (NotFound, InvalidRequest):
            return {
                "reason": f"unknown form {form_name!r}; the batch flow prints "
                f"{' or '.join(BATCH_FORMS)} or one of the tenant's forms"
            }
    advance(rt, tenant_id, request_id, "rendering", "S1519", f"rendering with {form_name}")
    if not isinstance(params.get("company"), Mapping):  # the tenant's name, not its ID
        session = user_session(rt, tenant_id, request_id)
        token = session.get("print") if session is not None else None
        name = tokens.tenant_name(rt, tenant_id=tenant_id, token=token)
        params = {**params, "company": {"name": name, "address": []}}
    records = json.loads(rt.blobs.path(records_key).read_bytes())
    if form.kind == "invoice":
        documents = invoices_from(tenant_id, records, params)
    else:
        documents = [statement_from(tenant_id, records, params)] if records else []
    if not documents:
        return {"reason": "the query selected no records: there is nothing to print"}
    try:
        keys = render_documents(
            blobs=rt.blobs,
            form=form,
            documents=documents,
            key_of=lambda n: f"docgen/{request_id}/doc-{n:04d}.pdf",
            form_processes=rt.form_processes,
        )
    except DocumentFailed as failed:  # the records do not fit the form (FormError included)
        exc = failed.error
        where = f"document {failed.number} of {failed.total}"
        if isinstance(exc, FormLimitExceeded):
            log.warning(
                "tenant form broke a limit",
                extra={"fields": {"tenant": tenant_id, "form": form_name, "limit": exc.limit}},
            )
            return {"reason": f"{exc.description} ({where}, form {form_name})"}
        if isinstance(exc, forms.FormError) and exc.message.startswith("forms cannot import"):
            return {"reason": f"the form {form_name} was refused: {exc.description}"}
        return {"reason": f"the records do not fit the form {form_name}: {exc}"}
    rt.blobs.path(records_key).unlink(missing_ok=True)  # no business data left behind
    advance(
        rt,
        tenant_id,
        request_id,
        "rendering",
        "S1519",
        f"{len(keys)} document(s) rendered with the form {form_name}",
    )
    return {"keys": keys}


@tasks.step(name="docgen.batch.complete", retries=8, retry_interval=0.5, backoff=1.5)
def complete(tenant_id: str, request_id: str, count: int) -> None:
    rt = current()
    drop_session(rt, tenant_id, request_id)
    advance(
        rt,
        tenant_id,
        request_id,
        "completed",
        "S1525",
        f"{count} document(s) handed to the print service; printing goes on there",
    )
