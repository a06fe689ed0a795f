"""What the auth app's handlers share: settings, database, one Authlib server
and one guard per issuer, rate limiters, templates. Built once by `create_app`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi.templating import Jinja2Templates
from starlette.requests import Request as HttpRequest

from printcloud.core import console, greenbridge
from printcloud.core.crypto import SecretBox
from printcloud.core.db import Database
from printcloud.core.errors import NotFound
from printcloud.core.guard import Guard
from printcloud.core.ratelimit import Limiter, make_counter
from printcloud.core.settings import Settings
from printcloud.core.web import templates

from .cards import CardLimits, card_key
from .models import Tenant, User
from .oauth import Call, IssuerServer, Request, bind, unbind
from .oauth.rfc9068 import KeyRing
from .pgstore import GroupCommit, GroupReads, LoopReader, conninfo
from .store import ClientCache, HotReader, Login, LoopTokenWriter

T = TypeVar("T")
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    servers: dict[str, IssuerServer] = field(default_factory=dict)
    guards: dict[str, Guard] = field(default_factory=dict)
    pages: Jinja2Templates = field(default_factory=lambda: templates(TEMPLATES, service="auth"))

    def viewer(self, issuer: str, user: User, tenant: Tenant) -> console.Viewer:
        """The signed-in `user` of `tenant` at `issuer` as the console's navigation shows
        them (the first issuer is the platform's; the others the CRM's)."""
        return console.Viewer(
            issuer=issuer,
            tenant=tenant.name or tenant.tenant_id,
            user=user.display_name or user.username,
            admin=bool(user.is_admin),
            platform=issuer == self.settings.issuers[0],
            sign_out=f"/{issuer}/logout",
            tenant_id=tenant.tenant_id,
        )

    def __post_init__(self) -> None:
        counter = make_counter(self.settings.rate_limit_url)
        self.login_limiter = Limiter(counter, "login", self.settings.login_attempts_per_minute, 60)
        self.login_ip_limiter = Limiter(
            counter, "login-ip", self.settings.login_attempts_per_minute * 5, 60
        )
        self.client_auth_limiter = Limiter(
            counter, "client-auth", self.settings.client_auth_failures_per_minute, 60
        )
        allowed, window = self.settings.card_failures_allowed, self.settings.card_lockout_seconds
        self.card_limits = CardLimits(
            device=Limiter(counter, "card-device", allowed * 4, window),
            card=Limiter(counter, "card", allowed, window),
            account=Limiter(counter, "card-account", allowed, window),
        )
        self.box = SecretBox(self.settings.instance_secrets)
        self.card_key = card_key(self.settings)
        self.clients = ClientCache(self.db.engine, ttl=self.settings.client_cache_ttl)
        # The hot path's storage: on SQLite local calls on the loop; on PostgreSQL group
        # commit and group reads on the loop (pgstore), over connections of their own.
        self.reads: GroupReads | None = None
        self.reader: HotReader = HotReader(self.db.engine)
        self.writer: GroupCommit | LoopTokenWriter = LoopTokenWriter(self.db.engine)
        if not self.db.is_sqlite:
            dsn = conninfo(self.db.engine)
            self.reads = GroupReads(dsn)
            self.reader = LoopReader(self.db.engine, self.reads)
            self.writer = GroupCommit(dsn)
        for issuer in self.settings.issuers:
            keyring = KeyRing(
                issuer=issuer,
                engine=self.db.engine,
                box=self.box,
                ttl=self.settings.client_cache_ttl,
            )
            self.servers[issuer] = IssuerServer(
                issuer=issuer, settings=self.settings, clients=self.clients, keyring=keyring
            )
            self.guards[issuer] = Guard.of_issuer(self.settings, issuer, service="auth")

    def server(self, issuer: str) -> IssuerServer:
        try:
            return self.servers[issuer]
        except KeyError:
            raise NotFound(f"no issuer {issuer!r}") from None

    def oauth_call(
        self, issuer: str, request: Request | None, fn: Callable[[IssuerServer, Any], T]
    ) -> T:
        """Run `fn(server, request)` with a DB session bound for Authlib (in a worker thread)."""
        server = self.server(issuer)
        with self.db.session() as db:
            token = bind(
                Call(
                    db=db,
                    issuer=issuer,
                    settings=self.settings,
                    request=request,
                    cards=self.card_limits,
                    card_key=self.card_key,
                    box=self.box,
                    login=self.login_limiter,
                )
            )
            try:
                return fn(server, request)
            finally:
                unbind(token)

    def oauth_call_hot(
        self, issuer: str, request: Request, fn: Callable[[IssuerServer, Any], T]
    ) -> tuple[T, Call]:
        """Run `fn` without a session, on the event loop: new token rows stay in the
        returned Call for the group-commit writer. Only for steps that need no reads
        beyond the client cache (client credentials)."""
        server = self.server(issuer)
        call = Call(
            db=None,
            issuer=issuer,
            settings=self.settings,
            request=request,
            reader=self.reader,
            cards=self.card_limits,
            card_key=self.card_key,
        )
        token = bind(call)
        try:
            return fn(server, request), call
        finally:
            unbind(token)

    def oauth_read(self, issuer: str, request: Request, fn: Callable[[IssuerServer, Any], T]) -> T:
        """Run a read-only `fn` (introspection) on the hot reader, without a session."""
        server = self.server(issuer)
        call = Call(
            db=None, issuer=issuer, settings=self.settings, request=request, reader=self.reader
        )
        token = bind(call)
        try:
            return fn(server, request)
        finally:
            unbind(token)

    async def hot(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a hot-path step (`oauth_call_hot`, `oauth_read`) on the event loop. On
        PostgreSQL it runs in a greenlet whose reads join the loop's group reads, so the
        loop serves other requests during the round trip; on SQLite it runs inline (a
        local read is shorter than the hop to a worker thread and its GIL hand-offs)."""
        if self.reads is None:
            return fn(*args)
        return await greenbridge.run(fn, *args)

    def close_hot_path(self) -> None:
        """Close the hot path's own connections (at shutdown)."""
        self.writer.close()
        if self.reads is not None:
            self.reads.close()

    async def persist_tokens(
        self,
        access: list[dict[str, Any]],
        refresh: list[dict[str, Any]],
        logins: list[Login] | None = None,
    ) -> None:
        """Wait until the group commit holding these token rows (and card logins) is durable."""
        await self.writer.submit(access, refresh, logins)

    def session_cookie(self, issuer: str) -> str:
        return f"pc_sid_{issuer.replace('-', '_')}"

    def secure_cookies(self) -> bool:
        return self.settings.public_url.startswith("https://")


def runtime(request: HttpRequest) -> Runtime:
    rt: Runtime = request.app.state.auth
    return rt


async def runtime_dependency(request: HttpRequest) -> Runtime:
    """`runtime` as a FastAPI dependency: async, since a sync one runs on a worker
    thread, a hop on every request (tokens and introspections included)."""
    return runtime(request)


def tenant_label(tenant: Tenant) -> str:
    return tenant.name or tenant.tenant_id
