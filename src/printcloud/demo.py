"""`printcloud demo`: the embedded stack, set up and walked through over real HTTP.

It starts every service in this process on loopback, creates demo tenants,
users and a device client, and runs the platform's flows one step at a time,
showing what each step answered:

- seed 001: a device's client-credentials token carrying its local user;
  introspection answers tenant and local user; `/api/me` acts as the client
  with the tenant's local authentication cooperation mode off and as the
  local user with it on;
- seed 002: an admin consents on a device's client for everyone in the
  tenant; a second user of that tenant is not asked; a user of another
  tenant is;
- seed 000, FIG. 11: a logged-in browser's authentication session (AUTH_ID)
  exchanged for an access and a refresh token of the print service;
- seed 003: alice prints a multi-page PDF (made here) to a color and a mono
  virtual printer through the load-balanced conversion workers, with progress
  per step, the worker that served it, and where the previews are; a third
  job runs out of paper (`demo_printing.py`);
- seed 004: a new ID card is tapped at a printer, registered with directory
  credentials, tapped again to release a held job; past the retention period
  the binding is gone (`demo_cards.py`);
- seed 000: two tenants' invoices loaded into the CRM, keys issued and
  registered, both tokens obtained through the real flows, a scheduled job that
  fires during the demo, a revoked token refreshed on the way, the invoices
  printed (`demo_batch.py`).

The demo's data lives in `<data_dir>/demo/` and is recreated on every run.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import uvicorn
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from printcloud.auth import service as auth_service
from printcloud.auth.client import AuthClient
from printcloud.core.settings import Settings

console = Console()
CALLBACK = "http://127.0.0.1:9/callback"  # never contacted: the demo reads the redirect's Location


@dataclass
class Check:
    step: str
    ok: bool
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def check(self, step: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(step, ok, detail))
        mark = "[green]✔[/green]" if ok else "[red]✘[/red]"
        console.print(f"  {mark} {step}: [dim]{detail}[/dim]")
        return ok


class Browser:
    """A cookie-keeping HTTP client that fills in the real HTML forms, as a person would."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, follow_redirects=False, timeout=10)

    @staticmethod
    def _csrf(html: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        if not found:
            raise RuntimeError("no CSRF field on the page")
        return found.group(1)

    def authorize(
        self,
        issuer: str,
        query: dict[str, str],
        *,
        tenant: str,
        username: str,
        password: str,
        tenant_wide: bool = False,
    ) -> tuple[str | None, bool, bool]:
        """Runs the authorization endpoint to its redirect.

        Answers (code, asked, tenant_box_offered)."""
        url = f"/{issuer}/authorize?{urlencode(query)}"
        resp = self.http.get(url)
        if resp.status_code == 303 and "/login" in resp.headers["location"]:
            login_page = self.http.get(resp.headers["location"])
            nxt = parse_qs(urlsplit(resp.headers["location"]).query)["next"][0]
            resp = self.http.post(
                f"/{issuer}/login",
                data={
                    "tenant": tenant,
                    "username": username,
                    "password": password,
                    "csrf": self._csrf(login_page.text),
                    "next": nxt,
                },
            )
            if resp.status_code != 303:
                raise RuntimeError(f"login failed: {resp.status_code}")
            resp = self.http.get(resp.headers["location"])
        asked = resp.status_code == 200 and "Allow" in resp.text
        offered = "tenant_wide" in resp.text
        if asked:
            data = {"decision": "allow", "remember": "1", "csrf": self._csrf(resp.text)}
            if tenant_wide:
                data["tenant_wide"] = "1"
            resp = self.http.post(url, data=data)
        location = resp.headers.get("location", "")
        code = parse_qs(urlsplit(location).query).get("code", [None])[0]
        return code, asked, offered

    def session_id(self, issuer: str) -> str | None:
        return self.http.cookies.get(f"pc_sid_{issuer.replace('-', '_')}")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


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
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the embedded stack did not start")
        time.sleep(0.05)
    return server, thread


def run_demo(base: Settings, *, keep_running: bool = False) -> int:
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
    report = Report()
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
    local_user = {"id": "jdoe", "name": "J. Doe"}
    token = mfp.client_credentials(scope="print", local_user=local_user)
    info = mfp.introspect(token.access_token)
    report.check(
        "token with local_user",
        bool(token.access_token),
        f"expires in {token.expires_in}s, scope {token.scope!r}",
    )
    report.check(
        "introspection: tenant + local user",
        info.get("tenant_id") == "1000AA" and info.get("local_user") == local_user,
        f"tenant_id={info.get('tenant_id')} local_user={info.get('local_user')}",
    )
    me = mfp.me(token.access_token)
    report.check(
        "/api/me, cooperation mode OFF",
        me["acting_user"] == device_id,
        f"acts as {me['acting_kind']} {me['acting_user']}",
    )
    with Database(settings.effective_database_url).session() as s:
        auth_service.update_tenant_settings(
            s,
            tenant=auth_service.get_tenant(s, issuer=issuer, tenant_id="1000AA"),
            actor="demo",
            local_auth_cooperation=True,
        )
    token2 = mfp.client_credentials(scope="print", local_user=local_user)
    me2 = mfp.me(token2.access_token)
    report.check(
        "/api/me, cooperation mode ON",
        me2["acting_user"] == "jdoe",
        f"acts as {me2['acting_kind']} {me2['acting_user']}",
    )

    console.rule("Seed 002: one consent for the whole tenant on this device")
    verifier, challenge = _pkce()
    query = {
        "response_type": "code",
        "client_id": device_id,
        "redirect_uri": CALLBACK,
        "scope": "print profile",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    alice = Browser(base)
    code, asked, offered = alice.authorize(
        issuer,
        query,
        tenant="1000AA",
        username="alice",
        password="demo-password-1",
        tenant_wide=True,
    )
    report.check(
        "alice (admin) is asked, ticks 'everyone in Acme Printing'",
        bool(code and asked and offered),
        f"consent page shown={asked}, tenant-wide box offered={offered}",
    )
    tokens = mfp.exchange_code(code or "", redirect_uri=CALLBACK, code_verifier=verifier)
    report.check(
        "code + PKCE → tokens",
        bool(tokens.access_token and tokens.refresh_token),
        "access and refresh token issued",
    )
    _, challenge_b = _pkce()
    code_b, asked_b, _ = Browser(base).authorize(
        issuer,
        {**query, "code_challenge": challenge_b, "state": "b"},
        tenant="1000AA",
        username="bob",
        password="demo-password-2",
    )
    report.check(
        "bob (same tenant) is NOT asked",
        bool(code_b) and not asked_b,
        f"consent page shown={asked_b}, code issued={bool(code_b)}",
    )
    _, asked_c, offered_c = Browser(base).authorize(
        issuer,
        {**query, "state": "c"},
        tenant="1000BB",
        username="carol",
        password="demo-password-3",
    )
    report.check(
        "carol (other tenant) IS asked",
        asked_c and not offered_c,
        f"consent page shown={asked_c}, tenant-wide box offered={offered_c}",
    )
    with Database(settings.effective_database_url).session() as s:
        consents = auth_service.list_tenant_consents(
            s, tenant=auth_service.get_tenant(s, issuer=issuer, tenant_id="1000AA")
        )
        summary = [
            f"{c.client.name}: by {c.granted_by} at {c.granted_at:%H:%M:%S}" for c in consents
        ]
    report.check(
        "tenant-wide consent listed with who and when", len(summary) == 1, "; ".join(summary)
    )

    console.rule("Seed 000, FIG. 11: the browser's session (AUTH_ID) → print-service tokens")
    svc_id, svc_secret = settings.service_client(issuer, "docgen")
    docgen = AuthClient(f"{base}/{issuer}", client_id=svc_id, client_secret=svc_secret)
    auth_id = alice.session_id(issuer) or ""
    exchanged = docgen.exchange_session(auth_id, scope="print")
    who = docgen.introspect(exchanged.access_token)
    report.check(
        "token exchange of alice's session",
        who.get("username") == "alice" and bool(exchanged.refresh_token),
        f"user={who.get('username')} tenant={who.get('tenant_id')} refresh token issued",
    )
    refreshed = docgen.refresh(exchanged.refresh_token or "")
    reused: Any
    try:
        docgen.refresh(exchanged.refresh_token or "")
        reused = "accepted"
    except Exception as exc:
        reused = str(exc)
    still = docgen.introspect(refreshed.access_token).get("active")
    report.check(
        "refresh rotates; reuse revokes the family",
        "invalid_grant" in str(reused) and still is False,
        f"reuse answered {reused!r}; newest access token active={still}",
    )

    console.rule("Seed 003: print a PDF to a color and a mono printer, load-balanced")
    from printcloud.demo_printing import walk_printing

    walk_printing(
        settings,
        report,
        console,
        user_token=tokens.access_token,
        device_id=device_id,
        device_secret=device_secret,
        tenant_id="1000AA",
    )

    console.rule("Seed 004: a new ID card at the printer, registered once, then it just works")
    from printcloud.demo_cards import walk_cards

    def user_token(username: str, password: str) -> str:
        verifier, challenge = _pkce()
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
    from printcloud.demo_batch import walk_batch

    def session_of(tenant_id: str, username: str, password: str) -> str:
        """Sign `username` in at idp-a (a browser's login form) and answer the session ID."""
        browser = Browser(base)
        _, challenge_s = _pkce()
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
