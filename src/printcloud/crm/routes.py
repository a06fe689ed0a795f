"""The CRM's HTTP API (seed 000, server B), for tokens of idp-b.

- `GET /api/record-sets` (crm.read), `POST` (crm.write); `GET|DELETE /api/record-sets/{name}`.
- `GET /api/record-sets/{name}/records?where=field:op:value&order=-field&limit&offset`
  (crm.read); `POST` (crm.write); `GET|PUT|DELETE …/records/{id}`.
- `POST /api/record-sets/{name}/import`: CSV, multipart `file` or a `text/csv` body
  (crm.write); every bad row named with its line, nothing stored unless all are good.
- `POST /api/query` {record_set, filters, order, limit, offset} (crm.read): what docgen
  calls with the tenant's CRM token to fetch the business data (S1517–S1518).
- `GET|POST /api/jobs`, `GET|PUT|DELETE /api/jobs/{id}`, `POST …/pause|resume|run`,
  `GET …/runs`, `GET /api/runs`: batch jobs (FIG. 6–7), crm.write.
- `PUT|GET|DELETE /api/docgen-link`: the docgen tenant ID and secret key (FIG. 9,
  S1410–S1412), crm.write; the key is write-only.

The tenant is the token's (from introspection), never the request's; another
tenant's object answers 404. Each handler is a thin caller of `service` (and of
`schedules.run_now`); the pages call the same functions.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from printcloud.core.errors import InvalidRequest, PayloadTooLarge
from printcloud.core.guard import Principal

from . import schedules, service
from .deps import Admin, Reader, RuntimeDep, Writer
from .runtime import CrmRuntime
from .schemas import (
    BatchJobCreate,
    BatchJobList,
    BatchJobRead,
    DocgenLinkRead,
    DocgenLinkUpdate,
    ImportProblem,
    ImportRead,
    RecordCreate,
    RecordPage,
    RecordQuery,
    RecordRead,
    RecordSetCreate,
    RecordSetList,
    RecordSetRead,
    RunList,
    RunRead,
    RunStarted,
)

router = APIRouter()


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


# -- record sets ----------------------------------------------------------------------


@router.get("/api/record-sets", response_model=RecordSetList, tags=["records"])
def list_record_sets(rt: RuntimeDep, principal: Reader) -> RecordSetList:
    with rt.db.sessions() as db:
        rows = service.list_record_sets(db, tenant_id=principal.tenant_id)
        return RecordSetList(record_sets=[RecordSetRead.of(rs, n) for rs, n in rows])


@router.post("/api/record-sets", status_code=201, response_model=RecordSetRead, tags=["records"])
def create_record_set(body: RecordSetCreate, rt: RuntimeDep, principal: Writer) -> RecordSetRead:
    with rt.db.session() as db:
        row = service.create_record_set(
            db,
            tenant_id=principal.tenant_id,
            name=body.name,
            fields=[f.model_dump() for f in body.fields],
        )
        return RecordSetRead.of(row, 0)


@router.get("/api/record-sets/{name}", response_model=RecordSetRead, tags=["records"])
def show_record_set(name: str, rt: RuntimeDep, principal: Reader) -> RecordSetRead:
    with rt.db.sessions() as db:
        row = service.get_record_set(db, tenant_id=principal.tenant_id, name=name, where="name")
        return RecordSetRead.of(row, service.count_records(db, row))


@router.delete("/api/record-sets/{name}", status_code=204, tags=["records"])
def delete_record_set(name: str, rt: RuntimeDep, principal: Writer) -> Response:
    with rt.db.session() as db:
        service.delete_record_set(db, tenant_id=principal.tenant_id, name=name)
    return Response(status_code=204)


# -- records --------------------------------------------------------------------------


def parse_where(items: list[str]) -> list[dict[str, Any]]:
    """`field:op:value` (or `field:value` for eq) from a query string."""
    filters = []
    for index, item in enumerate(items):
        parts = item.split(":", 2)
        if len(parts) == 2:
            parts = [parts[0], "eq", parts[1]]
        if len(parts) != 3 or not parts[0]:
            raise InvalidRequest(
                "where is field:op:value (op: eq, ne, lt, le, gt, ge, contains)",
                field=f"where.{index}",
            )
        filters.append({"field": parts[0], "op": parts[1], "value": parts[2]})
    return filters


@router.get("/api/record-sets/{name}/records", response_model=RecordPage, tags=["records"])
def list_records(
    name: str,
    rt: RuntimeDep,
    principal: Reader,
    where: Annotated[list[str] | None, Query(max_length=2000)] = None,
    order: Annotated[str, Query(max_length=300)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=service.MAX_RECORDS_PER_SET)] = 0,
) -> RecordPage:
    filters = parse_where(where or [])
    with rt.db.sessions() as db:
        result = service.query_records(
            db,
            tenant_id=principal.tenant_id,
            record_set=name,
            filters=filters,
            order=order,
            limit=limit,
            offset=offset,
        )
        return RecordPage.of(result)


@router.post(
    "/api/record-sets/{name}/records",
    status_code=201,
    response_model=RecordRead,
    tags=["records"],
)
def add_record(name: str, body: RecordCreate, rt: RuntimeDep, principal: Writer) -> RecordRead:
    with rt.db.session() as db:
        row = service.add_record(db, tenant_id=principal.tenant_id, record_set=name, data=body.data)
        return RecordRead.of(row)


@router.get(
    "/api/record-sets/{name}/records/{record_id}", response_model=RecordRead, tags=["records"]
)
def show_record(name: str, record_id: str, rt: RuntimeDep, principal: Reader) -> RecordRead:
    with rt.db.sessions() as db:
        row = service.get_record(
            db, tenant_id=principal.tenant_id, record_set=name, record_id=record_id
        )
        return RecordRead.of(row)


@router.put(
    "/api/record-sets/{name}/records/{record_id}", response_model=RecordRead, tags=["records"]
)
def update_record(
    name: str, record_id: str, body: RecordCreate, rt: RuntimeDep, principal: Writer
) -> RecordRead:
    with rt.db.session() as db:
        row = service.update_record(
            db,
            tenant_id=principal.tenant_id,
            record_set=name,
            record_id=record_id,
            data=body.data,
        )
        return RecordRead.of(row)


@router.delete("/api/record-sets/{name}/records/{record_id}", status_code=204, tags=["records"])
def delete_record(name: str, record_id: str, rt: RuntimeDep, principal: Writer) -> Response:
    with rt.db.session() as db:
        service.delete_record(
            db, tenant_id=principal.tenant_id, record_set=name, record_id=record_id
        )
    return Response(status_code=204)


# -- CSV import -------------------------------------------------------------------------


def _flag(value: Any, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidRequest(f"{name} must be true or false", field=name)


def rejected(exc: service.ImportRejected) -> JSONResponse:
    """400 with every problem (line, field, message), not only the description's first few."""
    body = {
        **exc.as_dict(),
        "error_count": exc.total,
        "errors": [
            ImportProblem(line=e.line, field=e.field, message=e.message).model_dump()
            for e in exc.errors
        ],
    }
    return JSONResponse(body, status_code=400, headers={"Cache-Control": "no-store"})


@router.post(
    "/api/record-sets/{name}/import",
    response_model=ImportRead,
    tags=["records"],
    responses={400: {"description": "bad rows, each with its line: nothing was imported"}},
)
async def import_csv(
    name: str,
    request: Request,
    rt: RuntimeDep,
    principal: Writer,
    create_fields: Annotated[str | None, Query(max_length=5)] = None,
    replace: Annotated[str | None, Query(max_length=5)] = None,
) -> Any:
    """CSV with a header row: multipart (`file`, and optionally `create_fields`,
    `replace`) or a `text/csv` body (the options as query parameters). The set is
    created, and new columns added as fields, unless `create_fields=false`."""
    content_type = request.headers.get("content-type", "")
    options: dict[str, Any] = {"create_fields": create_fields, "replace": replace}
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=10) as form:
            raw = await service.read_upload(form.get("file"))
            for key in options:
                value = form.get(key)
                if isinstance(value, str) and value:
                    options[key] = value
    elif content_type.startswith(("text/csv", "text/plain", "application/csv")):
        raw = await request.body()
        if len(raw) > service.MAX_CSV_BYTES:
            raise PayloadTooLarge(f"a CSV file is at most {service.MAX_CSV_BYTES} bytes")
    else:
        raise InvalidRequest(
            "send multipart/form-data with a CSV `file`, or a text/csv body", field="file"
        )
    text = service.decode(raw)
    try:
        result = await run_in_threadpool(
            lambda: service.import_text(
                rt.db,
                tenant_id=principal.tenant_id,
                record_set=name,
                text=text,
                create_fields=_flag(options["create_fields"], "create_fields", True),
                replace=_flag(options["replace"], "replace", False),
            )
        )
    except service.ImportRejected as exc:
        return rejected(exc)
    return ImportRead.of(result)


# -- the query docgen calls (S1517) -----------------------------------------------------


@router.post("/api/query", response_model=RecordPage, tags=["query"])
def query(body: RecordQuery, rt: RuntimeDep, principal: Reader) -> RecordPage:
    """The records of `record_set` that pass every filter, in `order`, one page
    (`next_offset` is set when there are more)."""
    with rt.db.sessions() as db:
        result = service.query_records(
            db,
            tenant_id=principal.tenant_id,
            record_set=body.record_set,
            filters=[f.model_dump() for f in body.filters],
            order=body.order,
            limit=body.limit,
            offset=body.offset,
        )
        return RecordPage.of(result)


# -- batch jobs (FIG. 6–7) ----------------------------------------------------------------


@router.get("/api/jobs", response_model=BatchJobList, tags=["batch jobs"])
def list_jobs(rt: RuntimeDep, principal: Admin) -> BatchJobList:
    with rt.db.sessions() as db:
        rows = service.list_jobs(db, tenant_id=principal.tenant_id)
        return BatchJobList(jobs=[BatchJobRead.of(r) for r in rows])


def _save(
    rt: CrmRuntime, principal: Principal, job_id: str | None, body: BatchJobCreate
) -> BatchJobRead:
    row = service.save_job(
        rt.db,
        tenant_id=principal.tenant_id,
        job_id=job_id,
        spec=body.spec(),
        by=principal.acting_user,
        changed=rt.job_changed,
    )
    return BatchJobRead.of(row)


@router.post("/api/jobs", status_code=201, response_model=BatchJobRead, tags=["batch jobs"])
def create_job(body: BatchJobCreate, rt: RuntimeDep, principal: Admin) -> BatchJobRead:
    return _save(rt, principal, None, body)


@router.get("/api/jobs/{job_id}", response_model=BatchJobRead, tags=["batch jobs"])
def show_job(job_id: str, rt: RuntimeDep, principal: Admin) -> BatchJobRead:
    with rt.db.sessions() as db:
        return BatchJobRead.of(service.get_job(db, tenant_id=principal.tenant_id, job_id=job_id))


@router.put("/api/jobs/{job_id}", response_model=BatchJobRead, tags=["batch jobs"])
def update_job(job_id: str, body: BatchJobCreate, rt: RuntimeDep, principal: Admin) -> BatchJobRead:
    return _save(rt, principal, job_id, body)


def _pause(rt: CrmRuntime, principal: Principal, job_id: str, paused: bool) -> BatchJobRead:
    row = service.pause_job(
        rt.db,
        tenant_id=principal.tenant_id,
        job_id=job_id,
        paused=paused,
        by=principal.acting_user,
        changed=rt.job_changed,
    )
    return BatchJobRead.of(row)


@router.post("/api/jobs/{job_id}/pause", response_model=BatchJobRead, tags=["batch jobs"])
def pause_job(job_id: str, rt: RuntimeDep, principal: Admin) -> BatchJobRead:
    return _pause(rt, principal, job_id, True)


@router.post("/api/jobs/{job_id}/resume", response_model=BatchJobRead, tags=["batch jobs"])
def resume_job(job_id: str, rt: RuntimeDep, principal: Admin) -> BatchJobRead:
    return _pause(rt, principal, job_id, False)


@router.post(
    "/api/jobs/{job_id}/run", status_code=202, response_model=RunStarted, tags=["batch jobs"]
)
def run_job(job_id: str, rt: RuntimeDep, principal: Admin) -> RunStarted:
    """Run the job now, as its schedule would (its run appears in `…/runs`)."""
    return schedules.run_now(rt, tenant_id=principal.tenant_id, job_id=job_id)


@router.delete("/api/jobs/{job_id}", status_code=204, tags=["batch jobs"])
def delete_job(job_id: str, rt: RuntimeDep, principal: Admin) -> Response:
    service.remove_job(rt.db, tenant_id=principal.tenant_id, job_id=job_id, changed=rt.job_changed)
    return Response(status_code=204)


@router.get("/api/jobs/{job_id}/runs", response_model=RunList, tags=["batch jobs"])
def job_runs(
    job_id: str,
    rt: RuntimeDep,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RunList:
    with rt.db.sessions() as db:
        rows = service.list_runs(db, tenant_id=principal.tenant_id, job_id=job_id, limit=limit)
        return RunList(runs=[RunRead.of(run, job) for run, job in rows])


@router.get("/api/runs", response_model=RunList, tags=["batch jobs"])
def runs(
    rt: RuntimeDep, principal: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> RunList:
    with rt.db.sessions() as db:
        rows = service.list_runs(db, tenant_id=principal.tenant_id, limit=limit)
        return RunList(runs=[RunRead.of(run, job) for run, job in rows])


# -- the docgen link (FIG. 9, S1410–S1412) --------------------------------------------------


@router.put("/api/docgen-link", response_model=DocgenLinkRead, tags=["docgen link"])
def set_docgen_link(body: DocgenLinkUpdate, rt: RuntimeDep, principal: Admin) -> DocgenLinkRead:
    with rt.db.session() as db:
        row = service.set_docgen_link(
            db,
            tenant_id=principal.tenant_id,
            docgen_tenant_id=body.docgen_tenant_id,
            secret_key=body.secret_key,
            by=principal.acting_user,
            box=rt.box,
        )
        return DocgenLinkRead.of(row)


@router.get("/api/docgen-link", response_model=DocgenLinkRead, tags=["docgen link"])
def show_docgen_link(rt: RuntimeDep, principal: Admin) -> DocgenLinkRead:
    with rt.db.sessions() as db:
        return DocgenLinkRead.of(service.get_docgen_link(db, tenant_id=principal.tenant_id))


@router.delete("/api/docgen-link", status_code=204, tags=["docgen link"])
def delete_docgen_link(rt: RuntimeDep, principal: Admin) -> Response:
    with rt.db.session() as db:
        service.delete_docgen_link(db, tenant_id=principal.tenant_id)
    return Response(status_code=204)
