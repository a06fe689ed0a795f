"""Usage reports (issue 18): a month's report over 100,000 jobs, on SQLite and PostgreSQL.

The goal: the report of a month with 100,000 charged jobs renders in under 2 s on each.

Seeded in bulk with SQLAlchemy core inserts (not through the API), as the charging path
leaves them: per job a reservation and a charge (the charge's `details` say owner,
printer, pages, sides, colour, two-sided, cost), two ledger legs each, 1 % of the jobs
refunded; the print jobs; and docgen's 31 nightly runs of the month (1,000 documents each,
one run in five suspended with its reason). Around it, what makes an index matter: another
tenant's month of the same size and half a month of the tenant's own before the period.

A "render" is what the report page does before it writes HTML: the usage `by` person
(`reports.usage`), the batch runs (`docgen.service.batch_runs`, then `reports.batch_runs`
for their pages printed), the CSV and the SVG chart. Also timed, for the record: `by`
printer and tenant, and the PDF typeset by docgen's Typst usage report (not in the goal).
Medians over `--runs` rounds (default 5; `--quick`: 20,000 jobs, 2 rounds).

PostgreSQL: a fresh `printcloud_bench_reports` database on 127.0.0.1:5432 (user
`postgres`), dropped afterwards; skipped with the reason when it does not answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.table import Table

from bench.harness import LOOPBACK, BenchError, Options, busy_warning, console, machine

GOAL_SECONDS = 2.0
TENANT, OTHER = "bench-reports", "bench-other"
START, END = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
USERS, PRINTERS, RUNS, DOCUMENTS = 200, 20, 31, 1000
PG_ADMIN_URL = os.environ.get(
    "PRINTCLOUD_BENCH_PG_ADMIN_URL", f"postgresql://postgres@{LOOPBACK}:5432/postgres"
)
PG_DATABASE = "printcloud_bench_reports"
_BATCH = 10_000


class Skip(BenchError):
    """A database that cannot be used here (PostgreSQL not answering): not a failure."""


@contextlib.contextmanager
def _pg_database() -> Iterator[str]:
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        raise Skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}".splitlines()[0]) from exc
    with admin:
        info = admin.info
        if info.host not in (LOOPBACK, "localhost") and not info.host.startswith("/"):
            raise BenchError(f"refusing a PostgreSQL server that is not on loopback: {info.host}")
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {PG_DATABASE}")
        try:
            secret = f":{quote(info.password, safe='')}" if info.password else ""
            yield f"postgresql+psycopg://{info.user}{secret}@{LOOPBACK}:{info.port}/{PG_DATABASE}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


# -- seeding ---------------------------------------------------------------------------------


class _Seeder:
    """Rows in batches of `_BATCH`, with the primary keys chosen here (the legs need them)."""

    def __init__(self, db: Any) -> None:
        from printcloud.docgen.models import BatchRequest
        from printcloud.printing.accounting.models import (
            AccountingSettingsRow,
            AccountRow,
            LedgerEntryRow,
            LedgerTransactionRow,
        )
        from printcloud.printing.models import PrintJobRow

        self.db = db
        self.tables = {
            "settings": AccountingSettingsRow.__table__,
            "accounts": AccountRow.__table__,
            "tx": LedgerTransactionRow.__table__,
            "entries": LedgerEntryRow.__table__,
            "jobs": PrintJobRow.__table__,
            "runs": BatchRequest.__table__,
        }
        self.pending: dict[str, list[dict[str, Any]]] = {name: [] for name in self.tables}
        self.tx_pk = self.entry_pk = self.account_pk = 0
        self.rows = 0

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.pending[table].append(row)
        if len(self.pending[table]) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        # every table, parents first: the accounts and transactions the legs point at
        order = ("settings", "accounts", "tx", "entries", "jobs", "runs")
        with self.db.engine.begin() as conn:
            for name in order:
                if not self.pending[name]:
                    continue
                conn.execute(self.tables[name].insert(), self.pending[name])
                self.rows += len(self.pending[name])
                self.pending[name] = []

    def account(self, tenant: str, kind: str, name: str) -> int:
        self.account_pk += 1
        self.add(
            "accounts",
            {
                "pk": self.account_pk,
                "tenant_id": tenant,
                "kind": kind,
                "name": name,
                "overdraft": 0,
                "allowance": 0,
                "period": "none",
                "mode": "topup",
                "members": [],
                "created_at": START - timedelta(days=90),
            },
        )
        return self.account_pk

    def transaction(
        self,
        tenant: str,
        key: str,
        kind: str,
        job_id: str,
        at: datetime,
        details: dict[str, Any],
        legs: list[tuple[int, int]],
    ) -> None:
        self.tx_pk += 1
        self.add(
            "tx",
            {
                "pk": self.tx_pk,
                "tenant_id": tenant,
                "key": key,
                "kind": kind,
                "job_id": job_id,
                "reason": "",
                "actor": "system",
                "details": details,
                "created_at": at,
            },
        )
        for account_pk, amount in legs:
            self.entry_pk += 1
            self.add(
                "entries",
                {
                    "pk": self.entry_pk,
                    "tenant_id": tenant,
                    "transaction_pk": self.tx_pk,
                    "account_pk": account_pk,
                    "amount": amount,
                },
            )


def _seed_tenant(
    seeder: _Seeder,
    rng: random.Random,
    tenant: str,
    *,
    jobs: int,
    start: datetime,
    days: int,
    runs: bool,
) -> list[str]:
    """`jobs` jobs of `tenant` spread over `days` from `start`; their IDs."""
    seeder.add("settings", {"tenant_id": tenant, "currency": "EUR"})
    people = [seeder.account(tenant, "user", f"user{n:03d}") for n in range(USERS)]
    holds = seeder.account(tenant, "system", "holds")
    sales = seeder.account(tenant, "system", "sales")
    span = days * 86400
    ids = []
    for n in range(jobs):
        job_id = f"{tenant}-{start:%Y%m}-{n:06d}"
        at = start + timedelta(seconds=span * n / jobs)
        who = rng.randrange(USERS)
        pages = rng.choice((1, 1, 2, 3, 5, 10, 20))
        color, duplex = rng.random() < 0.3, rng.random() < 0.4
        rate = 20 if color else 5
        cost = pages * rate
        owner, printer = f"user{who:03d}", f"printer{rng.randrange(PRINTERS):02d}"
        payer = people[who]
        seeder.transaction(
            tenant,
            f"reserve:{job_id}",
            "reserve",
            job_id,
            at,
            {"payer": payer, "rate": rate, "impressions": pages, "cost": cost},
            [(payer, -cost), (holds, cost)],
        )
        details = {
            "payer": payer,
            "owner": owner,
            "printer_id": printer,
            "state": "printed",
            "impressions": pages,
            "pages": pages,
            "color": color,
            "duplex": duplex,
            "rate": rate,
            "cost": cost,
        }
        done = at + timedelta(seconds=30)
        seeder.transaction(
            tenant, job_id, "charge", job_id, done, details, [(holds, -cost), (sales, cost)]
        )
        if n % 100 == 7:  # 1 % refunded, an hour later
            seeder.transaction(
                tenant,
                f"refund:{job_id}",
                "refund",
                job_id,
                done + timedelta(hours=1),
                {},
                [(sales, -cost), (payer, cost)],
            )
        seeder.add(
            "jobs",
            {
                "job_id": job_id,
                "tenant_id": tenant,
                "printer_id": printer,
                "owner": owner,
                "client_id": "docgen" if runs and n < RUNS * DOCUMENTS else "app",
                "title": job_id,
                "source": "upload",
                "bytes": 1000,
                "page_count": pages,
                "options": {"color": color, "duplex": duplex},
                "state": "printed",
                "pages_printed": pages,
                "previews": 0,
                "created_at": at,
                "updated_at": done,
                "finished_at": done,
            },
        )
        ids.append(job_id)
    seeder.flush()
    return ids


def _seed_runs(seeder: _Seeder, tenant: str, job_ids: list[str]) -> None:
    """docgen's nightly runs of the month: one in five suspended, the rest with 1,000
    documents each (the month's first jobs)."""
    for night in range(RUNS):
        at = START + timedelta(days=night, hours=2)
        suspended = night % 5 == 4
        documents = [] if suspended else job_ids[night * DOCUMENTS : (night + 1) * DOCUMENTS]
        state = "suspended" if suspended else "completed"
        step = "S1612" if suspended else "S1525"
        seeder.add(
            "runs",
            {
                "request_id": f"run-{night:02d}",
                "tenant_id": tenant,
                "received_at": at,
                "source": "crm",
                "state": state,
                "reason": "print token invalid and not refreshable: invalid_grant"
                if suspended
                else None,
                "run_id": f"crm-run-{night:02d}",
                "job": "nightly invoices",
                "parameters": {},
                "steps": [{"at": at.isoformat(), "step": step, "state": state, "detail": ""}],
                "print_job_ids": documents,
                "updated_at": at,
                "finished_at": at + timedelta(minutes=20),
            },
        )
    seeder.flush()


def seed(db: Any, jobs: int) -> int:
    """The month, the other tenant's and the half month before; the rows written."""
    rng = random.Random(18)
    seeder = _Seeder(db)
    ids = _seed_tenant(seeder, rng, TENANT, jobs=jobs, start=START, days=31, runs=True)
    _seed_runs(seeder, TENANT, ids)
    _seed_older(seeder, rng, jobs // 2, START - timedelta(days=15))
    _seed_tenant(seeder, rng, OTHER, jobs=jobs, start=START, days=31, runs=False)
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return seeder.rows


def _seed_older(seeder: _Seeder, rng: random.Random, jobs: int, start: datetime) -> None:
    """Charges of the tenant before the period (read by no report of December)."""
    span = 15 * 86400
    for n in range(jobs):
        job_id = f"{TENANT}-old-{n:06d}"
        at = start + timedelta(seconds=span * n / jobs)
        pages = rng.choice((1, 2, 5))
        details = {
            "payer": 1,
            "owner": f"user{rng.randrange(USERS):03d}",
            "printer_id": f"printer{rng.randrange(PRINTERS):02d}",
            "state": "printed",
            "impressions": pages,
            "pages": pages,
            "color": False,
            "duplex": False,
            "rate": 5,
            "cost": pages * 5,
        }
        legs = [(1, -pages * 5), (2, pages * 5)]  # the tenant's first two accounts
        seeder.transaction(TENANT, job_id, "charge", job_id, at, details, legs)
    seeder.flush()


# -- the report ------------------------------------------------------------------------------


def render(db: Any, by: str) -> int:
    """The page's work for the month `by` person, printer or tenant; its CSV's size."""
    from printcloud.docgen import service as docgen
    from printcloud.docgen.schemas import BatchRunRead
    from printcloud.printing.accounting import reports

    with db.session() as s:
        rows = reports.usage(s, tenant_id=TENANT, start=START, end=END, by=by)
        found = docgen.batch_runs(s, tenant_id=TENANT, start=START, end=END)
        runs = reports.batch_runs(s, tenant_id=TENANT, runs=[BatchRunRead.of(r) for r in found])
    text = reports.csv_text(rows, by=by, currency="EUR") + reports.batch_csv_text(runs)
    chart = reports.svg_bars(rows, currency="EUR", title="bench")
    if len(runs) != RUNS or not rows:
        raise BenchError(f"the report is wrong: {len(rows)} lines, {len(runs)} runs")
    return len(text) + len(chart)


def typeset(db: Any) -> int:
    """The month's report by person as docgen's PDF; its size."""
    from printcloud.docgen import service as docgen
    from printcloud.docgen import usage_report
    from printcloud.docgen.schemas import BatchRunRead
    from printcloud.printing.accounting import reports

    with db.session() as s:
        rows = reports.usage(s, tenant_id=TENANT, start=START, end=END, by="user")
        found = docgen.batch_runs(s, tenant_id=TENANT, start=START, end=END)
        runs = reports.batch_runs(s, tenant_id=TENANT, runs=[BatchRunRead.of(r) for r in found])
    data = reports.report_data(
        rows,
        runs,
        by="user",
        by_label="Person",
        currency="EUR",
        start="2026-12-01",
        end="2027-01-01",
        organisation="Bench",
    )
    return len(usage_report.render_pdf(data))


def _timed(work: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        begin = time.perf_counter()
        work()
        times.append(time.perf_counter() - begin)
    return times


def _measure(url: str, jobs: int, rounds: int) -> dict[str, Any]:
    from printcloud.core.db import Database, migrate

    db = Database(url)
    try:
        migrate(db, "printcloud:migrations")
        begin = time.perf_counter()
        rows = seed(db, jobs)
        seeded = time.perf_counter() - begin
        console.print(f"  seeded {rows:,} rows in {seeded:.1f} s")
        render(db, "user")  # warm: the first query plans, the caches
        typeset(db)
        cases = {
            "by_user": lambda: render(db, "user"),
            "by_printer": lambda: render(db, "printer"),
            "by_tenant": lambda: render(db, "tenant"),
            "pdf_by_user": lambda: typeset(db),
        }
        times = {name: _timed(case, rounds) for name, case in cases.items()}
        return {"rows_seeded": rows, "seed_seconds": seeded, "times": times}
    finally:
        db.dispose()


def run(options: Options, out_dir: Path) -> bool:
    jobs = 20_000 if options.quick else 100_000
    rounds = options.runs or (2 if options.quick else 5)
    out_dir.mkdir(parents=True, exist_ok=True)
    if warning := busy_warning():
        console.print(f"[yellow]{warning}[/]")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"reports: sqlite, {jobs:,} jobs in the month")
        results["sqlite"] = _measure(f"sqlite:///{Path(tmp) / 'reports.sqlite3'}", jobs, rounds)
    try:
        with _pg_database() as url:
            console.print(f"reports: postgresql, {jobs:,} jobs in the month")
            results["postgresql"] = _measure(url, jobs, rounds)
    except Skip as skip:
        console.print(f"[yellow]postgresql skipped: {skip}[/]")
        results["postgresql"] = {"skipped": str(skip)}

    table = Table(title=f"a month's usage report, {jobs:,} jobs (medians of {rounds} rounds)")
    for column in ("database", "case", "seconds", "ratio to the 2 s goal"):
        table.add_column(column)
    met = True
    for database, found in results.items():
        if "times" not in found:
            table.add_row(database, "skipped", "", found["skipped"])
            continue
        found["medians"] = {k: statistics.median(v) for k, v in found["times"].items()}
        for case, seconds in found["medians"].items():
            ratio = seconds / GOAL_SECONDS
            in_goal = not case.startswith("pdf")
            if in_goal and ratio >= 1.0:
                met = False
            mark = "" if in_goal else " (not in the goal)"
            table.add_row(database, case, f"{seconds:.3f}", f"{ratio:.2f}x{mark}")
    console.print(table)
    console.print(
        "goal met: every render under 2 s" if met else "[red]goal missed: a render took 2 s+[/]"
    )
    result = {
        "machine": machine(),
        "jobs": jobs,
        "rounds": rounds,
        "goal_seconds": GOAL_SECONDS,
        "goal_met": met,
        "results": results,
    }
    (out_dir / "summary.json").write_text(json.dumps(result, indent=2, default=str))
    return True
