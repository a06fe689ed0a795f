"""A local distributed run: every process of a `Topology` on loopback, behind real nginx
or HAProxy, on PostgreSQL (and Redis, when given). For development, tests, demos
and benchmarks (`printcloud cluster`).

Each backend is `python -m printcloud serve --service NAME`, exactly as systemd
runs it (`deploy/systemd/`), in its own session (so a kill takes its server and
its worker together), logging to `<data_dir>/run/NAME.log`. Every process dies
with the cluster (Linux `PR_SET_PDEATHSIG`, asked for by a thread that lives as
long as the cluster), and `stop()` runs at exit, so nothing outlives it. Who runs
where is in `<data_dir>/run/cluster.json`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from printcloud.core.settings import Settings

from .render import render_haproxy, render_nginx
from .topology import CONVERTED_ACCEL, Backend, Topology

_PR_SET_PDEATHSIG = 1
#: Where balancers live when they are not on PATH (Debian puts them in /usr/sbin).
_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


class ClusterError(RuntimeError):
    """The cluster cannot start or go on: PostgreSQL missing, a balancer not installed,
    a port taken, a process that exited or never became healthy (with its log's tail)."""


@dataclass
class ProcessInfo:
    """One process of the cluster: a backend, or the balancer (`service="balancer"`)."""

    name: str
    service: str
    url: str
    #: Its `PRINTCLOUD_WORKER_ID` (a backend's name); None for the balancer.
    worker_id: str | None
    log_path: Path
    command: list[str]
    env: dict[str, str] = field(repr=False)
    #: What proves it ready: a backend's own health URL.
    health_url: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: int = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "service": self.service,
            "url": self.url,
            "pid": self.pid,
            "worker_id": self.worker_id,
            "log": str(self.log_path),
            "restarts": self.restarts,
        }


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the thread that started it ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def balancer_binary(kind: str) -> str:
    """The nginx or haproxy executable, or a ClusterError saying how to get it."""
    path = shutil.which(kind) or shutil.which(kind, path=_SBIN)
    if path is None:
        raise ClusterError(
            f"{kind} is not installed (not on PATH nor in {_SBIN}): install it "
            f"(e.g. `apt install {kind}`) or choose the other balancer"
        )
    return path


def require_postgresql(database_url: str | None) -> str:
    if not database_url:
        raise ClusterError(
            "the distributed run needs PostgreSQL: give --database-url or set "
            "PRINTCLOUD_DATABASE_URL (postgresql://…)"
        )
    try:
        backend = make_url(database_url).get_backend_name()
    except Exception as exc:
        raise ClusterError(f"not a database URL: {database_url!r}") from exc
    if backend != "postgresql":
        raise ClusterError(
            f"the distributed run needs PostgreSQL, not {backend}: several processes "
            "share the database and its workflow executors (postgresql://…)"
        )
    return database_url


class Cluster:
    """Starts a `Topology` on this machine and stops everything it started.

    ::

        with Cluster(Topology.local(balancer="haproxy"), database_url=pg,
                     data_dir=tmp, session_store="redis://127.0.0.1:6379/0") as cluster:
            httpx.get(f"{cluster.entry_url}/printing/healthz")
            cluster.kill("convert-1")

    `settings` are further `Settings` fields every process gets (as `PRINTCLOUD_*`
    variables); `env` adds raw variables on top.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        database_url: str,
        data_dir: str | Path,
        session_store: str | None = None,
        secret_key: str | None = None,
        log_level: str = "INFO",
        env: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> None:
        self.topology = topology
        # A loopback cluster runs a dozen processes against one PostgreSQL server
        # (max_connections: 100 by default), beside whatever else uses it: small pools,
        # or a busy run meets "too many clients" (and a schedule loses a tick).
        settings.setdefault("database_pool_size", 3)
        settings.setdefault("database_max_overflow", 4)
        settings.setdefault("workflow_pool_size", 5)
        # Its virtual printers listen on loopback too (push URLs), like everything else.
        settings.setdefault("egress_allow", ["127.0.0.0/8", "::1"])
        self.settings = Settings(
            data_dir=Path(data_dir).resolve(),
            database_url=require_postgresql(database_url),
            public_url=topology.public_url,
            host=topology.host,
            secret_key=secret_key,
            log_level=log_level,
            session_store=session_store,
            digest_nonce_store=session_store,
            distributed=True,
            http_workers=1,
            **settings,
        )
        self.run_dir = self.settings.data_dir / "run"
        self._extra_env = dict(env or {})
        self.processes: dict[str, ProcessInfo] = {}
        self._lock = threading.RLock()
        # Every process is started from this one thread: the kernel's parent-death
        # signal follows the thread that forked, and this one lives as long as we do.
        self._spawner: ThreadPoolExecutor | None = None
        self._started = False
        self._stopped = False

    # -- what callers see -------------------------------------------------------------

    @property
    def entry_url(self) -> str:
        return self.topology.entry_url

    @property
    def convert_url(self) -> str:
        return self.topology.convert_url

    @property
    def balancer(self) -> str:
        """The balancer's process name (`nginx` or `haproxy`)."""
        return self.topology.balancer

    def pid(self, name: str) -> int:
        pid = self._info(name).pid
        if pid is None:
            raise ClusterError(f"{name} is not running")
        return pid

    def log(self, name: str, *, chars: int = 4000) -> str:
        """The tail of a process's log."""
        try:
            return self._info(name).log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Cluster:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- start ------------------------------------------------------------------------

    def start(
        self, *, timeout: float = 120.0, progress: Callable[[str], None] | None = None
    ) -> None:
        """Migrate once, start every backend and the balancer, and wait until each
        backend answers its health check directly and the entry point and the
        conversion tier answer through the balancer."""
        if self._started:
            raise ClusterError("this cluster was started already")
        say = progress or (lambda _message: None)
        binary = balancer_binary(self.topology.balancer)
        self._check_ports()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._started = True
        atexit.register(self.stop)
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-spawn")
        try:
            say("applying migrations")
            self._migrate()
            base = self._base_environment()
            for backend in self.topology.backends:
                self.processes[backend.name] = self._backend_info(backend, base)
            self.processes[self.balancer] = self._balancer_info(binary, base)
            # All at once: the workflow executors' DBOS launches (schema migrations
            # included) take turns behind an advisory lock (`core.tasks`).
            waves = [list(self.topology.backends)]
            self._spawn(self.processes[self.balancer])
            for wave in waves:
                infos = [self.processes[b.name] for b in wave]
                say(f"starting {', '.join(i.name for i in infos)}")
                for info in infos:
                    self._spawn(info)
                self._wait_ready(infos, timeout=timeout, progress=say)
            say(f"waiting for {self.balancer}")
            self._wait_balancer(timeout=timeout)
            self._write_state()
        except BaseException:
            self.stop()
            raise

    def _check_ports(self) -> None:
        topo = self.topology
        wanted = [("the entry point", topo.host, topo.entry_port)]
        wanted.append(("the conversion tier", topo.host, topo.convert_port))
        wanted += [(b.name, b.host, b.port) for b in topo.backends]
        for what, host, port in wanted:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError as exc:
                    raise ClusterError(
                        f"port {port} on {host} ({what}) is not free: {exc.strerror}"
                    ) from exc

    def _migrate(self) -> None:
        from printcloud.stack import prepare

        try:
            prepare(self.settings).dispose()
        except Exception as exc:
            raise ClusterError(f"could not prepare the database: {exc}") from exc

    def _base_environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTCLOUD_")}
        env.update(self.settings.as_environment())
        env.update(self._extra_env)
        return env

    def _backend_info(self, backend: Backend, base: dict[str, str]) -> ProcessInfo:
        env = {
            **base,
            "PRINTCLOUD_SERVICE": backend.service,
            "PRINTCLOUD_HOST": backend.host,
            "PRINTCLOUD_PORT": str(backend.port),
            "PRINTCLOUD_HTTP_WORKERS": "1",
            "PRINTCLOUD_WORKER_ID": backend.name,
            "PRINTCLOUD_DISTRIBUTED": "true",
            "PRINTCLOUD_PUBLIC_URL": self.topology.public_url,
        }
        if backend.service == "printing":
            # The conversion tier behind the balancer, never a local pool of its own.
            env["PRINTCLOUD_CONVERT_URLS"] = self.convert_url
            if self.balancer == "nginx":  # nginx sends the converted pages (X-Accel-Redirect)
                env["PRINTCLOUD_CONVERTED_ACCEL"] = CONVERTED_ACCEL
        if not self.settings.trusted_proxies:
            # The balancer's X-Forwarded-* say who the client is and whether it used TLS
            # (plain IPP from afar is refused: printing/ipp_transport.py).
            env["PRINTCLOUD_TRUSTED_PROXIES"] = self.topology.host
        return ProcessInfo(
            name=backend.name,
            service=backend.service,
            url=backend.url,
            worker_id=backend.name,
            log_path=self.run_dir / f"{backend.name}.log",
            command=[sys.executable, "-m", "printcloud", "serve", "--service", backend.service],
            env=env,
            health_url=f"{backend.url}{backend.health_path}",
        )

    def _balancer_info(self, binary: str, base: dict[str, str]) -> ProcessInfo:
        kind = self.balancer
        if kind == "nginx":
            conf = self.run_dir / "nginx.conf"
            conf.write_text(
                render_nginx(
                    self.topology, run_dir=self.run_dir, blob_root=self.settings.data_dir / "blobs"
                )
            )
            (self.run_dir / "nginx-temp").mkdir(exist_ok=True)
            command = [binary, "-p", str(self.run_dir), "-c", str(conf), "-g", "daemon off;"]
        else:
            conf = self.run_dir / "haproxy.cfg"
            conf.write_text(render_haproxy(self.topology, run_dir=self.run_dir))
            command = [binary, "-f", str(conf), "-db"]
        return ProcessInfo(
            name=kind,
            service="balancer",
            url=self.entry_url,
            worker_id=None,
            log_path=self.run_dir / f"{kind}.log",
            command=command,
            env=base,
        )

    def _spawn(self, info: ProcessInfo) -> None:
        assert self._spawner is not None

        def spawn() -> subprocess.Popen[bytes]:
            with open(info.log_path, "ab") as out:
                return subprocess.Popen(  # noqa: S603 - our own command lines
                    info.command,
                    env=info.env,
                    cwd=self.settings.data_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: kill() takes it whole
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe
                )

        info.process = self._spawner.submit(spawn).result()

    def _wait_ready(
        self,
        infos: list[ProcessInfo],
        *,
        timeout: float,
        progress: Callable[[str], None] = lambda _message: None,
    ) -> None:
        deadline = time.monotonic() + timeout
        pending = list(infos)
        with httpx.Client(timeout=2) as http:
            while pending:
                for info in list(pending):
                    self._check_alive(info)
                    with contextlib.suppress(httpx.HTTPError):
                        if http.get(info.health_url).status_code == 200:
                            pending.remove(info)
                if not pending:
                    return
                names = ", ".join(i.name for i in pending)
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"not healthy after {timeout:.0f} s: {names}\n"
                        + "\n".join(f"--- {i.name}:\n{self.log(i.name)}" for i in pending)
                    )
                progress(f"waiting for {len(pending)} of {len(infos)}: {names}")
                time.sleep(0.1)

    def _wait_balancer(self, *, timeout: float) -> None:
        """The entry point routes to each tier, and the conversion tier answers."""
        info = self.processes[self.balancer]
        urls = [
            f"{self.entry_url}/healthz",
            f"{self.entry_url}/printing/healthz",
            f"{self.entry_url}/crm/healthz",
            f"{self.entry_url}/docgen/healthz",
            f"{self.convert_url}/healthz",
        ]
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as http:
            while urls:
                self._check_alive(info)
                for url in list(urls):
                    with contextlib.suppress(httpx.HTTPError):
                        if http.get(url).status_code == 200:
                            urls.remove(url)
                if urls and time.monotonic() > deadline:
                    raise ClusterError(
                        f"{self.balancer} does not answer at {', '.join(urls)}\n"
                        f"{self.log(info.name)}"
                    )
                if urls:
                    time.sleep(0.1)

    def _check_alive(self, info: ProcessInfo) -> None:
        if info.process is not None and info.process.poll() is not None:
            raise ClusterError(
                f"{info.name} exited with {info.process.returncode} "
                f"(log {info.log_path}):\n{self.log(info.name)}"
            )

    def _write_state(self) -> None:
        state = [info.as_dict() for info in self.processes.values()]
        path = self.run_dir / "cluster.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)

    # -- one process ------------------------------------------------------------------

    def _info(self, name: str) -> ProcessInfo:
        try:
            return self.processes[name]
        except KeyError:
            known = ", ".join(self.processes) or "none started"
            raise KeyError(f"no process {name!r} in this cluster ({known})") from None

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to a process and everything it started (its process group).
        After SIGKILL the process is reaped, so its PID is gone on return."""
        info = self._info(name)
        if info.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(info.process.pid, sig)
        if sig == signal.SIGKILL:
            info.process.wait(timeout=30)

    def stop_process(self, name: str, *, timeout: float = 20.0) -> None:
        """SIGTERM a process's group, then SIGKILL what is left after `timeout`."""
        self._terminate([self._info(name)], timeout=timeout)

    def restart(self, name: str, *, timeout: float = 120.0) -> None:
        """Start a process again (stopping it first if it runs): same port, same worker
        id, so a DBOS executor recovers its own pending workflows. Waits until it is
        healthy (the balancer: until it answers)."""
        info = self._info(name)
        with self._lock:
            if info.alive:
                self.stop_process(name)
            info.restarts += 1
            self._spawn(info)
        if info.service == "balancer":
            self._wait_balancer(timeout=timeout)
        else:
            self._wait_ready([info], timeout=timeout)
        self._write_state()

    # -- stop -------------------------------------------------------------------------

    def stop(self, *, timeout: float = 20.0) -> None:
        """Stop everything this cluster started (SIGTERM, then SIGKILL after `timeout`).
        Idempotent; also runs at interpreter exit."""
        with self._lock:
            if self._stopped or not self._started:
                return
            self._stopped = True
        atexit.unregister(self.stop)
        self._terminate(list(self.processes.values()), timeout=timeout)
        if self._spawner is not None:
            self._spawner.shutdown(wait=True)
            self._spawner = None

    @staticmethod
    def _terminate(infos: list[ProcessInfo], *, timeout: float) -> None:
        running = [i for i in infos if i.process is not None]
        for info in running:
            assert info.process is not None
            if info.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(info.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for info in running:
            assert info.process is not None
            try:
                info.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(info.process.pid, signal.SIGKILL)
                info.process.wait(timeout=30)
        # What the leader left behind in its group (a server's worker) goes too.
        for info in running:
            assert info.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(info.process.pid, signal.SIGKILL)
