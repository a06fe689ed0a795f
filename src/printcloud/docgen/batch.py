"""The batch flow (seed 000, FIG. 15B–16) as a durable workflow, `batch-<request_id>`.

One checkpointed step per seed step, each recorded on the request
(`service.advance_request`: state, seed step, detail):

- `identify` (S1515–S1516): the tenant's CRM and print token sets → `verifying`.
- `verify` (S1520–S1521): the print token introspected at idp-a; an invalid one
  is refreshed (S1607–S1611). Refused → `suspended` with the reason, before any
  data is fetched or document made (claim 3).
- `fetch` (S1517–S1518) → `fetching`: the records from the CRM with the CRM
  token; a 401 refreshes it through idp-b and retries once (S1601–S1605); a
  refused refresh or any other CRM error → `suspended` with the reason (S1606).
- `render` (S1519) → `rendering`: the records mapped to the form's data (below),
  one PDF per document, kept as blobs `docgen/<request>/doc-NNNN.pdf`.
- `verify` again (claim 2), then `send` (S1522) → `sending`: each document
  uploaded to the print service with the print token; its print job ID recorded.
- `complete` (S1525): `completed` once every document is handed over; the paper
  is not waited for (`print_job_states` asks the print service how the jobs go).

A user-initiated request (FIG. 19, `source` "user", S1901) runs the same steps
with the user's session instead of the tenant's stored tokens: no `identify`,
no refresh (a token refused → `suspended`, "your session has expired; sign in
again"); fetch (S1902) with the user's idp-b token, render (S1903), send (S1904)
with the user's idp-a token, so the print jobs are the user's. The two tokens
are sealed in the request's parameters (`_session`), read by each step, and
dropped when the request ends.

Tokens never enter a step's inputs or outputs (DBOS checkpoints them): each
step reads them from the sealed store. Records and documents travel between
steps as blob keys. Expected failures end the request `suspended` with their
reason; anything else, once a step's retries are spent, `failed` with it.

The request's parameters (the CRM's body, `parameters`):

    record_set: the CRM record set to query      filters?, order?, limit?: the query
    form: "invoice" | "statement" | a tenant form currency? (EUR), company?, tax_rate?
    print: {printer_id, color?, copies?, duplex?} (or these four at the top level)

Mapping to the forms' data (`forms.py`'s shapes), documented for the CRM admin:

- `invoice`: one invoice per record, from its fields `number`, `date`, `due`?,
  `customer_name`, `customer_address`? (lines separated by newlines),
  `customer_number`?, `currency`?, `tax_rate`?, and `lines`: a JSON list (as
  text) of `{description, quantity, unit_price, unit?}`.
- `statement`: one statement over all records, grouped by `customer_name` (or
  one group), each record a transaction: `date`, `description` (or `number`),
  `amount` (or `total`); the period runs from the first date to the last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import select

from printcloud.core import tasks
from printcloud.core.errors import Conflict, InvalidRequest, NotFound, Unavailable
from printcloud.core.logs import get_logger
from printcloud.crm.client import CrmClient, CrmError, TokenRejected
from printcloud.printing.client import PrintClient, PrintServiceError

from . import forms, service, tenant_forms, tokens
from .models import BatchRequest
from .runtime import DocgenRuntime, current
from .sandbox import FormLimitExceeded

log = get_logger("docgen.batch")
#: Forms the batch flow knows how to feed from CRM records.
BATCH_FORMS = ("invoice", "statement")


#: The parameters' entry holding a user-initiated request's sealed session (FIG. 19).
SESSION_KEY = "_session"
SESSION_EXPIRED = "your session has expired; sign in again"


def seal_session(
    rt: DocgenRuntime, *, user: str, print_token: str | None, crm_token: str | None
) -> str:
    """The user's two tokens, sealed with the instance secret for the request's row."""
    return rt.box.seal(json.dumps({"user": user, "print": print_token, "crm": crm_token}))


def _user_session(rt: DocgenRuntime, tenant_id: str, request_id: str) -> dict[str, str] | None:
    """The user's session of a user-initiated request; None once it was dropped."""
    with rt.db.session() as db:
        row = service.get_request(db, tenant_id=tenant_id, request_id=request_id)
        sealed = (row.parameters or {}).get(SESSION_KEY)
    if not isinstance(sealed, str):
        return None
    opened: dict[str, str] = json.loads(rt.box.open(sealed))
    return opened


def _drop_session(rt: DocgenRuntime, tenant_id: str, request_id: str) -> None:
    with rt.db.session() as db:
        row = service.get_request(db, tenant_id=tenant_id, request_id=request_id)
        if SESSION_KEY in (row.parameters or {}):
            row.parameters = {k: v for k, v in row.parameters.items() if k != SESSION_KEY}


def workflow_id(request_id: str) -> str:
    return f"batch-{request_id}"


class Suspend(Exception):
    """An expected end of the flow: the request is suspended with `reason` at `step`."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


# -- recording -----------------------------------------------------------------------------


def _advance(
    rt: DocgenRuntime,
    tenant_id: str,
    request_id: str,
    state: str,
    step: str,
    detail: str,
    *,
    reason: str | None = None,
    print_job_id: str | None = None,
) -> None:
    with rt.db.session() as db:
        service.advance_request(
            db,
            tenant_id=tenant_id,
            request_id=request_id,
            state=state,
            step=step,
            detail=detail,
            reason=reason,
            print_job_id=print_job_id,
        )


@tasks.step(name="docgen.batch.end", retries=8, retry_interval=0.5, backoff=1.5)
def end(tenant_id: str, request_id: str, state: str, step: str, reason: str) -> None:
    """`suspended` or `failed` with the reason (a request that already ended stays so)."""
    rt = current()
    _drop_session(rt, tenant_id, request_id)
    try:
        _advance(rt, tenant_id, request_id, state, step, reason, reason=reason)
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
    _advance(
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
    session = _user_session(rt, tenant_id, request_id)
    if session is None or not session.get("print"):
        return SESSION_EXPIRED
    verdict = tokens.verify_user_print_token(rt, tenant_id=tenant_id, token=session["print"])
    if not verdict.valid:
        return f"{SESSION_EXPIRED} ({verdict.reason})"
    _advance(
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
        _advance(rt, tenant_id, request_id, state, "S1520-S1521", f"{label}: print token valid")
        return None
    stale = verdict.tokens.access_token if verdict.tokens is not None else None
    try:
        tokens.refresh_print(rt, tenant_id=tenant_id, stale_access=stale)
    except tokens.TokenRefused as exc:
        return f"{verdict.reason}; {exc.reason}"
    again = tokens.verify_print_token(rt, tenant_id=tenant_id)
    if not again.valid:
        return f"the refreshed print token is not valid either: {again.reason}"
    _advance(
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
    session = _user_session(rt, tenant_id, request_id)
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
    _advance(
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
        _advance(
            rt,
            tenant_id,
            request_id,
            "fetching",
            "S1601-S1605",
            f"the CRM refused the token ({rejected.description}); refreshed at "
            f"{fresh.issuer}, query again",
        )
        return _query(rt, fresh.access_token, params)


# -- S1519: records → the form's data --------------------------------------------------------


def _company(tenant_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
    company = params.get("company")
    if isinstance(company, Mapping):
        return dict(company)
    return {"name": tenant_id, "address": []}


def _invoice_lines(record: Mapping[str, Any], where: str) -> list[Any]:
    raw = record.get("lines")
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidRequest(f"{where}: the field lines (a JSON list) is missing")
    try:
        lines = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: lines is not JSON ({exc})") from exc
    if not isinstance(lines, list):
        raise InvalidRequest(f"{where}: lines must be a JSON list")
    return lines


def invoices_from(
    tenant_id: str, records: list[dict[str, Any]], params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One invoice's data per record (see the module docstring)."""
    out = []
    for i, record in enumerate(records):
        where = f"record {i + 1} ({record.get('number', '?')})"
        data: dict[str, Any] = {
            "company": _company(tenant_id, params),
            "customer": {
                "name": record.get("customer_name"),
                "address": str(record.get("customer_address") or ""),
            },
            "invoice": {"number": str(record.get("number") or ""), "date": record.get("date")},
            "lines": _invoice_lines(record, where),
            "currency": record.get("currency") or params.get("currency") or "EUR",
        }
        if record.get("customer_number"):
            data["customer"]["number"] = str(record["customer_number"])
        if record.get("due"):
            data["invoice"]["due"] = record["due"]
        rate = record.get("tax_rate", params.get("tax_rate"))
        if rate is not None:
            data["tax_rate"] = rate
        out.append(data)
    return out


def statement_from(
    tenant_id: str, records: list[dict[str, Any]], params: Mapping[str, Any]
) -> dict[str, Any]:
    """One statement over every record, grouped by customer (see the module docstring)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    dates: list[str] = []
    for record in records:
        when = str(record.get("date") or date.today().isoformat())
        dates.append(when)
        groups.setdefault(str(record.get("customer_name") or "All records"), []).append(
            {
                "date": when,
                "description": str(record.get("description") or record.get("number") or "-"),
                "amount": record.get("amount", record.get("total", 0)),
            }
        )
    today = date.today().isoformat()
    return {
        "company": _company(tenant_id, params),
        "period": {"from": min(dates, default=today), "to": max(dates, default=today)},
        "currency": params.get("currency") or "EUR",
        "title": str(params.get("title") or params.get("record_set") or "Statement"),
        "customers": [
            {"name": name, "transactions": sorted(rows, key=lambda r: r["date"])}
            for name, rows in groups.items()
        ],
    }


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
    _advance(rt, tenant_id, request_id, "rendering", "S1519", f"rendering with {form_name}")
    records = json.loads(rt.blobs.path(records_key).read_bytes())
    if form.kind == "invoice":
        documents = invoices_from(tenant_id, records, params)
    else:
        documents = [statement_from(tenant_id, records, params)] if records else []
    if not documents:
        return {"reason": "the query selected no records: there is nothing to print"}
    keys = []
    try:
        for i, data in enumerate(documents):
            key = f"docgen/{request_id}/doc-{i + 1:04d}.pdf"
            if form.tenant_id is None:  # a built-in form: our code, in process
                pdf = forms.render(form, data)
            else:  # the tenant's code: in a child process, under the form limits
                pdf = forms.render_tenant_form(rt.form_processes, form, data)
            rt.blobs.put(key, pdf)
            keys.append(key)
    except InvalidRequest as exc:  # the records do not fit the form (FormError included)
        for key in keys:
            rt.blobs.path(key).unlink(missing_ok=True)
        where = f"document {len(keys) + 1} of {len(documents)}"
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
    _advance(
        rt,
        tenant_id,
        request_id,
        "rendering",
        "S1519",
        f"{len(keys)} document(s) rendered with the form {form_name}",
    )
    return {"keys": keys}


# -- S1522, S1525 ----------------------------------------------------------------------------


def _print_settings(params: Mapping[str, Any]) -> dict[str, str]:
    given = params.get("print")
    settings = dict(given) if isinstance(given, Mapping) else dict(params)
    return {
        "printer_id": str(settings.get("printer_id") or ""),
        "color": "true" if settings.get("color", True) else "false",
        "copies": str(int(settings.get("copies") or 1)),
        "duplex": "true" if settings.get("duplex", False) else "false",
    }


def _printing(rt: DocgenRuntime) -> PrintClient:
    return PrintClient(f"{rt.public_url}/printing", http=rt.http)


def _sent_before(rt: DocgenRuntime, tenant_id: str, request_id: str, marker: str) -> bool:
    with rt.db.session() as db:
        row = service.get_request(db, tenant_id=tenant_id, request_id=request_id)
        return any(
            s.get("step") in ("S1522", "S1904") and s.get("detail", "").startswith(marker)
            for s in row.steps
        )


def _print_access(rt: DocgenRuntime, tenant_id: str, request_id: str, user: bool) -> str | None:
    if user:
        session = _user_session(rt, tenant_id, request_id)
        return session.get("print") if session is not None else None
    with rt.db.session() as db:
        found = service.token_set(db, tenant_id=tenant_id, kind="print", box=rt.box)
    return found.access_token if found is not None else None


@tasks.step(name="docgen.batch.send", retries=4, retry_interval=1.0, backoff=2.0)
def send(
    tenant_id: str,
    request_id: str,
    params: dict[str, Any],
    key: str,
    n: int,
    total: int,
    user: bool = False,
) -> str | None:
    """S1522: one document to the print service; None when handed over, else why not.
    A user's request (`user`, S1904) sends with the user's print token."""
    rt = current()
    marker = f"document {n}/{total} "
    if _sent_before(rt, tenant_id, request_id, marker):
        return None  # this step ran before and recorded the job: not printed twice
    fields = _print_settings(params)
    if not fields["printer_id"]:
        return "the request names no printer_id to print on"
    access = _print_access(rt, tenant_id, request_id, user)
    if access is None:
        return SESSION_EXPIRED if user else "no print token registered"
    title = f"{params.get('job') or 'batch'} {request_id[:8]} {n}/{total}"
    data = rt.blobs.path(key).read_bytes()
    try:
        job = _printing(rt).submit(
            token=access,
            printer_id=fields["printer_id"],
            pdf=data,
            filename=f"{n:04d}.pdf",
            title=title,
            options={k: v for k, v in fields.items() if k != "printer_id"},
            timeout=120,
        )
    except PrintServiceError as exc:
        if exc.status is None:
            raise Unavailable(f"the print service does not answer: {exc}") from exc
        if exc.status >= 500 or exc.status == 429:
            raise Unavailable(f"the print service answered {exc.status}") from exc
        if user and exc.status == 401:
            return f"{SESSION_EXPIRED} (the print service refused the token: {exc.reason})"
        return f"the print service refused the document ({exc.reason})"
    job_id = job.job_id
    _advance(
        rt,
        tenant_id,
        request_id,
        "sending",
        "S1904" if user else "S1522",
        f"{marker}sent to printer {fields['printer_id']}: print job {job_id}",
        print_job_id=job_id,
    )
    return None


@tasks.step(name="docgen.batch.complete", retries=8, retry_interval=0.5, backoff=1.5)
def complete(tenant_id: str, request_id: str, count: int) -> None:
    rt = current()
    _drop_session(rt, tenant_id, request_id)
    _advance(
        rt,
        tenant_id,
        request_id,
        "completed",
        "S1525",
        f"{count} document(s) handed to the print service; printing goes on there",
    )


# -- the workflow ----------------------------------------------------------------------------


@tasks.workflow(name="docgen.run_batch")
def run_batch(tenant_id: str, request_id: str) -> str:
    try:
        return _run(tenant_id, request_id)
    except Suspend as stop:
        end(tenant_id, request_id, "suspended", stop.step, stop.reason)
        return "suspended"
    except Exception as exc:  # a step gave up after its retries: name it, never drop it
        reason = f"{type(exc).__name__}: {exc}"[:900]
        log.error(
            "batch request failed", extra={"fields": {"request": request_id, "reason": reason}}
        )
        end(tenant_id, request_id, "failed", "S1525", reason)
        return "failed"


def _not_refreshable(reason: str) -> str:
    return f"print token invalid and not refreshable: {reason}"


def _run(tenant_id: str, request_id: str) -> str:
    request = load(tenant_id, request_id)
    if request["state"] != "received":
        return str(request["state"])  # ended, or a workflow of this request ran before
    params = {**request["parameters"], "job": request["job"]}
    user = request.get("source") == "user"  # FIG. 19: the user's session, sealed on the row
    if not user:
        missing = identify(tenant_id, request_id)
        if missing is not None:
            raise Suspend("S1515-S1516", missing)
    refused = verify(tenant_id, request_id, "verifying", "before fetching", user)
    if refused is not None:
        raise Suspend("S1612", refused if user else _not_refreshable(refused))
    fetched = fetch(tenant_id, request_id, params, user)
    if "reason" in fetched:
        raise Suspend("S1902" if user else "S1606", str(fetched["reason"]))
    made = render(tenant_id, request_id, params, str(fetched["key"]))
    if "reason" in made:
        raise Suspend("S1519", str(made["reason"]))
    keys = list(made["keys"])
    refused = verify(tenant_id, request_id, "sending", "before sending (claim 2)", user)
    if refused is not None:
        raise Suspend("S1612", refused if user else _not_refreshable(refused))
    for n, key in enumerate(keys, start=1):
        problem = send(tenant_id, request_id, params, key, n, len(keys), user)
        if problem is not None:
            raise Suspend("S1904" if user else "S1522", problem)
    complete(tenant_id, request_id, len(keys))
    return "completed"


# -- starting and adopting -------------------------------------------------------------------


def start(rt: DocgenRuntime, tenant_id: str, request_id: str) -> None:
    """The `on_accepted` hook: start the request's workflow (once: its ID is the request's)."""
    if rt.engine is None:
        return  # no engine in this process: `adopt_orphans` of one that has starts it
    rt.engine.start(run_batch, workflow_id=workflow_id(request_id))(tenant_id, request_id)


def adopt_orphans() -> int:
    """Start the workflow of every `received` request that has none: the process may
    have stopped between recording a request and starting its workflow."""
    rt = current()
    if rt.engine is None:
        return 0
    with rt.db.session() as db:
        rows = db.execute(
            select(BatchRequest.tenant_id, BatchRequest.request_id).where(
                BatchRequest.state == "received"
            )
        ).all()
    adopted = 0
    for tenant_id, request_id in rows:
        if rt.engine.get_status(workflow_id(request_id)) is None:
            start(rt, tenant_id, request_id)
            adopted += 1
    if adopted:
        log.warning(
            "started the batch flow of requests that had none",
            extra={"fields": {"requests": adopted}},
        )
    return adopted


# -- the print jobs' states (S1525: the status follows the print job) ------------------------


def print_job_states(rt: DocgenRuntime, *, tenant_id: str, request_id: str) -> list[dict[str, Any]]:
    """Each print job of the request as the print service sees it now (asked with the
    tenant's print token); a job it cannot answer for carries `error`."""
    with rt.db.session() as db:
        row = service.get_request(db, tenant_id=tenant_id, request_id=request_id)
        job_ids = list(row.print_job_ids or [])
        found = service.token_set(db, tenant_id=tenant_id, kind="print", box=rt.box)
    out: list[dict[str, Any]] = []
    for job_id in job_ids:
        if found is None:
            out.append({"job_id": job_id, "error": "no print token registered"})
            continue
        try:
            job = _printing(rt).show(job_id, token=found.access_token)
        except PrintServiceError as exc:
            error = exc.reason if exc.status else f"the print service does not answer: {exc}"
            out.append({"job_id": job_id, "error": error})
            continue
        out.append(
            {
                "job_id": job_id,
                "state": job.data.get("state"),
                "reason": job.data.get("reason"),
                "printer_id": job.data.get("printer_id"),
                "pages_printed": job.data.get("pages_printed"),
            }
        )
    return out


__all__ = [
    "BATCH_FORMS",
    "adopt_orphans",
    "invoices_from",
    "print_job_states",
    "run_batch",
    "start",
    "statement_from",
    "workflow_id",
]
