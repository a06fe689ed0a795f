"""The demo's walk: start the embedded stack, set up tenants, users and a device
client, run each seed story in order (see printcloud.demo), and print what was checked."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import uvicorn
from rich.panel import Panel
from rich.table import Table

from printcloud.auth import service as auth_service
from printcloud.auth.client import AuthClient
from printcloud.core.settings import Settings
from printcloud.demo.browser import CALLBACK, Browser, pkce
from printcloud.demo.consent import walk_consent
from printcloud.demo.local_user import walk_local_user
from printcloud.demo.report import Report, console
from printcloud.demo.session import walk_session_exchange


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass


def _start(settings: Settings) -> tuple[_Server, threading.Thread]:
    from printcloud.stack import create_stack

    app = create_stack(settings)
    server = _Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=settings.port, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # a loaded machine starts it slowly
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the embedded stack did not start")
        time.sleep(0.05)
    return server, thread


def run_demo(base: Settings, *, keep_running: bool = False, report: Report | None = None) -> int:
    """Run the demo; 0 when every step held. `report` collects the checks (tests read it)."""
    data_dir = base.data_dir / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    port = _free_port(base.port)
    settings = base.model_copy(
        update={
            "data_dir": data_dir,
            "port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "database_url": base.database_url,
        }
    )
    console.rule("[bold]printcloud demo")
    with console.status("Starting the embedded stack (migrations, issuers idp-a and idp-b)…"):
        server, thread = _start(settings)
    console.print(
        f"Stack up at [link]{settings.public_url}[/link]; data in [bold]{data_dir}[/bold]"
    )
    report = report if report is not None else Report()
    try:
        _walk(settings, report)
    finally:
        if keep_running:
            console.print(
                Panel(
                    f"Serving at {settings.public_url} — sign in at "
                    f"{settings.public_url}/idp-a/login (tenant 1000AA, alice / demo-password-1). "
                    "Ctrl+C to stop."
                )
            )
            try:
                while thread.is_alive():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        server.should_exit = True
        thread.join(timeout=10)
    table = Table(title="printcloud demo: what was checked")
    table.add_column("step")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        table.add_row(c.step, "[green]ok[/green]" if c.ok else "[red]FAILED[/red]", c.detail)
    console.print(table)
    failed = [c for c in report.checks if not c.ok]
    if failed:
        console.print(f"[red bold]{len(failed)} step(s) failed[/red bold]")
        return 1
    console.print(f"[green bold]All {len(report.checks)} steps passed.[/green bold]")
    return 0


def _walk(settings: Settings, report: Report) -> None:
    from printcloud.core.db import Database

    db = Database(settings.effective_database_url)
    issuer = "idp-a"
    base = settings.public_url
    console.rule("Set-up: tenants, users, a device client")
    with db.session() as s:
        acme = auth_service.create_tenant(
            s, issuer=issuer, tenant_id="1000AA", name="Acme Printing", actor="demo"
        )
        globex = auth_service.create_tenant(
            s, issuer=issuer, tenant_id="1000BB", name="Globex", actor="demo"
        )
        auth_service.create_user(
            s,
            tenant=acme,
            username="alice",
            password="demo-password-1",
            is_admin=True,
            display_name="Alice Admin",
            actor="demo",
        )
        auth_service.create_user(
            s,
            tenant=acme,
            username="bob",
            password="demo-password-2",
            display_name="Bob",
            actor="demo",
        )
        auth_service.create_user(
            s,
            tenant=globex,
            username="carol",
            password="demo-password-3",
            display_name="Carol",
            actor="demo",
        )
        device, device_secret = auth_service.create_client(
            s,
            tenant=acme,
            name="MFP 3rd floor",
            kind="device",
            client_id="mfp-3f",
            redirect_uris=[CALLBACK],
            scope="print profile device",
            actor="demo",
        )
        device_id = device.client_id
    db.dispose()
    assert device_secret is not None
    console.print(
        "  tenants [bold]1000AA[/bold] (Acme Printing: alice admin, bob) and [bold]1000BB[/bold] "
        "(Globex: carol); device client [bold]mfp-3f[/bold]"
    )

    console.rule("Seed 001: a token that carries the device's local user")
    mfp = AuthClient(f"{base}/{issuer}", client_id=device_id, client_secret=device_secret)
    walk_local_user(settings, report, mfp, issuer=issuer, device_id=device_id)

    console.rule("Seed 002: one consent for the whole tenant on this device")
    consented = walk_consent(settings, report, mfp, base=base, issuer=issuer, device_id=device_id)
    query = consented.query

    console.rule("Seed 000, FIG. 11: the browser's session (AUTH_ID) → print-service tokens")
    walk_session_exchange(settings, report, consented.alice, base=base, issuer=issuer)

    console.rule("Seed 003: print a PDF to a color and a mono printer, load-balanced")
    from printcloud.demo.printing import walk_printing

    walk_printing(
        settings,
        report,
        console,
        user_token=consented.access_token,
        device_id=device_id,
        device_secret=device_secret,
        tenant_id="1000AA",
    )

    console.rule("Issue 15: a printer of the other kind, fetching its jobs over IPP INFRA")
    from printcloud.demo.infra import walk_infra

    walk_infra(
        settings,
        report,
        console,
        user_token=consented.access_token,
        device_id=device_id,
        device_secret=device_secret,
        tenant_id="1000AA",
    )

    console.rule("Issue 14: an IPP Everywhere queue, printed to by CUPS's own lp")
    from printcloud.demo.ipp import walk_ipp

    walk_ipp(
        settings,
        report,
        console,
        tenant_id="1000AA",
        printer_id="lobby-color",
        device_id=device_id,
        device_secret=device_secret,
        username="alice",
        password="demo-password-1",
        user_token=consented.access_token,
    )

    console.rule("Seed 004: a new ID card at the printer, registered once, then it just works")
    from printcloud.demo.cards import walk_cards

    def user_token(username: str, password: str) -> str:
        verifier, challenge = pkce()
        code, _, _ = Browser(base).authorize(
            issuer,
            {**query, "code_challenge": challenge, "state": username},
            tenant="1000AA",
            username=username,
            password=password,
        )
        return mfp.exchange_code(
            code or "", redirect_uri=CALLBACK, code_verifier=verifier
        ).access_token

    walk_cards(
        settings,
        report,
        console,
        tenant_id="1000AA",
        device_id=device_id,
        device_secret=device_secret,
        user_token=user_token,
    )

    console.rule("Seed 000: the CRM's nightly job prints invoices through docgen")
    from printcloud.demo.batch import walk_batch

    def session_of(tenant_id: str, username: str, password: str) -> str:
        """Sign `username` in at idp-a (a browser's login form) and answer the session ID."""
        browser = Browser(base)
        _, challenge_s = pkce()
        browser.authorize(
            issuer,
            {**query, "code_challenge": challenge_s, "state": f"s-{username}"},
            tenant=tenant_id,
            username=username,
            password=password,
        )
        return browser.session_id(issuer) or ""

    walk_batch(
        settings,
        report,
        console,
        authorize=lambda: Browser(base).authorize,
        session_of=session_of,
    )
