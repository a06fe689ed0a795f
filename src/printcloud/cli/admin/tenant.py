"""`printcloud admin tenant`: create, list and delete tenants."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.common import IssuerOpt, emit, fields_of, rows_of, run, table_of

tenant_cli = typer.Typer(help="Tenants.", no_args_is_help=True)


def tenant_dict(t: Any) -> dict[str, Any]:
    return fields_of(
        t,
        "issuer tenant_id name created_at local_auth_cooperation"
        " users_may_grant_tenant_consent card_retention_days held_release",
    )


@tenant_cli.command("create")
def tenant_create(
    tenant_id: str,
    issuer: IssuerOpt = "idp-a",
    name: Annotated[str, typer.Option(help="Display name")] = "",
) -> None:
    """Create a tenant."""
    from printcloud.auth import service

    data = run(
        lambda s: tenant_dict(
            service.create_tenant(s, issuer=issuer, tenant_id=tenant_id, name=name, actor="cli")
        )
    )
    emit(data, message=f"created tenant [bold]{tenant_id}[/bold] at {issuer}")


@tenant_cli.command("list")
def tenant_list(issuer: IssuerOpt = "idp-a") -> None:
    """List tenants."""
    from printcloud.auth import service

    data = run(lambda s: [tenant_dict(t) for t in service.list_tenants(s, issuer=issuer)])
    emit(
        data,
        table_of(
            f"tenants at {issuer}",
            ["tenant_id", "name", "local auth cooperation"],
            rows_of(data, "tenant_id", "name", "local_auth_cooperation"),
        ),
    )


@tenant_cli.command("delete")
def tenant_delete(tenant_id: str, issuer: IssuerOpt = "idp-a") -> None:
    """Delete a tenant and everything it owns."""
    from printcloud.auth import service

    run(
        lambda s: service.delete_tenant(
            s, tenant=service.get_tenant(s, issuer=issuer, tenant_id=tenant_id), actor="cli"
        )
    )
    emit({"deleted": tenant_id}, message=f"deleted tenant {tenant_id}")
