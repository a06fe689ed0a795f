"""`printcloud admin price`: a tenant's accounting settings and price list (issue 18).

Amounts are whole minor units of the tenant's currency (cents for EUR)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.common import TenantOpt, emit, fields_of, run, table_of

price_cli = typer.Typer(
    help="Accounting settings and the price list of a tenant.", no_args_is_help=True
)

_SETTINGS = "currency on_insufficient low_balance allowance period mode overdraft"


@price_cli.command("settings")
def price_settings(
    tenant: TenantOpt,
    currency: Annotated[
        str | None, typer.Option(help="ISO 4217 code (EUR); setting it turns accounting on")
    ] = None,
    on_insufficient: Annotated[
        str | None,
        typer.Option("--on-insufficient", help="refuse (402) or hold a job nobody can pay for"),
    ] = None,
    low_balance: Annotated[
        int | None, typer.Option("--low-balance", help="Below this: the low balance event")
    ] = None,
    allowance: Annotated[int | None, typer.Option(help="A new user's allowance")] = None,
    period: Annotated[str | None, typer.Option(help="none, daily, weekly or monthly")] = None,
    mode: Annotated[str | None, typer.Option(help="topup or reset")] = None,
    overdraft: Annotated[int | None, typer.Option(help="A new user's overdraft")] = None,
) -> None:
    """Show the tenant's accounting settings, or change those given."""
    from printcloud.printing.accounting import prices

    given = (currency, on_insufficient, low_balance, allowance, period, mode, overdraft)

    def work(s: Any) -> dict[str, Any]:
        if any(v is not None for v in given):
            row = prices.configure(
                s,
                tenant_id=tenant,
                currency=currency,
                on_insufficient=on_insufficient,
                low_balance=low_balance,
                allowance=allowance,
                period=period,
                mode=mode,
                overdraft=overdraft,
            )
            return {"enabled": True, **fields_of(row, _SETTINGS)}
        found = prices.settings_of(s, tenant_id=tenant)
        if found is None:
            return {"enabled": False}
        return {"enabled": True, **fields_of(found, _SETTINGS)}

    data = run(work)
    if not data["enabled"]:
        emit(data, message=f"accounting is off for {tenant} (no currency set)")
        return
    emit(
        data,
        table_of(
            f"accounting of {tenant}",
            ["setting", "value"],
            [[k, data[k]] for k in _SETTINGS.split()],
        ),
    )


@price_cli.command("list")
def price_list(tenant: TenantOpt) -> None:
    """The tenant's prices per impression (minor units)."""
    from printcloud.printing.accounting import prices

    names = "printer_id media mono color duplex_mono duplex_color"
    data = run(lambda s: [fields_of(p, names) for p in prices.list_prices(s, tenant_id=tenant)])
    emit(
        data,
        table_of(
            f"prices of {tenant}",
            ["printer", "media", "mono", "color", "duplex mono", "duplex color"],
            [
                [d["printer_id"] or "any", d["media"] or "any", *[d[k] for k in names.split()[2:]]]
                for d in data
            ],
        ),
    )


@price_cli.command("set")
def price_set(
    tenant: TenantOpt,
    mono: Annotated[int, typer.Option(help="Per black-and-white impression")],
    color: Annotated[int, typer.Option(help="Per color impression")],
    duplex_mono: Annotated[int | None, typer.Option("--duplex-mono")] = None,
    duplex_color: Annotated[int | None, typer.Option("--duplex-color")] = None,
    printer: Annotated[str, typer.Option(help="Only on this printer (default: any)")] = "",
    media: Annotated[str, typer.Option(help="Only on this medium, e.g. A3 (default: any)")] = "",
) -> None:
    """Set one price: the most specific (printer and medium) applies to a job."""
    from printcloud.printing.accounting import prices

    names = "printer_id media mono color duplex_mono duplex_color"
    data = run(
        lambda s: fields_of(
            prices.set_price(
                s,
                tenant_id=tenant,
                mono=mono,
                color=color,
                duplex_mono=duplex_mono,
                duplex_color=duplex_color,
                printer_id=printer,
                media=media,
            ),
            names,
        )
    )
    emit(data, message=f"price set for printer {printer or 'any'}, media {media or 'any'}")


@price_cli.command("delete")
def price_delete(
    tenant: TenantOpt,
    printer: Annotated[str, typer.Option(help="The price's printer (default: any)")] = "",
    media: Annotated[str, typer.Option(help="The price's medium (default: any)")] = "",
) -> None:
    """Delete one price."""
    from printcloud.printing.accounting import prices

    run(lambda s: prices.delete_price(s, tenant_id=tenant, printer_id=printer, media=media))
    emit({"deleted": True}, message="price deleted")
