"""What docgen's routes, pages and token flows share: settings, database, the
sealing box, the idp-a guard, the Digest nonce store and docgen's OAuth clients.

docgen acts as the platform service client `svc-docgen` at both issuers: at
idp-a (the platform's, whose tenants docgen serves) for sign-in, the print
token and introspection; at idp-b (the CRM's) for the CRM token.

The batch flow's workflows (`batch/`) are module-level functions, as DBOS
needs; they reach the running docgen through `current()`, which `start()` sets
before the process's engine launches (recovered workflows need it at once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import httpx

from printcloud.auth.client import AuthClient, RefreshOnce, TokenSet
from printcloud.core.blobs import FileBlobStore
from printcloud.core.crypto import SecretBox
from printcloud.core.db import Database
from printcloud.core.guard import Guard
from printcloud.core.http import client as http_client
from printcloud.core.ratelimit import Limiter, make_counter
from printcloud.core.settings import Settings
from printcloud.core.tasks import TaskEngine
from printcloud.core.tasks.running import EngineHooks, Running

from .digest import MemoryNonceStore, NonceStore, nonce_secret
from .sandbox import FormProcessPool, Limits

#: The Digest realm: the service's name (FIG. 17, 1702).
REALM = "printcloud docgen"
#: Where docgen is mounted in the embedded stack.
PREFIX = "/docgen"
#: Refused Digest attempts recorded per tenant and minute; beyond, only logged, so that
#: anyone who knows a tenant ID cannot fill the tenant's request list.
REFUSALS_RECORDED_PER_MINUTE = 20


@dataclass
class DocgenRuntime(EngineHooks):
    #: The started docgen of this process (at most one: DBOS is per process).
    running: ClassVar[Running[DocgenRuntime]] = Running("docgen")

    settings: Settings
    db: Database
    box: SecretBox
    guard: Guard
    nonce_store: NonceStore
    nonce_secret: bytes
    #: docgen's public address, e.g. http://127.0.0.1:8000/docgen (redirect URIs).
    base_url: str
    refusals: Limiter
    #: The rendered documents and fetched records of the batch flow (`docgen/{request}/…`).
    blobs: FileBlobStore
    #: Warm child processes that compile tenant forms under the form limits (sandbox.py).
    form_processes: FormProcessPool = field(default_factory=FormProcessPool)
    #: The process's workflow engine, once `start` is called (None: no batch flow here).
    engine: TaskEngine | None = None
    http: httpx.Client = field(default_factory=lambda: http_client(timeout=10))
    #: Called with (tenant ID, request ID) when a batch-print request is accepted
    #: (the batch flow starts here); a failing hook leaves the request `received`.
    on_accepted: list[Callable[[str, str], object]] = field(default_factory=list)
    #: Called once the engine has launched (the batch flow adopts requests left `received`).
    on_started: list[Callable[[], object]] = field(default_factory=list)
    _clients: dict[str, AuthClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sign_in_refresh: RefreshOnce | None = None

    def refresh_sign_in(self, refresh_token: str) -> TokenSet:
        """The pages' sign-in refreshed at idp-a, once per refresh token (`RefreshOnce`)."""
        if self._sign_in_refresh is None:
            self._sign_in_refresh = RefreshOnce(self.client(self.platform_issuer).refresh)
        return self._sign_in_refresh(refresh_token)

    @property
    def platform_issuer(self) -> str:
        """idp-a: the issuer of docgen's tenants, of sign-in and of the print token."""
        return self.settings.issuers[0]

    @property
    def crm_issuer(self) -> str | None:
        """idp-b: the CRM's issuer, of the CRM token (none when only one is configured)."""
        return self.settings.issuers[1] if len(self.settings.issuers) > 1 else None

    def client(self, issuer: str) -> AuthClient:
        """`svc-docgen` at `issuer` (sync: call it in a worker thread)."""
        with self._lock:
            found = self._clients.get(issuer)
            if found is None:
                client_id, secret = self.settings.service_client(issuer, "docgen")
                found = AuthClient(
                    self.settings.issuer_url(issuer),
                    client_id=client_id,
                    client_secret=secret,
                    http=self.http,
                )
                self._clients[issuer] = found
            return found

    def redirect_uri(self, issuer: str) -> str:
        """Where `issuer` sends the browser back: sign-in and the print token at idp-a,
        the CRM token at idp-b (one address per issuer)."""
        if issuer == self.platform_issuer:
            return f"{self.base_url}/auth/callback"
        return f"{self.base_url}/auth/crm-callback"

    @property
    def public_url(self) -> str:
        """Where the stack is reachable: the CRM (`/crm`) and the print service (`/printing`)."""
        return self.base_url.removesuffix(PREFIX)

    async def aclose(self) -> None:
        await self.guard.aclose()
        self.http.close()
        self.form_processes.close()


def current() -> DocgenRuntime:
    """The docgen started in this process (what the batch flow's workflows act with)."""
    return DocgenRuntime.running.current()


def build_runtime(
    settings: Settings,
    *,
    db: Database,
    nonce_store: NonceStore | None = None,
    public_url: str | None = None,
) -> DocgenRuntime:
    issuer = settings.issuers[0]
    return DocgenRuntime(
        settings=settings,
        db=db,
        box=SecretBox(settings.instance_secrets),
        guard=Guard.of_issuer(settings, issuer, service="docgen"),
        nonce_store=nonce_store or MemoryNonceStore(),
        nonce_secret=nonce_secret(settings),
        base_url=f"{(public_url or settings.public_url).rstrip('/')}{PREFIX}",
        refusals=Limiter(
            make_counter(settings.rate_limit_url),
            "docgen-digest-refusals",
            REFUSALS_RECORDED_PER_MINUTE,
            60,
        ),
        blobs=FileBlobStore(settings.data_dir / "blobs"),
        form_processes=FormProcessPool(
            Limits(
                cpu_seconds=settings.form_cpu_seconds,
                memory_mb=settings.form_memory_mb,
                wall_seconds=settings.form_wall_seconds,
            ),
            size=settings.form_processes,
        ),
    )
