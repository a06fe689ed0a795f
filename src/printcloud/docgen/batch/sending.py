"""S1522 (S1904 for a user's request): each document handed to the print service with
the print token, its print job recorded; and the print jobs' states (S1525).

The step name `docgen.batch.send` is a durable identity: keep it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from printcloud.core import tasks
from printcloud.core.errors import Unavailable
from printcloud.printing.client import PrintClient, PrintServiceError

from .. import service
from ..runtime import DocgenRuntime, current
from .session import SESSION_EXPIRED, advance, user_session

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
        session = user_session(rt, tenant_id, request_id)
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
    advance(
        rt,
        tenant_id,
        request_id,
        "sending",
        "S1904" if user else "S1522",
        f"{marker}sent to printer {fields['printer_id']}: print job {job_id}",
        print_job_id=job_id,
    )
    return None


# -- the print jobs' states (S1525: the status follows the print job) ------------------------


def print_job_states(
    rt: DocgenRuntime, *, tenant_id: str, request_id: str, token: str | None = None
) -> list[dict[str, Any]]:
    """Each print job of the request as the print service sees it now, asked with
    `token` — the user's own for their request (FIG. 19), so they see their own jobs —
    or else with the tenant's print token; a job it cannot answer for carries `error`."""
    with rt.db.session() as db:
        row = service.get_request(db, tenant_id=tenant_id, request_id=request_id)
        job_ids = list(row.print_job_ids or [])
        if token is None:
            found = service.token_set(db, tenant_id=tenant_id, kind="print", box=rt.box)
            token = found.access_token if found is not None else None
    out: list[dict[str, Any]] = []
    for job_id in job_ids:
        if token is None:
            out.append({"job_id": job_id, "error": "no print token registered"})
            continue
        try:
            job = _printing(rt).show(job_id, token=token)
        except PrintServiceError as exc:
            error = exc.reason if exc.status else f"the print service does not answer: {exc}"
            out.append({"job_id": job_id, "error": error, "status": exc.status})
            continue
        out.append(
            {
                "job_id": job_id,
                "state": job.data.get("state"),
                "reason": job.data.get("reason"),
                "printer_id": job.data.get("printer_id"),
                "title": job.data.get("title"),
                "page_count": job.data.get("page_count"),
                "pages_printed": job.data.get("pages_printed"),
            }
        )
    return out
