"""The admin HTTP API of each issuer, `/{issuer}/api/admin/...` (JSON, OpenAPI tag
`admin`). The same operations as `printcloud admin` on the command line.

Who may call it: a bearer token of the issuer with scope `admin` that acts as an
administrator — a user token whose user is an admin of the token's tenant, or a
client-credentials token of a platform `service` client (system tenant). An
administrator of the system tenant manages every tenant of the issuer; any other
administrator only their own, and every other tenant answers 404, exactly as a
tenant that does not exist.

One module per section (tenants and their settings, users, clients, consents,
audit, ID cards with their lockouts, the directory); `deps.py` holds who is
calling and the rules the sections, and the admin pages, share.

Endpoints are plain `def`: the database work is synchronous and FastAPI runs
them in its threadpool. Changes go through `service.py`, which writes the audit
log with `actor="user:<username>"` or `"client:<client_id>"`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Security
from fastapi.security import HTTPBearer

from ..schemas import ErrorRead
from . import audit, cards, clients, consents, directory, tenants, users
from .deps import refuse_nul

_bearer = HTTPBearer(
    auto_error=False, description="An access token of this issuer with scope `admin`"
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorRead, "description": text}
    for code, text in (
        (400, "Invalid request; `field` names the offending field"),
        (401, "Missing, unknown, expired or revoked token"),
        (403, "The token lacks scope `admin` or does not act as an administrator"),
        (404, "No such object in a tenant this administrator manages"),
    )
}

router = APIRouter(
    prefix="/{issuer}/api/admin",
    tags=["admin"],
    responses=_ERRORS,
    dependencies=[Security(_bearer), Depends(refuse_nul)],
)
# in the order of the OpenAPI document
for _section in (tenants, users, clients, consents, audit, cards, directory):
    router.include_router(_section.router)
