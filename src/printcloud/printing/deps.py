"""The print service's typed FastAPI dependencies, shared by `routes` and `pages`.

`RuntimeDep` is the running service (`runtime.PrintingRuntime`); the callers are
the guard's checks of a bearer token of idp-a (`core.guard`): scope `print` for
users and API clients, scope `admin` with the issuer's `admin` claim for the
tenant's administrator, scope `device` for a printer's own device client.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from printcloud.core.guard import Guard, Principal, scoped

from .runtime import PrintingRuntime


def runtime(request: Request) -> PrintingRuntime:
    rt: PrintingRuntime = request.app.state.printing
    return rt


async def _runtime_dependency(request: Request) -> PrintingRuntime:
    # async: FastAPI runs a sync dependency on a worker thread, a hop on every request
    return runtime(request)


RuntimeDep = Annotated[PrintingRuntime, Depends(_runtime_dependency)]


def _guard(request: Request) -> Guard:
    return runtime(request).guard


PrintCaller = Annotated[Principal, scoped(_guard, "print")]
AdminCaller = Annotated[Principal, scoped(_guard, "admin", admin=True)]
DeviceCaller = Annotated[Principal, scoped(_guard, "device")]
