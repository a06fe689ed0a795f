"""Secure release of held jobs, and administrators that are administrators now (issue 11,
items 4 and 8), against `printcloud serve` in its own process.

Item 4: a device declares its local user itself in a client-credentials request, so that
token proves nobody is at the printer. By default only a card login's token (the issuer
marks it `amr: ["card"]`) or the owner's own user token lists and releases the owner's
held jobs; the tenant setting `held_release=device_local_auth` trusts the devices' own
local authentication again. Every release and every refusal lands in the job's history.

Item 8: the print service's and docgen's admin endpoints need the issuer's `admin` claim,
not only the scope: a demoted admin loses them once the guard's cache (1 s here) passes.

Issue 18 reuses this module's stack for the webhooks' admin API and CLI: a held job's
events reach a loopback receiver, verified by the `standardwebhooks` reference library.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from printcloud.auth import service
from printcloud.core.db import utcnow
from printcloud.device.agent import DeviceConfig
from printcloud.device.cards import CardReader
from printcloud.webhooks import service as webhooks
from tests.helpers.browser import Browser, Html, PrintBrowser, assert_accessible, form_to
from tests.helpers.cli import run_cli
from tests.helpers.print_stack import PrintStack, print_stacks
from tests.helpers.printing import make_pdf
from tests.webhooks.receiver import receiver

PRINTER = "mfp-1"
PASSWORD = "alice-password-1"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrintStack]:
    """One `printcloud serve` for the module (each test has its own tenant), whose
    resource servers cache an introspection answer for one second."""
    with print_stacks(tmp_path_factory) as make:
        yield make(workers=1, guard_cache_ttl=1.0)


class Site:
    """A tenant with local authentication cooperation on (seed 001), its user alice, its
    administrator boss, a device client (scopes device and print) and its printer."""

    def __init__(self, stack: PrintStack, out: Path) -> None:
        self.stack = stack
        self.id = stack.tenant()
        with stack.db.session() as s:
            t = service.get_tenant(s, issuer="idp-a", tenant_id=self.id)
            service.update_tenant_settings(s, tenant=t, actor="test", local_auth_cooperation=True)
        stack.user(self.id, "alice", PASSWORD)
        stack.user(self.id, "boss", PASSWORD, admin=True)
        self.dev_id, self.dev_secret = stack.client(self.id, kind="device", scope="device print")
        stack.printer(self.id, PRINTER, client_id=self.dev_id)
        self.alice = stack.api(stack.user_token(self.id, "alice", PASSWORD, "print"))
        self.config = DeviceConfig(
            server=stack.base_url,
            tenant_id=self.id,
            printer_id=PRINTER,
            client_id=self.dev_id,
            client_secret=self.dev_secret,
            out_dir=out,
            poll_interval=0.2,
        )

    def held(self, title: str) -> str:
        """A held job of alice's for the printer."""
        resp = self.alice.post(
            "/api/jobs",
            files={"file": ("doc.pdf", make_pdf(1), "application/pdf")},
            data={"printer_id": PRINTER, "dpi": "150", "hold": "true", "title": title},
        )
        assert resp.status_code == 202, resp.text
        job_id = str(resp.json()["job_id"])
        self.stack.wait_for(self.alice, job_id, "held")
        return job_id

    def device_token(self, local_user: dict[str, Any]) -> str:
        """The device's own client-credentials token, naming its local user itself."""
        resp = httpx.post(
            f"{self.stack.base_url}/idp-a/token",
            auth=(self.dev_id, self.dev_secret),
            data={
                "grant_type": "client_credentials",
                "scope": "device print",
                "local_user": json.dumps(local_user),
            },
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    def history(self, job_id: str) -> list[str]:
        job = self.alice.get(f"/api/jobs/{job_id}").json()
        return [str(e["detail"]) for e in job["history"]]

    def state(self, job_id: str) -> str:
        return str(self.alice.get(f"/api/jobs/{job_id}").json()["state"])

    def admin_api(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.stack.base_url}/idp-a/api/admin",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )


def device_calls(stack: PrintStack, token: str, job_id: str) -> tuple[httpx.Response, ...]:
    """The held list and the release at the printer, and the release from anywhere."""
    with stack.api(token) as api:
        return (
            api.get(f"/api/device/printers/{PRINTER}/held"),
            api.post(f"/api/device/jobs/{job_id}/release", json={"printer_id": PRINTER}),
            api.post(f"/api/jobs/{job_id}/release"),
        )


def me(stack: PrintStack, token: str) -> dict[str, Any]:
    resp = httpx.get(f"{stack.base_url}/idp-a/api/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


# -- item 4 --------------------------------------------------------------------------------


def test_a_device_naming_its_local_user_gets_403_and_the_refusal_is_recorded(
    stack: PrintStack, tmp_path: Path
) -> None:
    site = Site(stack, tmp_path)
    job_id = site.held("Payroll")
    token = site.device_token({"id": "alice", "name": "Alice"})
    for answer in device_calls(stack, token, job_id):
        assert answer.status_code == 403, answer.text
        assert "card" in answer.json()["error_description"]
    # the device's token acts as alice elsewhere (seed 001); it just proves no card
    assert me(stack, token)["acting_user"] == "alice" and me(stack, token)["amr"] == []
    assert site.state(job_id) == "held"
    refusals = [d for d in site.history(job_id) if d.startswith("release refused")]
    assert len(refusals) == 2, site.history(job_id)
    assert all(f"'alice' through device {site.dev_id}" in d for d in refusals)


def test_a_card_login_lists_and_releases_the_owners_held_job(
    stack: PrintStack, tmp_path: Path
) -> None:
    site = Site(stack, tmp_path)
    job_id = site.held("Board minutes")
    with CardReader(site.config) as reader:
        session = reader.register("04:A2:B3:C4:D5", "alice", PASSWORD)
        assert session.token is not None
        assert me(stack, session.token)["amr"] == ["card"]
        assert [j.job_id for j in session.held()] == [job_id]
        session.release(job_id)
        session.logout()
    assert site.state(job_id) != "held"
    released = [d for d in site.history(job_id) if d.startswith("released by")]
    assert released == [
        f"released by alice at printer {PRINTER} (card login at device {site.dev_id})"
    ]


def test_the_owners_own_token_releases_at_the_printer(stack: PrintStack, tmp_path: Path) -> None:
    site = Site(stack, tmp_path)
    job_id = site.held("Contract")
    # RFC 8628 at the printer: alice approves the device's request on her own phone
    auth = (site.dev_id, site.dev_secret)
    grant = httpx.post(
        f"{stack.base_url}/idp-a/device_authorization", auth=auth, data={"scope": "device print"}
    ).json()
    with Browser(stack.base_url) as browser:
        browser.login(site.id, "alice", PASSWORD)
        page = browser.http.get(f"/idp-a/device?{urlencode({'user_code': grant['user_code']})}")
        form = form_to(page.text, "/idp-a/device")
        done = browser.http.post(form.action, data={**form.hidden, "decision": "allow"})
        assert done.status_code == 200, done.text
    issued = httpx.post(
        f"{stack.base_url}/idp-a/token",
        auth=auth,
        data={"grant_type": DEVICE_CODE, "device_code": grant["device_code"]},
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    with stack.api(token) as api:
        listed = api.get(f"/api/device/printers/{PRINTER}/held")
        assert listed.status_code == 200, listed.text
        assert [j["job_id"] for j in listed.json()["jobs"]] == [job_id]
        answer = api.post(f"/api/device/jobs/{job_id}/release", json={"printer_id": PRINTER})
        assert answer.status_code == 200, answer.text
    assert any(
        d == f"released by alice at printer {PRINTER} (the owner's own sign-in)"
        for d in site.history(job_id)
    ), site.history(job_id)


def test_the_tenant_setting_trusts_the_devices_local_authentication(
    stack: PrintStack, tmp_path: Path
) -> None:
    site = Site(stack, tmp_path)
    job_id = site.held("Budget")
    with site.admin_api(stack.user_token(site.id, "boss", PASSWORD, "admin")) as api:
        assert api.get(f"/tenants/{site.id}").json()["held_release"] == "card_or_owner"
        wrong = api.patch(f"/tenants/{site.id}", json={"held_release": "anyone"})
        assert wrong.status_code == 400 and "held_release" in wrong.text, wrong.text
        switched = api.patch(f"/tenants/{site.id}", json={"held_release": "device_local_auth"})
        assert switched.status_code == 200, switched.text
        assert switched.json()["held_release"] == "device_local_auth"
        audit = api.get(f"/tenants/{site.id}/audit").json()
        assert any(
            e["action"] == "tenant.settings"
            and e["details"].get("held_release") == "device_local_auth"
            for e in audit
        ), audit
    token = site.device_token({"id": "alice"})
    assert me(stack, token)["held_release"] == "device_local_auth"
    with stack.api(token) as api:
        listed = api.get(f"/api/device/printers/{PRINTER}/held")
        assert listed.status_code == 200, listed.text
        assert [j["job_id"] for j in listed.json()["jobs"]] == [job_id]
        answer = api.post(f"/api/device/jobs/{job_id}/release", json={"printer_id": PRINTER})
        assert answer.status_code == 200, answer.text
    assert (
        f"released by alice at printer {PRINTER} "
        f"(local authentication of device {site.dev_id} (trusted by the tenant))"
    ) in site.history(job_id)

    # and back: the next token of the device is refused again
    with site.admin_api(stack.user_token(site.id, "boss", PASSWORD, "admin")) as api:
        back = api.patch(f"/tenants/{site.id}", json={"held_release": "card_or_owner"})
        assert back.status_code == 200, back.text
    second = site.held("Agenda")
    for answer in device_calls(stack, site.device_token({"id": "alice"}), second):
        assert answer.status_code == 403, answer.text
    assert site.state(second) == "held"


# -- item 8 --------------------------------------------------------------------------------


def poll_until_refused(call: Any) -> httpx.Response:
    """Poll `call` until it answers 403 (the guard's cache passes within a second)."""
    deadline = time.monotonic() + 60
    while True:
        answer: httpx.Response = call()
        if answer.status_code == 403 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_a_demoted_admin_loses_the_print_and_docgen_admin_endpoints(
    stack: PrintStack, tmp_path: Path
) -> None:
    site = Site(stack, tmp_path)
    token = stack.user_token(site.id, "boss", PASSWORD, "print admin docgen")
    bearer = {"Authorization": f"Bearer {token}"}
    printers = f"{stack.printing}/api/printers"
    settings = f"{stack.base_url}/docgen/api/settings"
    count = iter(range(1000))

    def add_printer() -> httpx.Response:
        body = {"printer_id": f"floor-{next(count)}", "client_id": site.dev_id}
        return httpx.post(printers, json=body, headers=bearer, timeout=30)

    assert add_printer().status_code == 201
    assert httpx.get(settings, headers=bearer, timeout=30).status_code == 200
    platform = httpx.post(
        f"{stack.base_url}/idp-a/token",
        auth=stack.settings.service_client("idp-a", "auth"),
        data={"grant_type": "client_credentials", "scope": "admin"},
    ).json()["access_token"]
    with site.admin_api(platform) as api:
        demoted = api.patch(f"/tenants/{site.id}/users/boss", json={"is_admin": False})
        assert demoted.status_code == 200, demoted.text
    refused = poll_until_refused(add_printer)
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied", refused.text
    refused = poll_until_refused(lambda: httpx.get(settings, headers=bearer, timeout=30))
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied", refused.text
    # the token itself still works where no administrator is needed
    assert httpx.get(printers, headers=bearer, timeout=30).status_code == 200


# -- issue 18: webhooks over the admin API and the CLI ---------------------------------------


def test_webhooks_from_the_admin_api_and_the_cli_verified_by_standardwebhooks(
    stack: PrintStack, tmp_path: Path
) -> None:
    site = Site(stack, tmp_path)
    boss = stack.api(stack.user_token(site.id, "boss", PASSWORD, "print admin"))
    events = ["job.accepted", "job.held", "job.cancelled"]
    with receiver() as live:
        refused = boss.post(
            "/api/webhooks", json={"url": "http://10.0.0.1/hook", "event_types": events}
        )
        assert refused.status_code == 400 and refused.json()["field"] == "url", refused.text
        assert "private address" in refused.json()["error_description"]
        refused = boss.post(
            "/api/webhooks", json={"url": f"{live.url}/ok/h", "event_types": ["job.exploded"]}
        )
        assert refused.status_code == 400 and refused.json()["field"] == "event_types"
        assert site.alice.get("/api/webhooks").status_code == 403  # administrators only

        added = boss.post("/api/webhooks", json={"url": f"{live.url}/ok/h", "event_types": events})
        assert added.status_code == 201, added.text
        assert added.headers["cache-control"] == "no-store"
        subscription_id, secret = added.json()["subscription_id"], added.json()["secret"]
        assert secret.startswith("whsec_") and secret not in boss.get("/api/webhooks").text
        live.secrets["ok/h"] = [secret]

        job_id = site.held("Payroll")
        assert site.alice.post(f"/api/jobs/{job_id}/cancel").status_code == 200
        sent = boss.post(f"/api/webhooks/{subscription_id}/test")
        assert sent.status_code == 202, sent.text
        deadline = time.monotonic() + 60
        while len(live.at("ok/h")) < 4:
            assert time.monotonic() < deadline, "stuck waiting for four deliveries"
            time.sleep(0.1)
        got = live.at("ok/h")
        bodies = [r.verified[secret] for r in got]  # standardwebhooks verified each
        assert all(isinstance(b, dict) for b in bodies), bodies
        jobs = [b for b in bodies if b["type"] != "webhook.test"]
        assert [b["type"] for b in jobs] == events
        assert all(b["data"]["job_id"] == job_id for b in jobs)
        assert jobs[2]["data"]["cancelled_by"] == "owner"
        assert sent.json()["message_id"] in {r.headers["webhook-id"] for r in got}

        log = boss.get(f"/api/webhooks/{subscription_id}/deliveries").json()["deliveries"]
        assert {d["state"] for d in log} == {"delivered"} and len(log) == 4
        assert {d["last_attempt"]["status_code"] for d in log} == {204}

        other = stack.tenant()
        stack.user(other, "boss", PASSWORD, admin=True)
        stranger = stack.api(stack.user_token(other, "boss", PASSWORD, "print admin"))
        assert stranger.get(f"/api/webhooks/{subscription_id}").status_code == 404
        assert stranger.delete(f"/api/webhooks/{subscription_id}").status_code == 404

        listed = run_cli(stack.env, "admin", "--json", "webhook", "list", "--tenant", site.id)
        assert listed.returncode == 0, listed.stderr
        assert [w["subscription_id"] for w in json.loads(listed.stdout)] == [subscription_id]
        rotated = run_cli(
            stack.env, "admin", "--json", "webhook", "rotate", subscription_id,
            "--tenant", site.id, "--overlap", "3600",
        )  # fmt: skip
        assert rotated.returncode == 0, rotated.stderr
        assert json.loads(rotated.stdout)["secret"].startswith("whsec_")
        trail = boss.get("/api/webhooks/audit").json()["events"]
        assert [e["action"] for e in trail][:3] == ["rotated", "tested", "added"]

        assert boss.delete(f"/api/webhooks/{subscription_id}").status_code == 204
        assert boss.get("/api/webhooks").json()["webhooks"] == []


def test_webhook_pages_for_the_administrator(stack: PrintStack, tmp_path: Path) -> None:
    """The console's webhook pages over HTTP as a browser without JavaScript: add (the
    secret shown once), refused input kept beside its field, a test event in the log with
    the receiver's answer, a new secret, off and on, delete; others get 403."""
    site = Site(stack, tmp_path)
    admin = PrintBrowser(stack, (site.id, "boss", PASSWORD))
    http = admin.http
    with receiver() as live:
        page = admin.open("/printing/webhooks")
        assert page.status_code == 200 and "No webhooks yet" in page.text
        assert_accessible(Html(page.text))
        csrf = admin.csrf(page)
        refused = http.post(
            "/printing/webhooks",
            data={"csrf": csrf, "url": "http://10.0.0.1/hook", "event": ["job.printed"]},
        )
        assert refused.status_code == 400
        assert 'id="webhook-url-error"' in refused.text and "http://10.0.0.1/hook" in refused.text
        none_chosen = http.post(
            "/printing/webhooks", data={"csrf": csrf, "url": f"{live.url}/ok/p", "event": []}
        )
        assert none_chosen.status_code == 400 and "Choose at least one event" in none_chosen.text

        added = http.post(
            "/printing/webhooks",
            data={"csrf": csrf, "url": f"{live.url}/ok/p", "event": ["job.printed"]},
        )
        assert added.status_code == 200, added.text[:2000]
        secret = re.search(r'<code id="secret-value">(whsec_[^<]+)</code>', added.text)
        assert secret, added.text[:3000]
        live.secrets["ok/p"] = [secret.group(1)]
        (subscription_id,) = re.findall(r"/printing/webhooks/(ep_[\w-]+)/test", added.text)
        detail = f"/printing/webhooks/{subscription_id}"
        assert secret.group(1) not in http.get(detail).text  # shown once

        tested = http.post(f"{detail}/test", data={"csrf": csrf})
        assert tested.status_code == 303 and tested.headers["location"] == f"{detail}?done=tested"
        deadline = time.monotonic() + 60
        while "Accepted (204)" not in (shown := http.get(detail).text):
            assert time.monotonic() < deadline, "stuck waiting for the test event's answer"
            time.sleep(0.1)
        assert "Test event" in shown and "Delivered" in shown
        assert_accessible(Html(shown))
        assert isinstance(live.at("ok/p")[0].verified[secret.group(1)], dict)

        rotated = http.post(f"{detail}/rotate", data={"csrf": csrf})
        assert rotated.status_code == 200 and "Your new signing secret" in rotated.text
        assert "signed with the previous secret too until" in rotated.text
        off = http.post(f"{detail}/disable", data={"csrf": csrf})
        assert off.status_code == 303
        assert "Turn on again" in http.get(detail).text
        assert http.post(f"{detail}/enable", data={"csrf": csrf}).status_code == 303

        # the platform turns it off after a long failure: the list page says so at the top
        with stack.db.session() as db:
            row = webhooks.get(db, tenant_id=site.id, subscription_id=subscription_id)
            row.failing_since = utcnow() - timedelta(days=2)
            assert webhooks.disable_if_failing(
                db, subscription_pk=row.pk, failing_for=timedelta(days=1)
            )
        banner = http.get("/printing/webhooks").text
        assert f'id="turned-off-{subscription_id}"' in banner and "was turned off" in banner
        assert "Turned off by the platform after failing" in banner  # the trail, in words
        assert http.post(f"{detail}/enable", data={"csrf": csrf}).status_code == 303
        assert "was turned off" not in http.get("/printing/webhooks").text

        alice = PrintBrowser(stack, (site.id, "alice", PASSWORD))
        assert alice.open("/printing/webhooks").status_code == 403
        assert alice.http.get(detail).status_code == 403

        gone = http.post(f"{detail}/delete", data={"csrf": csrf})
        assert gone.headers["location"] == "/printing/webhooks?done=deleted"
        listed = http.get(gone.headers["location"]).text
        assert "Webhook deleted." in listed and "New signing secret" in listed  # the trail
