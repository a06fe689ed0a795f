"""`printcloud admin queue`: a tenant's IPP Everywhere print queues (issue 14), each shown
with its ipp:// (or ipps://) URI and the one line that adds it on a computer."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.common import TenantOpt, console, emit, run, state, table_of
from printcloud.core.errors import InvalidRequest
from printcloud.core.settings import Settings

queue_cli = typer.Typer(help="IPP Everywhere print queues of a tenant.", no_args_is_help=True)


def queue_dict(q: Any, ipp_url: str) -> dict[str, Any]:
    from printcloud.printing.queues import add_commands, queue_uri

    uri = queue_uri(ipp_url, tenant_id=q.tenant_id, name=q.name)
    commands = add_commands(uri, name=q.name)
    return {
        "name": q.name,
        "printer_id": q.printer_id,
        "follow_me": q.printer_id is None,
        "info": q.info,
        "location": q.location,
        "uuid": q.uuid,
        "job_privacy": q.job_privacy,
        "uri": uri,
        "add_linux": commands.linux,
        "add_macos": commands.macos,
        "add_windows": commands.windows,
    }


@queue_cli.command("add")
def queue_add(
    name: str,
    tenant: TenantOpt,
    printer: Annotated[
        str | None, typer.Option("--printer", help="The tenant's printer it prints on")
    ] = None,
    follow_me: Annotated[
        bool,
        typer.Option(
            "--follow-me", help="Hold jobs until their owner logs in by card at any printer"
        ),
    ] = False,
    info: Annotated[str, typer.Option(help="printer-info shown by clients")] = "",
    location: Annotated[str, typer.Option(help="printer-location shown by clients")] = "",
    private: Annotated[
        bool, typer.Option("--private", help="Other users see none of a user's jobs")
    ] = False,
) -> None:
    """Add a queue on a printer (--printer) or a follow-me queue (--follow-me)."""
    from printcloud.printing import queues

    ipp_url = Settings().ipp_url

    def work(s: Any) -> dict[str, Any]:
        if (printer is None) != follow_me:
            raise InvalidRequest("give either --printer PRINTER or --follow-me", field="printer")
        row = queues.add_queue(
            s,
            tenant_id=tenant,
            name=name,
            printer_id=printer,
            info=info,
            location=location,
            job_privacy="none" if private else "attributes",
        )
        return queue_dict(row, ipp_url)

    data = run(work)
    target = f"printer {printer}" if printer else "follow-me"
    emit(data, message=f"added queue [bold]{name}[/bold] ({target}) to {tenant}")
    if not state.json:
        console.print(f"URI: {data['uri']}", soft_wrap=True)
        console.print(f"add it: {data['add_linux']}", soft_wrap=True, markup=False)


@queue_cli.command("edit")
def queue_edit(
    name: str,
    tenant: TenantOpt,
    printer: Annotated[
        str | None, typer.Option("--printer", help="Print on this printer of the tenant")
    ] = None,
    follow_me: Annotated[
        bool, typer.Option("--follow-me", help="Make it a follow-me queue")
    ] = False,
    info: Annotated[
        str | None, typer.Option(help="printer-info shown by clients ('' for the default)")
    ] = None,
    location: Annotated[
        str | None, typer.Option(help="printer-location shown by clients ('' for the default)")
    ] = None,
    private: Annotated[
        bool | None,
        typer.Option(
            "--private/--not-private", help="Other users see none of a user's jobs (or their state)"
        ),
    ] = None,
) -> None:
    """Change a queue's printer (--printer or --follow-me), info, location or privacy;
    its URI stays."""
    from printcloud.printing import queues

    ipp_url = Settings().ipp_url

    def work(s: Any) -> dict[str, Any]:
        if not follow_me and all(v is None for v in (printer, info, location, private)):
            raise InvalidRequest(
                "give what changes: --printer, --follow-me, --info, --location or --private",
                field="printer",
            )
        row = queues.update_queue(
            s,
            tenant_id=tenant,
            name=name,
            printer_id=printer,
            follow_me=follow_me,
            info=info,
            location=location,
            job_privacy=None if private is None else ("none" if private else "attributes"),
        )
        return queue_dict(row, ipp_url)

    data = run(work)
    target = f"printer {data['printer_id']}" if data["printer_id"] else "follow-me"
    emit(data, message=f"changed queue [bold]{name}[/bold] of {tenant}: {target}")
    if not state.json:
        console.print(f"info: {data['info']}", soft_wrap=True, markup=False)


@queue_cli.command("list")
def queue_list(tenant: TenantOpt) -> None:
    """List a tenant's queues with their URIs and the line that adds each."""
    from printcloud.printing import queues

    ipp_url = Settings().ipp_url
    data = run(lambda s: [queue_dict(q, ipp_url) for q in queues.list_queues(s, tenant_id=tenant)])
    emit(
        data,
        table_of(
            f"IPP queues of {tenant}",
            ["name", "printer", "URI", "add with"],
            [[d["name"], d["printer_id"] or "follow-me", d["uri"], d["add_linux"]] for d in data],
        ),
    )


@queue_cli.command("delete")
def queue_delete(name: str, tenant: TenantOpt) -> None:
    """Delete a queue (jobs it accepted go on)."""
    from printcloud.printing import queues

    run(lambda s: queues.delete_queue(s, tenant_id=tenant, name=name))
    emit({"deleted": name}, message=f"deleted queue {name}")
