"""`printcloud admin settings`: a tenant's settings (seeds 001, 002, 004, held release)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.admin.tenant import tenant_dict
from printcloud.cli.common import IssuerOpt, TenantOpt, emit, run, table_of

settings_cli = typer.Typer(help="Tenant settings.", no_args_is_help=True)


@settings_cli.command("show")
def settings_show(tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """Show a tenant's settings."""
    from printcloud.auth import service

    data = run(lambda s: tenant_dict(service.get_tenant(s, issuer=issuer, tenant_id=tenant)))
    emit(
        data,
        table_of(f"settings of {tenant}", ["setting", "value"], [[k, v] for k, v in data.items()]),
    )


@settings_cli.command("set")
def settings_set(
    tenant: TenantOpt,
    issuer: IssuerOpt = "idp-a",
    local_auth_cooperation: Annotated[
        bool | None,
        typer.Option(
            "--local-auth-cooperation/--no-local-auth-cooperation",
            help="Seed 001: resource servers act as the device's local user",
        ),
    ] = None,
    users_may_grant_tenant_consent: Annotated[
        bool | None,
        typer.Option(
            "--users-may-grant-tenant-consent/--only-admins-grant-tenant-consent",
            help="Seed 002: who may grant tenant-wide consent",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    card_retention_days: Annotated[
        int | None,
        typer.Option(help="Seed 004: days a card may go unused before its binding is deleted"),
    ] = None,
    held_release: Annotated[
        str | None,
        typer.Option(
            help="Who may release held jobs at a printer: card_or_owner (a card login or the "
            "owner's own token) or device_local_auth (also the device's own local user)"
        ),
    ] = None,
) -> None:
    """Change a tenant's settings."""
    from printcloud.auth import service

    def work(s: Any) -> dict[str, Any]:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        service.update_tenant_settings(
            s,
            tenant=t,
            actor="cli",
            name=name,
            local_auth_cooperation=local_auth_cooperation,
            users_may_grant_tenant_consent=users_may_grant_tenant_consent,
            card_retention_days=card_retention_days,
            held_release=held_release,
        )
        return tenant_dict(t)

    data = run(work)
    emit(
        data,
        table_of(f"settings of {tenant}", ["setting", "value"], [[k, v] for k, v in data.items()]),
    )
