"""The demo's seed 004 walk: ID-card login with first-use registration at a printer.

Dana has a held job waiting. She taps a new card at the office printer: the
issuer does not know it and asks to register it; she types her directory user
name and password; the card is bound to her. She taps again, sees her held job
and releases it; the printer prints it. Then the clock is moved past the
tenant's period (the housekeeping's own function, told what time it is — no
sleep) and the unused binding is gone: the card must be registered again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from rich.console import Console

from printcloud.auth import cards, service
from printcloud.core.db import Database, utcnow
from printcloud.core.settings import Settings
from printcloud.demo.printing import make_brochure
from printcloud.device.agent import DeviceAgent, DeviceConfig
from printcloud.device.cards import CardReader, CardSession, RegistrationNeeded
from printcloud.printing.client import Job, PrintClient

FINAL = ("printed", "printer_cancelled", "failed")
CARD = "04:A2:B3:C4:D5:E6"
DANA_PASSWORD = "demo-password-4"  # noqa: S105 - the demo's own user, printed on screen


class Checks(Protocol):
    def check(self, step: str, ok: bool, detail: str) -> bool: ...


def walk_cards(
    settings: Settings,
    report: Checks,
    console: Console,
    *,
    tenant_id: str,
    device_id: str,
    device_secret: str,
    user_token: Callable[[str, str], str],
) -> None:
    base = settings.public_url
    db = Database(settings.effective_database_url)
    with db.session() as s:
        tenant = service.get_tenant(s, issuer="idp-a", tenant_id=tenant_id)
        service.create_user(
            s,
            tenant=tenant,
            username="dana",
            password=DANA_PASSWORD,
            display_name="Dana Scully",
            actor="demo",
        )
        retention = tenant.card_retention_days
    console.print(
        f"  dana (directory: the tenant's own users) at printer [bold]office-mono[/bold]; "
        f"cards unused for {retention} days are deleted"
    )
    # dana prints from her desk, to be released at the printer
    api = PrintClient(f"{base}/printing", timeout=60)
    token = user_token("dana", DANA_PASSWORD)
    job_id = api.submit(
        token=token,
        printer_id="office-mono",
        pdf=make_brochure(2),
        filename="payslip.pdf",
        options={"dpi": "150", "hold": "true"},
    ).job_id
    _wait(api, token, job_id, "held")
    report.check("dana's job is held", True, f"job {job_id} waits for dana at the printer")

    config = DeviceConfig(
        server=base,
        tenant_id=tenant_id,
        printer_id="office-mono",
        client_id=device_id,
        client_secret=device_secret,
        out_dir=settings.data_dir / "printed" / "office-mono",
    )
    with CardReader(config) as reader:
        first = reader.tap(CARD)
        report.check(
            "an unknown card: the issuer asks to register it",
            isinstance(first, RegistrationNeeded),
            f"card {CARD} → {getattr(first, 'message', first)!s:.90}",
        )
        session = reader.register(CARD, "dana", DANA_PASSWORD)
        report.check(
            "dana registers it with her directory credentials",
            session.registered and session.user.id == "dana",
            f"card bound to {session.user.name} ({session.user.id})",
        )
        session.logout()
        again = reader.tap(CARD)
        assert isinstance(again, CardSession)
        held = again.held()
        report.check(
            "dana taps again: logged in, her held job listed",
            not again.registered and [h.job_id for h in held] == [job_id],
            f"{again.user.name}: {', '.join(f'{h.title} ({h.pages} p.)' for h in held)}",
        )
        again.release(job_id)
        with DeviceAgent(config) as agent:
            deadline = time.monotonic() + 60
            while api.show(job_id, token=token).state not in (
                "printed",
                "printer_cancelled",
                "failed",
            ):
                if time.monotonic() > deadline:
                    break
                agent.poll_once()
                time.sleep(0.05)
        done = api.show(job_id, token=token)
        report.check(
            "released at the printer and printed",
            done.state == "printed",
            f"{done.state}: {done.pages_printed} pages",
        )
        again.logout()

        with db.session() as s:
            later = utcnow() + timedelta(days=retention + 1)
            gone = cards.expire_bindings(s, now=later)
        mine = [g for g in gone if g[0] == tenant_id and g[1] == "dana"]
        after = reader.tap(CARD)
        report.check(
            f"{retention + 1} days later the unused binding is deleted",
            bool(mine) and isinstance(after, RegistrationNeeded),
            f"expired: {', '.join(f'{u} {h}' for _, u, h in mine)}; the card asks to register",
        )
    api.close()
    db.dispose()


def _wait(api: PrintClient, token: str, job_id: str, state: str) -> Job:
    deadline = time.monotonic() + 30
    while True:
        job = api.show(job_id, token=token)
        if job.state == state or time.monotonic() > deadline:
            return job
        time.sleep(0.05)
