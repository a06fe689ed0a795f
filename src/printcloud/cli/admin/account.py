"""`printcloud admin account`: a tenant's accounts, balances, top-ups, adjustments and
refunds (issue 18). Each movement needs a reason and is recorded with who made it."""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer

from printcloud.cli.common import TenantOpt, emit, run, table_of

account_cli = typer.Typer(
    help="Accounts of a tenant: balances, top-ups, adjustments, refunds.", no_args_is_help=True
)
KindArg = Annotated[str, typer.Argument(help="user, group or shared")]
ReasonOpt = Annotated[str, typer.Option(help="Why (recorded with the movement)")]


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _account_dict(s: Any, holding: Any, currency: str) -> dict[str, Any]:
    from printcloud.printing.accounting import prices

    a = holding.account
    return {
        "kind": a.kind,
        "name": a.name,
        "balance": holding.balance,
        "balance_text": prices.money(holding.balance, currency),
        "overdraft": a.overdraft,
        "allowance": a.allowance,
        "period": a.period,
        "mode": a.mode,
        "members": list(a.members or []),
    }


def _currency(s: Any, tenant: str) -> str:
    from printcloud.core.errors import Conflict
    from printcloud.printing.accounting import prices

    row = prices.settings_of(s, tenant_id=tenant)
    if row is None:
        raise Conflict("accounting is off for this tenant: set its currency first")
    return row.currency


def _show(s: Any, tenant: str, kind: str, name: str) -> dict[str, Any]:
    from printcloud.printing.accounting import ledger

    account = ledger.account_of(s, tenant_id=tenant, kind=kind, name=name)
    ledger.apply_allowance(s, account)
    data = _account_dict(
        s, ledger.Holding(account, ledger.balance(s, account)), _currency(s, tenant)
    )
    data["statement"] = [
        {
            "at": x.at,
            "kind": x.kind,
            "amount": x.amount,
            "job_id": x.job_id,
            "reason": x.reason,
            "actor": x.actor,
        }
        for x in ledger.statement(s, account, limit=20)
    ]
    return data


def _emit_one(data: dict[str, Any]) -> None:
    rows = [
        [x["at"], x["kind"], x["amount"], x["job_id"] or "", x["reason"], x["actor"]]
        for x in data["statement"]
    ]
    emit(
        data,
        table_of(
            f"{data['kind']} account {data['name']}: {data['balance_text']}",
            ["when", "what", "amount", "job", "reason", "by"],
            rows,
        ),
    )


@account_cli.command("list")
def account_list(tenant: TenantOpt) -> None:
    """The tenant's user, group and shared accounts with their balances."""
    from printcloud.printing.accounting import ledger

    def work(s: Any) -> list[dict[str, Any]]:
        currency = _currency(s, tenant)
        rows = ledger.list_accounts(s, tenant_id=tenant)
        return [_account_dict(s, h, currency) for h in ledger.with_balances(s, rows)]

    data = run(work)
    emit(
        data,
        table_of(
            f"accounts of {tenant}",
            ["kind", "name", "balance", "allowance", "overdraft"],
            [
                [
                    d["kind"],
                    d["name"],
                    d["balance_text"],
                    f"{d['allowance']} {d['period']} {d['mode']}",
                    d["overdraft"],
                ]
                for d in data
            ],
        ),
    )


@account_cli.command("show")
def account_show(tenant: TenantOpt, kind: KindArg, name: str) -> None:
    """An account's balance and its latest movements."""
    _emit_one(run(lambda s: _show(s, tenant, kind, name)))


@account_cli.command("set")
def account_set(
    tenant: TenantOpt,
    kind: KindArg,
    name: str,
    overdraft: Annotated[int | None, typer.Option(help="How far below zero it may go")] = None,
    allowance: Annotated[int | None, typer.Option(help="The periodic allowance")] = None,
    period: Annotated[str | None, typer.Option(help="none, daily, weekly or monthly")] = None,
    mode: Annotated[str | None, typer.Option(help="topup or reset")] = None,
    member: Annotated[
        list[str] | None, typer.Option("--member", help="A group's member (repeat; replaces)")
    ] = None,
) -> None:
    """Create or change a user, group or shared account."""
    from printcloud.printing.accounting import ledger

    def work(s: Any) -> dict[str, Any]:
        ledger.save_account(
            s,
            tenant_id=tenant,
            kind=kind,
            name=name,
            overdraft=overdraft,
            allowance=allowance,
            period=period,
            mode=mode,
            members=member,
        )
        return _show(s, tenant, kind, name)

    _emit_one(run(work))


def _move(tenant: str, kind: str, name: str, amount: int, reason: str, how: str) -> None:
    from printcloud.printing.accounting import ledger

    def work(s: Any) -> dict[str, Any]:
        account = ledger.account_of(s, tenant_id=tenant, kind=kind, name=name)
        move = ledger.top_up if how == "topup" else ledger.adjust
        move(s, tenant_id=tenant, account=account, value=amount, actor=_actor(), reason=reason)
        return _show(s, tenant, kind, name)

    _emit_one(run(work))


@account_cli.command("top-up")
def account_top_up(
    tenant: TenantOpt,
    kind: KindArg,
    name: str,
    amount: Annotated[int, typer.Option(help="Minor units, more than zero")],
    reason: ReasonOpt,
) -> None:
    """Add money paid in (minor units, more than zero)."""
    _move(tenant, kind, name, amount, reason, "topup")


@account_cli.command("adjust")
def account_adjust(
    tenant: TenantOpt,
    kind: KindArg,
    name: str,
    amount: Annotated[int, typer.Option(help="Minor units; negative takes money away")],
    reason: ReasonOpt,
) -> None:
    """Correct a balance either way."""
    _move(tenant, kind, name, amount, reason, "adjust")


@account_cli.command("refund")
def account_refund(
    tenant: TenantOpt,
    job_id: str,
    reason: ReasonOpt,
    amount: Annotated[
        int | None, typer.Option(help="Minor units (default: all that is left)")
    ] = None,
) -> None:
    """Give back part or all of a job's charge to whoever paid it."""
    from printcloud.printing.accounting import charging

    def work(s: Any) -> dict[str, Any]:
        charging.refund(
            s, tenant_id=tenant, job_id=job_id, actor=_actor(), reason=reason, value=amount
        )
        return {"job_id": job_id, "charged": charging.charged(s, tenant_id=tenant, job_id=job_id)}

    data = run(work)
    emit(data, message=f"refunded; the job's charge is now {data['charged']}")
