"""`printcloud admin report`: a tenant's usage for a period (issue 18), as the report
page gives it: per person, printer or the whole tenant, then the nightly batch runs
(documents, pages printed, why a run was suspended). `--format` says how: a table, JSON,
the usage as CSV, the batch runs as CSV (`batch-csv`), or the whole report as a PDF
typeset by docgen's Typst compiler (`pdf`, with `--output FILE`). `--csv FILE` is
`--format csv --output FILE`; `-` is standard output.

The command reads the database as the services do: the usage from the print service's
ledger, the batch runs from docgen's requests (the CLI may see both; the services ask
each other over HTTP)."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from printcloud.cli.common import TenantOpt, emit, err, fail, run, state, table_of

FORMATS = ("table", "json", "csv", "batch-csv", "pdf")
BY_WORDS = {"user": "Person", "printer": "Printer", "tenant": "Whole organisation"}


def report(
    tenant: TenantOpt,
    start: Annotated[str, typer.Option(help="First day, like 2026-12-01 (UTC)")],
    end: Annotated[str, typer.Option(help="The day after the last, like 2027-01-01")],
    by: Annotated[str, typer.Option(help="user, printer or tenant")] = "user",
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="table, json, csv (the usage), batch-csv (the batch runs) or pdf",
        ),
    ] = "table",
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Write to FILE ('-': stdout); pdf needs it"),
    ] = None,
    csv_file: Annotated[
        str | None, typer.Option("--csv", help="The usage as CSV to FILE ('-': stdout)")
    ] = None,
) -> None:
    """What was printed and charged in a period, per person, printer or the tenant,
    and the period's nightly batch runs."""
    from printcloud.core.errors import InvalidRequest, PrintcloudError
    from printcloud.printing.accounting import prices, reports

    if csv_file is not None:
        output_format, output = "csv", csv_file
    if output_format not in FORMATS:
        fail(InvalidRequest(f"--format must be one of {', '.join(FORMATS)}", field="format"))
    if output_format == "pdf" and output is None:
        fail(InvalidRequest("a PDF needs --output FILE", field="output"))
    if state.json and output_format == "table":
        output_format = "json"

    # the progress goes to a terminal's standard error only: stdout may be the report
    shown = err.status("reading the usage and the batch runs") if err.is_terminal else None
    with shown or nullcontext() as status:
        rows, runs, currency, organisation = run(lambda s: _read(s, tenant, start, end, by))
        if output_format == "pdf":
            if status is not None:
                status.update(f"typesetting the report ({len(rows)} lines, {len(runs)} runs)")
            try:
                pdf = _pdf(rows, runs, by, currency, start, end, organisation)
            except PrintcloudError as exc:
                fail(exc)

    if output_format == "pdf":
        _write(output or "-", pdf)
        if output not in (None, "-"):
            err.print(f"wrote {output} ({len(pdf):,} bytes)")
        return
    if output_format == "csv":
        _write(output or "-", reports.csv_text(rows, by=by, currency=currency).encode())
        return
    if output_format == "batch-csv":
        _write(output or "-", reports.batch_csv_text(runs).encode())
        return
    usage = [vars(r) | {"net": r.net, "net_text": prices.money(r.net, currency)} for r in rows]
    batch = [asdict(r) for r in runs]
    if output_format == "json":
        state.json = True
        emit({"currency": currency, "usage": usage, "batch_runs": batch})
        return
    emit(
        None,
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
                for d in usage
            ],
        ),
    )
    emit(
        None,
        table_of(
            f"nightly batch runs of {tenant}, {start} to {end}",
            ["received (UTC)", "job", "state", "documents", "pages", "why it stopped"],
            [
                [
                    r.received_at.strftime("%Y-%m-%d %H:%M"),
                    r.job,
                    r.state,
                    r.documents,
                    r.pages,
                    f"{r.reason} (step {r.step})" if r.reason else "",
                ]
                for r in runs
            ],
        ),
    )


def _read(s: Any, tenant: str, start: str, end: str, by: str) -> tuple[Any, ...]:
    from printcloud.auth import service as auth
    from printcloud.core.errors import Conflict, NotFound
    from printcloud.docgen import service as docgen
    from printcloud.docgen.schemas import BatchRunRead
    from printcloud.printing.accounting import prices, reports

    row = prices.settings_of(s, tenant_id=tenant)
    if row is None:
        raise Conflict("accounting is off for this tenant: set its currency first")
    begin, until = reports.parse_day(start, "start"), reports.parse_day(end, "end")
    rows = reports.usage(s, tenant_id=tenant, start=begin, end=until, by=by)
    found = docgen.batch_runs(s, tenant_id=tenant, start=begin, end=until)
    runs = reports.batch_runs(s, tenant_id=tenant, runs=[BatchRunRead.of(r) for r in found])
    try:
        organisation = auth.get_tenant(s, issuer=state.issuer, tenant_id=tenant).name
    except NotFound:
        organisation = tenant
    return rows, runs, row.currency, organisation


def _pdf(
    rows: Any, runs: Any, by: str, currency: str, start: str, end: str, organisation: str
) -> bytes:
    from printcloud.docgen import usage_report
    from printcloud.printing.accounting import reports

    data = reports.report_data(
        rows,
        runs,
        by=by,
        by_label=BY_WORDS.get(by, by),
        currency=currency,
        start=start,
        end=end,
        organisation=organisation,
    )
    return usage_report.render_pdf(data)


def _write(output: str, data: bytes) -> None:
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(output).write_bytes(data)
