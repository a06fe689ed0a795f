"""The distributed topology, started for real: every service its own process, two
conversion workers and two print service replicas behind nginx or HAProxy, on
PostgreSQL and Redis. One cluster per balancer (each takes a while to start)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from printcloud.cluster.run import Cluster
from tests.cluster.conftest import MakeCluster

pytestmark = [pytest.mark.slow, pytest.mark.peer("postgres"), pytest.mark.peer("redis")]


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group `pgid` still runs (zombies, which the container's
    init may never reap, do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            return True
    return False


def _convert_workers(cluster: Cluster, calls: int) -> list[str]:
    served = []
    with httpx.Client(timeout=30) as http:
        for _ in range(calls):
            resp = http.get(f"{cluster.convert_url}/healthz")
            assert resp.status_code == 200, resp.text
            assert resp.headers["x-printcloud-worker"] == resp.json()["worker"]
            served.append(resp.json()["worker"])
    return served


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_a_cluster_behind_a_real_balancer(make_cluster: MakeCluster, balancer: str) -> None:
    cluster = make_cluster(balancer=balancer, convert_workers=2, printing=2)  # type: ignore[arg-type]
    names = ["auth-1", "crm-1", "docgen-1", "printing-1", "printing-2", "convert-1", "convert-2"]
    assert list(cluster.processes) == [*names, balancer]

    # Every process runs, and every backend answers its own health check directly.
    for name in names:
        info = cluster.processes[name]
        assert info.alive and info.worker_id == name
        assert httpx.get(info.health_url, timeout=10).status_code == 200, cluster.log(name)
    state = json.loads((cluster.run_dir / "cluster.json").read_text())
    assert {s["name"]: s["pid"] for s in state} == {n: cluster.pid(n) for n in cluster.processes}

    # Through the balancer: the print service (a replica without a pool of its own:
    # its one "worker" is the conversion tier) and the authorization server.
    health = httpx.get(f"{cluster.entry_url}/printing/healthz", timeout=10).json()
    assert [w["url"] for w in health["workers"]] == [cluster.convert_url]
    metadata = httpx.get(
        f"{cluster.entry_url}/idp-a/.well-known/oauth-authorization-server", timeout=10
    )
    assert metadata.status_code == 200
    assert metadata.json()["issuer"] == f"{cluster.entry_url}/idp-a"

    # The conversion tier spreads calls over both workers (no stickiness).
    assert set(_convert_workers(cluster, 8)) == {"convert-1", "convert-2"}

    # A dead worker: calls still succeed, on the other one.
    cluster.kill("convert-1")
    assert not _group_alive(cluster.pid("convert-1"))
    assert set(_convert_workers(cluster, 8)) == {"convert-2"}

    # It comes back on its port with its name, and gets calls again.
    cluster.restart("convert-1")
    assert (
        httpx.get(f"{cluster.processes['convert-1'].url}/healthz").json()["worker"] == "convert-1"
    )

    pids = [cluster.pid(name) for name in cluster.processes]
    cluster.stop()
    assert not [pid for pid in pids if _group_alive(pid)]
    cluster.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{cluster.entry_url}/healthz", timeout=5)
