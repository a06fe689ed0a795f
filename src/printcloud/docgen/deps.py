"""docgen's typed FastAPI dependencies, shared by `routes` and `pages`.

`RuntimeDep` is the running service (`runtime.DocgenRuntime`); `AdminCaller` is the
tenant's administrator at idp-a (a bearer token with the scopes `docgen` and
`admin` and the issuer's `admin` claim, checked by `core.guard`); `ReportCaller`
is that administrator signed in at any platform page (scope `admin` and the claim:
the print service's usage report reads batch runs with it); `BatchCaller`
is whoever sent a batch-print request (S1901: the CRM by Digest, or a signed-in
user, `intake.batch_caller`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from printcloud.core.errors import Forbidden
from printcloud.core.guard import Guard, Principal, scoped

from . import intake, tokens
from .runtime import DocgenRuntime


def runtime(request: Request) -> DocgenRuntime:
    rt: DocgenRuntime = request.app.state.docgen
    return rt


async def _runtime_dependency(request: Request) -> DocgenRuntime:
    # async: FastAPI runs a sync dependency on a worker thread, a hop on every request
    return runtime(request)


RuntimeDep = Annotated[DocgenRuntime, Depends(_runtime_dependency)]


def _guard(request: Request) -> Guard:
    return runtime(request).guard


#: The tenant's administrator at idp-a, for docgen.
AdminCaller = Annotated[Principal, scoped(_guard, "docgen", "admin", admin=True)]
#: The tenant's administrator at idp-a from any platform page (the print service's usage
#: report asks with its own sign-in, scope `admin`): reads batch runs, renders reports.
ReportCaller = Annotated[Principal, scoped(_guard, "admin", admin=True)]


async def _user_caller(request: Request) -> Principal:
    principal = await _guard(request).require(tokens.PRINT_SCOPE)(request)
    if principal.acting_kind != "user":
        raise Forbidden("a user's own print requests are read with a user's token, not a client's")
    return principal


#: A signed-in user at idp-a (scope `print`), reading their own print requests (FIG. 19).
UserCaller = Annotated[Principal, Depends(_user_caller)]


def actor_of(principal: Principal) -> str:
    """Who did it, as the settings and the history record it: `<kind>:<user>`."""
    return f"{principal.acting_kind}:{principal.acting_user}"


async def _batch_caller(request: Request) -> intake.Caller:
    return await intake.batch_caller(request, runtime(request))


BatchCaller = Annotated[intake.Caller, Depends(_batch_caller)]
