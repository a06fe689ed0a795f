"""A real print service for tests: `printcloud serve` in its own process.

The print service runs DBOS (one per process) and a pool of conversion worker
processes, so it is started as a subprocess — exactly as a user starts it —
and tests talk to it over HTTP on loopback. They may SIGKILL its PID or a
worker's and start it again on the same data.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from printcloud.core.db import Database
from printcloud.core.settings import Settings
from tests.conftest import (
    LOOPBACK,
    PG_URL,
    _pg_admin_url,
    free_port,
    require_peer,
    user_token,
)

REDIS_URL = os.environ.get("PRINTCLOUD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class PrintStack:
    settings: Settings
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    db: Database = field(init=False)

    def __post_init__(self) -> None:
        self.db = Database(self.settings.effective_database_url)

    @property
    def base_url(self) -> str:
        return self.settings.public_url

    @property
    def printing(self) -> str:
        return f"{self.base_url}/printing"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an HTTPS client trusts to reach this stack: its own certificate when it
        serves TLS (`tls=True`: the one `printcloud serve` made in its data folder)."""
        if not self.settings.serves_tls:
            return True
        cert = self.settings.tls_cert or self.settings.data_dir / "tls" / "cert.pem"
        return ssl.create_default_context(cafile=str(cert))

    # -- process control ----------------------------------------------------------------

    def start(self, *, timeout: float = 120) -> None:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "printcloud", "serve"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_healthy(timeout=timeout)

    def wait_healthy(self, *, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"printcloud serve exited; log:\n{self.log()}")
            try:
                resp = httpx.get(f"{self.printing}/healthz", timeout=2, verify=self.verify)
                if resp.status_code == 200:
                    return dict(resp.json())
            except (httpx.HTTPError, OSError):  # OSError: no certificate made yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"printcloud serve did not become healthy; log:\n{self.log()}")
            time.sleep(0.2)

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.printing}/healthz", timeout=60, verify=self.verify).json())

    def workers(self) -> list[dict[str, Any]]:
        path = self.settings.data_dir / "run" / "convert-workers.json"
        return list(json.loads(path.read_text()))

    def worker_pid(self, url: str) -> int:
        """The PID of the process that serves requests at a conversion worker URL."""
        return int(httpx.get(f"{url}/healthz", timeout=60).json()["pid"])

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def kill_all(self) -> None:
        """SIGKILL the whole process group: the server, its workflows and its workers."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except FileNotFoundError:
            return ""

    # -- set-up through the service layers (what `printcloud admin` does) --------------------

    def tenant(self, *, prefix: str = "t") -> str:
        from printcloud.auth import service

        tenant_id = f"{prefix}{secrets.token_hex(4)}"
        with self.db.session() as s:
            service.create_tenant(
                s, issuer="idp-a", tenant_id=tenant_id, name=f"Tenant {tenant_id}"
            )
        return tenant_id

    def user(
        self,
        tenant_id: str,
        username: str = "alice",
        password: str = "correct horse",
        *,
        admin: bool = False,
    ) -> None:
        from printcloud.auth import service

        with self.db.session() as s:
            t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant_id)
            service.create_user(s, tenant=t, username=username, password=password, is_admin=admin)

    def user_token(self, tenant: str, username: str, password: str, scope: str) -> str:
        """The user's token, as the platform's pages get it (tests.conftest.user_token)."""
        return user_token(self.base_url, self.settings, tenant, username, password, scope)

    def client(
        self, tenant_id: str, *, kind: str = "confidential", scope: str = "print"
    ) -> tuple[str, str]:
        from printcloud.auth import service

        with self.db.session() as s:
            t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant_id)
            c, secret = service.create_client(
                s, tenant=t, name=f"{kind} client", kind=kind, scope=scope
            )
            assert secret is not None
            return c.client_id, secret

    def printer(
        self,
        tenant_id: str,
        printer_id: str,
        *,
        color: bool = True,
        client_id: str,
        push_url: str | None = None,
    ) -> None:
        from printcloud.printing import service

        with self.db.session() as s:
            service.add_printer(
                s,
                tenant_id=tenant_id,
                printer_id=printer_id,
                name=printer_id.upper(),
                color=color,
                client_id=client_id,
                push_url=push_url,
                egress=self.settings.egress_policy,
            )

    def token(self, client_id: str, secret: str, scope: str = "print") -> str:
        resp = httpx.post(
            f"{self.base_url}/idp-a/token",
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(client_id, secret),
            verify=self.verify,
        )
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.printing,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            verify=self.verify,
        )

    def wait_for(
        self, api: httpx.Client, job_id: str, *states: str, timeout: float = 90
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = api.get(f"/api/jobs/{job_id}").json()
            if job.get("state") in states:
                return dict(job)
            if time.monotonic() > deadline:
                raise AssertionError(f"job stayed {job.get('state')} (wanted {states}): {job}")
            time.sleep(0.1)


def _environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTCLOUD_")}
    env.update(settings.as_environment())
    return env


def drop_databases(names: list[str]) -> None:
    """Drop the PostgreSQL databases a fixture created (their connections closed first)."""
    if not names:
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def new_pg_database(created: list[str]) -> str:
    require_peer(
        bool(PG_URL),
        "no PostgreSQL at PRINTCLOUD_TEST_DATABASE_URL or 127.0.0.1:5432",
    )
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"pc_print_{secrets.token_hex(4)}"
    try:
        engine = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except Exception as exc:
        require_peer(False, f"PostgreSQL at {PG_URL} is not usable: {exc}")
    created.append(name)
    return make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)


def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        require_peer(False, f"Redis at {REDIS_URL} is not usable: {exc}")
    return REDIS_URL


@contextlib.contextmanager
def print_stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start print stacks: `make_print_stack(database="sqlite"|"postgresql", sessions="sql"|"redis",
    workers=2, **settings)`. Each gets its own data folder (and PostgreSQL database).

    `database_url=` and `session_store=` name a database and a session store of the
    test's own instead (a private peer from `tests/peers.py`, say); they win over
    `database=` and `sessions=`."""
    started: list[PrintStack] = []
    databases: list[str] = []

    def make(
        *,
        database: str = "sqlite",
        sessions: str = "sql",
        workers: int = 2,
        database_url: str | None = None,
        session_store: str | None = None,
        **overrides: Any,
    ) -> PrintStack:
        data_dir = tmp_path_factory.mktemp("print")
        url: str | None = database_url
        if url is None and database == "postgresql":
            url = new_pg_database(databases)
        if session_store is None and sessions == "redis":
            session_store = redis_url()
        port = free_port()
        overrides.setdefault("egress_allow", LOOPBACK)
        overrides.setdefault("login_attempts_per_minute", 10_000)
        overrides.setdefault("client_auth_failures_per_minute", 10_000)
        settings = Settings(
            data_dir=data_dir,
            database_url=url,
            port=port,
            public_url=f"{'https' if overrides.get('tls') else 'http'}://127.0.0.1:{port}",
            secret_key=secrets.token_urlsafe(32),
            log_level="WARNING",
            convert_workers=workers,
            session_store=session_store,
            **overrides,
        )
        stack = PrintStack(
            settings=settings, env=_environment(settings), log_path=data_dir / "serve.log"
        )
        started.append(stack)
        stack.start()
        return stack

    try:
        yield make
    finally:
        for stack in started:
            stack.stop()
            stack.db.dispose()
        drop_databases(databases)
