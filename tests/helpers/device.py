"""A card reader's site: a tenant with local authentication cooperation, its users, a device
client and its printer (seed 004 at the device)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from printcloud.auth import service
from printcloud.device.agent import DeviceAgent, DeviceConfig
from printcloud.device.cards import (
    CardReader,
    RegistrationNeeded,
)
from printcloud.device.status import PrintStatus
from tests.helpers.print_stack import PrintStack
from tests.helpers.printing import make_pdf
from tests.ldap_server import (
    slapd_fixture,  # noqa: F401  (the `slapd` fixture)
)

PASSWORD = "alice-password-1"


PRINTER = "mfp-1"


class Site:
    """A tenant with local authentication cooperation on, the user alice (password in its
    own user store), a device client (scopes device and print) and its printer."""

    def __init__(self, stack: PrintStack, out: Path, *, cooperation: bool = True) -> None:
        self.stack = stack
        self.id = stack.tenant()
        with stack.db.session() as s:
            t = service.get_tenant(s, issuer="idp-a", tenant_id=self.id)
            service.update_tenant_settings(
                s, tenant=t, actor="test", local_auth_cooperation=cooperation
            )
        stack.user(self.id, "alice", PASSWORD)
        self.dev_id, self.dev_secret = stack.client(self.id, kind="device", scope="device print")
        stack.printer(self.id, PRINTER, client_id=self.dev_id)
        admin_id, admin_secret = stack.client(self.id, scope="print")
        self.api = stack.api(stack.token(admin_id, admin_secret, "print"))
        self.config = DeviceConfig(
            server=stack.base_url,
            tenant_id=self.id,
            printer_id=PRINTER,
            client_id=self.dev_id,
            client_secret=self.dev_secret,
            out_dir=out,
            poll_interval=0.2,
        )

    def submit_held(self, token: str, title: str, pages: int = 1) -> str:
        """A held job of the card's user: the card login's token acts for them."""
        resp = httpx.post(
            f"{self.stack.printing}/api/jobs",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("doc.pdf", make_pdf(pages), "application/pdf")},
            data={"printer_id": PRINTER, "dpi": "150", "hold": "true", "title": title},
            timeout=60,
        )
        assert resp.status_code == 202, resp.text
        job = resp.json()
        assert job["owner"] == "alice"
        self.stack.wait_for(self.api, job["job_id"], "held")
        return str(job["job_id"])

    def held_jobs(self, card: str, *titles: str) -> list[str]:
        """Register `card` to alice and submit held jobs as her; then log out."""
        with CardReader(self.config) as reader:
            session = reader.register(card, "alice", PASSWORD)
            assert session.token is not None
            ids = [self.submit_held(session.token, title) for title in titles]
            session.logout()
        return ids

    @contextlib.contextmanager
    def printing(self, status: PrintStatus | None = None) -> Iterator[DeviceAgent]:
        """The agent printing in a thread, as `printcloud device` runs it."""
        agent = DeviceAgent(self.config, on_event=status)
        stop = threading.Event()
        loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        loop.start()
        try:
            yield agent
        finally:
            stop.set()
            loop.join(timeout=30)
            agent.close()

    def cancel(self, job_id: str) -> None:
        """The owner cancels a job left held (a held job's workflow would wait for a day)."""
        with CardReader(self.config) as reader:
            session = reader.tap("CARD" + job_id[:8].upper())
            if isinstance(session, RegistrationNeeded):
                session = reader.register(session.card_id, "alice", PASSWORD)
            assert session.token is not None
            resp = httpx.post(
                f"{self.stack.printing}/api/jobs/{job_id}/cancel",
                headers={"Authorization": f"Bearer {session.token}"},
            )
            assert resp.status_code == 200, resp.text
            session.logout()

    def state(self, job_id: str) -> str:
        return str(self.api.get(f"/api/jobs/{job_id}").json()["state"])
