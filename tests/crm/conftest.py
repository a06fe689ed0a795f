"""Fixtures of the CRM tests: databases with the CRM's tables, and a live stack.

The CRM's tables come from the Alembic migrations when they hold them, and from
the models otherwise (before the migration exists), so these tests run both ways.

`crm_stack` serves, on one loopback port, the authorization servers (the
embedded stack, auth only) with the CRM mounted at `/crm` as the stack will
mount it, so the CRM's pages sign users in at idp-b through the real flow.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, inspect, text, update
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.routing import Mount

from printcloud.auth.client import AuthClient
from printcloud.core.db import Base, Database, migrate
from printcloud.crm import models
from printcloud.crm.app import create_app
from printcloud.crm.runtime import CrmRuntime
from tests.conftest import PG_URL, Stack, _pg_admin_url, _Server, make_settings, require_peer

CRM_TABLES = [
    models.RecordSetRow.__table__,
    models.RecordRow.__table__,
    models.BatchJobRow.__table__,
    models.BatchRunRow.__table__,
    models.DocgenLinkRow.__table__,
]
ISSUER = "idp-b"
CALLBACK = "/crm/auth/callback"


def ensure_crm_tables(db: Database) -> None:
    """The CRM's tables: migrated when a migration has them, else created from the models."""
    if not inspect(db.engine).has_table("crm_records"):
        Base.metadata.create_all(db.engine, tables=CRM_TABLES)  # type: ignore[arg-type]


# -- a database of the tests' own, on SQLite and on PostgreSQL ----------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def crm_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('crm') / 'crm.sqlite3'}"
        admin = None
        name = ""
    else:
        require_peer(
            bool(PG_URL),
            "no PostgreSQL at PRINTCLOUD_TEST_DATABASE_URL or 127.0.0.1:5432",
        )
        name = f"pc_crm_{secrets.token_hex(4)}"
        admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    migrate(db, "printcloud:migrations")
    ensure_crm_tables(db)
    yield db
    db.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- the live stack with the CRM at /crm ---------------------------------------------------


@dataclass
class CrmStack(Stack):
    runtime: CrmRuntime | None = None

    @property
    def crm_url(self) -> str:
        return f"{self.base_url}/crm"

    def token(self, tenant_id: str, scope: str = "crm.read crm.write") -> str:
        """An idp-b access token of a new confidential client of `tenant_id`."""
        client_id, secret = self.client(tenant_id, ISSUER, scope=scope)
        with httpx.Client(timeout=60) as http:
            issued = AuthClient(
                self.issuer_url(ISSUER), client_id=client_id, client_secret=secret, http=http
            ).client_credentials(scope=scope)
        return issued.access_token

    def api(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.crm_url, headers=headers, timeout=60)


def _allow_crm_sign_in(db: Database, settings_url: str) -> None:
    """What the lead adds to the auth bootstrap (WEB_SIGN_IN["crm"]): svc-crm's redirect
    URI at idp-b, and the authorization code grant."""
    from printcloud.auth.models import Client

    with db.session() as s:
        s.execute(
            update(Client)
            .where(Client.issuer == ISSUER, Client.client_id == "svc-crm")
            .values(
                redirect_uris=[f"{settings_url}{CALLBACK}"],
                grant_types=sorted(
                    [
                        "authorization_code",
                        "client_credentials",
                        "refresh_token",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ]
                ),
            )
        )


@pytest.fixture(scope="session")
def crm_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrmStack]:
    from printcloud.stack import create_stack

    settings = make_settings(tmp_path_factory.mktemp("crm-stack"), None)
    auth = create_stack(settings, services=("auth",))  # migrates and bootstraps
    db = Database(settings.effective_database_url)
    ensure_crm_tables(db)
    _allow_crm_sign_in(db, settings.public_url)
    crm = create_app(settings, db=db)
    outer = Starlette(routes=[Mount("/crm", app=crm), Mount("", app=auth)])
    server = _Server(
        uvicorn.Config(
            outer,
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the CRM test server did not start")
        time.sleep(0.02)
    stack = CrmStack(settings=settings, db=db, base_url=settings.public_url, runtime=crm.state.crm)
    yield stack
    server.should_exit = True
    thread.join(timeout=10)
    db.dispose()
