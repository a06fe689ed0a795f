"""`printcloud admin client`: a tenant's OAuth clients."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.common import IssuerOpt, TenantOpt, emit, fields_of, in_tenant, run, table_of

client_cli = typer.Typer(help="OAuth clients of a tenant.", no_args_is_help=True)

FormatOpt = Annotated[
    str,
    typer.Option(help="Access tokens: opaque (introspected) | jwt (RFC 9068, checked locally)"),
]
AlgOpt = Annotated[str, typer.Option(help="JWS algorithm of its JWT access tokens: EdDSA | ES256")]


def client_dict(c: Any) -> dict[str, Any]:
    return fields_of(
        c,
        "client_id name kind redirect_uris grant_types scope disabled created_at "
        "access_token_format access_token_alg",
    )


@client_cli.command("create")
def client_create(
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="Display name")],
    issuer: IssuerOpt = "idp-a",
    kind: Annotated[str, typer.Option(help="confidential | public | device")] = "confidential",
    grant: Annotated[
        list[str] | None, typer.Option(help="Grant type (repeat); default by kind")
    ] = None,
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Redirect URI (repeat)")] = None,
    scope: Annotated[
        str, typer.Option(help="Space-separated scopes the client may request")
    ] = "print",
    client_id: Annotated[
        str | None, typer.Option(help="Client ID (generated when omitted)")
    ] = None,
    access_token_format: FormatOpt = "opaque",  # noqa: S107 - a format, not a secret
    access_token_alg: AlgOpt = "EdDSA",  # noqa: S107 - an algorithm
) -> None:
    """Register a client. Its secret is printed once."""
    from printcloud.auth import service

    def work(s: Any) -> dict[str, Any]:
        c, secret = service.create_client(
            s,
            tenant=service.get_tenant(s, issuer=issuer, tenant_id=tenant),
            name=name,
            kind=kind,
            grant_types=grant,
            redirect_uris=redirect_uri,
            scope=scope,
            client_id=client_id,
            actor="cli",
            access_token_format=access_token_format,
            access_token_alg=access_token_alg,
        )
        return {**client_dict(c), "client_secret": secret}

    data = run(work)
    emit(
        data,
        message=f"client_id     [bold]{data['client_id']}[/bold]\nclient_secret "
        f"[bold]{data['client_secret'] or '(public client: none)'}[/bold]  (shown once)",
    )


@client_cli.command("list")
def client_list(tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """List a tenant's clients."""
    from printcloud.auth import service

    data = in_tenant(
        issuer, tenant, lambda s, t: [client_dict(c) for c in service.list_clients(s, tenant=t)]
    )
    emit(
        data,
        table_of(
            f"clients of {tenant}",
            ["client_id", "name", "kind", "grants", "scope"],
            [
                [d["client_id"], d["name"], d["kind"], " ".join(d["grant_types"]), d["scope"]]
                for d in data
            ],
        ),
    )


@client_cli.command("set")
def client_set(
    client_id: str,
    tenant: TenantOpt,
    issuer: IssuerOpt = "idp-a",
    access_token_format: Annotated[
        str | None, typer.Option(help="opaque | jwt (RFC 9068 access tokens)")
    ] = None,
    access_token_alg: Annotated[str | None, typer.Option(help="EdDSA | ES256")] = None,
) -> None:
    """Change a client's access-token format or JWS algorithm (new tokens only)."""
    from printcloud.auth import service

    def work(s: Any) -> dict[str, Any]:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        c = service.update_client(
            s,
            tenant=t,
            client=service.get_client(s, tenant=t, client_id=client_id),
            actor="cli",
            access_token_format=access_token_format,
            access_token_alg=access_token_alg,
        )
        return client_dict(c)

    data = run(work)
    shown = f"{data['access_token_format']} access tokens ({data['access_token_alg']} if JWT)"
    emit(data, message=f"client {client_id}: {shown}")


@client_cli.command("rotate-secret")
def client_rotate(client_id: str, tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """Issue a new secret for a client (the old one stops working)."""
    from printcloud.auth import service

    def work(s: Any) -> dict[str, Any]:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        secret = service.rotate_client_secret(
            s, tenant=t, client=service.get_client(s, tenant=t, client_id=client_id), actor="cli"
        )
        return {"client_id": client_id, "client_secret": secret}

    data = run(work)
    emit(data, message=f"new client_secret [bold]{data['client_secret']}[/bold]  (shown once)")


@client_cli.command("delete")
def client_delete(client_id: str, tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """Delete a client and its tokens."""
    from printcloud.auth import service

    def work(s: Any) -> None:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        service.delete_client(
            s, tenant=t, client=service.get_client(s, tenant=t, client_id=client_id), actor="cli"
        )

    run(work)
    emit({"deleted": client_id}, message=f"deleted client {client_id}")
