"""`printcloud device`: a virtual printer (seed 003 PRT001), with a card reader (seed 004)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from printcloud.cli.common import console


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
    sink: Annotated[
        bool,
        typer.Option(
            "--sink",
            help="Fetch every page and report it printed without rendering it (no raster, "
            "no engine output): a stand-in printer for measuring the platform",
        ),
    ] = False,
    previews: Annotated[
        bool | None,
        typer.Option(
            "--previews/--no-previews",
            help="Send a thumbnail of each printed page for the job's page "
            "(default: yes, except with --sink)",
        ),
    ] = None,
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
    protocol: Annotated[
        str,
        typer.Option(
            help="json: printcloud's device API (seed 003); infra: an IPP INFRA output "
            "device (PWG 5100.18, docs/infra.md)"
        ),
    ] = "json",
    forward: Annotated[
        str | None,
        typer.Option(
            help="With --protocol infra: print each fetched job on this IPP printer "
            "(ipp://host:port/path) instead of here, as an on-premises proxy"
        ),
    ] = None,
    forward_deadline: Annotated[
        float,
        typer.Option(min=10, help="Seconds the --forward printer may take for one job"),
    ] = 300.0,
) -> None:
    """Run a virtual printer (seed 003 PRT001): poll or take pushes, print, report.

    With --sink it only fetches and counts the pages (issue 13: the platform's load
    without the printers' raster).

    With --protocol infra it fetches its jobs over IPP INFRA (PWG 5100.18) as an output
    device, and with --forward it hands them to an office IPP printer (a proxy).

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
    if protocol not in ("json", "infra"):
        raise typer.BadParameter("choose json or infra", param_hint="--protocol")
    if forward is not None:
        if protocol != "infra":
            raise typer.BadParameter("forwarding needs --protocol infra", param_hint="--forward")
        from printcloud.device.ippclient import http_url

        try:
            http_url(forward)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--forward") from exc
    if protocol == "infra":
        for given, name in (
            (listen, "--listen"),
            (card_reader, "--card-reader"),
            (panel, "--panel"),
        ):
            if given:
                raise typer.BadParameter(
                    "the JSON device API's; an INFRA device waits on IPP notifications",
                    param_hint=name,
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
        sink=sink,
        previews=previews,
        forward=forward,
        forward_deadline=forward_deadline,
    )
    if protocol == "infra":
        from printcloud.device.infra import main as infra_main

        raise typer.Exit(infra_main(config, once=once, console=console))
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
