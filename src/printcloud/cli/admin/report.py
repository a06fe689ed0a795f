"""`printcloud admin report`: a tenant's usage for a period (issue 18), as the report
page and the API give it: per person, printer or the whole tenant; a table, JSON
(`--json`) or CSV (`--csv FILE`, `-` for standard output)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from printcloud.cli.common import TenantOpt, emit, run, table_of


def report(
    tenant: TenantOpt,
    start: Annotated[str, typer.Option(help="First day, like 2026-12-01 (UTC)")],
    end: Annotated[str, typer.Option(help="The day after the last, like 2027-01-01")],
    by: Annotated[str, typer.Option(help="user, printer or tenant")] = "user",
    csv_file: Annotated[
        str | None, typer.Option("--csv", help="Write the report as CSV to FILE ('-': stdout)")
    ] = None,
) -> None:
    """What was printed and charged in a period, per person, printer or the tenant."""
    from printcloud.core.errors import Conflict
    from printcloud.printing.accounting import prices, reports

    def work(s: Any) -> tuple[list[reports.UsageRow], str]:
        row = prices.settings_of(s, tenant_id=tenant)
        if row is None:
            raise Conflict("accounting is off for this tenant: set its currency first")
        rows = reports.usage(
            s,
            tenant_id=tenant,
            start=reports.parse_day(start, "start"),
            end=reports.parse_day(end, "end"),
            by=by,
        )
        return rows, row.currency

    rows, currency = run(work)
    if csv_file is not None:
        text = reports.csv_text(rows, by=by, currency=currency)
        if csv_file == "-":
            sys.stdout.write(text)
        else:
            Path(csv_file).write_text(text)
        return
    data = [vars(r) | {"net": r.net, "net_text": prices.money(r.net, currency)} for r in rows]
    emit(
        data,
        table_of(
            f"usage of {tenant} by {by}, {start} to {end}",
            [by, "jobs", "pages", "sides", "colour", "mono", "two-sided", "net"],
            [
                [
                    d["key"],
                    d["jobs"],
                    d["pages"],
                    d["impressions"],
                    d["color"],
                    d["mono"],
                    d["duplex"],
                    d["net_text"],
                ]
                for d in data
            ],
        ),
    )
