"""`printcloud admin printer`: a tenant's printers (seed 003, PRT001)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.common import TenantOpt, emit, fields_of, run, table_of
from printcloud.core.errors import InvalidRequest, NotFound
from printcloud.core.settings import Settings

printer_cli = typer.Typer(help="Printers of a tenant (seed 003, PRT001).", no_args_is_help=True)


def printer_dict(p: Any) -> dict[str, Any]:
    return fields_of(p, "printer_id name color client_id push_url location last_seen_at")


def check_device_client(s: Any, *, tenant: str, client_id: str) -> None:
    """`client_id` is a device client of `tenant` at idp-a: 400 naming `client_id` for
    another kind of client, 404 naming it for an unknown one (another tenant's too)."""
    from printcloud.auth import service as auth_service

    t = auth_service.get_tenant(s, issuer="idp-a", tenant_id=tenant)
    try:
        client = auth_service.get_client(s, tenant=t, client_id=client_id)
    except NotFound as exc:
        raise NotFound(
            f"client_id {client_id!r} is not a client of tenant {tenant!r}", field="client_id"
        ) from exc
    if client.kind != "device":
        raise InvalidRequest(
            f"client {client_id!r} is a {client.kind} client; a printer needs a device client",
            field="client_id",
        )


@printer_cli.command("add")
def printer_add(
    printer_id: str,
    tenant: TenantOpt,
    client_id: Annotated[
        str, typer.Option("--client-id", help="The device client (of the tenant) that drives it")
    ],
    name: Annotated[str, typer.Option(help="Display name")] = "",
    mono: Annotated[bool, typer.Option("--mono", help="A monochrome printer")] = False,
    push_url: Annotated[
        str | None, typer.Option("--push-url", help="Where print requests are pushed")
    ] = None,
    location: Annotated[str, typer.Option(help="Where it stands")] = "",
) -> None:
    """Register a printer and the device client that drives it."""
    from printcloud.printing import service

    def work(s: Any) -> dict[str, Any]:
        check_device_client(s, tenant=tenant, client_id=client_id)
        row = service.add_printer(
            s,
            tenant_id=tenant,
            printer_id=printer_id,
            name=name,
            color=not mono,
            client_id=client_id,
            push_url=push_url,
            location=location,
            egress=Settings().egress_policy,
        )
        return printer_dict(row)

    from rich.markup import escape

    from printcloud.printing.infra import infra_uri

    data = run(work)
    # what an IPP INFRA proxy or printer is given (docs/infra.md): this URI, an
    # output-device-uuid of its own, and the device client's id and secret
    data["infra_uri"] = infra_uri(Settings().public_url, tenant_id=tenant, printer_id=printer_id)
    kind = "mono" if mono else "color"
    emit(
        data,
        message=f"added {kind} printer [bold]{printer_id}[/bold] to {tenant}\n"
        f"IPP INFRA (a proxy or printer that fetches its jobs): {data['infra_uri']}\n"
        f"  authenticated as device client {client_id} (its secret, or a token with scope "
        "device); output-device-uuid: a urn:uuid: of the device's own\n"
        + escape(
            f"  printcloud's own proxy: printcloud device --protocol infra --tenant {tenant} "
            f"--printer-id {printer_id} --client-id {client_id} [--forward ipp://PRINTER/…]"
        ),
    )


@printer_cli.command("set")
def printer_set(
    printer_id: str,
    tenant: TenantOpt,
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    color: Annotated[
        bool | None,
        typer.Option("--color/--mono", help="Prints in color, or black and white only"),
    ] = None,
    location: Annotated[str | None, typer.Option(help="Where it stands ('' clears it)")] = None,
    client_id: Annotated[
        str | None,
        typer.Option("--client-id", help="The device client (of the tenant) that drives it"),
    ] = None,
    push_url: Annotated[
        str | None,
        typer.Option("--push-url", help="Where print requests are pushed ('' : it polls)"),
    ] = None,
) -> None:
    """Change a printer: its name, color, location, device client or push URL."""
    from printcloud.printing import service

    if all(v is None for v in (name, color, location, client_id, push_url)):
        raise typer.BadParameter(
            "give at least one of --name, --color/--mono, --location, --client-id, --push-url"
        )

    def work(s: Any) -> dict[str, Any]:
        if client_id is not None:
            check_device_client(s, tenant=tenant, client_id=client_id)
        row = service.update_printer(
            s,
            tenant_id=tenant,
            printer_id=printer_id,
            name=name,
            color=color,
            location=location,
            client_id=client_id,
            push_url=push_url or None,
            clear_push_url=push_url == "",
            egress=Settings().egress_policy,
        )
        return printer_dict(row)

    data = run(work)
    kind = "color" if data["color"] else "mono"
    emit(data, message=f"changed {kind} printer [bold]{printer_id}[/bold] of {tenant}")


@printer_cli.command("list")
def printer_list(tenant: TenantOpt) -> None:
    """List a tenant's printers."""
    from printcloud.core import words
    from printcloud.printing import service

    poll = Settings().device_poll_interval

    def status(p: Any) -> str:
        seen = service.presence(p, poll_interval=poll)
        when = seen.last_seen.strftime("%Y-%m-%d %H:%M:%S UTC") if seen.last_seen else None
        return words.printer_status(seen.online, when)

    rows = run(
        lambda s: [(printer_dict(p), status(p)) for p in service.list_printers(s, tenant_id=tenant)]
    )
    data = [d for d, _ in rows]
    said = {d["printer_id"]: text for d, text in rows}
    emit(
        data,
        table_of(
            f"printers of {tenant}",
            ["printer_id", "name", "color", "device client", "push URL", "status"],
            [
                [
                    d["printer_id"],
                    d["name"],
                    "color" if d["color"] else "mono",
                    d["client_id"],
                    d["push_url"],
                    said[d["printer_id"]],
                ]
                for d in data
            ],
        ),
    )


@printer_cli.command("delete")
def printer_delete(printer_id: str, tenant: TenantOpt) -> None:
    """Delete a printer (refused while it has unfinished jobs)."""
    from printcloud.printing import service

    run(lambda s: service.delete_printer(s, tenant_id=tenant, printer_id=printer_id))
    emit({"deleted": printer_id}, message=f"deleted printer {printer_id}")
