"""Idle cost: the CPU an idle `printcloud serve` spends on jobs that wait, from 0 to 1,000.

Issue 13, goal 1: "a waiting job costs nothing". One embedded `printcloud serve`
(one conversion worker) per database, SQLite and then PostgreSQL
(127.0.0.1:5432, user `postgres`; skipped with the reason when unreachable),
with one tenant and 100 printers that never come online. Jobs are added in
steps (cumulative totals, default 0, 10, 100 and 1,000) of two kinds, spread
evenly over the printers:

- **waiting**: a one-page job for an offline printer. The first
  `PRINTCLOUD_PRINTER_CONCURRENCY` (2) of each printer are converted and wait
  for their printer (`waiting_for_printer`); the rest wait their turn behind
  them (`accepted`);
- **held**: as many one-page jobs with `hold=true`, waiting for their owner to
  release them (`held`).

After each step the jobs settle (every waiting job in its expected state, the
conversions done, then a few quiet seconds), and the CPU time of the serve
process group (the server, its workflows and its conversion worker) is read
from /proc over a quiet window (`--duration`, default 20 s; `--quick` 5 s).
On PostgreSQL the CPU of the database's own backends serving this database is
read too (from /proc, by the PIDs `pg_stat_activity` names), as a second
column: waiting must not move the cost into the database either.

The table gives, per step, the jobs waiting, the serve group's CPU in % of one
core, its CPU per waiting job (the step's CPU less the empty step's, divided
by the jobs waiting), its threads and the threads added per waiting job added
since the step before and the goals: < 1 % of a core with no jobs and < 2 %
with 1,000 waiting + 1,000 held. Jobs are submitted through the API by 8
clients in parallel, as tiny one-page PDFs converted at 150 dpi.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from rich.table import Table

from bench.conversion import _scratch
from bench.harness import (
    LOOPBACK,
    REPO,
    BenchError,
    Options,
    busy_warning,
    console,
    free_port,
    machine,
    started,
    wait_ready,
)
from bench.print_stack import group_cpu_seconds
from printcloud.printing.client import PrintClient, PrintServiceError

ISSUER = "idp-a"
PRINTERS = 100
PRINTER_CAP = 2
LEVELS = (0, 10, 100, 1000)
QUICK_LEVELS = (0, 10, 100)
SUBMITTERS = 8
#: Goals of issue 13 (% of one core of the serve process group).
GOAL_EMPTY = 1.0
GOAL_LOADED = 2.0
#: Quiet seconds between the jobs settling and the measured window.
CALM = 5.0
PG_ADMIN_URL = os.environ.get(
    "PRINTCLOUD_BENCH_PG_ADMIN_URL", f"postgresql://postgres@{LOOPBACK}:5432/postgres"
)


class Skip(BenchError):
    """A target that cannot run here (PostgreSQL unreachable): reported, not a failure."""


def tiny_pdf() -> bytes:
    """A one-page A6 PDF of one flat colour (a few hundred bytes)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (298, 420), (200, 120, 40)).save(out, "PDF", resolution=72)
    return out.getvalue()


@dataclass
class Step:
    waiting: int
    held: int
    states: dict[str, int]
    settle_s: float
    window_s: float
    serve_cpu_s: float
    db_cpu_s: float | None
    threads: int

    @property
    def serve_pct(self) -> float:
        return 100.0 * self.serve_cpu_s / self.window_s

    @property
    def db_pct(self) -> float | None:
        return None if self.db_cpu_s is None else 100.0 * self.db_cpu_s / self.window_s

    def to_json(self) -> dict[str, Any]:
        return {
            "waiting": self.waiting,
            "held": self.held,
            "states": self.states,
            "settle_s": round(self.settle_s, 1),
            "window_s": round(self.window_s, 2),
            "serve_cpu_s": round(self.serve_cpu_s, 3),
            "serve_cpu_pct": round(self.serve_pct, 2),
            "db_cpu_s": None if self.db_cpu_s is None else round(self.db_cpu_s, 3),
            "db_cpu_pct": None if self.db_pct is None else round(self.db_pct, 2),
            "serve_threads": self.threads,
        }


@dataclass
class Target:
    name: str
    database: str
    steps: list[Step] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None

    def per_job_ms(self, step: Step) -> float | None:
        """CPU ms per second per waiting job, above the empty stack's."""
        jobs = step.waiting + step.held
        if not jobs or not self.steps or self.steps[0].waiting:
            return None
        return 1000.0 * (step.serve_cpu_s / step.window_s - self.steps[0].serve_pct / 100) / jobs

    def threads_per_job(self, step: Step) -> float | None:
        """The serve group's threads added per waiting job added since the step before:
        a thread per waiting job shows as ~1 at every step; a fixed pool that fills up
        shows at the first step only."""
        at = next((i for i, s in enumerate(self.steps) if s is step), None)
        if not at:
            return None
        before = self.steps[at - 1]
        jobs = step.waiting + step.held - before.waiting - before.held
        return (step.threads - before.threads) / jobs if jobs else None

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "skipped": self.skipped,
            "error": self.error,
            "steps": [
                s.to_json()
                | {
                    "cpu_ms_per_s_per_job": _round(self.per_job_ms(s), 4),
                    "threads_per_job": _round(self.threads_per_job(s), 3),
                }
                for s in self.steps
            ],
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# -- the stack -------------------------------------------------------------------------------


@contextlib.contextmanager
def _pg_database() -> Iterator[str]:
    """A fresh database of our own, dropped at the end; `Skip` when PostgreSQL is away."""
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise Skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {first}") from exc
    name = f"printcloud_bench_idle_{secrets.token_hex(3)}"
    with admin:
        host = admin.info.host
        if host not in (LOOPBACK, "localhost") and not host.startswith("/"):
            raise BenchError(f"refusing a PostgreSQL server that is not on loopback: {host}")
        admin.execute(f"CREATE DATABASE {name}")
        try:
            info = admin.info
            auth = (
                info.user if not info.password else f"{info.user}:{quote(info.password, safe='')}"
            )
            yield f"postgresql+psycopg://{auth}@{LOOPBACK}:{info.port}/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class IdleStack:
    base: str
    proc: Any
    log: Path
    database_url: str
    api: PrintClient
    token: str
    tenant_id: str

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"printcloud serve died; see {self.log}")


def _set_up(database_url: str) -> tuple[str, str, str]:
    """A tenant, its confidential client and 100 printers, through the service layer."""
    from printcloud.auth import service as auth
    from printcloud.core.db import Database
    from printcloud.printing import service as printing

    db = Database(database_url)
    tenant_id = f"idle{secrets.token_hex(3)}"
    try:
        with db.session() as s:
            auth.create_tenant(s, issuer=ISSUER, tenant_id=tenant_id, name="Idle benchmark")
        with db.session() as s:
            tenant = auth.get_tenant(s, issuer=ISSUER, tenant_id=tenant_id)
            app, app_secret = auth.create_client(
                s, tenant=tenant, name="bench app", kind="confidential", scope="print"
            )
            dev, _ = auth.create_client(
                s, tenant=tenant, name="bench printers", kind="device", scope="device print"
            )
            app_id, dev_id = app.client_id, dev.client_id
        with db.session() as s:
            for number in range(PRINTERS):
                printing.add_printer(
                    s,
                    tenant_id=tenant_id,
                    printer_id=f"p{number:03d}",
                    name=f"Offline printer {number}",
                    color=False,
                    client_id=dev_id,
                )
    finally:
        db.dispose()
    if app_secret is None:
        raise BenchError("create_client gave no secret")
    return tenant_id, app_id, app_secret


@contextlib.contextmanager
def idle_stack(database: str, out_dir: Path) -> Iterator[IdleStack]:
    with contextlib.ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="pc-bench-idle-", dir=_scratch()))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        database_url = (
            stack.enter_context(_pg_database())
            if database == "postgres"
            else f"sqlite:///{data_dir / 'printcloud.sqlite3'}"
        )
        port = free_port()
        base = f"http://{LOOPBACK}:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTCLOUD_")}
        env |= {
            "PRINTCLOUD_DATA_DIR": str(data_dir),
            "PRINTCLOUD_DATABASE_URL": database_url,
            "PRINTCLOUD_HOST": LOOPBACK,
            "PRINTCLOUD_PORT": str(port),
            "PRINTCLOUD_PUBLIC_URL": base,
            "PRINTCLOUD_CONVERT_WORKERS": "1",
            "PRINTCLOUD_PRINTER_CONCURRENCY": str(PRINTER_CAP),
            "PRINTCLOUD_LOG_LEVEL": "WARNING",
            "PRINTCLOUD_SECRET_KEY": secrets.token_urlsafe(32),
        }
        log = out_dir / f"serve-{database}.log"
        proc = stack.enter_context(
            started([sys.executable, "-m", "printcloud", "serve"], env=env, log=log)
        )
        wait_ready(f"{base}/printing/healthz", proc=proc, log=log, timeout=180)
        tenant_id, app_id, app_secret = _set_up(database_url)
        token = httpx.post(
            f"{base}/{ISSUER}/token",
            data={"grant_type": "client_credentials", "scope": "print"},
            auth=(app_id, app_secret),
            timeout=30,
            trust_env=False,
        )
        if token.status_code != 200:
            raise BenchError(f"token request answered {token.status_code}: {token.text[:300]}")
        http = httpx.Client(
            timeout=300, trust_env=False, limits=httpx.Limits(max_connections=SUBMITTERS)
        )
        stack.callback(http.close)
        api = PrintClient(f"{base}/printing", http=http)
        access = str(token.json()["access_token"])
        yield IdleStack(base, proc, log, database_url, api, access, tenant_id)


# -- jobs ------------------------------------------------------------------------------------


def _submit_all(stack: IdleStack, pdf: bytes, first: int, count: int, *, hold: bool) -> None:
    """Submit jobs number `first` to `first + count - 1`, spread over the printers."""

    def one(number: int) -> None:
        options = {"dpi": "150", "color": "false"}
        if hold:
            options["hold"] = "true"
        try:
            stack.api.submit(
                token=stack.token,
                printer_id=f"p{number % PRINTERS:03d}",
                pdf=pdf,
                filename=f"{number}.pdf",
                options=options,
            )
        except PrintServiceError as exc:
            raise BenchError(f"submit: {exc}") from exc

    with ThreadPoolExecutor(SUBMITTERS) as pool:
        list(pool.map(one, range(first, first + count)))


def _states(stack: IdleStack, db: Any) -> Counter[str]:
    from sqlalchemy import func, select

    from printcloud.printing.models import PrintJobRow

    with db.sessions() as s:
        rows = s.execute(
            select(PrintJobRow.state, func.count())
            .where(PrintJobRow.tenant_id == stack.tenant_id)
            .group_by(PrintJobRow.state)
        ).all()
    return Counter({state: int(n) for state, n in rows})


def _expected(waiting: int, held: int) -> Counter[str]:
    per_printer = Counter(number % PRINTERS for number in range(waiting))
    at_printer = sum(min(n, PRINTER_CAP) for n in per_printer.values())
    expected = Counter({"waiting_for_printer": at_printer, "accepted": waiting - at_printer})
    expected["held"] = held
    return +expected


def _settle(stack: IdleStack, db: Any, waiting: int, held: int, *, timeout: float) -> Counter[str]:
    want = _expected(waiting, held)
    deadline = time.monotonic() + timeout
    while True:
        stack.alive()
        now = _states(stack, db)
        if now == want:
            return now
        if time.monotonic() > deadline:
            raise BenchError(
                f"jobs did not settle in {timeout:.0f} s: {dict(now)}, want {dict(want)}"
            )
        time.sleep(1.0)


def _db_backends(database_url: str) -> list[int]:
    """PIDs of the PostgreSQL backends connected to the benchmark's database."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return [int(row[0]) for row in rows]


def _pids_cpu_ticks(pids: list[int]) -> dict[int, int]:
    ticks: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def _backends_cpu_seconds(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU of the backends over the window: those alive throughout by difference, those
    born during it in full; one that ended during it is lost (an underestimate)."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / os.sysconf("SC_CLK_TCK")


def _threads(pgid: int) -> int:
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += int(fields[17])
    return total


def _measure(
    stack: IdleStack, window: float, *, postgres: bool
) -> tuple[float, float, float | None]:
    backends = _db_backends(stack.database_url) if postgres else []
    serve0, db0, t0 = (
        group_cpu_seconds(stack.proc.pid),
        _pids_cpu_ticks(backends),
        time.monotonic(),
    )
    time.sleep(window)
    serve1, t1 = group_cpu_seconds(stack.proc.pid), time.monotonic()
    db1 = _pids_cpu_ticks(_db_backends(stack.database_url)) if postgres else {}
    stack.alive()
    return t1 - t0, serve1 - serve0, _backends_cpu_seconds(db0, db1) if postgres else None


def _run_target(target: Target, levels: tuple[int, ...], window: float, out_dir: Path) -> None:
    from printcloud.core.db import Database

    pdf = tiny_pdf()
    postgres = target.database == "postgres"
    try:
        with idle_stack(target.database, out_dir) as stack:
            db = Database(stack.database_url)
            try:
                waiting = held = 0
                for level in levels:
                    began = time.monotonic()
                    _submit_all(stack, pdf, waiting, level - waiting, hold=False)
                    _submit_all(stack, pdf, 100_000 + held, level - held, hold=True)
                    waiting = held = level
                    states = _settle(stack, db, waiting, held, timeout=600 + 2.0 * level)
                    settle = time.monotonic() - began
                    time.sleep(CALM)
                    span, serve_cpu, db_cpu = _measure(stack, window, postgres=postgres)
                    step = Step(
                        waiting,
                        held,
                        dict(states),
                        settle,
                        span,
                        serve_cpu,
                        db_cpu,
                        _threads(stack.proc.pid),
                    )
                    target.steps.append(step)
                    per_job = target.per_job_ms(step)
                    threads = target.threads_per_job(step)
                    console.print(
                        f"  {target.name}: {waiting:5d} waiting + {held:5d} held "
                        f"(settled in {settle:5.1f} s): serve {step.serve_pct:6.2f} % of a core"
                        + (f", database {step.db_pct:5.2f} %" if step.db_pct is not None else "")
                        + (f", {per_job:.4f} ms/s per job" if per_job is not None else "")
                        + f", {step.threads} threads"
                        + (f" ({threads:.3f} more per job added)" if threads is not None else "")
                    )
            finally:
                db.dispose()
    except Skip as exc:
        target.skipped = str(exc)
    except BenchError as exc:
        target.error = str(exc)


# -- report ----------------------------------------------------------------------------------


def _report(targets: list[Target]) -> None:
    table = Table(title="idle_cost: CPU of an idle `printcloud serve` per waiting job")
    for column in (
        "database",
        "waiting",
        "held",
        "serve CPU",
        "per job",
        "database CPU",
        "threads",
        "threads per job",
        "goal",
    ):
        table.add_column(column, justify="left" if column == "database" else "right")
    for target in targets:
        for step in target.steps:
            goal = GOAL_EMPTY if step.waiting + step.held == 0 else GOAL_LOADED
            judged = step.waiting + step.held == 0 or step.waiting >= 1000
            met = step.serve_pct < goal
            colour = "green" if met else "red"
            cell = f"[{colour}]{step.serve_pct:.2f} %[/]" if judged else f"{step.serve_pct:.2f} %"
            per_job = target.per_job_ms(step)
            threads = target.threads_per_job(step)
            table.add_row(
                target.name,
                f"{step.waiting:,}",
                f"{step.held:,}",
                cell,
                "-" if per_job is None else f"{per_job:.4f} ms/s",
                "-" if step.db_pct is None else f"{step.db_pct:.2f} %",
                str(step.threads),
                "-" if threads is None else f"{threads:.3f}",
                f"< {goal:g} %" if judged else "",
            )
    console.print(table)
    console.print(
        "serve CPU: the serve process group (server, workflows, conversion worker) in % of one "
        "core over the window; per job: CPU ms per second per waiting job above the empty "
        "stack's; database CPU: PostgreSQL's backends for this database; threads: the serve "
        "group's; threads per job: threads added per waiting job added since the step before."
    )
    for target in targets:
        if target.skipped:
            console.print(f"[yellow]{target.name} skipped: {target.skipped}[/]")
        elif target.error:
            console.print(f"[bold red]{target.name} FAILED: {target.error}[/]")


def run(options: Options, out_dir: Path) -> bool:
    """Measure each database at each step, print the table, write `summary.json`."""
    window = float(options.duration or (5 if options.quick else 20))
    levels = QUICK_LEVELS if options.quick else LEVELS
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(
        f"idle_cost: {PRINTERS} offline printers (cap {PRINTER_CAP}), steps {levels} waiting "
        f"+ as many held, {window:g} s window after {CALM:g} s of calm; "
        f"results in {out_dir.relative_to(REPO) if out_dir.is_relative_to(REPO) else out_dir}"
    )
    started_at = datetime.now(UTC)
    machine_before = machine()
    warning = busy_warning()
    if warning:
        console.print(f"[bold yellow]{warning}[/]")
    targets = [Target("sqlite", "sqlite"), Target("postgres", "postgres")]
    for target in targets:
        _run_target(target, levels, window, out_dir)
    _report(targets)
    summary = {
        "benchmark": "idle_cost",
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {"window_s": window, "levels": list(levels), "calm_s": CALM},
        "machine": machine_before | {"loadavg_after": machine()["loadavg"]},
        "busy_warning": warning,
        "setup": {"printers": PRINTERS, "printer_concurrency": PRINTER_CAP},
        "goals_pct_of_a_core": {"no_jobs": GOAL_EMPTY, "1000_waiting_1000_held": GOAL_LOADED},
        "targets": {target.name: target.to_json() for target in targets},
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return all(target.error is None for target in targets)
