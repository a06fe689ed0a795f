"""`printcloud admin executor`: DBOS executors and their leases."""

from __future__ import annotations

from typing import Annotated

import typer

from printcloud.cli.common import emit, table_of
from printcloud.core.settings import Settings

executor_cli = typer.Typer(
    help="DBOS executors (one per printing, CRM, docgen or auth replica) and their leases.",
    no_args_is_help=True,
)


@executor_cli.command("list")
def executor_list(
    service: Annotated[
        str | None, typer.Option(help="Only this service's executors (embedded: 'embedded')")
    ] = None,
) -> None:
    """Every executor's lease: alive, stopped, or taken over (by whom, how many workflows)."""
    from printcloud.core.db import utcnow
    from printcloud.core.executors import ExecutorLease
    from printcloud.stack import prepare

    db = prepare(Settings(), serving=False)
    try:
        leases = ExecutorLease.leases(db, scope=service)
    finally:
        db.dispose()
    now = utcnow()
    data = [
        {
            "service": x.scope,
            "executor_id": x.executor_id,
            "state": x.state,
            "host": x.host,
            "pid": x.pid,
            "app_version": x.app_version,
            "heartbeat_at": x.heartbeat_at,
            "heartbeat_age_seconds": round((now - x.heartbeat_at).total_seconds(), 1),
            "taken_over_by": x.taken_over_by,
            "recovered": x.recovered,
        }
        for x in leases
    ]
    emit(
        data,
        table_of(
            "executors",
            ["service", "executor", "state", "host", "pid", "version", "heartbeat", "taken by"],
            [
                [
                    d["service"],
                    d["executor_id"],
                    d["state"],
                    d["host"],
                    d["pid"],
                    d["app_version"],
                    f"{d['heartbeat_age_seconds']} s ago",
                    f"{d['taken_over_by']} ({d['recovered']} workflows)"
                    if d["taken_over_by"]
                    else "",
                ]
                for d in data
            ],
        ),
    )
