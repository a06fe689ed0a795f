"""`printcloud admin directory`: a tenant's directory for card registration (seed 004)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from printcloud.cli.common import IssuerOpt, TenantOpt, emit, run, table_of
from printcloud.core.errors import InvalidRequest
from printcloud.core.settings import Settings

directory_cli = typer.Typer(
    help="A tenant's directory for card registration: its own users or LDAP.",
    no_args_is_help=True,
)


def directory_dict(row: Any) -> dict[str, Any]:
    if row is None:
        return {"kind": "builtin"}
    return {
        "kind": row.kind,
        "url": row.url,
        "base_dn": row.base_dn,
        "user_attr": row.user_attr,
        "object_class": row.object_class,
        "bind_dn": row.bind_dn,
        "has_bind_password": bool(row.bind_password_sealed),
        "name_attr": row.name_attr,
        "mail_attr": row.mail_attr,
        "start_tls": row.start_tls,
        "ca_pem": row.ca_pem,
        "timeout": row.timeout,
    }


@directory_cli.command("show")
def directory_show(tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """Show the tenant's directory (the service-account password is never shown)."""
    from printcloud.auth import cards, service

    def work(s: Any) -> dict[str, Any]:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        return directory_dict(cards.directory_of(s, tenant=t))

    data = run(work)
    emit(
        data,
        table_of(f"directory of {tenant}", ["setting", "value"], [[k, v] for k, v in data.items()]),
    )


@directory_cli.command("set")
def directory_set(
    tenant: TenantOpt,
    kind: Annotated[str, typer.Option(help="builtin (the tenant's users) or ldap")],
    url: Annotated[str, typer.Option(help="ldap://host:port or ldaps://host:port")] = "",
    base_dn: Annotated[str, typer.Option(help="Where users are searched")] = "",
    user_attr: Annotated[str, typer.Option(help="The attribute users type as their name")] = "uid",
    object_class: Annotated[str, typer.Option(help="Users' object class")] = "inetOrgPerson",
    bind_dn: Annotated[str | None, typer.Option(help="Service account that searches")] = None,
    bind_password: Annotated[
        str | None,
        typer.Option(
            envvar="PRINTCLOUD_LDAP_BIND_PASSWORD", help="Its password (stored encrypted)"
        ),
    ] = None,
    name_attr: Annotated[str, typer.Option(help="Attribute for the display name")] = "cn",
    mail_attr: Annotated[str, typer.Option(help="Attribute for the e-mail address")] = "mail",
    start_tls: Annotated[bool, typer.Option(help="Upgrade ldap:// with StartTLS")] = False,
    ca_pem: Annotated[
        Path | None,
        typer.Option(
            help="A PEM file of the CA certificate(s) that verify the server; this command "
            "reads it and stores its text with the directory"
        ),
    ] = None,
    timeout: Annotated[int, typer.Option(min=1, max=60, help="Seconds")] = 5,
    issuer: IssuerOpt = "idp-a",
) -> None:
    """Set the tenant's directory for card registration."""
    from printcloud.auth import cards, service
    from printcloud.core.crypto import SecretBox

    settings = Settings()

    def work(s: Any) -> dict[str, Any]:
        ca_text: str | None = None
        if ca_pem is not None:
            try:
                ca_text = ca_pem.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidRequest(
                    f"ca_pem: cannot read {ca_pem}: {exc}", field="ca_pem"
                ) from exc
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        row = cards.set_directory(
            s,
            tenant=t,
            box=SecretBox(settings.instance_secrets),
            egress=settings.egress_policy,
            actor="cli",
            kind=kind,
            url=url,
            base_dn=base_dn,
            user_attr=user_attr,
            object_class=object_class,
            bind_dn=bind_dn,
            bind_password=bind_password,
            name_attr=name_attr,
            mail_attr=mail_attr,
            start_tls=start_tls,
            ca_pem=ca_text,
            timeout=timeout,
        )
        return directory_dict(row)

    data = run(work)
    emit(data, message=f"directory of {tenant}: {data['kind']} {data.get('url', '')}")


@directory_cli.command("test")
def directory_test(tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """Connect to the tenant's LDAP directory and count its users."""
    from printcloud.auth import cards, service
    from printcloud.auth.directory import check_settings
    from printcloud.core.crypto import SecretBox

    def work(s: Any) -> int:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        row = cards.directory_of(s, tenant=t)
        if row is None or row.kind != "ldap":
            raise InvalidRequest("the tenant's directory is its own user store", field="kind")
        settings = Settings()
        return check_settings(
            cards.ldap_settings(row, SecretBox(settings.instance_secrets)),
            egress=settings.egress_policy,
        )

    users = run(work)
    emit({"users": users}, message=f"the directory answers: {users} users")
