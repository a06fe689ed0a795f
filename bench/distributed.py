"""Jobs/s and submit-to-printed latency: the nginx cluster, 1 and 2 workers, and embedded.

Seed 003's whole print path under load, in the distributed run of
`docs/deploy.md` and in the embedded one, in the same benchmark run. Targets,
one after the other, each started fresh and stopped before the next:

- `cluster-1w`: `printcloud.cluster.run.Cluster`, nginx in front of one
  process per service (auth, crm, docgen, printing) and **1** conversion
  worker behind the conversion balancer (`least_conn`); a fresh PostgreSQL
  database (dropped afterwards); Redis as the conversion session store;
- `cluster-2w`: the same with **2** conversion workers;
- `embedded-1w`: `printcloud serve` (every service in one process, SQLite)
  with 1 pool worker;
- `embedded-2w`: the same with 2 pool workers (least-loaded).

Each target gets `TENANTS` tenants (idp-a), each with a print client and one
mono printer whose virtual printer is a `printcloud device --sink` process
(pushed print requests, polling every 0.5 s as a fallback) talking to the
target's public entry (nginx for the cluster). A sink printer (issue 13) makes
every call a printer makes — work list, started, metafile and every page
downloaded and checked, result — but renders nothing and sends no thumbnails:
printers are other machines in real life, so their raster must not be charged to
the platform on the benchmark's cores. A batch is `JOBS_PER_TENANT` jobs per
tenant of `../shared/bench-data/doc10.pdf` (10 A4 pages) at `DPI` dpi, mono,
all submitted at once (one client thread per tenant). 200 dpi mono (the
service takes 150, 200, 300 or 600) keeps the conversion (PDF render + JPEG,
~40 ms a page on one core here) the largest CPU cost of a job.

Figures per target: jobs/s = jobs / (last S111 "printed" - first POST), the
median over `--runs` batches (default 2, `--quick` 1, after one smaller
warm-up batch unless `--warm 0`); p50/p99 of every measured job's
submit-to-printed latency (POST start -> its S111 in the job's history); how
many cores the machine was busy (from /proc/stat, everything included) and the
printers' share; and how the conversions (S108) were spread over the workers.
The cost per page, which holds when other work shares the machine: CPU ms per
printed page of the conversion workers, of the rest of the platform (every other
process of the target: the services, nginx; for the embedded run, `printcloud
serve` and its children minus the workers), of the PostgreSQL backends serving
the target's database and of the printers, from /proc, from the first POST to the
end of the batch's clean-up (S112). On PostgreSQL, `pg_stat_database`'s deltas
per job over the same window (transactions committed, rows inserted, updated and
deleted, read ~11 s later so that idle backends have flushed their counters) and
the backends connected at the end. They include the benchmark's own API calls
(its submissions and state polls, counted in `api_calls`).
Every job must end `printed` with its 10 pages, or the run is invalid. The
ratio table divides 2 workers by 1 (goal: >= 1.6x, with the CPU count printed:
on two cores, the printers, the print service and the database share the
cores the workers need), and the cluster by the embedded run.

Without nginx, PostgreSQL or `printcloud.cluster` the cluster targets are
skipped with the reason (not a failure); the embedded ones still run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx
from rich.table import Table

from bench.conversion import DOC, PAGES, _scratch
from bench.harness import (
    LOOPBACK,
    REPO,
    BenchError,
    Options,
    _cpu_times,
    busy_warning,
    console,
    free_port,
    log_tail,
    machine,
    started,
    wait_ready,
)
from bench.print_stack import FINAL, at, group_cpu_seconds
from printcloud.printing.client import PrintClient, PrintServiceError

DPI = 200
COLOR = False
TENANTS = 3
JOBS_PER_TENANT = 8
WARM_JOBS_PER_TENANT = 2
#: Jobs/s with 2 conversion workers over 1 (issue 13, with sink printers).
GOAL_SCALING = 1.6
#: The conversion tier alone through its balancer, 2 workers over 1.
GOAL_TIER = 1.8
ISSUER = "idp-a"
PRINTER = "bench-mono"
#: The cluster's processes besides the conversion workers: one of each, so that
#: the two cluster targets differ only in their conversion tier.
PRINTING_REPLICAS = 1
CLUSTER_POLICY: Final = "least_conn"
EMBEDDED_BALANCE = "least_loaded"
PRINTER_POLL = 0.5
#: How often the benchmark reads its jobs' states while a batch runs: its own API calls
#: are platform work, so they are kept few (jobs/s comes from the histories' S111).
BATCH_POLL_S = 1.0
JOB_TIMEOUT = 300.0
PG_ADMIN_URL = os.environ.get(
    "PRINTCLOUD_BENCH_PG_ADMIN_URL", f"postgresql://postgres@{LOOPBACK}:5432/postgres"
)
REDIS_URL = os.environ.get("PRINTCLOUD_BENCH_REDIS_URL", f"redis://{LOOPBACK}:6379/0")
TARGETS = ("cluster-1w", "cluster-2w", "embedded-1w", "embedded-2w")


class Skip(BenchError):
    """A target that cannot run here, for a reason that is not a failure (no nginx, ...)."""


# -- deployments -----------------------------------------------------------------


@dataclass
class Deployment:
    """A running target: where users reach it, its database, how to tell it is alive."""

    base: str
    database_url: str
    alive: Callable[[], None]
    #: PIDs of the conversion workers now (their CPU time is the conversion's).
    convert_pids: Callable[[], list[int]]
    #: Every process of the target (with its descendants), by service: the platform's CPU.
    service_pids: Callable[[], dict[str, list[int]]]
    info: dict[str, Any] = field(default_factory=dict)
    #: The conversion tier alone, through its balancer (cluster targets only).
    tier: Callable[[bytes], dict[str, Any]] | None = None


def _clean_env() -> dict[str, str]:
    """This process's environment without any PRINTCLOUD_* (none may leak into a target)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PRINTCLOUD_")}


@contextlib.contextmanager
def _embedded(workers: int, out_dir: Path) -> Iterator[Deployment]:
    """`printcloud serve` on a fresh SQLite data folder with `workers` pool workers."""
    with contextlib.ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix=f"pc-bench-dist-e{workers}-", dir=_scratch()))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        port = free_port()
        base = f"http://{LOOPBACK}:{port}"
        env = _clean_env() | {
            "PRINTCLOUD_DATA_DIR": str(data_dir),
            "PRINTCLOUD_HOST": LOOPBACK,
            "PRINTCLOUD_PORT": str(port),
            "PRINTCLOUD_PUBLIC_URL": base,
            "PRINTCLOUD_CONVERT_WORKERS": str(workers),
            "PRINTCLOUD_BALANCE": EMBEDDED_BALANCE,
            "PRINTCLOUD_LOG_LEVEL": "WARNING",
            "PRINTCLOUD_SECRET_KEY": secrets.token_urlsafe(32),
        }
        log = out_dir / "serve.log"
        proc = stack.enter_context(
            started([sys.executable, "-m", "printcloud", "serve"], env=env, log=log)
        )
        wait_ready(f"{base}/printing/healthz", proc=proc, log=log, timeout=120)

        def alive() -> None:
            if proc.poll() is not None:
                raise BenchError(f"printcloud serve died; last lines of {log}:\n{log_tail(log)}")

        def convert_pids() -> list[int]:
            state = data_dir / "run" / "convert-workers.json"
            with contextlib.suppress(OSError, ValueError):
                return [int(w["pid"]) for w in json.loads(state.read_text()) if w.get("pid")]
            return []

        def service_pids() -> dict[str, list[int]]:
            return {"serve": [proc.pid]}

        url = f"sqlite:///{(data_dir / 'printcloud.sqlite3').resolve()}"
        info = {"database": "sqlite", "balance": EMBEDDED_BALANCE, "processes": 1 + workers}
        yield Deployment(base, url, alive, convert_pids, service_pids, info)


@contextlib.contextmanager
def _pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped at the end; `Skip` if PostgreSQL is unreachable."""
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise Skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {first}") from exc
    name = f"pc_bench_dist_{secrets.token_hex(4)}"
    with admin:
        info = admin.info
        if info.host not in (LOOPBACK, "localhost") and not info.host.startswith("/"):
            raise BenchError(f"refusing a PostgreSQL server that is not on loopback: {info.host}")
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            password = f":{quote(info.password, safe='')}" if info.password else ""
            yield f"postgresql://{info.user}{password}@{LOOPBACK}:{info.port}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _redis() -> str | None:
    """`REDIS_URL` when Redis answers PING, else None (the cluster keeps sessions in SQL)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        return None
    finally:
        client.close()
    return REDIS_URL


@contextlib.contextmanager
def _cluster(workers: int, out_dir: Path) -> Iterator[Deployment]:
    """The nginx cluster with `workers` conversion workers on a fresh PostgreSQL database."""
    try:
        from printcloud.cluster.run import Cluster, ClusterError, balancer_binary
        from printcloud.cluster.topology import Topology
    except ImportError as exc:
        raise Skip(f"printcloud.cluster is not available: {exc}") from exc
    try:
        balancer_binary("nginx")
    except ClusterError as exc:
        raise Skip(str(exc)) from exc
    sessions = _redis()
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(_pg_database())
        data_dir = Path(tempfile.mkdtemp(prefix=f"pc-bench-dist-c{workers}-", dir=_scratch()))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        stack.callback(_save_cluster_logs, data_dir, out_dir)
        topology = Topology.local(
            balancer="nginx",
            convert_workers=workers,
            printing=PRINTING_REPLICAS,
            policy=CLUSTER_POLICY,
        )
        cluster = stack.enter_context(
            Cluster(
                topology,
                database_url=database_url,
                session_store=sessions,
                rate_limit_url=sessions,
                data_dir=data_dir,
                log_level="WARNING",
                secret_key=secrets.token_urlsafe(32),
            )
        )

        def alive() -> None:
            dead = [name for name, info in cluster.processes.items() if not info.alive]
            if dead:
                raise BenchError(f"cluster process(es) exited: {', '.join(dead)}; see {out_dir}")

        def convert_pids() -> list[int]:
            return [
                info.pid
                for info in cluster.processes.values()
                if info.service == "convert" and info.pid is not None
            ]

        def service_pids() -> dict[str, list[int]]:
            found: dict[str, list[int]] = {}
            for info in cluster.processes.values():
                if info.pid is not None:
                    found.setdefault(info.service, []).append(info.pid)
            return found

        info = {
            "database": "postgresql",
            "session_store": "redis" if sessions else "database (Redis unreachable)",
            "balancer": "nginx",
            "policy": CLUSTER_POLICY,
            "processes": {name: p.service for name, p in cluster.processes.items()},
        }

        def tier(data: bytes) -> dict[str, Any]:
            return _tier(cluster.entry_url, cluster.convert_url, cluster.settings, data)

        yield Deployment(
            cluster.entry_url, database_url, alive, convert_pids, service_pids, info, tier
        )


#: The conversion tier alone: conversions of doc10.pdf in flight at once, and how many.
TIER_CONCURRENCY = 4
TIER_CONVERSIONS = 16


def _tier(entry_url: str, convert_url: str, settings: Any, data: bytes) -> dict[str, Any]:
    """Seed 003's worker calls for whole documents (token request, download, conversion,
    completion) sent straight to the conversion tier's balancer, `TIER_CONCURRENCY` at a
    time, as the print service's workflows send them: the tier's throughput without the
    rest of the platform (and the printers) on the same cores."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    folder = Path(tempfile.mkdtemp(prefix="pc-bench-tier-", dir=_scratch()))
    (folder / "doc.pdf").write_bytes(data)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = f"http://127.0.0.1:{server.server_address[1]}/doc.pdf"
    client_id, secret = settings.service_client("idp-a", "printing")
    try:
        token = httpx.post(
            f"{entry_url}/idp-a/token",
            data={"grant_type": "client_credentials", "scope": "print"},
            auth=(client_id, secret),
            timeout=30,
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        tenant = "bench-tier"

        def one(index: int) -> tuple[float, str]:
            job = f"tier-{secrets.token_hex(6)}-{index}"
            began = time.monotonic()
            with httpx.Client(base_url=convert_url, headers=headers, timeout=300) as http:
                body = {"tenant_id": tenant, "job_id": job, "printer_id": "p"}
                http.post("/sessions", json=body).raise_for_status()
                http.post(
                    f"/sessions/{job}/p/download", json={"tenant_id": tenant, "url": source}
                ).raise_for_status()
                made = http.post(
                    f"/sessions/{job}/p/convert",
                    json={"tenant_id": tenant, "dpi": DPI, "color": COLOR},
                )
                made.raise_for_status()
                http.delete(f"/sessions/{job}/p", params={"tenant_id": tenant})
            return time.monotonic() - began, made.headers.get("x-printcloud-worker", "?")

        with ThreadPoolExecutor(TIER_CONCURRENCY) as pool:
            list(pool.map(one, range(TIER_CONCURRENCY)))  # warm-up
            began = time.monotonic()
            done = list(pool.map(one, range(TIER_CONVERSIONS)))
            seconds = time.monotonic() - began
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "conversions": TIER_CONVERSIONS,
        "concurrency": TIER_CONCURRENCY,
        "seconds": round(seconds, 3),
        "documents_per_s": round(TIER_CONVERSIONS / seconds, 3),
        "pages_per_s": round(TIER_CONVERSIONS * PAGES / seconds, 2),
        "p50_s": round(_percentile([d for d, _ in done], 50), 3),
        "workers": dict(Counter(w for _, w in done)),
    }


def _save_cluster_logs(data_dir: Path, out_dir: Path) -> None:
    """Keep the cluster's logs with the results (its data folder is deleted)."""
    for log in data_dir.rglob("*.log"):
        with contextlib.suppress(OSError):
            target = out_dir / "logs" / log.relative_to(data_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, target)


DEPLOYMENTS: dict[str, Callable[[Path], contextlib.AbstractContextManager[Deployment]]] = {
    "cluster-1w": lambda out: _cluster(1, out),
    "cluster-2w": lambda out: _cluster(2, out),
    "embedded-1w": lambda out: _embedded(1, out),
    "embedded-2w": lambda out: _embedded(2, out),
}


# -- tenants, clients, printers --------------------------------------------------


@dataclass
class Tenant:
    """One tenant of the batch: its API client (a bearer token) and its printer's client."""

    tenant_id: str
    app_id: str
    app_secret: str
    device_id: str
    device_secret: str
    api: PrintApi | None = None


@dataclass(frozen=True)
class PrintApi:
    """A tenant's print-service client and the bearer token it calls with."""

    client: PrintClient
    token: str


def _set_up(database_url: str, count: int) -> list[Tenant]:
    """Tenants, clients and a mono printer each, through the service layer (as the tests do)."""
    from printcloud.auth import service as auth
    from printcloud.core.db import Database
    from printcloud.printing import service as printing

    db = Database(database_url)
    tenants = []
    try:
        for index in range(count):
            tenant_id = f"bench{index + 1}{secrets.token_hex(2)}"
            with db.session() as s:
                auth.create_tenant(s, issuer=ISSUER, tenant_id=tenant_id, name=f"Bench {index}")
            with db.session() as s:
                tenant = auth.get_tenant(s, issuer=ISSUER, tenant_id=tenant_id)
                app, app_secret = auth.create_client(
                    s, tenant=tenant, name="bench app", kind="confidential", scope="print"
                )
                dev, dev_secret = auth.create_client(
                    s, tenant=tenant, name="bench printer", kind="device", scope="device print"
                )
                app_id, dev_id = app.client_id, dev.client_id
            with db.session() as s:
                printing.add_printer(
                    s,
                    tenant_id=tenant_id,
                    printer_id=PRINTER,
                    name="Benchmark mono printer",
                    color=False,
                    client_id=dev_id,
                )
            if app_secret is None or dev_secret is None:
                raise BenchError("create_client gave no secret")
            tenants.append(Tenant(tenant_id, app_id, app_secret, dev_id, dev_secret))
    finally:
        db.dispose()
    return tenants


@contextlib.contextmanager
def _api(base: str, tenant: Tenant) -> Iterator[PrintApi]:
    token = httpx.post(
        f"{base}/{ISSUER}/token",
        data={"grant_type": "client_credentials", "scope": "print"},
        auth=(tenant.app_id, tenant.app_secret),
        timeout=30,
        trust_env=False,
    )
    if token.status_code != 200:
        raise BenchError(f"token request answered {token.status_code}: {token.text[:300]}")
    with httpx.Client(timeout=120, trust_env=False) as http:
        yield PrintApi(
            PrintClient(f"{base}/printing", http=http), str(token.json()["access_token"])
        )


@contextlib.contextmanager
def _printers(
    base: str, tenants: list[Tenant], out_dir: Path
) -> Iterator[list[tuple[str, int, Path]]]:
    """One `printcloud device` process per tenant; (name, process group, log) of each."""
    with contextlib.ExitStack() as stack:
        printed = Path(tempfile.mkdtemp(prefix="pc-bench-dist-printed-", dir=_scratch()))
        stack.callback(shutil.rmtree, printed, ignore_errors=True)
        procs = []
        for tenant in tenants:
            log = out_dir / f"printer-{tenant.tenant_id}.log"
            cmd = [
                sys.executable,
                "-m",
                "printcloud",
                "device",
                "--server",
                base,
                "--tenant",
                tenant.tenant_id,
                "--printer-id",
                PRINTER,
                "--client-id",
                tenant.device_id,
                "--out",
                str(printed / tenant.tenant_id),
                "--poll-interval",
                str(PRINTER_POLL),
                "--listen",
                f"{LOOPBACK}:0",
                "--sink",  # fetch and count every page; the raster is not the platform's
            ]
            env = _clean_env() | {"PRINTCLOUD_DEVICE_SECRET": tenant.device_secret}
            proc = stack.enter_context(started(cmd, env=env, log=log))
            procs.append((tenant.tenant_id, proc, log))
        yield [(name, proc.pid, log) for name, proc, log in procs]


# -- the cost of a batch, per tier ------------------------------------------------

#: Seconds to wait before reading `pg_stat_database`: an idle PostgreSQL 15 backend
#: flushes its pending counters within 10 s (PGSTAT_IDLE_INTERVAL).
STATS_FLUSH_S = 11.0


class _Calls:
    """The benchmark's own API calls (submissions, state polls): the database work they
    cause is in `pg_stat_database`'s deltas too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1


API_CALLS = _Calls()


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, user + system ticks, process group) of every process (/proc)."""
    table: dict[int, tuple[int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                ticks = int(fields[11]) + int(fields[12])
                table[int(entry.name)] = (int(fields[1]), ticks, int(fields[2]))
    return table


def _descendants(table: dict[int, tuple[int, int, int]], roots: list[int]) -> set[int]:
    found = {pid for pid in roots if pid in table}
    changed = True
    while changed:
        changed = False
        for pid, (parent, _, _) in table.items():
            if parent in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def _ticks_by_tier(dep: Deployment, printers: list[int]) -> dict[str, dict[int, int]]:
    """Ticks of each process now, by tier: `convert`, each other service of the target
    (minus the workers, which an embedded `serve` runs as its children), `printers`."""
    table = _proc_table()
    convert = _descendants(table, dep.convert_pids())
    tiers = {"convert": {pid: table[pid][1] for pid in convert}}
    for service, roots in dep.service_pids().items():
        if service != "convert":
            tiers[service] = {pid: table[pid][1] for pid in _descendants(table, roots) - convert}
    group = set(printers)
    tiers["printers"] = {pid: ticks for pid, (_, ticks, pgid) in table.items() if pgid in group}
    return tiers


def _pg_stats(database_url: str) -> dict[str, Any] | None:
    """`pg_stat_database`'s counters of the target's database and its backends' PIDs."""
    if not database_url.startswith("postgresql"):
        return None
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        row = admin.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, "
            "sessions, numbackends FROM pg_stat_database WHERE datname = %s",
            (name,),
        ).fetchone()
        pids = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    if row is None:
        return None
    keys = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted")
    stats: dict[str, Any] = dict(zip(keys, (int(v) for v in row[:5]), strict=True))
    stats["sessions"] = int(row[5])  # connections opened (PostgreSQL 14 and later)
    stats["backends"] = int(row[6])
    stats["pids"] = [int(r[0]) for r in pids]
    return stats


@dataclass
class Snapshot:
    ticks: dict[str, dict[int, int]]
    pg: dict[str, Any] | None
    calls: int
    at: float = field(default_factory=time.monotonic)
    machine: tuple[int, int] = field(default_factory=_cpu_times)  # busy, total ticks


def _snapshot(dep: Deployment, printers: list[int]) -> Snapshot:
    ticks = _ticks_by_tier(dep, printers)
    pg = _pg_stats(dep.database_url)
    if pg is not None:
        table = _proc_table()
        ticks["database"] = {pid: table[pid][1] for pid in pg["pids"] if pid in table}
    return Snapshot(ticks, pg, API_CALLS.count)


@dataclass
class Cost:
    """What a batch cost, from its first POST to the end of its clean-up (S112)."""

    pages: int
    jobs: int
    cpu_s: dict[str, float]  # by tier: convert, each service, printers, database
    db: dict[str, int] | None  # pg_stat_database deltas; backends connected at the end
    api_calls: int
    #: The window (s), and the cores the whole machine kept busy over it: what the
    #: target did not use went to the benchmark itself and to other work on the machine.
    seconds: float = 0.0
    machine_cores: float = 0.0
    #: The platform's CPU ms per printer poll with no jobs (`_idle_polls`), once known.
    poll_ms: float | None = None
    printers: int = 0

    @property
    def platform_s(self) -> float:
        return sum(v for k, v in self.cpu_s.items() if k not in ("convert", "printers", "database"))

    def ms_per_page(self, tier: str) -> float:
        if tier == "platform_net":
            # Without the printers' fallback polls (every PRINTER_POLL s, jobs or not).
            if self.poll_ms is None or not self.pages:
                return float("nan")
            polls = self.printers * self.seconds / PRINTER_POLL
            return self.ms_per_page("platform") - self.poll_ms * polls / self.pages
        if tier != "platform" and tier not in self.cpu_s:
            return float("nan")  # no PostgreSQL: SQLite's work is in the platform's process
        value = self.platform_s if tier == "platform" else self.cpu_s[tier]
        return 1000 * value / self.pages if self.pages else float("nan")

    def per_job(self, key: str) -> float:
        return self.db[key] / self.jobs if self.db and self.jobs else float("nan")

    def to_json(self) -> dict[str, Any]:
        tiers = sorted({*self.cpu_s, "platform", "platform_net"})
        return {
            "pages": self.pages,
            "cpu_s": {k: round(v, 3) for k, v in self.cpu_s.items()},
            "cpu_ms_per_page": {
                k: None if math.isnan(ms) else round(ms, 2)
                for k in tiers
                for ms in (self.ms_per_page(k),)
            },
            "database": self.db,
            "database_per_job": (
                {k: round(self.per_job(k), 2) for k in self.db if k != "backends"}
                if self.db
                else None
            ),
            "api_calls": self.api_calls,
            "seconds": round(self.seconds, 2),
            "machine_cores_busy": round(self.machine_cores, 2),
            "target_cores_busy": round(sum(self.cpu_s.values()) / self.seconds, 2)
            if self.seconds
            else None,
        }


def _cost(
    dep: Deployment, printers: list[int], before: Snapshot, jobs: int, *, settle: bool = True
) -> Cost:
    after_ticks = _ticks_by_tier(dep, printers)
    seconds = time.monotonic() - before.at
    busy, total = _cpu_times()
    machine_cores = (
        (busy - before.machine[0]) / max(total - before.machine[1], 1) * (os.cpu_count() or 1)
    )
    tck = os.sysconf("SC_CLK_TCK")
    cpu = {
        tier: sum(t - before.ticks.get(tier, {}).get(pid, 0) for pid, t in now.items()) / tck
        for tier, now in after_ticks.items()
    }
    db: dict[str, int] | None = None
    calls = API_CALLS.count - before.calls
    if before.pg is not None:
        # The backends' CPU now; their counters once idle backends have flushed them.
        backends = sorted(
            {*before.pg["pids"], *(_pg_stats(dep.database_url) or {}).get("pids", [])}
        )
        then = {pid: before.ticks.get("database", {}).get(pid, 0) for pid in backends}
        now_ticks = _proc_table()
        cpu["database"] = (
            sum(now_ticks[pid][1] - then[pid] for pid in backends if pid in now_ticks) / tck
        )
        if settle:
            time.sleep(STATS_FLUSH_S)
        after = _pg_stats(dep.database_url)
        if after is not None:
            db = {k: after[k] - before.pg[k] for k in after if k not in ("pids", "backends")}
            db["backends"] = after["backends"]
    return Cost(
        pages=jobs * PAGES,
        jobs=jobs,
        cpu_s=cpu,
        db=db,
        api_calls=calls,
        seconds=seconds,
        machine_cores=machine_cores,
        printers=len(printers),
    )


#: After the batches: this long with no jobs, the printers polling (`PRINTER_POLL`).
IDLE_WINDOW_S = 15.0


def _idle_polls(
    dep: Deployment, printers: list[int], baseline: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The platform's CPU with no jobs: with `printers` polling their work lists, what a
    printer costs between jobs (each poll is a token check and a work-list query), net of
    `baseline` — the same window measured before the printers started, the idle stack's
    own fixed cost (DBOS's pollers, the waker: `bench/idle_cost.py`)."""
    before = _snapshot(dep, printers)
    time.sleep(IDLE_WINDOW_S)
    cost = _cost(dep, printers, before, 0, settle=False)
    polls = round(len(printers) * IDLE_WINDOW_S / PRINTER_POLL)
    platform = cost.platform_s + cost.cpu_s.get("database", 0.0)
    out: dict[str, Any] = {
        "seconds": IDLE_WINDOW_S,
        "polls": polls,
        "cpu_s": {k: round(v, 3) for k, v in cost.cpu_s.items()},
        "platform_ms_per_s": round(1000 * platform / IDLE_WINDOW_S, 2),
        "services_ms_per_s": round(1000 * cost.platform_s / IDLE_WINDOW_S, 2),
    }
    if baseline is not None and polls:
        out["baseline_ms_per_s"] = baseline["platform_ms_per_s"]
        out["platform_ms_per_poll"] = round(
            (out["platform_ms_per_s"] - baseline["platform_ms_per_s"]) * IDLE_WINDOW_S / polls, 3
        )
        # without the database's backends: what `Cost.platform_s` counts
        out["services_ms_per_poll"] = round(
            (out["services_ms_per_s"] - baseline["services_ms_per_s"]) * IDLE_WINDOW_S / polls, 3
        )
    return out


# -- one batch -------------------------------------------------------------------


@dataclass
class Batch:
    """One batch: per-job latency, the window, CPU, spread of the conversions."""

    jobs: int
    seconds: float
    latencies: list[float]
    cores_busy: float
    printer_cores: float
    convert_cores: float
    workers: dict[str, int]
    errors: list[str]
    cost: Cost | None = None

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "seconds": round(self.seconds, 3),
            "jobs_per_s": round(self.jobs_per_s, 3),
            "p50_s": round(_percentile(self.latencies, 50), 3),
            "p99_s": round(_percentile(self.latencies, 99), 3),
            "cores_busy": round(self.cores_busy, 2),
            "printer_cores": round(self.printer_cores, 2),
            "convert_cores": round(self.convert_cores, 2),
            "conversions_per_worker": self.workers,
            "latencies_s": [round(v, 3) for v in self.latencies],
            "errors": self.errors,
            "cost": self.cost.to_json() if self.cost else None,
        }


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of a few dozen jobs is their slowest but one or two)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def _tree_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes `pids` and their descendants (a
    `printcloud serve` runs its app in a granian child process), from /proc."""
    stats: dict[int, tuple[int, int]] = {}  # pid -> (parent, ticks)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    wanted = set(pids)
    changed = True
    while changed:
        changed = False
        for pid, (parent, _) in stats.items():
            if parent in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    ticks = sum(stats[pid][1] for pid in wanted if pid in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def _submit(api: PrintApi, data: bytes, count: int) -> list[tuple[str, float]]:
    """POST `count` jobs one after the other: (job id, wall time the POST began) each."""
    posted = []
    options = {"dpi": str(DPI), "color": str(COLOR).lower()}
    for _ in range(count):
        API_CALLS.add()
        begun = time.time()
        job = api.client.submit(
            token=api.token, printer_id=PRINTER, pdf=data, filename="doc10.pdf", options=options
        )
        posted.append((job.job_id, begun))
    return posted


def _states(api: PrintApi) -> dict[str, str]:
    API_CALLS.add()
    return {job.job_id: job.state for job in api.client.list_jobs(token=api.token, limit=1000)}


def _job(api: PrintApi, job_id: str) -> dict[str, Any]:
    API_CALLS.add()
    return api.client.show(job_id, token=api.token).data


def _batch(
    dep: Deployment, tenants: list[Tenant], printers: list[int], data: bytes, per_tenant: int
) -> Batch:
    """Submit `per_tenant` jobs for every tenant at once; wait until each is final."""
    apis = [tenant.api for tenant in tenants if tenant.api is not None]
    busy0, total0 = _cpu_times()
    printer0 = sum(group_cpu_seconds(pgid) for pgid in printers)
    converters = dep.convert_pids()
    convert0 = _tree_cpu_seconds(converters)
    with ThreadPoolExecutor(max_workers=len(apis), thread_name_prefix="submit") as pool:
        posted = list(pool.map(lambda api: _submit(api, data, per_tenant), apis))
    deadline = time.monotonic() + JOB_TIMEOUT
    pending = [{job_id for job_id, _ in jobs} for jobs in posted]
    while any(pending):
        dep.alive()
        for index, api in enumerate(apis):
            if pending[index]:
                now = _states(api)
                pending[index] = {j for j in pending[index] if now.get(j) not in FINAL}
        if time.monotonic() > deadline:
            left = sum(len(p) for p in pending)
            raise BenchError(f"{left} job(s) not final after {JOB_TIMEOUT:.0f} s")
        time.sleep(BATCH_POLL_S)  # the end is read from S111, not from here
    busy1, total1 = _cpu_times()
    printer1 = sum(group_cpu_seconds(pgid) for pgid in printers)
    convert1 = _tree_cpu_seconds(converters)
    first_post = min(begun for jobs in posted for _, begun in jobs)
    latencies, printed_at, errors = [], [], []
    workers: Counter[str] = Counter()
    for api, jobs in zip(apis, posted, strict=True):
        for job_id, begun in jobs:
            job = _job(api, job_id)
            if job["state"] != "printed" or job.get("pages_printed") != PAGES:
                errors.append(f"{job_id}: {job['state']} ({job.get('reason')})")
                continue
            done = at(job, "S111")
            latencies.append(done - begun)
            printed_at.append(done)
            for event in job.get("history") or []:
                if event["step"] == "S108" and event.get("worker"):
                    workers[str(event["worker"])] += 1
    window = (max(printed_at) - first_post) if printed_at else float("nan")
    ticks = max(total1 - total0, 1)
    cores = os.cpu_count() or 1
    wall = time.time() - first_post
    return Batch(
        jobs=len(latencies),
        seconds=window,
        latencies=latencies,
        cores_busy=(busy1 - busy0) / ticks * cores,
        printer_cores=(printer1 - printer0) / wall if wall > 0 else 0.0,
        convert_cores=(convert1 - convert0) / wall if wall > 0 else 0.0,
        workers=dict(sorted(workers.items())),
        errors=errors,
    )


def _settle(tenants: list[Tenant], timeout: float = 60.0) -> None:
    """Wait until the finished jobs' clean-up (S112) is done, so batches do not overlap."""
    deadline = time.monotonic() + timeout
    for tenant in tenants:
        assert tenant.api is not None
        for job_id in _states(tenant.api):
            while not any(e["step"] == "S112" for e in _job(tenant.api, job_id)["history"]):
                if time.monotonic() > deadline:
                    return  # the next batch overlaps a little; not worth failing for
                time.sleep(0.5)


# -- one target ------------------------------------------------------------------


@dataclass
class TargetResult:
    name: str
    batches: list[Batch] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None

    @property
    def measured(self) -> bool:
        return bool(self.batches) and self.error is None and self.skipped is None

    @property
    def valid(self) -> bool:
        return self.measured and all(not b.errors for b in self.batches)

    @property
    def jobs_per_s(self) -> float:
        return statistics.median(b.jobs_per_s for b in self.batches)

    @property
    def latencies(self) -> list[float]:
        return [v for b in self.batches for v in b.latencies]

    def median(self, name: str) -> float:
        return statistics.median(float(getattr(b, name)) for b in self.batches)

    def cost_ms(self, tier: str) -> float:
        """Median CPU ms per printed page of `tier` over the batches."""
        values = [b.cost.ms_per_page(tier) for b in self.batches if b.cost is not None]
        return statistics.median(values) if values else float("nan")

    def db_per_job(self, key: str) -> float:
        values = [b.cost.per_job(key) for b in self.batches if b.cost and b.cost.db]
        return statistics.median(values) if values else float("nan")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"info": self.info, "skipped": self.skipped, "error": self.error}
        if self.measured:
            out |= {
                "valid": self.valid,
                "median_jobs_per_s": round(self.jobs_per_s, 3),
                "p50_s": round(_percentile(self.latencies, 50), 3),
                "p99_s": round(_percentile(self.latencies, 99), 3),
                "median_cores_busy": round(self.median("cores_busy"), 2),
                "median_printer_cores": round(self.median("printer_cores"), 2),
                "median_convert_cores": round(self.median("convert_cores"), 2),
                "median_cpu_ms_per_page": {
                    tier: None if math.isnan(ms) else round(ms, 2)
                    for tier in ("convert", "platform", "platform_net", "database", "printers")
                    for ms in (self.cost_ms(tier),)
                },
                "batches": [b.to_json() for b in self.batches],
            }
        return out


def _run_target(name: str, runs: int, warm: bool, out_dir: Path) -> TargetResult:
    result = TargetResult(name)
    target_dir = out_dir / name
    target_dir.mkdir(parents=True, exist_ok=True)
    console.rule(name)
    if warning := busy_warning():
        result.info["busy_warning"] = warning
        console.print(f"[bold yellow]{name}: {warning}[/]")
    data = DOC.read_bytes()
    try:
        with contextlib.ExitStack() as stack:
            with console.status(f"{name}: starting"):
                began = time.monotonic()
                dep = stack.enter_context(DEPLOYMENTS[name](target_dir))
                result.info |= dep.info | {"start_s": round(time.monotonic() - began, 1)}
                tenants = _set_up(dep.database_url, TENANTS)
                for tenant in tenants:
                    tenant.api = stack.enter_context(_api(dep.base, tenant))
            with console.status(f"{name}: {IDLE_WINDOW_S:.0f} s idle, no printers yet"):
                baseline = _idle_polls(dep, [])
            with console.status(f"{name}: starting the printers"):
                printers = stack.enter_context(_printers(dep.base, tenants, target_dir))
            pgids = [pgid for _, pgid, _ in printers]
            for index in range(-1 if warm else 0, runs):
                label = "warm-up" if index < 0 else f"run {index + 1}/{runs}"
                per_tenant = WARM_JOBS_PER_TENANT if index < 0 else JOBS_PER_TENANT
                with console.status(f"{name}: {label}, {per_tenant * TENANTS} jobs"):
                    before = _snapshot(dep, pgids)
                    batch = _batch(dep, tenants, pgids, data, per_tenant)
                    _settle(tenants)
                    batch.cost = _cost(dep, pgids, before, batch.jobs)
                console.print(
                    f"  {label:9} {batch.jobs} printed in {batch.seconds:.2f} s: "
                    f"{batch.jobs_per_s:.2f} jobs/s, p50 {_percentile(batch.latencies, 50):.2f} s, "
                    f"p99 {_percentile(batch.latencies, 99):.2f} s; cores busy "
                    f"{batch.cores_busy:.2f} (workers {batch.convert_cores:.2f}, "
                    f"printers {batch.printer_cores:.2f}); "
                    f"S108 by worker {batch.workers}"
                )
                cost = batch.cost
                assert cost is not None
                db = (
                    f"; per job {cost.per_job('xact_commit'):.0f} transactions, "
                    f"{cost.per_job('tup_inserted'):.0f}+{cost.per_job('tup_updated'):.0f}+"
                    f"{cost.per_job('tup_deleted'):.0f} rows ins+upd+del, "
                    f"{cost.per_job('sessions'):.2f} connections opened, "
                    f"{cost.db['backends']} backends"
                    if cost.db
                    else ""
                )
                console.print(
                    f"            CPU ms/page: conversion {cost.ms_per_page('convert'):.1f}, "
                    f"platform {cost.ms_per_page('platform'):.1f}, database "
                    f"{_shown(cost.ms_per_page('database'), 1)}, printers "
                    f"{cost.ms_per_page('printers'):.1f}{db}"
                )
                for error in batch.errors:
                    console.print(f"  [red]{error}[/]")
                if index >= 0:
                    result.batches.append(batch)
                dep.alive()
            with console.status(f"{name}: {IDLE_WINDOW_S:.0f} s with the printers polling"):
                idle = _idle_polls(dep, pgids, baseline)
            result.info["idle_polls"] = idle
            for measured in result.batches:
                if measured.cost is not None:
                    measured.cost.poll_ms = idle.get("services_ms_per_poll")
            console.print(
                f"  idle      {idle['polls']} work-list polls in {IDLE_WINDOW_S:.0f} s, no jobs: "
                f"platform + database {idle['platform_ms_per_s']:.1f} ms/s "
                f"({idle['baseline_ms_per_s']:.1f} before the printers started): "
                f"{idle['platform_ms_per_poll']:.2f} ms a poll"
            )
            if dep.tier is not None:
                with console.status(f"{name}: the conversion tier alone"):
                    tier = dep.tier(data)
                result.info["tier"] = tier
                console.print(
                    f"  tier      {tier['conversions']} documents ({tier['concurrency']} at a "
                    f"time) straight to the conversion balancer: {tier['pages_per_s']:.1f} "
                    f"pages/s, {tier['documents_per_s']:.2f} documents/s; by worker "
                    f"{tier['workers']}"
                )
    except Skip as exc:
        result.skipped = str(exc)
        console.print(f"[yellow]skipped {name}: {exc}[/]")
    except (
        BenchError,
        PrintServiceError,
        httpx.HTTPError,
        OSError,
        RuntimeError,
        ValueError,
        KeyError,
    ) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        console.print(f"[bold red]{name} FAILED: {result.error}[/]")
    return result


# -- the report ------------------------------------------------------------------


def _shown(value: float, digits: int) -> str:
    """A figure, or a dash where there is none (no PostgreSQL: no database figures)."""
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _ratio(a: TargetResult, b: TargetResult) -> float | None:
    if not (a.measured and b.measured) or b.jobs_per_s <= 0:
        return None
    return a.jobs_per_s / b.jobs_per_s


def _report(results: dict[str, TargetResult]) -> dict[str, Any]:
    cpus = os.cpu_count()
    table = Table(
        title=f"doc10.pdf ({PAGES} pages, {DPI} dpi mono), {TENANTS} tenants x "
        f"{JOBS_PER_TENANT} jobs a batch, {cpus} CPUs"
    )
    for column in (
        "target",
        "jobs/s",
        "p50 s",
        "p99 s",
        "cores busy",
        "workers",
        "printers",
        "S108 spread",
    ):
        table.add_column(column, justify="left" if column in ("target", "S108 spread") else "right")
    for name, result in results.items():
        if result.skipped:
            table.add_row(name, "[yellow]skipped[/]", *[""] * 5, result.skipped[:60])
            continue
        if not result.measured:
            table.add_row(name, "[red]FAILED[/]", *[""] * 5, (result.error or "")[:60])
            continue
        spread = Counter[str]()
        for batch in result.batches:
            spread.update(batch.workers)
        table.add_row(
            name if result.valid else f"[red]{name} (INVALID)[/]",
            f"{result.jobs_per_s:.2f}",
            f"{_percentile(result.latencies, 50):.2f}",
            f"{_percentile(result.latencies, 99):.2f}",
            f"{result.median('cores_busy'):.2f}",
            f"{result.median('convert_cores'):.2f}",
            f"{result.median('printer_cores'):.2f}",
            ", ".join(f"{w.rsplit('/', 1)[-1]}: {n}" for w, n in sorted(spread.items())),
        )
    console.print(table)

    costs = Table(title="CPU ms per printed page (medians; first POST to the end of S112)")
    for column in (
        "target",
        "conversion",
        "platform",
        "net of polls",
        "database",
        "printers",
        "xacts/job",
        "rows written/job",
    ):
        costs.add_column(column, justify="left" if column == "target" else "right")
    for name, result in results.items():
        if result.measured:
            written = sum(
                result.db_per_job(k) for k in ("tup_inserted", "tup_updated", "tup_deleted")
            )
            costs.add_row(
                name,
                *(
                    _shown(result.cost_ms(tier), 1)
                    for tier in ("convert", "platform", "platform_net", "database", "printers")
                ),
                _shown(result.db_per_job("xact_commit"), 0),
                _shown(written, 0),
            )
    console.print(costs)

    pairs = {
        "cluster 2w / 1w": ("cluster-2w", "cluster-1w", GOAL_SCALING),
        "embedded 2w / 1w": ("embedded-2w", "embedded-1w", GOAL_SCALING),
        "cluster / embedded, 1w": ("cluster-1w", "embedded-1w", None),
        "cluster / embedded, 2w": ("cluster-2w", "embedded-2w", None),
    }
    ratios_table = Table(title=f"jobs/s ratios ({cpus} CPUs)")
    for column in ("ratio", "value", "goal"):
        ratios_table.add_column(column, justify="left" if column == "ratio" else "right")
    ratios: dict[str, Any] = {}
    for label, (top, bottom, goal) in pairs.items():
        if top not in results or bottom not in results:
            continue
        value = _ratio(results[top], results[bottom])
        valid = results[top].valid and results[bottom].valid
        ratios[label] = {
            "value": None if value is None else round(value, 3),
            "goal": goal,
            "met": None if value is None or goal is None else value >= goal,
            "valid": valid,
        }
        if value is None:
            shown = "n/a"
        elif not valid:
            shown = "[red]INVALID[/]"
        elif goal is None:
            shown = f"{value:.2f}x"
        else:
            shown = f"[{'green' if value >= goal else 'red'}]{value:.2f}x[/]"
        ratios_table.add_row(label, shown, f">= {goal}x" if goal else "")
    one, two = results.get("cluster-1w"), results.get("cluster-2w")
    if one is not None and two is not None and "tier" in one.info and "tier" in two.info:
        value = two.info["tier"]["pages_per_s"] / one.info["tier"]["pages_per_s"]
        ratios["conversion tier via nginx, 2w / 1w"] = {
            "value": round(value, 3),
            "goal": GOAL_TIER,
            "met": value >= GOAL_TIER,
            "valid": True,
            "pages_per_s": {
                "1w": one.info["tier"]["pages_per_s"],
                "2w": two.info["tier"]["pages_per_s"],
            },
        }
        ratios_table.add_row(
            "conversion tier via nginx, 2w / 1w",
            f"[{'green' if value >= GOAL_TIER else 'red'}]{value:.2f}x[/]",
            f">= {GOAL_TIER}x",
        )
    console.print(ratios_table)
    console.print(
        f"[dim]{cpus} CPUs, shared by the workers, the print service, the database, the "
        "balancer and the printers (their share in 'printers', in cores): with two, the second "
        "conversion worker competes with everything else for the second core.[/]"
    )
    return ratios


def run(options: Options, out_dir: Path) -> bool:
    """Measure every target; print the tables; write `summary.json`."""
    if not DOC.is_file():
        raise BenchError(f"{DOC} is missing (the shared benchmark inputs)")
    runs = options.runs or (1 if options.quick else 2)
    warm = options.warm is None or options.warm > 0
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(
        f"distributed: {', '.join(TARGETS)}; {runs} batch(es) of {TENANTS * JOBS_PER_TENANT} "
        f"jobs each{' after a warm-up batch' if warm else ''}; {os.cpu_count()} CPUs"
    )
    started_at, machine_before = datetime.now(UTC), machine()
    results = {name: _run_target(name, runs, warm, out_dir) for name in TARGETS}
    ratios = _report(results)
    summary = {
        "benchmark": "distributed",
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": str(DOC),
        "dpi": DPI,
        "color": COLOR,
        "tenants": TENANTS,
        "jobs_per_batch": TENANTS * JOBS_PER_TENANT,
        "options": {"runs": runs, "warm_up": warm, "printer_poll_s": PRINTER_POLL},
        "machine": machine_before | {"loadavg_after": machine()["loadavg"]},
        "printcloud": metadata.version("printcloud"),
        "repo": str(REPO),
        "targets": {name: result.to_json() for name, result in results.items()},
        "ratios_jobs_per_s": ratios,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return all(r.valid for r in results.values() if r.skipped is None)
