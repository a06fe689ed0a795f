"""`printcloud admin card`: ID cards bound to users, and their expiry (seed 004)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from printcloud.cli.common import IssuerOpt, TenantOpt, emit, in_tenant, rows_of, run, table_of

card_cli = typer.Typer(help="ID cards bound to users (seed 004).", no_args_is_help=True)


def card_dict(b: Any, retention_days: int) -> dict[str, Any]:
    from datetime import timedelta

    return {
        "id": b.pk,
        "username": b.user.username,
        "hint": b.hint,
        "directory": b.directory,
        "registered_by": b.registered_by,
        "created_at": b.created_at,
        "last_login_at": b.last_login_at,
        "expires_at": b.last_login_at + timedelta(days=retention_days),
    }


@card_cli.command("list")
def card_list(
    tenant: TenantOpt,
    search: Annotated[str | None, typer.Option(help="User name or card hint")] = None,
    issuer: IssuerOpt = "idp-a",
) -> None:
    """List a tenant's card bindings, most recently used first."""
    from printcloud.auth import cards

    def work(s: Any, t: Any) -> list[dict[str, Any]]:
        return [
            card_dict(b, t.card_retention_days)
            for b in cards.list_bindings(s, tenant=t, text=search)
        ]

    data = in_tenant(issuer, tenant, work)
    emit(
        data,
        table_of(
            f"cards of {tenant}",
            ["id", "user", "card", "directory", "last login", "deleted after"],
            rows_of(data, "id", "username", "hint", "directory", "last_login_at", "expires_at"),
        ),
    )


@card_cli.command("delete")
def card_delete(card_id: int, tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """Delete a card binding (the card must be registered again)."""
    from printcloud.auth import cards, service

    def work(s: Any) -> None:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        cards.delete_binding(s, tenant=t, binding_pk=card_id, actor="cli")

    run(work)
    emit({"deleted": card_id}, message=f"deleted card binding {card_id}")


@card_cli.command("expire")
def card_expire(
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Pretend it is this time (ISO 8601), to see what the period will delete",
        ),
    ] = None,
) -> None:
    """Delete every card binding unused for longer than its tenant's period (what the
    hourly housekeeping does), each audit-logged."""
    from datetime import UTC, datetime

    from printcloud.auth import cards

    now = None
    if as_of:
        try:
            now = datetime.fromisoformat(as_of)
        except ValueError as exc:
            raise typer.BadParameter(
                "use ISO 8601, e.g. 2027-01-31T12:00", param_hint="--as-of"
            ) from exc
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    gone = run(lambda s: cards.expire_bindings(s, now=now))
    data = [{"tenant": t, "username": u, "card": h} for t, u, h in gone]
    emit(
        data,
        table_of(
            "expired card bindings",
            ["tenant", "user", "card"],
            rows_of(data, "tenant", "username", "card"),
        ),
    )
