"""What the print service's routes and workflows share: stores, guard, balancer, engine.

The job workflows (`pipeline.py`) are module-level functions, as DBOS needs;
they reach the running service through `current()`, which `start()` sets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import httpx

from printcloud.auth.client import AuthClient
from printcloud.core import egress
from printcloud.core.blobs import FileBlobStore
from printcloud.core.crypto import SecretBox
from printcloud.core.db import Database
from printcloud.core.guard import Guard
from printcloud.core.http import client as http_client
from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings
from printcloud.core.tasks import TaskEngine
from printcloud.core.tasks.priority import lower_this_thread
from printcloud.core.tasks.running import Running
from printcloud.webhooks.delivery import Sender

from .balancer import Balancer
from .converted import ConvertedIndex
from .pool import WorkerPool
from .sessions import SessionStore, make_store

log = get_logger("printing.runtime")
#: The started print service of this process (at most one: DBOS is per process).
_running: Running[PrintingRuntime] = Running("the print service")


class ServiceToken:
    """The print service's own token at idp-a (client credentials, system tenant), of
    `scope`: `print` for the conversion workers, `admin` for idp-a's admin API."""

    def __init__(self, settings: Settings, *, scope: str = "print") -> None:
        issuer = settings.issuers[0]
        client_id, secret = settings.service_client(issuer, "printing")
        self._client = AuthClient(
            settings.issuer_url(issuer),
            client_id=client_id,
            client_secret=secret,
            http=http_client(),
        )
        self.scope = scope
        self._lock = threading.Lock()
        self._token: str | None = None
        self._until = 0.0

    def __call__(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or self._token is None or time.monotonic() > self._until:
                issued = self._client.client_credentials(scope=self.scope)
                self._token = issued.access_token
                self._until = time.monotonic() + max(30, issued.expires_in - 60)
            return self._token

    @property
    def issuer(self) -> AuthClient:
        """idp-a, as this client."""
        return self._client

    def close(self) -> None:
        self._client.http.close()


@dataclass
class PrintingRuntime:
    settings: Settings
    db: Database
    blobs: FileBlobStore
    sessions: SessionStore
    guard: Guard
    box: SecretBox
    engine: TaskEngine | None = None
    balancer: Balancer | None = None
    pool: WorkerPool | None = None
    service_token: ServiceToken | None = None
    #: For idp-a's admin API: the tenant's device clients (`device_clients.py`).
    admin_token: ServiceToken | None = None
    #: The converted-data records the page downloads looked up, kept while their token lives.
    index: ConvertedIndex | None = None
    started: bool = False
    #: Called with the engine before it launches (the app sets the queues' limits).
    before_launch: list[Callable[[TaskEngine], object]] = field(default_factory=list)
    #: Called once everything is up (the app adopts jobs whose workflow never started).
    on_started: list[Callable[[], object]] = field(default_factory=list)
    http: httpx.Client = field(default_factory=lambda: http_client(timeout=5))
    #: For the printers' push URLs (S109): addresses a tenant chose, so the egress
    #: policy's pinned client (made by `build_runtime`).
    push_http: httpx.Client = field(default_factory=lambda: egress.client(egress.EgressPolicy()))
    #: The tenants' webhooks: their delivery workflows and the dispatcher that starts them
    #: (made by `build_runtime`; run where the print service's workflows run).
    webhooks: Sender | None = None
    #: One thread that starts the workflows of jobs just recorded, after their answer
    #: (`intake.start_soon`); made by `start`, stopped by `finish_starts`.
    _starter: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        """Where the print service is reachable (printers fetch converted data here)."""
        return f"{self.settings.public_url}/printing"

    def start(self, engine: TaskEngine | None = None) -> None:
        """Start the conversion pool (embedded) and the balancer, then the workflow
        engine the process runs (launched here, after what recovered workflows need)."""
        settings = self.settings
        self.service_token = ServiceToken(settings)
        self.admin_token = ServiceToken(settings, scope="admin")
        if settings.convert_urls:
            urls = list(settings.convert_urls)
        else:
            self.pool = WorkerPool(settings)
            self.pool.start()
            urls = self.pool.urls
        self.balancer = Balancer.over(
            urls, policy=settings.balance, token=self.service_token, http=http_client(timeout=300)
        )
        _running.set(self)
        if engine is not None:
            self.engine = engine
            for prepare in self.before_launch:
                prepare(engine)
            if self.webhooks is not None:
                self.webhooks.attach()  # before the launch: recovered deliveries need it
            engine.launch()
            if self.webhooks is not None:
                self.webhooks.dispatch(engine)
            self._starter = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix="job-starts",
                initializer=partial(lower_this_thread, self.settings.background_nice),
            )
            for hook in self.on_started:
                hook()
        self.started = True

    def start_later(self, func: Callable[..., object], *args: Any) -> None:
        """Run `func(*args)` on the starter thread, in order; `RuntimeError` when none
        runs (not started, or stopping)."""
        if self._starter is None:
            raise RuntimeError("the print service's workflows are not running")
        self._starter.submit(func, *args)

    def finish_starts(self) -> None:
        """Make the starts asked for so far and take no more: before the engine stops."""
        if self.webhooks is not None:
            self.webhooks.stop()
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.shutdown(wait=True)

    def stop(self) -> None:
        """Stop what `start` started (the engine is shut down by whoever made it)."""
        self.finish_starts()
        self.engine = None
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        if self.balancer is not None:
            self.balancer.close()
        for token in (self.service_token, self.admin_token):
            if token is not None:
                token.close()
        self.http.close()
        self.push_http.close()
        if self.webhooks is not None:
            self.webhooks.close()
        _running.clear(self)
        self.started = False


def current() -> PrintingRuntime:
    return _running.current()


def build_runtime(settings: Settings, *, db: Database) -> PrintingRuntime:
    issuer = settings.issuers[0]
    box = SecretBox(settings.instance_secrets)
    return PrintingRuntime(
        settings=settings,
        db=db,
        blobs=FileBlobStore(settings.data_dir / "blobs"),
        sessions=make_store(
            url=settings.session_store,
            db=db,
            token_timeout=timedelta(seconds=settings.conversion_token_timeout),
        ),
        guard=Guard.of_issuer(settings, issuer, service="printing"),
        box=box,
        push_http=egress.client(settings.egress_policy, timeout=5),
        index=ConvertedIndex(),
        webhooks=Sender(settings=settings, db=db, box=box),
    )
