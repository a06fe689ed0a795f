"""`printcloud serve`: every service in one process (embedded), or one service."""

from __future__ import annotations

from typing import Annotated

import typer

from printcloud import __version__
from printcloud.cli.common import console, err
from printcloud.core.settings import Settings


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

    from granian.constants import Interfaces, RuntimeModes, SSLProtocols
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
    if settings.ipp_port and service in (None, "printing") and http_workers == 1:
        import socket

        # said here, once, rather than by each worker's failed start (and granian's retries)
        address = host or settings.host
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            socket.create_server((address, settings.ipp_port), family=family).close()
        except OSError as exc:
            err.print(
                f"[red]error[/red] PRINTCLOUD_IPP_PORT: cannot listen on "
                f"{address}:{settings.ipp_port} ({exc.strerror or exc})"
            )
            raise typer.Exit(2) from exc
    prepare(settings).dispose()  # migrations once, before the workers start
    if service == "convert":
        from printcloud.core.tasks.priority import lower_this_process

        # A conversion worker does background work only: it and every process it starts
        # (granian's worker, the conversion children) run below the answers (priority.py).
        lower_this_process(settings.background_nice)
    cert = None
    if settings.serves_tls:
        from printcloud.core.tls import server_certificate

        try:
            cert = server_certificate(settings)
        except ValueError as exc:
            err.print(f"[red]error[/red] {exc}")
            raise typer.Exit(2) from exc
    scheme = "https" if settings.serves_tls else "http"
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
        ssl_cert=cert.cert if cert else None,
        ssl_key=cert.key if cert else None,
        # TLS 1.2 at least, as RFC 7472 asks of IPP over HTTPS: granian's default minimum
        # (1.3) would shut out print clients of a few years ago.
        ssl_protocol_min=SSLProtocols.tls12,
    )
    console.print(
        f"printcloud {__version__} serving {service or 'every service'} at "
        f"{scheme}://{host or settings.host}:{port or settings.port} "
        f"(public URL {settings.public_url})"
    )
    if settings.ipp_port and service in (None, "printing"):
        console.print(
            f"IPP queues at {'ipps' if settings.serves_tls else 'ipp'}://"
            f"{host or settings.host}:{settings.ipp_port}/ipp/print/TENANT/QUEUE"
        )
    server.serve()
