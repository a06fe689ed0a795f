"""`printcloud admin job`: a tenant's print jobs and their history (seed 003)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.common import TenantOpt, emit, fields_of, run, table_of
from printcloud.core import words

job_cli = typer.Typer(help="Print jobs of a tenant.", no_args_is_help=True)


def job_dict(j: Any) -> dict[str, Any]:
    return fields_of(
        j,
        "job_id printer_id owner title state reason page_count pages_printed created_at"
        " finished_at",
    )


@job_cli.command("list")
def job_list(
    tenant: TenantOpt,
    job_state: Annotated[str | None, typer.Option("--state", help="Only this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List a tenant's print jobs, newest first."""
    from printcloud.printing import service

    data = run(
        lambda s: [
            job_dict(j)
            for j in service.list_jobs(
                s, tenant_id=tenant, states=(job_state,) if job_state else None, limit=limit
            )
        ]
    )
    emit(
        data,
        table_of(
            f"print jobs of {tenant}",
            ["job_id", "printer", "owner", "title", "state", "reason", "pages"],
            [
                [
                    d["job_id"],
                    d["printer_id"],
                    d["owner"],
                    d["title"],
                    words.state_label(d["state"]),
                    words.reason_text(d["reason"]),
                    f"{d['pages_printed']}/{d['page_count'] or '?'}",
                ]
                for d in data
            ],
        ),
    )


@job_cli.command("show")
def job_show(job_id: str, tenant: TenantOpt) -> None:
    """A job with its history: each step, its outcome and the worker that served it."""
    from printcloud.printing import service

    def work(s: Any) -> dict[str, Any]:
        job = service.get_job(s, tenant_id=tenant, job_id=job_id)
        history = [
            {"at": e.at, "step": e.step, "state": e.state, "worker": e.worker, "detail": e.detail}
            for e in service.events(s, tenant_id=tenant, job_id=job_id)
        ]
        return {**job_dict(job), "history": history}

    data = run(work)
    said = words.job_said(data["state"], data["reason"])
    # Plain words first; the step IDs and workers after them, for the administrator.
    emit(
        data,
        table_of(
            f"job {job_id}: {said.label}" + (f" ({said.reason})" if said.reason else ""),
            ["at", "what happened", "state", "step", "worker", "detail"],
            [
                [
                    e["at"],
                    words.step_label(e["step"], e["state"]),
                    words.state_label(e["state"]),
                    e["step"],
                    e["worker"] or "",
                    e["detail"],
                ]
                for e in data["history"]
            ],
        ),
    )
