"""A print stack for the print-service benchmarks (not a benchmark itself).

`printcloud serve` (embedded: intake, SVC002 workflows, balancer and N
conversion worker processes) in its own process group on a loopback port, a
fresh data folder (in /dev/shm when there is one, so disk speed does not
count), and what `tests/printing/conftest.py` sets up through the service
layer on the same database: a tenant, a confidential client (scope
`print`), a device client (`device print`) and one printer. Everything
is stopped and removed when the `with` block ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.conversion import _scratch
from bench.harness import LOOPBACK, BenchError, free_port, log_tail, started, wait_ready
from printcloud.core.settings import Settings
from printcloud.printing import service as printing_service
from printcloud.printing.client import PrintClient, PrintServiceError

ISSUER = "idp-a"
PRINTER = "bench-color"
#: A job that reached one of these no longer changes by itself.
WAITING = ("waiting_for_printer",)
FINAL = printing_service.FINAL


def at(job: dict[str, Any], step: str, *, last: bool = False, detail: str = "") -> float:
    """POSIX time of the first (or last) history event `step` whose detail contains `detail`."""
    times = [
        datetime.fromisoformat(event["at"]).timestamp()
        for event in job.get("history") or []
        if event["step"] == step and detail in event.get("detail", "")
    ]
    if not times:
        raise BenchError(f"job {job.get('job_id')} has no {step} event ({detail!r})")
    return times[-1] if last else times[0]


@dataclass
class PrintStack:
    """A running stack, set up with one tenant, its clients and a color printer."""

    base: str
    data_dir: Path
    log: Path
    proc: Any
    api: PrintClient
    token: str
    tenant_id: str
    device_id: str
    device_secret: str
    printer_id: str = PRINTER

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"printcloud serve died; last lines of {self.log}:\n{log_tail(self.log)}"
            )

    def submit(self, data: bytes, *, dpi: int, color: bool = True) -> str:
        try:
            job = self.api.submit(
                token=self.token,
                printer_id=self.printer_id,
                pdf=data,
                filename="doc10.pdf",
                options={"dpi": str(dpi), "color": str(color).lower()},
            )
        except PrintServiceError as exc:
            raise BenchError(f"submit: {exc}") from exc
        return job.job_id

    def job(self, job_id: str) -> dict[str, Any]:
        try:
            return self.api.show(job_id, token=self.token).data
        except PrintServiceError as exc:
            raise BenchError(f"GET job: {exc}") from exc

    def states(self) -> dict[str, str]:
        try:
            jobs = self.api.list_jobs(token=self.token, limit=1000)
        except PrintServiceError as exc:
            raise BenchError(f"GET jobs: {exc}") from exc
        return {job.job_id: job.state for job in jobs}

    def wait(
        self, job_ids: Iterable[str], states: Iterable[str], *, timeout: float = 300
    ) -> dict[str, str]:
        """Poll the job list (one request for all jobs, every 0.2 s) until each is in `states`."""
        wanted, ids = set(states) | set(FINAL), list(job_ids)
        deadline = time.monotonic() + timeout
        while True:
            self.alive()
            now = self.states()
            if all(now.get(job_id) in wanted for job_id in ids):
                return {job_id: now[job_id] for job_id in ids}
            if time.monotonic() > deadline:
                raise BenchError(f"jobs not {sorted(wanted)} after {timeout:.0f} s: {now}")
            time.sleep(0.2)

    def cancel(self, job_ids: Iterable[str], *, timeout: float = 60) -> None:
        """Cancel jobs still active and wait for their clean-up (S112), so runs do not overlap."""
        ids = list(job_ids)
        for job_id in ids:
            try:
                self.api.cancel(job_id, token=self.token)
            except PrintServiceError as exc:
                if exc.status != 409:
                    raise BenchError(f"cancel: {exc}") from exc
        deadline = time.monotonic() + timeout
        for job_id in ids:
            while not any(event["step"] == "S112" for event in self.job(job_id)["history"]):
                if time.monotonic() > deadline:
                    raise BenchError(f"job {job_id}: no clean-up (S112) after {timeout:.0f} s")
                time.sleep(0.1)

    def workers(self) -> int:
        return len(self.api.health().get("workers", []))

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the stack's processes (its process group)."""
        return group_cpu_seconds(self.proc.pid)


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes of group `pgid` (from /proc)."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _set_up(database_url: str) -> tuple[str, str, str, str, str]:
    """Tenant, confidential client, device client and printer, as the tests do."""
    from printcloud.auth import service as auth
    from printcloud.core.db import Database
    from printcloud.printing import service as printing

    db = Database(database_url)
    tenant_id = f"bench{secrets.token_hex(3)}"
    try:
        with db.session() as s:
            auth.create_tenant(s, issuer=ISSUER, tenant_id=tenant_id, name="Benchmark")
        with db.session() as s:
            tenant = auth.get_tenant(s, issuer=ISSUER, tenant_id=tenant_id)
            app, app_secret = auth.create_client(
                s, tenant=tenant, name="bench app", kind="confidential", scope="print"
            )
            dev, dev_secret = auth.create_client(
                s, tenant=tenant, name="bench printer", kind="device", scope="device print"
            )
            ids = (app.client_id, dev.client_id)
        with db.session() as s:
            printing.add_printer(
                s,
                tenant_id=tenant_id,
                printer_id=PRINTER,
                name="Benchmark color printer",
                color=True,
                client_id=ids[1],
            )
    finally:
        db.dispose()
    if app_secret is None or dev_secret is None:
        raise BenchError("create_client gave no secret")
    return tenant_id, ids[0], app_secret, ids[1], dev_secret


@contextlib.contextmanager
def print_stack(
    *,
    workers: int,
    log_dir: Path,
    balance: str = "round_robin",
    printer_concurrency: int = 2,
    ipp_port: int = 0,
) -> Iterator[PrintStack]:
    """Start a stack with `workers` conversion workers; stop it and delete its data at the end.

    `ipp_port`: the IPP listener's port (`PRINTCLOUD_IPP_PORT`; 0, off).

    `printer_concurrency` is the per-printer cap (`PRINTCLOUD_PRINTER_CONCURRENCY`): jobs of
    one printer past it wait, before conversion, for the printer to finish earlier ones."""
    with contextlib.ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix=f"pc-bench-stack{workers}-", dir=_scratch()))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        port = free_port()
        base = f"http://{LOOPBACK}:{port}"
        # Our own settings only: none of the caller's PRINTCLOUD_* may leak into the stack.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTCLOUD_")}
        env |= {
            "PRINTCLOUD_DATA_DIR": str(data_dir),
            "PRINTCLOUD_HOST": LOOPBACK,
            "PRINTCLOUD_PORT": str(port),
            "PRINTCLOUD_PUBLIC_URL": base,
            "PRINTCLOUD_CONVERT_WORKERS": str(workers),
            "PRINTCLOUD_BALANCE": balance,
            "PRINTCLOUD_PRINTER_CONCURRENCY": str(printer_concurrency),
            "PRINTCLOUD_LOG_LEVEL": "WARNING",
            "PRINTCLOUD_SECRET_KEY": secrets.token_urlsafe(32),
            "PRINTCLOUD_IPP_PORT": str(ipp_port),
        }
        log = log_dir / f"serve-{workers}w.log"
        cmd = [sys.executable, "-m", "printcloud", "serve"]
        proc = stack.enter_context(started(cmd, env=env, log=log))
        wait_ready(f"{base}/printing/healthz", proc=proc, log=log, timeout=120)
        settings = Settings(data_dir=data_dir, database_url=None)
        tenant_id, app_id, app_secret, dev_id, dev_secret = _set_up(settings.effective_database_url)
        token = httpx.post(
            f"{base}/{ISSUER}/token",
            data={"grant_type": "client_credentials", "scope": "print"},
            auth=(app_id, app_secret),
            timeout=10,
        )
        if token.status_code != 200:
            raise BenchError(f"token request answered {token.status_code}: {token.text[:300]}")
        api = PrintClient(f"{base}/printing", http=httpx.Client(timeout=120, trust_env=False))
        stack.callback(api.http.close)
        access = str(token.json()["access_token"])
        yield PrintStack(base, data_dir, log, proc, api, access, tenant_id, dev_id, dev_secret)
