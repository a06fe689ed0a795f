"""What the CRM's routes and pages share: the database, the idp-b guard, the box
that seals stored secrets, and the hooks the batch scheduler registers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import httpx

from printcloud.core.crypto import SecretBox
from printcloud.core.db import Database
from printcloud.core.guard import Guard
from printcloud.core.http import client as http_client
from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings
from printcloud.core.tasks import TaskEngine
from printcloud.core.tasks.running import EngineHooks, Running

log = get_logger("crm.runtime")
#: Where the stack mounts the CRM (its pages' links and sign-in redirect live under it).
PREFIX = "/crm"


def crm_issuer(settings: Settings) -> str:
    """The CRM's own authorization server (idp-b): the second issuer."""
    if len(settings.issuers) < 2:
        raise RuntimeError("the CRM needs a second issuer (idp-b) in PRINTCLOUD_ISSUERS")
    return settings.issuers[1]


@dataclass
class CrmRuntime(EngineHooks):
    running: ClassVar[Running[CrmRuntime]] = Running("the CRM")

    settings: Settings
    db: Database
    guard: Guard
    box: SecretBox
    issuer: str
    #: Called with (tenant_id, job_id) after a batch job was created, changed, paused,
    #: resumed or deleted, once the change is committed (the scheduler re-registers it).
    on_job_changed: list[Callable[[str, str], object]] = field(default_factory=list)
    #: Called once the process's workflow engine is launched (the scheduler syncs).
    on_started: list[Callable[[], object]] = field(default_factory=list)
    http: httpx.Client = field(default_factory=lambda: http_client(timeout=10))
    #: The process's workflow engine, handed over by the stack (None: no workflows here).
    engine: TaskEngine | None = None

    @property
    def base_url(self) -> str:
        return f"{self.settings.public_url}{PREFIX}"

    def job_changed(self, tenant_id: str, job_id: str) -> None:
        for hook in self.on_job_changed:
            try:
                hook(tenant_id, job_id)
            except Exception:  # the change is stored; the scheduler catches up at start
                log.exception(
                    "batch job hook failed", extra={"fields": {"tenant": tenant_id, "job": job_id}}
                )

    async def aclose(self) -> None:
        await self.guard.aclose()
        self.http.close()


def current() -> CrmRuntime:
    """The CRM started in this process (what its scheduled workflows act with)."""
    return CrmRuntime.running.current()


def build_runtime(settings: Settings, *, db: Database) -> CrmRuntime:
    issuer = crm_issuer(settings)
    return CrmRuntime(
        settings=settings,
        db=db,
        guard=Guard.of_issuer(settings, issuer, service="crm"),
        box=SecretBox(settings.instance_secrets),
        issuer=issuer,
    )
