"""A real distributed run for tests: `make_cluster(...)` starts a `Cluster` on loopback.

Each cluster gets its own PostgreSQL database and data folder; the fixture stops
every cluster it started (no process outlives the test) and drops the databases.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from printcloud.cluster.run import Cluster, ClusterError, balancer_binary
from printcloud.cluster.topology import BalancerKind, Policy, Topology
from tests.conftest import _pg_admin_url, require_peer
from tests.helpers.print_stack import drop_databases, new_pg_database, redis_url


def require_balancer(kind: str) -> str:
    """The nginx or haproxy executable; a skip (or a CI failure) when it is missing."""
    try:
        return balancer_binary(kind)
    except ClusterError as exc:
        require_peer(False, str(exc))
        raise


class MakeCluster(Protocol):
    def __call__(
        self,
        *,
        balancer: BalancerKind = ...,
        convert_workers: int = ...,
        printing: int = ...,
        session_store: bool = ...,
        policy: Policy = ...,
        **settings: Any,
    ) -> Cluster: ...


_TEMPLATE_BUILDER = """
import sys
from pathlib import Path
from printcloud.core.db import Database, migrate
from printcloud.core.settings import Settings
from printcloud.core.tasks import TaskEngine

url, data_dir = sys.argv[1], Path(sys.argv[2])
db = Database(url)
migrate(db, "printcloud:migrations")
db.dispose()
for service in ("auth", "crm", "docgen", "printing"):
    settings = Settings(
        database_url=url, service=service, data_dir=data_dir, worker_id="template",
        log_level="WARNING",
    )
    engine = TaskEngine(settings)  # no lease: nothing of this run is left behind
    engine.launch()
    engine.shutdown()
"""


@pytest.fixture(scope="session")
def cluster_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database with every migration applied — the app's and each service's DBOS
    schema — that each cluster's database is copied from. DBOS's first migration of a
    schema takes ~18 s (its `CREATE INDEX CONCURRENTLY`s wait out its own lock holder's
    idle timeout, one index at a time), four schemas a cluster: once per session, not
    once per cluster."""
    from sqlalchemy.engine import make_url

    databases: list[str] = []
    url = new_pg_database(databases)
    subprocess.run(
        [sys.executable, "-c", _TEMPLATE_BUILDER, url, str(tmp_path_factory.mktemp("tpl"))],
        check=True,
        timeout=600,
    )
    yield str(make_url(url).database)
    drop_databases(databases)


def _copy_database(template: str, created: list[str]) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"pc_cluster_{secrets.token_hex(4)}"
    engine = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    engine.dispose()
    created.append(name)
    return make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def make_cluster(
    tmp_path_factory: pytest.TempPathFactory, cluster_template: str
) -> Iterator[MakeCluster]:
    """Start clusters: `make_cluster(balancer="nginx"|"haproxy", convert_workers=2,
    printing=2, session_store=True, policy="round_robin", **settings)`; `settings` are
    `Settings` fields every process gets."""
    started: list[Cluster] = []
    databases: list[str] = []

    def make(
        *,
        balancer: BalancerKind = "nginx",
        convert_workers: int = 2,
        printing: int = 2,
        session_store: bool = True,
        policy: Policy = "round_robin",
        **settings: Any,
    ) -> Cluster:
        require_balancer(balancer)
        database_url = _copy_database(cluster_template, databases)
        settings.setdefault("log_level", "WARNING")
        settings.setdefault("secret_key", secrets.token_urlsafe(32))
        settings.setdefault("login_attempts_per_minute", 10_000)
        settings.setdefault("client_auth_failures_per_minute", 10_000)
        cluster = Cluster(
            Topology.local(
                balancer=balancer,
                convert_workers=convert_workers,
                printing=printing,
                policy=policy,
            ),
            database_url=database_url,
            data_dir=tmp_path_factory.mktemp(f"cluster-{balancer}"),
            session_store=redis_url() if session_store else None,
            **settings,
        )
        started.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in started:
        cluster.stop()
    drop_databases(databases)
