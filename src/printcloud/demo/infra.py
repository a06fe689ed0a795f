"""The demo's issue 15 walk: a printer of the other kind, one that fetches its jobs over IPP
INFRA (PWG 5100.18) instead of printcloud's JSON device API.

The virtual printer runs in INFRA mode (`printcloud device --protocol infra`, here an
`InfraAgent` looping in a thread) for a third printer, `reception-infra`: it registers
as the printer's output device (Update-Output-Device-Attributes), subscribes and waits
on Get-Notifications (`ippget`); alice's PDF goes through the same workflow as the JSON
printers' jobs, and the device fetches it (Fetch-Job, Fetch-Document), prints it with
the same engine and reports it (Update-Job-Status), after which the converted data and
the session record are gone (S112). When the walk ends the device deregisters.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from printcloud.core.db import Database
from printcloud.core.settings import Settings
from printcloud.demo.printing import Checks, _follow, _wait_final, make_brochure
from printcloud.device.config import DeviceConfig
from printcloud.device.events import DeviceEvent
from printcloud.device.infra import InfraAgent
from printcloud.printing import service as printing_service
from printcloud.printing.client import PrintClient

PRINTER = "reception-infra"


def walk_infra(
    settings: Settings,
    report: Checks,
    console: Console,
    *,
    user_token: str,
    device_id: str,
    device_secret: str,
    tenant_id: str,
) -> None:
    db = Database(settings.effective_database_url)
    with db.session() as s:
        printing_service.add_printer(
            s,
            tenant_id=tenant_id,
            printer_id=PRINTER,
            name="Reception color printer (IPP INFRA)",
            color=True,
            client_id=device_id,
            location="demo",
        )
    db.dispose()
    out_dir = settings.data_dir / "printed" / PRINTER
    config = DeviceConfig(
        server=settings.public_url,
        tenant_id=tenant_id,
        printer_id=PRINTER,
        client_id=device_id,
        client_secret=device_secret,
        out_dir=out_dir,
    )
    console.print(
        "  printers of each kind: [bold]lobby-color[/bold] and [bold]office-mono[/bold] poll "
        "printcloud's JSON device API; [bold]reception-infra[/bold] is an IPP INFRA output "
        "device (PWG 5100.18), as a vendor's printer or an office proxy would be"
    )
    api = PrintClient(f"{settings.public_url}/printing", timeout=60)
    events: list[DeviceEvent] = []
    pages = threading.Event()

    def heard(event: DeviceEvent) -> None:
        events.append(event)
        pages.set()

    agent = InfraAgent(config, on_event=heard)
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, args=(stop,), name="infra-device", daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while not agent._registered and loop.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        report.check(
            f"{PRINTER} registers as the printer's INFRA output device",
            agent._registered,
            f"Update-Output-Device-Attributes as {agent.uuid} at {agent.uri}; then "
            "Create-Printer-Subscriptions (ippget) and a long-polled Get-Notifications",
        )
        job = api.submit(
            token=user_token,
            printer_id=PRINTER,
            pdf=make_brochure(4),
            filename="brochure.pdf",
            options={"dpi": "150"},
        ).data
        _follow(api, user_token, {job["job_id"]: PRINTER}, console)
        _show_pages(console, events, pages)
        final = _wait_final(api, user_token, job["job_id"])
        steps = {e["step"] for e in final["history"]}
        done = next((e.outcome for e in events if e.kind == "done" and e.outcome), None)
        report.check(
            f"{PRINTER}: fetched over IPP INFRA, printed, cleaned up",
            final["state"] == "printed" and final["pages_printed"] == 4 and "S112" in steps,
            f"Fetch-Job, Fetch-Document (application/pdf), Update-Job-Status completed: "
            f"{final['state']}, {final['pages_printed']} pages; converted data and session "
            f"record deleted; previews in {done.folder if done else out_dir}",
        )
    finally:
        stop.set()
        # A Get-Notifications may be held 30 s: deregistering ends the device's
        # subscriptions, which ends the wait.
        if agent._registered:
            try:
                agent.deregister()
            except Exception as exc:  # the walk's checks stand; say why it could not leave
                console.print(f"  [yellow]{PRINTER} could not deregister: {exc}[/yellow]")
        loop.join(timeout=90)
        agent.close()
        api.close()


def _show_pages(console: Console, events: list[DeviceEvent], changed: threading.Event) -> None:
    """A progress bar of the INFRA device's pages until it reports the job (90 s at most)."""
    with Progress(
        TextColumn("  {task.fields[name]:<14}"),
        BarColumn(bar_width=24),
        TextColumn("{task.completed}/{task.total} pages {task.description}"),
        console=console,
    ) as progress:
        task = progress.add_task("", total=None, name=PRINTER)
        deadline = time.monotonic() + 90
        seen = 0
        while time.monotonic() < deadline:
            changed.wait(0.2)
            changed.clear()
            for event in events[seen:]:
                _on_event(progress, task, event)
            seen = len(events)
            if any(e.kind in ("done", "error") for e in events):
                return


def _on_event(progress: Progress, task: Any, event: DeviceEvent) -> None:
    if event.kind == "job":
        progress.update(task, total=event.page_count)
    elif event.kind == "page":
        progress.update(task, completed=event.page)
    elif event.kind == "done" and event.outcome is not None:
        reason = f": {event.outcome.reason}" if event.outcome.reason else ""
        progress.update(task, description=f"{event.outcome.outcome} (reported over INFRA){reason}")
    elif event.kind == "error":
        progress.update(task, description=f"error: {event.message}")
