"""A user-initiated request's sealed session (FIG. 19), and each step's progress recorded
on the request (`service.advance_request`: state, seed step, detail).

Tokens never enter a step's inputs or outputs (DBOS checkpoints them): the steps read
the user's tokens from the sealed store here, the tenant's from `service.token_set`.
"""

from __future__ import annotations

import json

from .. import service
from ..runtime import DocgenRuntime

#: The parameters' entry holding a user-initiated request's sealed session (FIG. 19).
SESSION_KEY = "_session"
SESSION_EXPIRED = "your session has expired; sign in again"
#: The parameters' entry naming the user who asked (FIG. 19): only they read the request
#: back (`GET /api/print-requests/{id}`). Set by docgen, never taken from the body.
REQUESTER_KEY = "_requested_by"


def seal_session(
    rt: DocgenRuntime, *, user: str, print_token: str | None, crm_token: str | None
) -> str:
    """The user's two tokens, sealed with the instance secret for the request's row."""
    return rt.box.seal(json.dumps({"user": user, "print": print_token, "crm": crm_token}))


def user_session(rt: DocgenRuntime, tenant_id: str, request_id: str) -> dict[str, str] | None:
    """The user's session of a user-initiated request; None once it was dropped."""
    with rt.db.session() as db:
        row = service.get_request(db, tenant_id=tenant_id, request_id=request_id)
        sealed = (row.parameters or {}).get(SESSION_KEY)
    if not isinstance(sealed, str):
        return None
    opened: dict[str, str] = json.loads(rt.box.open(sealed))
    return opened


def drop_session(rt: DocgenRuntime, tenant_id: str, request_id: str) -> None:
    with rt.db.session() as db:
        row = service.get_request(db, tenant_id=tenant_id, request_id=request_id)
        if SESSION_KEY in (row.parameters or {}):
            row.parameters = {k: v for k, v in row.parameters.items() if k != SESSION_KEY}


def advance(
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
