"""The print service's typed FastAPI dependencies, shared by `routes` and `pages`.

`RuntimeDep` is the running service (`runtime.PrintingRuntime`); the callers are
the guard's checks of a bearer token of idp-a (`core.guard`): scope `print` for
users and API clients, scope `admin` with the issuer's `admin` claim for the
tenant's administrator, scope `device` for a printer's own device client.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from printcloud.core.guard import Principal

from .runtime import PrintingRuntime


def runtime(request: Request) -> PrintingRuntime:
    rt: PrintingRuntime = request.app.state.printing
    return rt


RuntimeDep = Annotated[PrintingRuntime, Depends(runtime)]


def _scope(*scopes: str, admin: bool = False) -> Any:
    async def dependency(request: Request) -> Principal:
        return await runtime(request).guard.require(*scopes, admin=admin)(request)

    return Depends(dependency)


PrintCaller = Annotated[Principal, _scope("print")]
AdminCaller = Annotated[Principal, _scope("admin", admin=True)]
DeviceCaller = Annotated[Principal, _scope("device")]
