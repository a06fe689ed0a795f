"""Shared fixtures: a real server on loopback, SQLite and PostgreSQL, peers.

- `PRINTCLOUD_TEST_DATABASE_URL` (e.g. postgresql://postgres@127.0.0.1:5432/test), or a
  PostgreSQL answering at the documented default 127.0.0.1:5432 (user postgres) when it
  is unset, adds PostgreSQL to the database parametrisation; every test using `stack`
  runs on SQLite and on PostgreSQL. Each test session works in a database of its own,
  created and dropped here. The first lines of pytest's output say which was used.
- `PRINTCLOUD_REQUIRE_PEERS=1` (set by CI) turns a missing peer (PostgreSQL,
  Redis, chromium, curl, slapd…) from a skip into a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from printcloud.core import crypto
from printcloud.core.db import Database
from printcloud.core.settings import Settings

REQUIRE_PEERS = os.environ.get("PRINTCLOUD_REQUIRE_PEERS") == "1"

#: argon2id at the floor the settings allow (OWASP's: t=2, 19 MiB, p=1) rather than the
#: default (t=3, 64 MiB, p=4): the same code, a fifth of the CPU per password set or
#: checked. Through the environment, every Settings of the tests and every process they
#: start (`printcloud serve`, CLI calls) uses them; tests/core/test_crypto.py proves the
#: default's parameters.
TEST_PASSWORD_HASHING = {"time_cost": 2, "memory_kib": 19 * 1024, "parallelism": 1}
for _name, _value in TEST_PASSWORD_HASHING.items():
    os.environ[f"PRINTCLOUD_PASSWORD_HASH_{_name.upper()}"] = str(_value)
crypto.use_password_parameters(**TEST_PASSWORD_HASHING)
#: Where PostgreSQL is documented to answer (docs, .ci/run): used when nothing else is set.
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _find_postgresql() -> tuple[str, str]:
    """The PostgreSQL the tests use, and how it was found (for the report header).

    `PRINTCLOUD_TEST_DATABASE_URL` wins; otherwise a server answering at the documented
    default is used, so a newcomer's `make test` runs the PostgreSQL cases too. Either
    way the tests only create and drop databases of their own there."""
    given = os.environ.get("PRINTCLOUD_TEST_DATABASE_URL", "")
    if given:
        return given, "from PRINTCLOUD_TEST_DATABASE_URL"
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
        import psycopg

        psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
        ).close()
    except Exception as exc:  # any failure means "not there": the cases skip
        return "", f"none (PRINTCLOUD_TEST_DATABASE_URL unset, 127.0.0.1:5432: {exc})"
    return DEFAULT_PG_URL, "found at the documented default (PRINTCLOUD_TEST_DATABASE_URL unset)"


PG_URL, PG_FOUND = _find_postgresql()


def pytest_report_header() -> list[str]:
    shown = PG_URL or "-"
    skip = "" if PG_URL else "; the PostgreSQL cases skip (or fail with PRINTCLOUD_REQUIRE_PEERS=1)"
    return [
        f"printcloud: PostgreSQL {shown} {PG_FOUND}; each session works in databases of its "
        f"own, created and dropped there{skip}"
    ]


#: The egress allow-list of the tests' stacks: their peers all live on loopback.
LOOPBACK = ["127.0.0.0/8", "::1"]


def require_peer(available: bool, reason: str) -> None:
    """Skip (on a laptop) or fail (in CI) when a real peer is missing."""
    if available:
        return
    if REQUIRE_PEERS:
        pytest.fail(f"required peer missing: {reason}")
    pytest.skip(reason)


def require_command(name: str) -> str:
    path = shutil.which(name)
    require_peer(path is not None, f"`{name}` is not installed")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- databases -------------------------------------------------------------------


def _pg_admin_url() -> str:
    from printcloud.core.db import normalise_url

    return normalise_url(PG_URL)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    require_peer(
        bool(PG_URL),
        "no PostgreSQL at PRINTCLOUD_TEST_DATABASE_URL or 127.0.0.1:5432",
    )
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = _pg_admin_url()
    name = f"pc_test_{secrets.token_hex(4)}"
    try:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        require_peer(False, f"PostgreSQL at {PG_URL} is not usable: {exc}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(
    db_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if db_backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'printcloud.sqlite3'}"


# -- tokens as a real admin tool gets them ---------------------------------------------

SESSION_TOKEN_TYPE = "urn:printcloud:params:oauth:token-type:auth_session"


def sign_in(base_url: str, tenant: str, username: str, password: str, issuer: str = "idp-a") -> str:
    """Sign in at the issuer's login page; answers the browser session id (AUTH_ID)."""
    with httpx.Client(base_url=base_url, timeout=30) as web:
        assert web.get(f"/{issuer}/login").status_code == 200
        answer = web.post(
            f"/{issuer}/login",
            data={
                "tenant": tenant,
                "username": username,
                "password": password,
                "csrf": web.cookies["pc_csrf"],
                "next": f"/{issuer}/account",
            },
        )
        assert answer.status_code == 303, answer.text
        return str(web.cookies[f"pc_sid_{issuer.replace('-', '_')}"])


def user_token(
    base_url: str,
    settings: Settings,
    tenant: str,
    username: str,
    password: str,
    scope: str,
    issuer: str = "idp-a",
) -> str:
    """A user's access token, exchanged from their browser session by the platform's
    own auth service client (RFC 8693), as the platform's pages get theirs. Only the
    platform's clients may ask for `admin`, and only an administrator gets it."""
    client_id, secret = settings.service_client(issuer, "auth")
    answer = httpx.post(
        f"{base_url}/{issuer}/token",
        auth=(client_id, secret),
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": sign_in(base_url, tenant, username, password, issuer),
            "subject_token_type": SESSION_TOKEN_TYPE,
            "scope": scope,
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


# -- a live stack on loopback ---------------------------------------------------------


@dataclass
class Stack:
    """The embedded stack served by uvicorn on 127.0.0.1:<port> in this process."""

    settings: Settings
    db: Database
    base_url: str

    def issuer_url(self, issuer: str = "idp-a") -> str:
        return f"{self.base_url}/{issuer}"

    def metadata(self, issuer: str = "idp-a") -> dict[str, Any]:
        return dict(
            httpx.get(f"{self.issuer_url(issuer)}/.well-known/oauth-authorization-server").json()
        )

    def user_token(
        self, tenant: str, username: str, password: str, scope: str, issuer: str = "idp-a"
    ) -> str:
        return user_token(self.base_url, self.settings, tenant, username, password, scope, issuer)

    # Set-up helpers through the service layer (what `printcloud admin` does).
    def tenant(self, issuer: str = "idp-a", *, prefix: str = "t", **settings: Any) -> str:
        from printcloud.auth import service

        tenant_id = f"{prefix}{secrets.token_hex(4)}"
        with self.db.session() as s:
            t = service.create_tenant(
                s, issuer=issuer, tenant_id=tenant_id, name=f"Tenant {tenant_id}"
            )
            if settings:
                service.update_tenant_settings(s, tenant=t, actor="test", **settings)
        return tenant_id

    def set_tenant(self, tenant_id: str, issuer: str = "idp-a", **settings: Any) -> None:
        from printcloud.auth import service

        with self.db.session() as s:
            t = service.get_tenant(s, issuer=issuer, tenant_id=tenant_id)
            service.update_tenant_settings(s, tenant=t, actor="test", **settings)

    def user(
        self,
        tenant_id: str,
        username: str = "alice",
        password: str = "correct horse",
        issuer: str = "idp-a",
        *,
        admin: bool = False,
    ) -> tuple[str, str]:
        from printcloud.auth import service

        with self.db.session() as s:
            t = service.get_tenant(s, issuer=issuer, tenant_id=tenant_id)
            service.create_user(s, tenant=t, username=username, password=password, is_admin=admin)
        return username, password

    def client(
        self,
        tenant_id: str,
        issuer: str = "idp-a",
        *,
        kind: str = "confidential",
        scope: str = "print profile",
        redirect_uris: list[str] | None = None,
        grant_types: list[str] | None = None,
        name: str = "test client",
        **token_format: str,
    ) -> tuple[str, str | None]:
        """A client; `access_token_format="jwt"` (and `access_token_alg`) for RFC 9068."""
        from printcloud.auth import service

        with self.db.session() as s:
            t = service.get_tenant(s, issuer=issuer, tenant_id=tenant_id)
            c, secret = service.create_client(
                s,
                tenant=t,
                name=name,
                kind=kind,
                scope=scope,
                redirect_uris=redirect_uris,
                grant_types=grant_types,
                **token_format,
            )
            return c.client_id, secret


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread
        pass


def start_stack(settings: Settings) -> tuple[Stack, _Server, threading.Thread]:
    from printcloud.stack import create_stack

    # The auth service only: the print service's workflows (DBOS, one per process) and
    # conversion pool run in their own processes in the printing tests.
    app = create_stack(settings, services=("auth",))
    server = _Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    db = Database(settings.effective_database_url)
    return Stack(settings=settings, db=db, base_url=settings.public_url), server, thread


def make_settings(data_dir: Path, database_url: str | None, **overrides: Any) -> Settings:
    port = free_port()
    # Every test logs in from 127.0.0.1: keep the shared stacks' limits out of the way
    # (tests/auth/test_rate_limits.py starts stacks with low ones).
    overrides.setdefault("login_attempts_per_minute", 10_000)
    overrides.setdefault("client_auth_failures_per_minute", 10_000)
    # Workflows (DBOS: one engine per process) run in subprocess stacks only
    # (tests/helpers/print_stack.py); tests/core/test_tasks.py starts its own engines here.
    overrides.setdefault("run_workflows", False)
    # The tests' printers, devices and URL jobs live on loopback: allow it, as an
    # operator would for a lab (tests that prove the egress guard use their own).
    overrides.setdefault("egress_allow", LOOPBACK)
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        secret_key=secrets.token_urlsafe(32),
        log_level="WARNING",
        **overrides,
    )


@pytest.fixture(scope="session")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The embedded stack on SQLite and on PostgreSQL, shared by a session's tests.
    Tests isolate themselves by creating their own tenants (`stack.tenant()`)."""
    settings = make_settings(tmp_path_factory.mktemp("stack"), database_url)
    live, server, thread = start_stack(settings)
    yield live
    server.should_exit = True
    thread.join(timeout=10)
    live.db.dispose()


@pytest.fixture(scope="session")
def sqlite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The embedded stack on SQLite only, for tests whose subject is not the database."""
    settings = make_settings(tmp_path_factory.mktemp("sqlite-stack"), None)
    live, server, thread = start_stack(settings)
    yield live
    server.should_exit = True
    thread.join(timeout=10)
    live.db.dispose()


@pytest.fixture
def make_print_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start print stacks (`printcloud serve` in its own process), for the tests of every
    folder that talk to the print service; see `tests.helpers.print_stack.print_stacks`."""
    from tests.helpers.print_stack import print_stacks  # it imports this module

    with print_stacks(tmp_path_factory) as make:
        yield make
