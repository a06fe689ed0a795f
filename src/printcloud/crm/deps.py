"""The CRM's typed FastAPI dependencies, shared by its routes and pages: the runtime
and the idp-b principal with the scope each action needs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from printcloud.core.guard import Principal

from .runtime import CrmRuntime


def runtime(request: Request) -> CrmRuntime:
    rt: CrmRuntime = request.app.state.crm
    return rt


RuntimeDep = Annotated[CrmRuntime, Depends(runtime)]


def _scope(*scopes: str) -> Any:
    async def dependency(request: Request) -> Principal:
        return await runtime(request).guard.require(*scopes)(request)

    return Depends(dependency)


Reader = Annotated[Principal, _scope("crm.read")]
Writer = Annotated[Principal, _scope("crm.write")]
#: Batch jobs and the docgen link are the tenant administrator's (crm.write).
Admin = Annotated[Principal, _scope("crm.write")]
