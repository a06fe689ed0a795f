"""`printcloud admin`: tenants, users, clients, settings, consents, printers, IPP queues,
print jobs, prices and accounts, executors, ID cards, directories, signing keys and
webhooks, one module per sub-group; the group's own commands (`purge-expired`,
`bootstrap`) are here."""

from __future__ import annotations

from typing import Annotated

import typer

from printcloud.cli.admin.account import account_cli
from printcloud.cli.admin.card import card_cli
from printcloud.cli.admin.client import client_cli
from printcloud.cli.admin.consent import consent_cli
from printcloud.cli.admin.directory import directory_cli
from printcloud.cli.admin.executor import executor_cli
from printcloud.cli.admin.job import job_cli
from printcloud.cli.admin.key import key_cli
from printcloud.cli.admin.price import price_cli
from printcloud.cli.admin.printer import printer_cli
from printcloud.cli.admin.queue import queue_cli
from printcloud.cli.admin.report import report
from printcloud.cli.admin.settings import settings_cli
from printcloud.cli.admin.tenant import tenant_cli
from printcloud.cli.admin.user import user_cli
from printcloud.cli.admin.webhook import webhook_cli
from printcloud.cli.common import emit, run, state
from printcloud.core.settings import Settings

admin = typer.Typer(
    help="Administer tenants, users, clients, settings, consents, printers and print jobs.",
    no_args_is_help=True,
)
# The order here is the order `printcloud admin --help` lists them in.
admin.add_typer(tenant_cli, name="tenant")
admin.add_typer(user_cli, name="user")
admin.add_typer(client_cli, name="client")
admin.add_typer(settings_cli, name="settings")
admin.add_typer(consent_cli, name="consent")
admin.add_typer(printer_cli, name="printer")
admin.add_typer(queue_cli, name="queue")
admin.add_typer(job_cli, name="job")
admin.add_typer(price_cli, name="price")
admin.add_typer(account_cli, name="account")
admin.command("report")(report)
admin.add_typer(executor_cli, name="executor")
admin.add_typer(card_cli, name="card")
admin.add_typer(directory_cli, name="directory")
admin.add_typer(key_cli, name="key")
admin.add_typer(webhook_cli, name="webhook")


@admin.callback()
def admin_options(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    state.json = as_json


@admin.command("purge-expired")
def purge_expired(
    days: Annotated[
        int, typer.Option(min=0, help="Keep rows expired for less than this many days")
    ] = 1,
) -> None:
    """Delete tokens, codes, sessions and device grants expired for longer than DAYS."""
    from datetime import timedelta

    from printcloud.auth import service

    count = run(lambda s: service.purge_expired(s, older_than=timedelta(days=days)))
    emit({"deleted": count}, message=f"deleted {count} expired rows")


@admin.command("bootstrap")
def bootstrap_clients() -> None:
    """Bring the platform's service clients in line with this environment: their redirect
    URIs follow PRINTCLOUD_PUBLIC_URL, their secrets the instance secret. `serve` does it
    as it starts; other admin commands never do. Run it with the server's environment."""
    from printcloud.auth import service
    from printcloud.stack import prepare

    settings = Settings()
    db = prepare(settings, serving=False)
    try:
        with db.session() as session:
            changes = service.bootstrap(session, settings=settings, reconcile=True)
    finally:
        db.dispose()
    emit(
        {"public_url": settings.public_url, "changed": changes},
        message="\n".join(changes) if changes else "nothing to change",
    )
