"""The CRM's typed FastAPI dependencies, shared by its routes and pages: the runtime
and the idp-b principal with the scope each action needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from printcloud.core.guard import Guard, Principal, scoped

from .runtime import CrmRuntime


def runtime(request: Request) -> CrmRuntime:
    rt: CrmRuntime = request.app.state.crm
    return rt


async def _runtime_dependency(request: Request) -> CrmRuntime:
    # async: FastAPI runs a sync dependency on a worker thread, a hop on every request
    return runtime(request)


RuntimeDep = Annotated[CrmRuntime, Depends(_runtime_dependency)]


def _guard(request: Request) -> Guard:
    return runtime(request).guard


Reader = Annotated[Principal, scoped(_guard, "crm.read")]
Writer = Annotated[Principal, scoped(_guard, "crm.write")]
#: Batch jobs and the docgen link are the tenant administrator's (crm.write).
Admin = Annotated[Principal, scoped(_guard, "crm.write")]
