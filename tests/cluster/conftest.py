"""A real distributed run for tests: `make_cluster(...)` starts a `Cluster` on loopback.

Each cluster gets its own PostgreSQL database and data folder; the fixture stops
every cluster it started (no process outlives the test) and drops the databases.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from printcloud.cluster.run import Cluster, ClusterError, balancer_binary
from printcloud.cluster.topology import BalancerKind, Policy, Topology
from tests.conftest import _pg_admin_url, require_peer
from tests.printing.conftest import _new_pg_database, _redis_url


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


@pytest.fixture
def make_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeCluster]:
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
        database_url = _new_pg_database(databases)
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
            session_store=_redis_url() if session_store else None,
            **settings,
        )
        started.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in started:
        cluster.stop()
    if databases:
        from sqlalchemy import create_engine, text

        engine = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in databases:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
