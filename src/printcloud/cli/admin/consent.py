"""`printcloud admin consent`: tenant-wide and per-user consents (seed 002)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.common import (
    IssuerOpt,
    TenantOpt,
    console,
    emit,
    in_tenant,
    rows_of,
    run,
    state,
    table_of,
)

consent_cli = typer.Typer(
    help="Tenant-wide and per-user consents (seed 002).", no_args_is_help=True
)


def consent_dict(c: Any) -> dict[str, Any]:
    return {
        "id": c.pk,
        "client_id": c.client.client_id,
        "client_name": c.client.name,
        "scope": c.scope,
        "granted_by": c.granted_by,
        "granted_at": c.granted_at,
        "revoked_by": c.revoked_by,
        "revoked_at": c.revoked_at,
    }


@consent_cli.command("list")
def consent_list(
    tenant: TenantOpt,
    issuer: IssuerOpt = "idp-a",
    history: Annotated[bool, typer.Option(help="Include revoked consents")] = False,
) -> None:
    """List tenant-wide consents (who granted them, when) and per-user consents."""
    from printcloud.auth import service

    def work(s: Any, t: Any) -> dict[str, Any]:
        return {
            "tenant_wide": [
                consent_dict(c)
                for c in service.list_tenant_consents(s, tenant=t, include_revoked=history)
            ],
            "per_user": [
                {
                    "id": c.pk,
                    "username": u.username,
                    "client_id": cl.client_id,
                    "scope": c.scope,
                    "granted_at": c.granted_at,
                }
                for c, u, cl in service.list_user_consents(s, tenant=t)
            ],
        }

    data = in_tenant(issuer, tenant, work)
    emit(
        data,
        table_of(
            f"tenant-wide consents of {tenant}",
            ["id", "client", "scope", "granted by", "granted at", "revoked"],
            rows_of(
                data["tenant_wide"],
                *("id", "client_name", "scope", "granted_by", "granted_at", "revoked_at"),
            ),
        ),
    )
    if not state.json and data["per_user"]:
        console.print(
            table_of(
                "per-user consents",
                ["id", "user", "client", "scope", "granted at"],
                rows_of(data["per_user"], "id", "username", "client_id", "scope", "granted_at"),
            )()
        )


@consent_cli.command("revoke")
def consent_revoke(
    consent_id: int,
    tenant: TenantOpt,
    issuer: IssuerOpt = "idp-a",
    per_user: Annotated[bool, typer.Option("--per-user", help="A per-user consent")] = False,
) -> None:
    """Revoke a tenant-wide (default) or per-user consent."""
    from printcloud.auth import service

    def work(s: Any) -> None:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        if per_user:
            service.revoke_user_consent(s, tenant=t, consent_pk=consent_id, actor="cli")
        else:
            service.revoke_tenant_consent(s, tenant=t, consent_pk=consent_id, actor="cli")

    run(work)
    emit({"revoked": consent_id}, message=f"revoked consent {consent_id}")
