"""`printcloud admin webhook`: a tenant's signed webhooks (issue 18, docs/webhooks.md).

The commands work in the database, as the admin API does; the running print service
sends what they queue (a test event) within its poll interval."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer

from printcloud.cli.common import TenantOpt, emit, rows_of, run, table_of
from printcloud.core.settings import Settings

webhook_cli = typer.Typer(
    help="Signed webhooks of a tenant: job, batch-request and account events.",
    no_args_is_help=True,
)
SubscriptionArg = Annotated[str, typer.Argument(help="The subscription's ID (ep_…)")]


def webhook_dict(row: Any) -> dict[str, Any]:
    return {
        "subscription_id": row.subscription_id,
        "url": row.url,
        "event_types": list(row.event_types),
        "enabled": row.enabled,
        "description": row.description,
        "failing_since": row.failing_since,
        "last_success_at": row.last_success_at,
        "disabled_reason": row.disabled_reason,
    }


def _box() -> Any:
    from printcloud.core.crypto import SecretBox

    return SecretBox(Settings().instance_secrets)


@webhook_cli.command("add")
def webhook_add(
    url: Annotated[str, typer.Argument(help="Where the events are POSTed (http or https)")],
    tenant: TenantOpt,
    event: Annotated[
        list[str],
        typer.Option("--event", help="An event type to send (repeat); see `event-types`"),
    ],
    description: Annotated[str, typer.Option(help="What it is for")] = "",
) -> None:
    """Subscribe URL to the tenant's events; prints the signing secret, this once."""
    from printcloud.webhooks import service

    def work(s: Any) -> dict[str, Any]:
        row, secret = service.add(
            s,
            tenant_id=tenant,
            url=url,
            event_types=event,
            description=description,
            box=_box(),
            egress=Settings().egress_policy,
            by="cli",
        )
        return {**webhook_dict(row), "secret": secret}

    data = run(work)
    emit(
        data,
        message=f"added [bold]{data['subscription_id']}[/bold] → {data['url']}\n"
        f"signing secret (shown once; give it to the receiver): {data['secret']}",
    )


@webhook_cli.command("list")
def webhook_list(tenant: TenantOpt) -> None:
    """The tenant's subscriptions, on or off, and since when they fail."""
    from printcloud.webhooks import service

    data = run(lambda s: [webhook_dict(r) for r in service.list_subscriptions(s, tenant_id=tenant)])
    for item in data:
        item["events"] = ", ".join(item["event_types"])
        item["state"] = "on" if item["enabled"] else f"off: {item['disabled_reason']}"
    emit(
        data,
        table_of(
            f"webhooks of {tenant}",
            ["ID", "URL", "events", "state", "failing since"],
            rows_of(data, "subscription_id", "url", "events", "state", "failing_since"),
        ),
    )


@webhook_cli.command("event-types")
def webhook_event_types() -> None:
    """What a subscription may ask for."""
    from printcloud.webhooks import EVENT_TYPES

    data = [{"type": t, "description": d} for t, d in EVENT_TYPES.items()]
    emit(
        data,
        table_of(
            "webhook event types", ["type", "sent when"], rows_of(data, "type", "description")
        ),
    )


@webhook_cli.command("delete")
def webhook_delete(subscription_id: SubscriptionArg, tenant: TenantOpt) -> None:
    """Delete a subscription and its delivery log."""
    from printcloud.webhooks import service

    run(lambda s: service.remove(s, tenant_id=tenant, subscription_id=subscription_id, by="cli"))
    emit({"deleted": subscription_id}, message=f"deleted {subscription_id}")


@webhook_cli.command("rotate")
def webhook_rotate(
    subscription_id: SubscriptionArg,
    tenant: TenantOpt,
    overlap: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seconds the current secret keeps signing beside the new one "
            "(default: PRINTCLOUD_WEBHOOK_ROTATION_OVERLAP, a day; 0: it stops now)",
        ),
    ] = None,
) -> None:
    """A new signing secret, printed this once; the current one overlaps it."""
    from printcloud.webhooks import service

    settings = Settings()
    seconds = settings.webhook_rotation_overlap if overlap is None else overlap

    def work(s: Any) -> dict[str, Any]:
        row, secret = service.rotate(
            s,
            tenant_id=tenant,
            subscription_id=subscription_id,
            box=_box(),
            by="cli",
            overlap=timedelta(seconds=seconds),
        )
        return {
            "subscription_id": row.subscription_id,
            "secret": secret,
            "previous_secret_until": row.previous_until,
        }

    data = run(work)
    until = data["previous_secret_until"]
    emit(
        data,
        message=f"new signing secret (shown once): {data['secret']}\n"
        + (
            f"the previous secret signs too until {until:%Y-%m-%d %H:%M} UTC"
            if until
            else "the previous secret no longer signs"
        ),
    )


@webhook_cli.command("test")
def webhook_test(subscription_id: SubscriptionArg, tenant: TenantOpt) -> None:
    """Queue a `webhook.test` event for the subscription (the print service sends it)."""
    from printcloud.webhooks import service

    message_id = run(
        lambda s: service.send_test(s, tenant_id=tenant, subscription_id=subscription_id, by="cli")
    )
    emit(
        {"message_id": message_id},
        message=f"queued test event {message_id}; see `printcloud admin webhook log "
        f"{subscription_id} --tenant {tenant}`",
    )


@webhook_cli.command("enable")
def webhook_enable(
    subscription_id: SubscriptionArg,
    tenant: TenantOpt,
    off: Annotated[bool, typer.Option("--off", help="Turn it off instead")] = False,
) -> None:
    """Turn a subscription on again (after the platform turned it off), or --off."""
    from printcloud.webhooks import service

    data = run(
        lambda s: webhook_dict(
            service.update(
                s,
                tenant_id=tenant,
                subscription_id=subscription_id,
                by="cli",
                egress=Settings().egress_policy,
                enabled=not off,
            )
        )
    )
    emit(data, message=f"{subscription_id} is {'on' if data['enabled'] else 'off'}")


@webhook_cli.command("log")
def webhook_log(
    subscription_id: SubscriptionArg,
    tenant: TenantOpt,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
) -> None:
    """The latest deliveries, each with its last answer."""
    from printcloud.webhooks import service

    def work(s: Any) -> list[dict[str, Any]]:
        entries = service.delivery_log(
            s, tenant_id=tenant, subscription_id=subscription_id, limit=limit
        )
        return [
            {
                "message_id": e.message_id,
                "event_type": e.event_type,
                "created_at": e.created_at,
                "state": e.state,
                "attempts": e.attempts,
                "status_code": e.last.status_code if e.last else None,
                "error": e.last.error if e.last else "",
                "duration_ms": e.last.duration_ms if e.last else None,
            }
            for e in entries
        ]

    data = run(work)
    emit(
        data,
        table_of(
            f"deliveries to {subscription_id}",
            ["message", "event", "at", "state", "attempts", "last answer", "ms"],
            rows_of(
                data,
                "message_id",
                "event_type",
                "created_at",
                "state",
                "attempts",
                "status_code",
                "duration_ms",
            ),
        ),
    )
