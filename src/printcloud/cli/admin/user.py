"""`printcloud admin user`: a tenant's users."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.common import (
    IssuerOpt,
    TenantOpt,
    emit,
    fields_of,
    in_tenant,
    rows_of,
    run,
    table_of,
)

user_cli = typer.Typer(help="Users of a tenant.", no_args_is_help=True)


def user_dict(u: Any) -> dict[str, Any]:
    return fields_of(u, "username display_name email is_admin disabled created_at last_login_at")


@user_cli.command("create")
def user_create(
    username: str,
    tenant: TenantOpt,
    issuer: IssuerOpt = "idp-a",
    password: Annotated[str | None, typer.Option(help="Password (prompted when omitted)")] = None,
    admin_role: Annotated[bool, typer.Option("--admin", help="Tenant administrator")] = False,
    display_name: Annotated[str, typer.Option(help="Display name")] = "",
    email: Annotated[str, typer.Option(help="E-mail address")] = "",
) -> None:
    """Create a user."""
    from printcloud.auth import service

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    data = run(
        lambda s: user_dict(
            service.create_user(
                s,
                tenant=service.get_tenant(s, issuer=issuer, tenant_id=tenant),
                username=username,
                password=password,
                is_admin=admin_role,
                display_name=display_name,
                email=email,
                actor="cli",
            )
        )
    )
    emit(data, message=f"created user [bold]{username}[/bold] in {tenant}")


@user_cli.command("list")
def user_list(tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """List a tenant's users."""
    from printcloud.auth import service

    data = in_tenant(
        issuer, tenant, lambda s, t: [user_dict(u) for u in service.list_users(s, tenant=t)]
    )
    emit(
        data,
        table_of(
            f"users of {tenant}",
            ["username", "display name", "admin", "disabled", "last login"],
            rows_of(data, "username", "display_name", "is_admin", "disabled", "last_login_at"),
        ),
    )


@user_cli.command("delete")
def user_delete(username: str, tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """Delete a user."""
    from printcloud.auth import service

    def work(s: Any) -> None:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        service.delete_user(
            s, tenant=t, user=service.get_user(s, tenant=t, username=username), actor="cli"
        )

    run(work)
    emit({"deleted": username}, message=f"deleted user {username}")
