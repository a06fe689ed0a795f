"""The workflow `docgen.run_batch` (one per request, `batch-<request_id>`), its start and
the adoption of requests whose workflow never started.

The workflow's name is a durable identity: keep it.
"""

from __future__ import annotations

from sqlalchemy import select

from printcloud.core import tasks
from printcloud.core.logs import get_logger

from ..models import BatchRequest
from ..runtime import DocgenRuntime, current
from .sending import send
from .steps import complete, end, fetch, identify, load, render, verify

#: One logger for the whole flow, as before it was split in modules.
log = get_logger("docgen.batch")


def workflow_id(request_id: str) -> str:
    return f"batch-{request_id}"


class Suspend(Exception):
    """An expected end of the flow: the request is suspended with `reason` at `step`."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


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
