"""The embedded run's local pool of conversion worker processes (seed 003, SVC003).

Each worker is its own process (`printcloud serve --service convert` on a
loopback port), so conversions run on every core: PDFium is not thread-safe
and Python holds one lock, so threads in one process would take turns. The
pool starts N of them (`PRINTCLOUD_CONVERT_WORKERS`, default the CPU count),
restarts one that dies on the same port, and writes who is where to
`<data_dir>/run/convert-workers.json` (name, PID, URL) for operators and tests.

Workers die with the process that started them (Linux `PR_SET_PDEATHSIG`), so
a killed printing process leaves no orphan holding a port.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from printcloud.core.logs import get_logger
from printcloud.core.settings import Settings

log = get_logger("printing.pool")
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class WorkerProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class WorkerPool:
    def __init__(self, settings: Settings, *, count: int | None = None) -> None:
        self.settings = settings
        self.count = count or settings.convert_worker_count
        self.workers = [
            WorkerProcess(name=f"convert-{i + 1}", port=free_port()) for i in range(self.count)
        ]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.run_dir = settings.data_dir / "run"

    @property
    def urls(self) -> list[str]:
        return [w.url for w in self.workers]

    def _spawn(self, worker: WorkerProcess) -> None:
        env = {
            **os.environ,
            **self.settings.as_environment(),
            "PRINTCLOUD_SERVICE": "convert",
            "PRINTCLOUD_PORT": str(worker.port),
            "PRINTCLOUD_HOST": "127.0.0.1",
            "PRINTCLOUD_WORKER_ID": worker.name,
            "PRINTCLOUD_HTTP_WORKERS": "1",
            # Loopback only, called by this process alone: plain HTTP, whatever the
            # public port speaks (PRINTCLOUD_TLS).
            "PRINTCLOUD_TLS": "false",
        }
        env.pop("PRINTCLOUD_TLS_CERT", None)
        env.pop("PRINTCLOUD_TLS_KEY", None)
        log_path = self.run_dir / f"{worker.name}.log"
        with open(log_path, "ab") as out:
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "printcloud", "serve", "--service", "convert"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe
            )

    def start(self, *, timeout: float = 90.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        spawned = threading.Event()
        # The supervisor thread starts the workers: the kernel's parent-death signal is
        # tied to the thread that forked, and that one lives as long as the pool.
        self._thread = threading.Thread(
            target=self._supervise, args=(spawned,), name="convert-pool", daemon=True
        )
        self._thread.start()
        spawned.wait(timeout)
        self.wait_ready(timeout=timeout)
        self._write_state()
        log.info(
            "conversion workers up", extra={"fields": {"workers": self.urls, "count": self.count}}
        )

    def wait_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.workers)
        with httpx.Client(timeout=2) as http:
            while pending:
                for worker in list(pending):
                    if worker.process is not None and worker.process.poll() is not None:
                        raise RuntimeError(
                            f"conversion worker {worker.name} exited at start "
                            f"(see {self.run_dir / (worker.name + '.log')})"
                        )
                    try:
                        if http.get(f"{worker.url}/healthz").status_code == 200:
                            pending.remove(worker)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    names = ", ".join(w.name for w in pending)
                    raise RuntimeError(f"conversion workers did not start: {names}")
                if pending:
                    time.sleep(0.1)

    def _supervise(self, spawned: threading.Event) -> None:
        try:
            for worker in self.workers:
                self._spawn(worker)
        finally:
            spawned.set()
        while not self._stop.wait(0.5):
            for worker in self.workers:
                process = worker.process
                if process is None or process.poll() is None:
                    continue
                if self._stop.is_set():
                    return
                worker.restarts += 1
                log.warning(
                    "conversion worker died; restarting it",
                    extra={
                        "fields": {
                            "worker": worker.name,
                            "exit": process.returncode,
                            "restarts": worker.restarts,
                        }
                    },
                )
                with self._lock:
                    self._spawn(worker)
                self._write_state()

    def _write_state(self) -> None:
        state = [
            {
                "name": w.name,
                "url": w.url,
                "pid": w.process.pid if w.process else None,
                "restarts": w.restarts,
            }
            for w in self.workers
        ]
        path: Path = self.run_dir / "convert-workers.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)

    def stop(self) -> None:
        self._stop.set()
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.terminate()
        for worker in self.workers:
            if worker.process is not None:
                try:
                    worker.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
                    worker.process.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
