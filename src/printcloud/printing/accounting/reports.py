"""Usage reports (issue 18): per person, printer or the whole tenant, for a period.

Read from the ledger's job charges (`charging.settle` records what each was for:
owner, printer, sides printed, colour, two-sided, cost) and refunds, grouped in SQL,
so a month of 100,000 jobs is one indexed pass (`ix_accounting_transactions_created`).
`csv_text` and `svg_bars` are what the page, the API and `printcloud admin report`
give: a CSV, and a bar chart drawn on the server (SVG, no JavaScript).

The nightly batch runs are docgen's (seed 000): the caller brings them — the page from
docgen's API (`DocgenClient.batch_runs`), the CLI from docgen's tables — and
`batch_runs` adds what printed of each from this service's own jobs, so neither
service reads the other's tables. `report_data` is the report as docgen's Typst
usage report takes it (the PDF).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any, Protocol

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from printcloud.core.errors import InvalidRequest

from ..models import PrintJobRow
from .models import LedgerEntryRow, LedgerTransactionRow
from .prices import money

GROUPINGS = ("user", "printer", "tenant")
_FIELD = {"user": "owner", "printer": "printer_id"}
#: A report of more than this many days is refused (a year and a bit).
MAX_DAYS = 400


@dataclass(frozen=True)
class UsageRow:
    """One line of a report: a person, a printer, or the tenant (`key`)."""

    key: str
    jobs: int
    pages: int
    impressions: int
    color: int
    mono: int
    duplex: int
    cost: int
    refunded: int

    @property
    def net(self) -> int:
        return self.cost - self.refunded


def usage(
    db: Session, *, tenant_id: str, start: datetime, end: datetime, by: str
) -> list[UsageRow]:
    """What was printed and charged between `start` (included) and `end` (excluded),
    grouped `by` user, printer or tenant, the largest cost first."""
    if by not in GROUPINGS:
        raise InvalidRequest(f"by must be one of {', '.join(GROUPINGS)}", field="by")
    if not start < end:
        raise InvalidRequest("the period's start must be before its end", field="start")
    if (end - start).days > MAX_DAYS:
        raise InvalidRequest(f"a report covers at most {MAX_DAYS} days", field="end")
    tx = LedgerTransactionRow
    details = tx.details

    def key_of(row: Any) -> Any:
        if by == "tenant":
            return row.tenant_id
        return row.details[_FIELD[by]].as_string()

    impressions = details["impressions"].as_integer()
    is_color = details["color"].as_boolean()
    is_duplex = details["duplex"].as_boolean()
    key = key_of(tx).label("key")
    charges = db.execute(
        select(
            key,
            func.count(),
            func.sum(details["pages"].as_integer()),
            func.sum(impressions),
            func.sum(case((is_color, impressions), else_=0)),
            func.sum(case((is_duplex, impressions), else_=0)),
            func.sum(details["cost"].as_integer()),
        )
        .where(
            tx.tenant_id == tenant_id,
            tx.kind == "charge",
            tx.created_at >= start,
            tx.created_at < end,
        )
        .group_by(key)
    ).all()
    refunds = _refunds(db, tenant_id=tenant_id, start=start, end=end, by=by, key_of=key_of)
    rows = []
    for name, jobs, pages, sides, color, duplex, cost in charges:
        printed = int(sides or 0)
        rows.append(
            UsageRow(
                key=str(name),
                jobs=int(jobs),
                pages=int(pages or 0),
                impressions=printed,
                color=int(color or 0),
                mono=printed - int(color or 0),
                duplex=int(duplex or 0),
                cost=int(cost or 0),
                refunded=refunds.pop(str(name), 0),
            )
        )
    rows += [UsageRow(k, 0, 0, 0, 0, 0, 0, 0, v) for k, v in refunds.items()]
    return sorted(rows, key=lambda r: (-r.net, r.key))


def _refunds(
    db: Session, *, tenant_id: str, start: datetime, end: datetime, by: str, key_of: Any
) -> dict[str, int]:
    """Refunds made in the period, by the key of the job's charge they give back."""
    refund, charge = LedgerTransactionRow, aliased(LedgerTransactionRow)
    # The tenant's key is the refund's own: grouped by the charge's, SQLite walked every
    # charge of the tenant (in that index's order) and searched the period's refunds
    # for each — quadratic (bench/reports.py: 2.3 s for 2,000 jobs).
    key = (refund.tenant_id if by == "tenant" else key_of(charge)).label("key")
    # a refund's amount is its payer's leg; the charge's details say whose job it was
    found = db.execute(
        select(key, func.sum(LedgerEntryRow.amount))
        .select_from(refund)
        .join(
            charge,
            and_(
                # a job's charge is keyed by its job ID: the unique (tenant, key) index
                # finds it (through the job ID's index, SQLite and PostgreSQL chose plans
                # that scan the tenant's charges once the kind was indexed too)
                charge.tenant_id == refund.tenant_id,
                charge.key == refund.job_id,
                charge.kind == "charge",
            ),
        )
        .join(LedgerEntryRow, LedgerEntryRow.transaction_pk == refund.pk)
        .where(
            refund.tenant_id == tenant_id,
            refund.kind == "refund",
            refund.created_at >= start,
            refund.created_at < end,
            LedgerEntryRow.amount > 0,
        )
        .group_by(key)
    ).all()
    return {str(k): int(v or 0) for k, v in found}


COLUMNS = (
    "key",
    "jobs",
    "pages",
    "impressions",
    "color",
    "mono",
    "duplex",
    "cost",
    "refunded",
    "net",
)


def csv_text(rows: list[UsageRow], *, by: str, currency: str) -> str:
    """The report as CSV: amounts in minor units and, beside them, in words."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([by if by != "tenant" else "tenant", *COLUMNS[1:], "net_text"])
    for row in rows:
        values = asdict(row) | {"net": row.net}
        writer.writerow(
            [_safe(row.key), *[values[c] for c in COLUMNS[1:]], money(row.net, currency)]
        )
    return out.getvalue()


def _safe(text: str) -> str:
    """A cell a spreadsheet would run as a formula is quoted as text (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def svg_bars(rows: list[UsageRow], *, currency: str, title: str, limit: int = 20) -> str:
    """A horizontal bar chart of the net cost per line (the first `limit`), as SVG."""
    shown = rows[:limit]
    top = max([r.net for r in shown] + [1])
    height = 40 + 28 * max(1, len(shown))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 640 {height}" '
        f'width="100%" aria-labelledby="chart-title"><title id="chart-title">'
        f"{escape(title)}</title>",
        f'<text x="0" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for index, row in enumerate(shown):
        y = 36 + 28 * index
        width = 0 if row.net <= 0 else max(2, round(260 * row.net / top))
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="12">{escape(row.key[:28])}</text>'
            f'<rect x="200" y="{y}" width="{width}" height="20" fill="#2f6db5"/>'
            f'<text x="{206 + width}" y="{y + 15}" font-size="12">'
            f"{escape(money(row.net, currency))} · {row.impressions} sides</text>"
        )
    if not shown:
        parts.append('<text x="0" y="56" font-size="12">Nothing printed in this period.</text>')
    parts.append("</svg>")
    return "".join(parts)


def parse_day(text: str, field: str) -> datetime:
    """`2026-12-01` as that day's UTC midnight, or 400 naming `field`."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidRequest(f"{field} must be a date like 2026-12-01", field=field) from exc


# -- the nightly batch runs (docgen's), with what printed of them -------------------------


class BatchRunSource(Protocol):
    """A batch run as docgen answers it (`docgen.client.BatchRun`, `BatchRunRead`)."""

    @property
    def request_id(self) -> str: ...
    @property
    def job(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def state(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def step(self) -> str: ...
    @property
    def print_job_ids(self) -> list[str]: ...


@dataclass(frozen=True)
class BatchRunRow:
    """One nightly run in the report: its documents (print jobs) and the pages printed
    of them; `reason` says why a suspended (or failed) run stopped, at seed step `step`."""

    request_id: str
    job: str
    received_at: datetime
    state: str
    step: str
    reason: str
    documents: int
    pages: int


#: Job IDs per query when summing a period's batch pages (SQLite allows 32,766 variables).
_CHUNK = 500


def batch_runs(db: Session, *, tenant_id: str, runs: Sequence[BatchRunSource]) -> list[BatchRunRow]:
    """`runs` with the pages printed of their documents, read from this tenant's jobs
    only (a job ID of another tenant counts nothing)."""
    wanted = [job_id for run in runs for job_id in run.print_job_ids]
    printed: dict[str, int] = {}
    for at in range(0, len(wanted), _CHUNK):
        chunk = wanted[at : at + _CHUNK]
        found = db.execute(
            select(PrintJobRow.job_id, PrintJobRow.pages_printed).where(
                PrintJobRow.tenant_id == tenant_id, PrintJobRow.job_id.in_(chunk)
            )
        )
        printed.update((str(job_id), int(pages or 0)) for job_id, pages in found)
    return [
        BatchRunRow(
            request_id=run.request_id,
            job=run.job,
            received_at=_utc(run.received_at),
            state=run.state,
            step=run.step,
            reason=run.reason or "",
            documents=len(run.print_job_ids),
            pages=sum(printed.get(job_id, 0) for job_id in run.print_job_ids),
        )
        for run in runs
    ]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


BATCH_COLUMNS = (
    "received_at",
    "job",
    "state",
    "step",
    "reason",
    "documents",
    "pages",
    "request_id",
)


def batch_csv_text(runs: list[BatchRunRow]) -> str:
    """The batch runs as CSV (a download of its own beside the usage's)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(BATCH_COLUMNS)
    for run in runs:
        writer.writerow(
            [
                run.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
                _safe(run.job),
                run.state,
                run.step,
                _safe(run.reason),
                run.documents,
                run.pages,
                run.request_id,
            ]
        )
    return out.getvalue()


def totals(rows: list[UsageRow], *, key: str = "Total") -> UsageRow:
    """The period's figures summed over `rows`."""
    return UsageRow(
        key=key,
        jobs=sum(r.jobs for r in rows),
        pages=sum(r.pages for r in rows),
        impressions=sum(r.impressions for r in rows),
        color=sum(r.color for r in rows),
        mono=sum(r.mono for r in rows),
        duplex=sum(r.duplex for r in rows),
        cost=sum(r.cost for r in rows),
        refunded=sum(r.refunded for r in rows),
    )


#: Lines of the PDF's table at most (the largest first; the totals count them all).
PDF_ROWS = 5000


def report_data(
    rows: list[UsageRow],
    runs: list[BatchRunRow],
    *,
    by: str,
    by_label: str,
    currency: str,
    start: str,
    end: str,
    organisation: str,
    batch_note: str = "",
) -> dict[str, Any]:
    """The report as docgen's Typst usage report reads it (`UsageReportCreate`):
    amounts in words, dates as text."""

    def line(row: UsageRow) -> dict[str, Any]:
        values = asdict(row)
        for name in ("cost", "refunded"):
            values[name] = money(values[name], currency)
        return values | {"net": money(row.net, currency)}

    return {
        "title": f"Usage report, {start} to {end}",
        "organisation": organisation,
        "start": start,
        "end": end,
        "by": by_label if by != "tenant" else "Organisation",
        "currency": currency,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rows": [line(r) for r in rows[:PDF_ROWS]],
        "totals": line(totals(rows)),
        "batch_runs": [
            {
                "received": run.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
                "job": run.job,
                "state": run.state,
                "reason": run.reason,
                "documents": run.documents,
                "pages": run.pages,
            }
            for run in runs
        ],
        "batch_note": batch_note,
    }
