"""The printer's card reader (seed 004 at the device) against a real stack: `printcloud
serve` in its own process, the agent printing in this one.

A user taps an unknown card, is asked to register it, types a wrong and then the right
directory password; their held jobs are listed and released, and the agent prints them.
Through the Python API (`CardReader`), the console (`printcloud device --card-reader`
driven through a pipe), the web panel over HTTP (cookie, CSRF, escaping, expiry), and
with the tenant's directory in a real OpenLDAP.
"""

from __future__ import annotations

import contextlib
import html
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from printcloud.auth import cards, service
from printcloud.core.crypto import SecretBox
from printcloud.device.agent import DeviceError
from printcloud.device.cards import (
    CardReader,
    CardSession,
    CardUser,
    DirectoryUnavailable,
    InvalidCard,
    InvalidCredentials,
    LockedOut,
    RegistrationNeeded,
    SessionEnded,
)
from printcloud.device.console import parse_choice
from printcloud.device.panel import COOKIE, Panel
from printcloud.device.status import PrintStatus
from tests.conftest import free_port
from tests.helpers.device import PASSWORD, PRINTER, Site
from tests.helpers.print_stack import PrintStack, print_stacks
from tests.ldap_server import (
    Slapd,
    slapd_fixture,  # noqa: F401  (the `slapd` fixture)
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrintStack]:
    """One `printcloud serve` for the module (each test has its own tenant)."""
    with print_stacks(tmp_path_factory) as make:
        yield make(workers=1)


# -- the reader's API ---------------------------------------------------------------------


def test_tap_register_list_release_and_print(stack: PrintStack, tmp_path: Path) -> None:
    site = Site(stack, tmp_path)
    card = "04:a2:b3:c4:d5"
    with CardReader(site.config) as reader:
        inquiry = reader.tap(card)
        assert isinstance(inquiry, RegistrationNeeded)
        assert inquiry.hint == "…C4D5" and "username" in inquiry.message

        with pytest.raises(InvalidCredentials, match="refused"):
            reader.register(card, "alice", "not-her-password")
        assert isinstance(reader.tap(card), RegistrationNeeded)  # nothing was bound

        session = reader.register(card, "alice", PASSWORD)
        assert session.registered and session.active
        assert session.user == CardUser(id="alice", name="alice")
        assert session.token is not None
        first = site.submit_held(session.token, "Quarterly report", pages=2)
        second = site.submit_held(session.token, "Minutes")
        session.logout()
        assert not session.active
        with pytest.raises(SessionEnded):
            session.held()

        again = reader.tap("04A2B3C4D5")  # the same card, as another reader types it
        assert isinstance(again, CardSession) and not again.registered
        held = again.held()
        assert [(j.job_id, j.title, j.pages) for j in held] == [
            (first, "Quarterly report", 2),
            (second, "Minutes", 1),
        ]
        assert held[0].submitted is not None and held[0].submitted_text

        status = PrintStatus()
        with site.printing(status):
            again.release(first)
            done = stack.wait_for(site.api, first, "printed")
            assert done["pages_printed"] == 2
            assert [j.job_id for j in again.held()] == [second]
            assert [j.job_id for j in again.release_all()] == [second]
            stack.wait_for(site.api, second, "printed")
            finished = status.wait([first, second], timeout=30)
        assert {job_id: s.state for job_id, s in finished.items()} == {
            first: "printed",
            second: "printed",
        }
        assert finished[first].page == 2 and finished[first].title == "Quarterly report"
        assert again.held() == []
        with pytest.raises(DeviceError) as not_held:
            again.release(first)
        assert not_held.value.status == 409
        with pytest.raises(DeviceError, match="not a job id"):
            again.release("../printers")
        again.logout()


def test_refusals_are_clear(stack: PrintStack, tmp_path: Path) -> None:
    site = Site(stack, tmp_path)
    with CardReader(site.config) as reader:
        for bad in ("", "12", "x" * 200):
            with pytest.raises(InvalidCard):
                reader.tap(bad)

        # Too many failures for one card: locked out, with the time to wait.
        card = "LOCK0001"
        assert isinstance(reader.tap(card), RegistrationNeeded)
        with pytest.raises(LockedOut) as locked:
            for _ in range(10):
                with contextlib.suppress(InvalidCredentials):
                    reader.register(card, "alice", "guess")
        assert 0 < locked.value.retry_after <= stack.settings.card_lockout_seconds + 1
        assert f"try again in {locked.value.retry_after} s" in str(locked.value)

        # The directory does not answer: nothing registered, and the user is told so.
        with stack.db.session() as s:
            t = service.get_tenant(s, issuer="idp-a", tenant_id=site.id)
            cards.set_directory(
                s,
                tenant=t,
                box=SecretBox(stack.settings.instance_secrets),
                egress=stack.settings.egress_policy,
                actor="test",
                kind="ldap",
                url=f"ldap://127.0.0.1:{free_port()}",
                base_dn="ou=people,dc=example,dc=org",
                timeout=1,
            )
        with pytest.raises(DirectoryUnavailable):
            reader.register("DOWN0001", "alice", PASSWORD)

    # Without the tenant's local authentication cooperation the token acts for the
    # device, not the user: the print service says what is missing.
    off = Site(stack, tmp_path / "off", cooperation=False)
    with CardReader(off.config) as reader:
        session = reader.register("0FF00001", "alice", PASSWORD)
        with pytest.raises(DeviceError, match="cooperation mode") as refused:
            session.held()
        assert refused.value.status == 403
        session.logout()


@pytest.mark.parametrize(
    ("text", "picked"),
    [("1", [0]), ("3 1", [2, 0]), ("1,2, 2", [0, 1]), ("2-3", [1, 2]), ("all", [0, 1, 2])],
)
def test_release_choices(text: str, picked: list[int]) -> None:
    assert parse_choice(text, 3) == picked


@pytest.mark.parametrize("text", ["4", "0", "x", "1-x", "-1"])
def test_release_choices_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_choice(text, 3)


# -- the console, through a pipe ----------------------------------------------------------


def test_the_console_driven_through_a_pipe(stack: PrintStack, tmp_path: Path) -> None:
    site = Site(stack, tmp_path)
    first, second = site.held_jobs("CARD0001", "Budget", "Agenda")
    card = "CA:FE:00:02"  # alice's second card, unknown yet
    script = "\n".join(
        [
            card,
            "alice",
            "not-her-password",  # refused: asked again
            "alice",
            PASSWORD,
            "9",  # no such job: asked again
            "2",
            card,  # now known: straight to the jobs
            "all",
            "q",
        ]
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "printcloud",
            "device",
            "--server",
            stack.base_url,
            "--tenant",
            site.id,
            "--printer-id",
            PRINTER,
            "--client-id",
            site.dev_id,
            "--out",
            str(tmp_path / "out"),
            "--poll-interval",
            "0.2",
            "--card-reader",
        ],
        input=script + "\n",
        env={**stack.env, "PRINTCLOUD_DEVICE_SECRET": site.dev_secret, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "Tap a card (type its ID), or q to quit:" in out
    assert "Card …0002 is not registered" in out
    assert out.count("Directory user name:") == 2
    assert "Wrong user name or password" in out
    assert "registered to alice" in out
    assert "Your held jobs at this printer" in out
    assert "Budget" in out and "Agenda" in out
    assert "there is no job 9" in out
    assert "released Agenda" in out and "released Budget" in out
    assert re.search(r"printed\s+Agenda \(1 page\(s\)\)", out), out
    assert out.count("Logged out.") == 2
    assert "card reader closed" in out
    assert PASSWORD not in out  # the password is read, never shown
    assert site.state(first) == "printed" and site.state(second) == "printed"


# -- the web panel ------------------------------------------------------------------------


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:2000]
    return html.unescape(found.group(1))


def test_the_web_panel(stack: PrintStack, tmp_path: Path) -> None:
    site = Site(stack, tmp_path)
    title = "<script>alert(1)</script> & minutes"
    first, second = site.held_jobs("CARD0010", title, "Plan")
    status = PrintStatus()
    with (
        site.printing(status),
        CardReader(site.config) as reader,
        Panel(site.config, reader, status) as panel,
        httpx.Client(base_url=panel.url.removesuffix("/panel"), timeout=30) as web,
    ):
        assert panel.url.startswith("http://127.0.0.1:")
        page = web.get("/panel")
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "<script" not in page.text.lower()  # no JavaScript, plain forms
        assert 'action="/panel/tap"' in page.text
        csrf = _csrf(page.text)

        # No CSRF token, a stale one, or another host's name: nothing happens.
        assert web.post("/panel/tap", data={"card_id": "CARD0011"}).status_code == 403
        bad = web.post("/panel/tap", data={"card_id": "CARD0011", "csrf": csrf + "x"})
        assert bad.status_code == 403
        rebound = web.post(
            "/panel/tap",
            data={"card_id": "CARD0011", "csrf": csrf},
            headers={"Host": f"printer.example:{httpx.URL(panel.url).port}"},
        )
        assert rebound.status_code == 421

        tapped = web.post("/panel/tap", data={"card_id": "CARD0011", "csrf": csrf})
        assert tapped.status_code == 303 and tapped.headers["location"] == "/panel"
        page = web.get("/panel")
        assert "Card …0011 is not registered" in page.text
        assert 'action="/panel/register"' in page.text

        web.post(
            "/panel/register",
            data={"username": "alice", "password": "wrong", "csrf": _csrf(page.text)},
        )
        page = web.get("/panel")
        assert "Wrong user name or password" in page.text
        assert 'action="/panel/register"' in page.text  # still waiting for the right one

        before = web.cookies[COOKIE]
        done = web.post(
            "/panel/register",
            data={"username": "alice", "password": PASSWORD, "csrf": _csrf(page.text)},
        )
        assert done.status_code == 303
        assert web.cookies[COOKIE] != before  # a new cookie at login
        page = web.get("/panel")
        assert "Card …0011 is now registered to alice" in page.text
        assert 'id="held"' in page.text
        assert html.escape(title) in page.text and "<script>alert" not in page.text
        assert page.text.count('action="/panel/release"') == 2
        # the cookie from before the login is worth nothing now
        with httpx.Client(base_url=str(web.base_url), cookies={COOKIE: before}) as other:
            assert 'id="held"' not in other.get("/panel").text

        csrf = _csrf(page.text)
        released = web.post("/panel/release", data={"job_id": first, "csrf": csrf})
        assert released.status_code == 303
        page = web.get("/panel")
        assert "it prints in a moment" in page.text
        assert page.text.count('action="/panel/release"') == 1
        stack.wait_for(site.api, first, "printed")
        status.wait([first], timeout=30)
        page = web.get("/panel")
        printing = page.text.split('id="printing"', 1)[1]
        assert html.escape(title) in printing and "printed" in printing

        web.post("/panel/release-all", data={"csrf": _csrf(page.text)})
        stack.wait_for(site.api, second, "printed")
        page = web.get("/panel")
        assert "Released 1 job(s)" in page.text and 'id="no-jobs"' in page.text

        web.post("/panel/logout", data={"csrf": _csrf(page.text)})
        page = web.get("/panel")
        assert "Logged out." in page.text and 'action="/panel/tap"' in page.text


def test_panel_sessions_end_after_inactivity(stack: PrintStack, tmp_path: Path) -> None:
    site = Site(stack, tmp_path)
    (job,) = site.held_jobs("CARD0020", "Idle")
    now = [0.0]  # the panel's clock, moved by the test: no race with a slow machine
    with (
        CardReader(site.config) as reader,
        Panel(site.config, reader, PrintStatus(), idle=60, clock=lambda: now[0]) as panel,
        httpx.Client(base_url=panel.url.removesuffix("/panel"), timeout=30) as web,
    ):
        page = web.get("/panel")
        web.post("/panel/tap", data={"card_id": "CARD0020", "csrf": _csrf(page.text)})
        page = web.get("/panel")
        assert 'id="held"' in page.text
        csrf = _csrf(page.text)
        now[0] += 59  # idle, but not yet for its whole minute: the session lives on
        assert 'id="held"' in web.get("/panel").text
        now[0] += 61  # a minute and a second without a request: it has run out
        late = web.post("/panel/release-all", data={"csrf": csrf})
        assert late.status_code == 303 and COOKIE in late.headers["set-cookie"]
        page = web.get("/panel")
        assert "session had expired" in page.text and 'action="/panel/tap"' in page.text
    assert site.state(job) == "held"  # the late form released nothing
    site.cancel(job)


# -- LDAP as the directory ----------------------------------------------------------------


@pytest.mark.peer("slapd")
def test_registration_against_ldap(stack: PrintStack, slapd: Slapd, tmp_path: Path) -> None:
    site = Site(stack, tmp_path)
    with stack.db.session() as s:
        t = service.get_tenant(s, issuer="idp-a", tenant_id=site.id)
        cards.set_directory(
            s,
            tenant=t,
            box=SecretBox(stack.settings.instance_secrets),
            egress=stack.settings.egress_policy,
            actor="test",
            kind="ldap",
            url=slapd.url,
            base_dn=slapd.base_dn,
            bind_dn=slapd.reader_dn,
            bind_password=slapd.reader_password,
            timeout=2,
        )
    with CardReader(site.config) as reader:
        card = "1DAP0001"
        assert isinstance(reader.tap(card), RegistrationNeeded)
        with pytest.raises(InvalidCredentials):
            reader.register(card, "alice", PASSWORD)  # her password here, not in LDAP
        session = reader.register(card, "alice", slapd.passwords["alice"])
        assert session.registered
        assert session.user == CardUser(id="alice", name="Alice Liddell")
        assert session.held() == []
        session.logout()
        again = reader.tap(card)
        assert isinstance(again, CardSession) and again.user.name == "Alice Liddell"
        again.logout()
