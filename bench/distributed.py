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
mono printer whose virtual printer is a `printcloud device` process (pushed
print requests, polling every 0.5 s as a fallback) talking to the target's
public entry (nginx for the cluster). A batch is `JOBS_PER_TENANT` jobs per
tenant of `../shared/bench-data/doc10.pdf` (10 A4 pages) at `DPI` dpi, mono,
all submitted at once (one client thread per tenant). 200 dpi mono (the
service takes 150, 200, 300 or 600) keeps the conversion (PDF render + JPEG,
~40 ms a page on one core here) the largest CPU cost of a job, about 1.4
times the printer's raster work (~28 ms a page): in colour the printers, which
share the same cores, would cost more than the conversion (ICC separation).

Figures per target: jobs/s = jobs / (last S111 "printed" - first POST), the
median over `--runs` batches (default 2, `--quick` 1, after one smaller
warm-up batch unless `--warm 0`); p50/p99 of every measured job's
submit-to-printed latency (POST start -> its S111 in the job's history); how
many cores the machine was busy (from /proc/stat, everything included) and the
printers' share; and how the conversions (S108) were spread over the workers.
Every job must end `printed` with its 10 pages, or the run is invalid. The
ratio table divides 2 workers by 1 (goal: >= 1.8x, with the CPU count printed:
on two cores, the printers, the print service and the database share the
cores the workers need), and the cluster by the embedded run.

Without nginx, PostgreSQL or `printcloud.cluster` the cluster targets are
skipped with the reason (not a failure); the embedded ones still run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
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
GOAL_SCALING = 1.8
ISSUER = "idp-a"
PRINTER = "bench-mono"
#: The cluster's processes besides the conversion workers: one of each, so that
#: the two cluster targets differ only in their conversion tier.
PRINTING_REPLICAS = 1
CLUSTER_POLICY: Final = "least_conn"
EMBEDDED_BALANCE = "least_loaded"
PRINTER_POLL = 0.5
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

        url = f"sqlite:///{(data_dir / 'printcloud.sqlite3').resolve()}"
        info = {"database": "sqlite", "balance": EMBEDDED_BALANCE, "processes": 1 + workers}
        yield Deployment(base, url, alive, convert_pids, info)


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

        info = {
            "database": "postgresql",
            "session_store": "redis" if sessions else "database (Redis unreachable)",
            "balancer": "nginx",
            "policy": CLUSTER_POLICY,
            "processes": {name: p.service for name, p in cluster.processes.items()},
        }

        def tier(data: bytes) -> dict[str, Any]:
            return _tier(cluster.entry_url, cluster.convert_url, cluster.settings, data)

        yield Deployment(cluster.entry_url, database_url, alive, convert_pids, info, tier)


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
            ]
            env = _clean_env() | {"PRINTCLOUD_DEVICE_SECRET": tenant.device_secret}
            proc = stack.enter_context(started(cmd, env=env, log=log))
            procs.append((tenant.tenant_id, proc, log))
        yield [(name, proc.pid, log) for name, proc, log in procs]


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
        begun = time.time()
        job = api.client.submit(
            token=api.token, printer_id=PRINTER, pdf=data, filename="doc10.pdf", options=options
        )
        posted.append((job.job_id, begun))
    return posted


def _states(api: PrintApi) -> dict[str, str]:
    return {job.job_id: job.state for job in api.client.list_jobs(token=api.token, limit=1000)}


def _job(api: PrintApi, job_id: str) -> dict[str, Any]:
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
        time.sleep(0.2)
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
                time.sleep(0.1)


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
                printers = stack.enter_context(_printers(dep.base, tenants, target_dir))
            pgids = [pgid for _, pgid, _ in printers]
            for index in range(-1 if warm else 0, runs):
                label = "warm-up" if index < 0 else f"run {index + 1}/{runs}"
                per_tenant = WARM_JOBS_PER_TENANT if index < 0 else JOBS_PER_TENANT
                with console.status(f"{name}: {label}, {per_tenant * TENANTS} jobs"):
                    batch = _batch(dep, tenants, pgids, data, per_tenant)
                    _settle(tenants)
                console.print(
                    f"  {label:9} {batch.jobs} printed in {batch.seconds:.2f} s: "
                    f"{batch.jobs_per_s:.2f} jobs/s, p50 {_percentile(batch.latencies, 50):.2f} s, "
                    f"p99 {_percentile(batch.latencies, 99):.2f} s; cores busy "
                    f"{batch.cores_busy:.2f} (workers {batch.convert_cores:.2f}, "
                    f"printers {batch.printer_cores:.2f}); "
                    f"S108 by worker {batch.workers}"
                )
                for error in batch.errors:
                    console.print(f"  [red]{error}[/]")
                if index >= 0:
                    result.batches.append(batch)
                dep.alive()
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
            "goal": GOAL_SCALING,
            "met": value >= GOAL_SCALING,
            "valid": True,
            "pages_per_s": {
                "1w": one.info["tier"]["pages_per_s"],
                "2w": two.info["tier"]["pages_per_s"],
            },
        }
        ratios_table.add_row(
            "conversion tier via nginx, 2w / 1w",
            f"[{'green' if value >= GOAL_SCALING else 'red'}]{value:.2f}x[/]",
            f">= {GOAL_SCALING}x",
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
