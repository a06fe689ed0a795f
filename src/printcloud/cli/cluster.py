"""`printcloud cluster` (the distributed topology on loopback) and `printcloud deploy-files`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from printcloud.cli.common import console, err
from printcloud.core.settings import Settings


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
