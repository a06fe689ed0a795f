"""The `printcloud` command: serve, cluster, demo, admin, device, deploy-files, version."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from printcloud import __version__
from printcloud.core.errors import InvalidRequest, PrintcloudError
from printcloud.core.settings import Settings

app = typer.Typer(
    help="printcloud: multi-tenant cloud printing.", no_args_is_help=True, add_completion=False
)
admin = typer.Typer(
    help="Administer tenants, users, clients, settings, consents, printers and print jobs.",
    no_args_is_help=True,
)
app.add_typer(admin, name="admin")
console = Console()
err = Console(stderr=True)


class State:
    json: bool = False
    issuer: str = "idp-a"


state = State()


def main() -> None:
    # `--json` belongs to the admin group but may be written after any admin command
    # (`printcloud admin tenant list --json`): move it where click expects it.
    args = sys.argv[1:]
    if args[:1] == ["admin"] and "--json" in args[1:]:
        args = ["admin", "--json", *[a for a in args[1:] if a != "--json"]]
    app(args=args, prog_name="printcloud")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"printcloud {__version__}")


@app.command()
def serve(
    service: Annotated[
        str | None,
        typer.Option(help="Run one service only (auth, crm, printing, convert); default: all"),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (PRINTCLOUD_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PRINTCLOUD_PORT)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="HTTP worker processes (PRINTCLOUD_HTTP_WORKERS)")
    ] = None,
) -> None:
    """Run the platform: every service in one process (embedded), or one service."""
    import os

    from granian.constants import Interfaces, RuntimeModes
    from granian.log import LogLevels
    from granian.server import Server

    from printcloud.stack import SERVICES, prepare

    if service is not None and service not in SERVICES:
        err.print(
            f"[red]error[/red] unknown service {service!r}; choose from {', '.join(SERVICES)}"
        )
        raise typer.Exit(2)
    if service:
        os.environ["PRINTCLOUD_SERVICE"] = service
    settings = Settings()
    http_workers = workers or settings.http_workers
    if http_workers > 1 and service in (None, "printing") and settings.run_workflows:
        # Each HTTP worker process would run its own workflow executor and conversion pool
        # under the same executor id; conversions already use every core through the pool.
        err.print(
            "[red]error[/red] the print service runs its workflows in one process: serve it "
            "with --workers 1 (its conversion pool uses the other cores), or run "
            "`--service auth` with more workers beside it"
        )
        raise typer.Exit(2)
    prepare(settings).dispose()  # migrations once, before the workers start
    server = Server(
        "printcloud.stack:app_factory",
        factory=True,
        interface=Interfaces.ASGI,
        address=host or settings.host,
        port=port or settings.port,
        workers=http_workers,
        runtime_threads=1,
        runtime_mode=RuntimeModes.st,
        log_level=LogLevels(settings.log_level.lower()),
        log_access=False,
        respawn_failed_workers=True,
    )
    console.print(
        f"printcloud {__version__} serving {service or 'every service'} at "
        f"http://{host or settings.host}:{port or settings.port} "
        f"(public URL {settings.public_url})"
    )
    server.serve()


@app.command()
def cluster(
    balancer: Annotated[
        str, typer.Option(help="The real balancer in front: nginx or haproxy")
    ] = "nginx",
    convert_workers: Annotated[
        int, typer.Option(min=1, max=64, help="Conversion worker processes")
    ] = 2,
    printing: Annotated[
        int, typer.Option(min=1, max=16, help="Print service replicas (DBOS executors)")
    ] = 2,
    policy: Annotated[
        str, typer.Option(help="How the conversion tier is balanced: round-robin or least-conn")
    ] = "round-robin",
    database_url: Annotated[
        str | None,
        typer.Option(envvar="PRINTCLOUD_DATABASE_URL", help="PostgreSQL URL (required)"),
    ] = None,
    session_store: Annotated[
        str | None,
        typer.Option(help="Redis URL for the session store and Digest nonces (optional)"),
    ] = None,
    port: Annotated[int, typer.Option(help="The public entry point's port")] = 8080,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Shared by every process (blobs, logs in run/); default PRINTCLOUD_DATA_DIR"
        ),
    ] = None,
) -> None:
    """Run the distributed topology on loopback: N conversion workers, every other
    service in its own process, real nginx or HAProxy in front, on PostgreSQL (and Redis).
    Stops everything it started on Ctrl-C."""
    import signal
    import threading

    from printcloud.cluster.run import Cluster, ClusterError, require_postgresql
    from printcloud.cluster.topology import Topology

    if balancer not in ("nginx", "haproxy"):
        raise typer.BadParameter("choose nginx or haproxy", param_hint="--balancer")
    if policy not in ("round-robin", "least-conn"):
        raise typer.BadParameter("choose round-robin or least-conn", param_hint="--policy")
    settings = Settings()
    try:
        url = require_postgresql(database_url)
        topology = Topology.local(
            balancer=balancer,  # type: ignore[arg-type]
            convert_workers=convert_workers,
            printing=printing,
            policy=policy.replace("-", "_"),  # type: ignore[arg-type]
            entry_port=port,
        )
        run = Cluster(
            topology,
            database_url=url,
            data_dir=data_dir or settings.data_dir,
            session_store=session_store,
            log_level=settings.log_level,
        )
        with console.status("starting the cluster") as status:
            run.start(progress=status.update)
    except ClusterError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from exc

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        table = Table(title=f"printcloud cluster ({balancer}, {policy})")
        for column in ("name", "service", "URL", "PID"):
            table.add_column(column, no_wrap=True)
        for info in run.processes.values():
            table.add_row(info.name, info.service, info.url, str(info.pid))
        console.print(table)
        console.print(f"entry point  [bold]{run.entry_url}[/bold]")
        console.print(f"conversion tier  {run.convert_url}  (the print service's)")
        console.print(f"logs  {run.run_dir}/NAME.log, who runs where: {run.run_dir}/cluster.json")
        console.print("Ctrl-C stops everything.")
        exited: set[str] = set()
        while not stopping.wait(0.5):
            for info in run.processes.values():
                if not info.alive and info.name not in exited:
                    exited.add(info.name)
                    err.print(f"[yellow]warning[/yellow] {info.name} exited; see {info.log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping the cluster"):
            run.stop()
        console.print("stopped")


@app.command("deploy-files")
def deploy_files(
    out_dir: Annotated[Path, typer.Argument(help="Where to write them")] = Path("deploy"),
) -> None:
    """Write the shipped nginx, HAProxy and systemd files, rendered from the example
    topology (printcloud.cluster.topology.Topology.example)."""
    from printcloud.cluster.render import write_files
    from printcloud.cluster.topology import Topology

    try:
        written = write_files(Topology.example(), out_dir)
    except OSError as exc:
        err.print(f"[red]error[/red] cannot write to {out_dir}: {exc.strerror or exc}")
        raise typer.Exit(2) from exc
    for path in written:
        console.print(f"wrote {path}")


@app.command()
def demo(
    keep_running: Annotated[bool, typer.Option(help="Keep serving after the demo")] = False,
) -> None:
    """Start the embedded stack and walk through the platform's flows."""
    from printcloud.demo import run_demo

    settings = Settings()
    if not settings.egress_allow:  # the demo's printers listen on this machine's loopback
        settings = settings.model_copy(update={"egress_allow": ["127.0.0.0/8", "::1"]})
    raise typer.Exit(run_demo(settings, keep_running=keep_running))


# -- admin ---------------------------------------------------------------------


@admin.callback()
def admin_options(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    state.json = as_json


@contextmanager
def _session() -> Iterator[Any]:
    from printcloud.stack import prepare

    # An admin command runs beside a live server, maybe with another environment:
    # it migrates, but leaves the service clients as the server set them.
    db = prepare(Settings(), serving=False)
    try:
        with db.session() as session:
            yield session
    finally:
        db.dispose()


def _emit(data: Any, table: Callable[[], Table] | None = None, message: str | None = None) -> None:
    if state.json:
        sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
    elif table is not None:
        console.print(table())
    elif message:
        console.print(message)


def _run(fn: Callable[[Any], Any]) -> Any:
    try:
        with _session() as session:
            return fn(session)
    except PrintcloudError as exc:
        if state.json:
            sys.stdout.write(json.dumps(exc.as_dict()) + "\n")
        else:
            err.print(f"[red]error[/red] {exc.error}: {exc.description}")
        raise typer.Exit(2) from exc


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Callable[[], Table]:
    def build() -> Table:
        t = Table(title=title)
        for c in columns:
            t.add_column(c)
        for r in rows:
            t.add_row(*[str(v) if v is not None else "" for v in r])
        return t

    return build


IssuerOpt = Annotated[str, typer.Option("--issuer", help="Issuer (authorization server) name")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant ID")]

tenant_cli = typer.Typer(help="Tenants.", no_args_is_help=True)
user_cli = typer.Typer(help="Users of a tenant.", no_args_is_help=True)
client_cli = typer.Typer(help="OAuth clients of a tenant.", no_args_is_help=True)
settings_cli = typer.Typer(help="Tenant settings.", no_args_is_help=True)
consent_cli = typer.Typer(
    help="Tenant-wide and per-user consents (seed 002).", no_args_is_help=True
)
admin.add_typer(tenant_cli, name="tenant")
admin.add_typer(user_cli, name="user")
admin.add_typer(client_cli, name="client")
admin.add_typer(settings_cli, name="settings")
admin.add_typer(consent_cli, name="consent")


def tenant_dict(t: Any) -> dict[str, Any]:
    return {
        "issuer": t.issuer,
        "tenant_id": t.tenant_id,
        "name": t.name,
        "created_at": t.created_at,
        "local_auth_cooperation": t.local_auth_cooperation,
        "users_may_grant_tenant_consent": t.users_may_grant_tenant_consent,
        "card_retention_days": t.card_retention_days,
        "held_release": t.held_release,
    }


def user_dict(u: Any) -> dict[str, Any]:
    return {
        "username": u.username,
        "display_name": u.display_name,
        "email": u.email,
        "is_admin": u.is_admin,
        "disabled": u.disabled,
        "created_at": u.created_at,
        "last_login_at": u.last_login_at,
    }


def client_dict(c: Any) -> dict[str, Any]:
    return {
        "client_id": c.client_id,
        "name": c.name,
        "kind": c.kind,
        "redirect_uris": c.redirect_uris,
        "grant_types": c.grant_types,
        "scope": c.scope,
        "disabled": c.disabled,
        "created_at": c.created_at,
    }


@tenant_cli.command("create")
def tenant_create(
    tenant_id: str,
    issuer: IssuerOpt = "idp-a",
    name: Annotated[str, typer.Option(help="Display name")] = "",
) -> None:
    """Create a tenant."""
    from printcloud.auth import service

    data = _run(
        lambda s: tenant_dict(
            service.create_tenant(s, issuer=issuer, tenant_id=tenant_id, name=name, actor="cli")
        )
    )
    _emit(data, message=f"created tenant [bold]{tenant_id}[/bold] at {issuer}")


@tenant_cli.command("list")
def tenant_list(issuer: IssuerOpt = "idp-a") -> None:
    """List tenants."""
    from printcloud.auth import service

    data = _run(lambda s: [tenant_dict(t) for t in service.list_tenants(s, issuer=issuer)])
    _emit(
        data,
        _table(
            f"tenants at {issuer}",
            ["tenant_id", "name", "local auth cooperation"],
            [[d["tenant_id"], d["name"], d["local_auth_cooperation"]] for d in data],
        ),
    )


@tenant_cli.command("delete")
def tenant_delete(tenant_id: str, issuer: IssuerOpt = "idp-a") -> None:
    """Delete a tenant and everything it owns."""
    from printcloud.auth import service

    _run(
        lambda s: service.delete_tenant(
            s, tenant=service.get_tenant(s, issuer=issuer, tenant_id=tenant_id), actor="cli"
        )
    )
    _emit({"deleted": tenant_id}, message=f"deleted tenant {tenant_id}")


@settings_cli.command("show")
def settings_show(tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """Show a tenant's settings."""
    from printcloud.auth import service

    data = _run(lambda s: tenant_dict(service.get_tenant(s, issuer=issuer, tenant_id=tenant)))
    _emit(
        data,
        _table(f"settings of {tenant}", ["setting", "value"], [[k, v] for k, v in data.items()]),
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

    data = _run(work)
    _emit(
        data,
        _table(f"settings of {tenant}", ["setting", "value"], [[k, v] for k, v in data.items()]),
    )


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
    data = _run(
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
    _emit(data, message=f"created user [bold]{username}[/bold] in {tenant}")


@user_cli.command("list")
def user_list(tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """List a tenant's users."""
    from printcloud.auth import service

    data = _run(
        lambda s: [
            user_dict(u)
            for u in service.list_users(
                s, tenant=service.get_tenant(s, issuer=issuer, tenant_id=tenant)
            )
        ]
    )
    _emit(
        data,
        _table(
            f"users of {tenant}",
            ["username", "display name", "admin", "disabled", "last login"],
            [
                [d["username"], d["display_name"], d["is_admin"], d["disabled"], d["last_login_at"]]
                for d in data
            ],
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

    _run(work)
    _emit({"deleted": username}, message=f"deleted user {username}")


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
        )
        return {**client_dict(c), "client_secret": secret}

    data = _run(work)
    _emit(
        data,
        message=f"client_id     [bold]{data['client_id']}[/bold]\nclient_secret "
        f"[bold]{data['client_secret'] or '(public client: none)'}[/bold]  (shown once)",
    )


@client_cli.command("list")
def client_list(tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """List a tenant's clients."""
    from printcloud.auth import service

    data = _run(
        lambda s: [
            client_dict(c)
            for c in service.list_clients(
                s, tenant=service.get_tenant(s, issuer=issuer, tenant_id=tenant)
            )
        ]
    )
    _emit(
        data,
        _table(
            f"clients of {tenant}",
            ["client_id", "name", "kind", "grants", "scope"],
            [
                [d["client_id"], d["name"], d["kind"], " ".join(d["grant_types"]), d["scope"]]
                for d in data
            ],
        ),
    )


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

    data = _run(work)
    _emit(data, message=f"new client_secret [bold]{data['client_secret']}[/bold]  (shown once)")


@client_cli.command("delete")
def client_delete(client_id: str, tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """Delete a client and its tokens."""
    from printcloud.auth import service

    def work(s: Any) -> None:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        service.delete_client(
            s, tenant=t, client=service.get_client(s, tenant=t, client_id=client_id), actor="cli"
        )

    _run(work)
    _emit({"deleted": client_id}, message=f"deleted client {client_id}")


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

    def work(s: Any) -> dict[str, Any]:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
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

    data = _run(work)
    _emit(
        data,
        _table(
            f"tenant-wide consents of {tenant}",
            ["id", "client", "scope", "granted by", "granted at", "revoked"],
            [
                [
                    d["id"],
                    d["client_name"],
                    d["scope"],
                    d["granted_by"],
                    d["granted_at"],
                    d["revoked_at"] or "",
                ]
                for d in data["tenant_wide"]
            ],
        ),
    )
    if not state.json and data["per_user"]:
        console.print(
            _table(
                "per-user consents",
                ["id", "user", "client", "scope", "granted at"],
                [
                    [d["id"], d["username"], d["client_id"], d["scope"], d["granted_at"]]
                    for d in data["per_user"]
                ],
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

    _run(work)
    _emit({"revoked": consent_id}, message=f"revoked consent {consent_id}")


@admin.command("purge-expired")
def purge_expired(
    days: Annotated[
        int, typer.Option(min=0, help="Keep rows expired for less than this many days")
    ] = 1,
) -> None:
    """Delete tokens, codes, sessions and device grants expired for longer than DAYS."""
    from datetime import timedelta

    from printcloud.auth import service

    count = _run(lambda s: service.purge_expired(s, older_than=timedelta(days=days)))
    _emit({"deleted": count}, message=f"deleted {count} expired rows")


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
    _emit(
        {"public_url": settings.public_url, "changed": changes},
        message="\n".join(changes) if changes else "nothing to change",
    )


# -- printers and print jobs (seed 003) ---------------------------------------------

printer_cli = typer.Typer(help="Printers of a tenant (seed 003, PRT001).", no_args_is_help=True)
job_cli = typer.Typer(help="Print jobs of a tenant.", no_args_is_help=True)
admin.add_typer(printer_cli, name="printer")
admin.add_typer(job_cli, name="job")


def printer_dict(p: Any) -> dict[str, Any]:
    return {
        "printer_id": p.printer_id,
        "name": p.name,
        "color": p.color,
        "client_id": p.client_id,
        "push_url": p.push_url,
        "location": p.location,
        "last_seen_at": p.last_seen_at,
    }


def job_dict(j: Any) -> dict[str, Any]:
    return {
        "job_id": j.job_id,
        "printer_id": j.printer_id,
        "owner": j.owner,
        "title": j.title,
        "state": j.state,
        "reason": j.reason,
        "page_count": j.page_count,
        "pages_printed": j.pages_printed,
        "created_at": j.created_at,
        "finished_at": j.finished_at,
    }


@printer_cli.command("add")
def printer_add(
    printer_id: str,
    tenant: TenantOpt,
    client_id: Annotated[
        str, typer.Option("--client-id", help="The device client (of the tenant) that drives it")
    ],
    name: Annotated[str, typer.Option(help="Display name")] = "",
    mono: Annotated[bool, typer.Option("--mono", help="A monochrome printer")] = False,
    push_url: Annotated[
        str | None, typer.Option("--push-url", help="Where print requests are pushed")
    ] = None,
    location: Annotated[str, typer.Option(help="Where it stands")] = "",
) -> None:
    """Register a printer and the device client that drives it."""
    from printcloud.auth import service as auth_service
    from printcloud.printing import service

    def work(s: Any) -> dict[str, Any]:
        t = auth_service.get_tenant(s, issuer="idp-a", tenant_id=tenant)
        client = auth_service.get_client(s, tenant=t, client_id=client_id)
        if client.kind != "device":
            raise InvalidRequest(
                f"client {client_id!r} is a {client.kind} client; a printer needs a device client",
                field="client_id",
            )
        row = service.add_printer(
            s,
            tenant_id=tenant,
            printer_id=printer_id,
            name=name,
            color=not mono,
            client_id=client_id,
            push_url=push_url,
            location=location,
            egress=Settings().egress_policy,
        )
        return printer_dict(row)

    data = _run(work)
    kind = "mono" if mono else "color"
    _emit(data, message=f"added {kind} printer [bold]{printer_id}[/bold] to {tenant}")


@printer_cli.command("list")
def printer_list(tenant: TenantOpt) -> None:
    """List a tenant's printers."""
    from printcloud.printing import service

    data = _run(lambda s: [printer_dict(p) for p in service.list_printers(s, tenant_id=tenant)])
    _emit(
        data,
        _table(
            f"printers of {tenant}",
            ["printer_id", "name", "color", "device client", "push URL", "last seen"],
            [
                [
                    d["printer_id"],
                    d["name"],
                    "color" if d["color"] else "mono",
                    d["client_id"],
                    d["push_url"],
                    d["last_seen_at"],
                ]
                for d in data
            ],
        ),
    )


@printer_cli.command("delete")
def printer_delete(printer_id: str, tenant: TenantOpt) -> None:
    """Delete a printer (refused while it has unfinished jobs)."""
    from printcloud.printing import service

    _run(lambda s: service.delete_printer(s, tenant_id=tenant, printer_id=printer_id))
    _emit({"deleted": printer_id}, message=f"deleted printer {printer_id}")


@job_cli.command("list")
def job_list(
    tenant: TenantOpt,
    job_state: Annotated[str | None, typer.Option("--state", help="Only this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List a tenant's print jobs, newest first."""
    from printcloud.printing import service

    data = _run(
        lambda s: [
            job_dict(j)
            for j in service.list_jobs(
                s, tenant_id=tenant, states=(job_state,) if job_state else None, limit=limit
            )
        ]
    )
    _emit(
        data,
        _table(
            f"print jobs of {tenant}",
            ["job_id", "printer", "owner", "title", "state", "reason", "pages"],
            [
                [
                    d["job_id"],
                    d["printer_id"],
                    d["owner"],
                    d["title"],
                    d["state"],
                    d["reason"],
                    f"{d['pages_printed']}/{d['page_count'] or '?'}",
                ]
                for d in data
            ],
        ),
    )


@job_cli.command("show")
def job_show(job_id: str, tenant: TenantOpt) -> None:
    """A job with its history: each step, its outcome and the worker that served it."""
    from printcloud.printing import service

    def work(s: Any) -> dict[str, Any]:
        job = service.get_job(s, tenant_id=tenant, job_id=job_id)
        history = [
            {"at": e.at, "step": e.step, "state": e.state, "worker": e.worker, "detail": e.detail}
            for e in service.events(s, tenant_id=tenant, job_id=job_id)
        ]
        return {**job_dict(job), "history": history}

    data = _run(work)
    _emit(
        data,
        _table(
            f"job {job_id}: {data['state']}" + (f" ({data['reason']})" if data["reason"] else ""),
            ["at", "step", "state", "worker", "detail"],
            [[h["at"], h["step"], h["state"], h["worker"], h["detail"]] for h in data["history"]],
        ),
    )


# -- the virtual printer ----------------------------------------------------------------


@app.command()
def device(
    tenant: Annotated[str, typer.Option("--tenant", help="The printer's tenant ID")],
    printer: Annotated[str, typer.Option("--printer-id", "--printer", help="The printer ID")],
    client_id: Annotated[str, typer.Option("--client-id", help="The device client at idp-a")],
    client_secret: Annotated[
        str,
        typer.Option(
            "--client-secret", envvar="PRINTCLOUD_DEVICE_SECRET", help="The device client's secret"
        ),
    ],
    server: Annotated[
        str, typer.Option(help="The platform's public URL")
    ] = "http://127.0.0.1:8000",
    out: Annotated[Path, typer.Option(help="Where the engine output and previews go")] = Path(
        "printed"
    ),
    issuer: Annotated[str, typer.Option(help="The issuer the device authenticates at")] = "idp-a",
    poll_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls")] = 2.0,
    halftone: Annotated[str, typer.Option(help="ordered (default) or error_diffusion")] = "ordered",
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="Inject a fault: paper_out@2, toner_out@1, engine_error@3, user_cancel@2"
        ),
    ] = None,
    listen: Annotated[
        str | None, typer.Option(help="HOST:PORT to accept pushed print requests (S109)")
    ] = None,
    register_push: Annotated[
        bool, typer.Option(help="Register the listener as the printer's push URL")
    ] = True,
    profile: Annotated[Path | None, typer.Option(help="CMYK ICC output profile")] = None,
    once: Annotated[bool, typer.Option(help="Print what is waiting, then stop")] = False,
    card_reader: Annotated[
        bool,
        typer.Option(
            "--card-reader",
            help="Seed 004: read ID cards on this terminal (or lines from a pipe) and release "
            "the user's held jobs, while the printer prints",
        ),
    ] = False,
    panel: Annotated[
        str | None,
        typer.Option(
            help="Serve the card reader's web panel at PORT or HOST:PORT (loopback unless "
            "a host is given; port 0: any free one), /panel"
        ),
    ] = None,
    panel_idle: Annotated[
        float, typer.Option(min=5, help="Seconds of inactivity before a panel session ends")
    ] = 180.0,
) -> None:
    """Run a virtual printer (seed 003 PRT001): poll or take pushes, print, report.

    With --card-reader and/or --panel, users log in at the printer with an ID card
    (registering an unknown one with their directory account) and release their held jobs.
    """
    from printcloud.device.agent import DeviceConfig, Fault
    from printcloud.device.agent import main as device_main

    if halftone not in ("ordered", "error_diffusion"):
        raise typer.BadParameter("choose ordered or error_diffusion", param_hint="--halftone")
    try:
        faults = [Fault.parse(f) for f in fault or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fault") from exc
    if once and (card_reader or panel):
        raise typer.BadParameter(
            "a card reader waits for users: leave out --once", param_hint="--once"
        )
    if panel is not None:
        from printcloud.device.panel import panel_address

        try:
            panel = panel_address(panel)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--panel") from exc
    config = DeviceConfig(
        server=server,
        tenant_id=tenant,
        printer_id=printer,
        client_id=client_id,
        client_secret=client_secret,
        out_dir=out,
        issuer=issuer,
        poll_interval=poll_interval,
        halftone=halftone,  # type: ignore[arg-type]
        faults=faults,
        listen=listen,
        register_push=register_push,
        profile=profile,
    )
    if card_reader or panel:
        from printcloud.device.console import main as card_main

        raise typer.Exit(
            card_main(
                config,
                card_reader=card_reader,
                panel=panel,
                panel_idle=panel_idle,
                console=console,
            )
        )
    raise typer.Exit(device_main(config, once=once, console=console))


# -- ID cards and directories (seed 004) ------------------------------------------

card_cli = typer.Typer(help="ID cards bound to users (seed 004).", no_args_is_help=True)
directory_cli = typer.Typer(
    help="A tenant's directory for card registration: its own users or LDAP.",
    no_args_is_help=True,
)
executor_cli = typer.Typer(
    help="DBOS executors (one per printing, CRM, docgen or auth replica) and their leases.",
    no_args_is_help=True,
)
admin.add_typer(executor_cli, name="executor")


@executor_cli.command("list")
def executor_list(
    service: Annotated[
        str | None, typer.Option(help="Only this service's executors (embedded: 'embedded')")
    ] = None,
) -> None:
    """Every executor's lease: alive, stopped, or taken over (by whom, how many workflows)."""
    from printcloud.core.db import utcnow
    from printcloud.core.executors import ExecutorLease
    from printcloud.stack import prepare

    db = prepare(Settings(), serving=False)
    try:
        leases = ExecutorLease.leases(db, scope=service)
    finally:
        db.dispose()
    now = utcnow()
    data = [
        {
            "service": x.scope,
            "executor_id": x.executor_id,
            "state": x.state,
            "host": x.host,
            "pid": x.pid,
            "app_version": x.app_version,
            "heartbeat_at": x.heartbeat_at,
            "heartbeat_age_seconds": round((now - x.heartbeat_at).total_seconds(), 1),
            "taken_over_by": x.taken_over_by,
            "recovered": x.recovered,
        }
        for x in leases
    ]
    _emit(
        data,
        _table(
            "executors",
            ["service", "executor", "state", "host", "pid", "version", "heartbeat", "taken by"],
            [
                [
                    d["service"],
                    d["executor_id"],
                    d["state"],
                    d["host"],
                    d["pid"],
                    d["app_version"],
                    f"{d['heartbeat_age_seconds']} s ago",
                    f"{d['taken_over_by']} ({d['recovered']} workflows)"
                    if d["taken_over_by"]
                    else "",
                ]
                for d in data
            ],
        ),
    )


admin.add_typer(card_cli, name="card")
admin.add_typer(directory_cli, name="directory")


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
    from printcloud.auth import cards, service

    def work(s: Any) -> list[dict[str, Any]]:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        return [
            card_dict(b, t.card_retention_days)
            for b in cards.list_bindings(s, tenant=t, text=search)
        ]

    data = _run(work)
    _emit(
        data,
        _table(
            f"cards of {tenant}",
            ["id", "user", "card", "directory", "last login", "deleted after"],
            [
                [
                    d["id"],
                    d["username"],
                    d["hint"],
                    d["directory"],
                    d["last_login_at"],
                    d["expires_at"],
                ]
                for d in data
            ],
        ),
    )


@card_cli.command("delete")
def card_delete(card_id: int, tenant: TenantOpt, issuer: IssuerOpt = "idp-a") -> None:
    """Delete a card binding (the card must be registered again)."""
    from printcloud.auth import cards, service

    def work(s: Any) -> None:
        t = service.get_tenant(s, issuer=issuer, tenant_id=tenant)
        cards.delete_binding(s, tenant=t, binding_pk=card_id, actor="cli")

    _run(work)
    _emit({"deleted": card_id}, message=f"deleted card binding {card_id}")


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
    gone = _run(lambda s: cards.expire_bindings(s, now=now))
    data = [{"tenant": t, "username": u, "card": h} for t, u, h in gone]
    _emit(
        data,
        _table(
            "expired card bindings",
            ["tenant", "user", "card"],
            [[d["tenant"], d["username"], d["card"]] for d in data],
        ),
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

    data = _run(work)
    _emit(
        data,
        _table(f"directory of {tenant}", ["setting", "value"], [[k, v] for k, v in data.items()]),
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

    data = _run(work)
    _emit(data, message=f"directory of {tenant}: {data['kind']} {data.get('url', '')}")


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

    users = _run(work)
    _emit({"users": users}, message=f"the directory answers: {users} users")


if __name__ == "__main__":  # pragma: no cover
    main()
