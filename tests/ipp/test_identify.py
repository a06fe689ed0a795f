"""Identify-Printer reaches the device (issue 14, PWG 5100.13 §4.1.2): over IPP to a
queue, recorded for the queue's printer, pushed to its running agent, which shows the
message on its panel and records the event; another tenant's printer of the same name
never sees it; a follow-me queue has no printer to identify; an action the devices do
not perform is ignored and returned; each request is delivered once, and not at all
once it is older than a few minutes."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from printcloud.core.db import utcnow
from printcloud.device.agent import DeviceAgent, DeviceEvent
from printcloud.device.cards import CardReader
from printcloud.device.panel import Panel
from printcloud.device.status import PrintStatus, fan_out
from printcloud.ipp.message import Attribute, GroupTag, Message, ValueTag
from printcloud.ipp.model import Operation, Status
from printcloud.printing import identify
from printcloud.printing.client import PrintClient
from printcloud.printing.models import IdentifyRequestRow
from tests.conftest import require_command
from tests.helpers.print_stack import PrintStack, print_stacks
from tests.helpers.printing import Tenant
from tests.ipp.client import call, request

PASSWORD = "identify-password-1"


@dataclass
class Printer:
    """A tenant's printer `color-1` run by an agent, with its status and panel."""

    tenant: Tenant
    agent: DeviceAgent
    status: PrintStatus
    events: list[DeviceEvent]
    queue_uri: str

    def identify(self, *actions: str, message: str | None = None, uri: str = "") -> Message:
        ops = []
        if actions:
            ops.append(Attribute("identify-actions", ValueTag.KEYWORD, list(actions)))
        if message is not None:
            ops.append(Attribute("message", ValueTag.TEXT, message))
        target = uri or self.queue_uri
        body = request(Operation.IDENTIFY_PRINTER, target, ops=ops)
        return call(target, body, auth=("alice", PASSWORD))


@dataclass
class World:
    stack: PrintStack
    first: Printer
    second: Printer
    panel_url: str


def _queue(stack: PrintStack, tenant: Tenant, name: str, printer: str | None) -> str:
    admin = stack.api(stack.user_token(tenant.id, "boss", PASSWORD, "admin print"))
    body = {"name": name} if printer is None else {"name": name, "printer_id": printer}
    made = admin.post("/api/queues", json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["uri"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with print_stacks(tmp_path_factory) as make:
        stack = make(workers=1)
        printers: list[Printer] = []
        loops: list[tuple[threading.Event, threading.Thread]] = []
        try:
            for index, poll in enumerate((600.0, 0.2)):
                tenant = Tenant(stack)  # each has a printer `color-1`
                stack.user(tenant.id, "alice", PASSWORD)
                stack.user(tenant.id, "boss", PASSWORD, admin=True)
                uri = _queue(stack, tenant, "q", "color-1")
                status, events = PrintStatus(), []
                out = tmp_path_factory.mktemp(f"printer-{index}")
                # The first printer would poll ten minutes later: only the push wakes it.
                listen = "127.0.0.1:0" if poll > 1 else None
                agent = tenant.device("color-1", out, poll_interval=poll, listen=listen)
                agent.on_event = fan_out(status, events.append)
                stop = threading.Event()
                loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
                loop.start()
                loops.append((stop, loop))
                printers.append(Printer(tenant, agent, status, events, uri))
            first = printers[0]
            _wait_for(lambda: _push_url(first) is not None, "the printer's push URL")
            with (
                CardReader(first.agent.config) as reader,
                Panel(first.agent.config, reader, first.status) as panel,
            ):
                yield World(stack, printers[0], printers[1], panel.url)
        finally:
            for stop, loop in loops:
                stop.set()
                loop.join(timeout=30)
            for printer in printers:
                printer.agent.close()


def _push_url(printer: Printer) -> str | None:
    listed = printer.tenant.api.get("/api/printers").json()["printers"]
    return next(p["push_url"] for p in listed if p["printer_id"] == "color-1")


def _wait_for(done: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, f"waited 60 s for {what}"
        time.sleep(0.05)


def _device_client(world: World, tenant: Tenant) -> tuple[PrintClient, str]:
    token = world.stack.token(tenant.dev_id, tenant.dev_secret, "device")
    return PrintClient(world.stack.printing), token


def test_the_queue_advertises_display_and_sound(world: World) -> None:
    uri = world.first.queue_uri
    asked = request(
        Operation.GET_PRINTER_ATTRIBUTES,
        uri,
        ops=[
            Attribute(
                "requested-attributes",
                ValueTag.KEYWORD,
                ["identify-actions-supported", "identify-actions-default"],
            )
        ],
    )
    printer = call(uri, asked).group(GroupTag.PRINTER)
    assert printer is not None
    assert printer["identify-actions-supported"].values == ["display", "sound"]
    assert printer["identify-actions-default"].values == ["display"]


def test_identify_reaches_the_running_printer_and_no_other(world: World) -> None:
    first, second = world.first, world.second
    answer = first.identify("display", "sound", message="Paper for room 4.12\nforged line")
    assert answer.code == Status.SUCCESSFUL_OK, answer
    assert "next poll" not in str(answer.value(GroupTag.OPERATION, "status-message"))

    _wait_for(first.status.identified, "the identify request at the printer")
    (seen,) = first.status.identified()
    assert seen.actions == ("display", "sound")
    assert seen.message == "Paper for room 4.12 forged line"  # no control characters
    assert any(e.kind == "push" for e in first.events)  # it polled because it was pushed
    assert [e.message for e in first.events if e.kind == "identify"] == [seen.message]

    # the panel shows it as a banner, escaped
    page = httpx.get(world.panel_url, timeout=30)
    assert page.status_code == 200
    assert 'id="identify"' in page.text and "Paper for room 4.12 forged line" in page.text

    # the other tenant's `color-1` saw nothing: its own request arrives, alone
    assert second.identify(message="<b>second</b>").code == Status.SUCCESSFUL_OK
    _wait_for(second.status.identified, "the second tenant's identify request")
    assert [(i.actions, i.message) for i in second.status.identified()] == [
        (("display",), "<b>second</b>")
    ]
    assert len(first.status.identified()) == 1

    # delivered once: the printer's next poll has nothing more
    printing, token = _device_client(world, first.tenant)
    with printing:
        assert printing.work("color-1", token=token).identify == []


def test_cups_ipptool_identifies_the_printer(world: World) -> None:
    """CUPS's own identify-printer.test (identify-actions sound) passes, and it rings."""
    ipptool = require_command("ipptool")
    first = world.first
    uri = first.queue_uri.replace("ipp://", f"ipp://alice:{PASSWORD}@", 1)
    done = subprocess.run(
        [ipptool, "-t", "-T", "60", uri, "identify-printer.test"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    _wait_for(
        lambda: any(i.actions == ("sound",) for i in first.status.identified()),
        "ipptool's identify request at the printer",
    )


def test_a_follow_me_queue_has_no_printer_to_identify(world: World) -> None:
    anywhere = _queue(world.stack, world.first.tenant, "anywhere", None)
    answer = world.first.identify(message="where are you", uri=anywhere)
    assert answer.code == Status.CLIENT_ERROR_NOT_POSSIBLE
    assert "follow-me" in str(answer.value(GroupTag.OPERATION, "status-message"))


def test_unsupported_actions_are_ignored_and_each_request_is_delivered_once(
    world: World,
) -> None:
    # mono-1 has no agent running: the test is its device, through the typed client
    tenant = world.first.tenant
    uri = _queue(world.stack, tenant, "mono", "mono-1")
    answer = world.first.identify("flash", "display", "speak", message="hello", uri=uri)
    assert answer.code == Status.SUCCESSFUL_OK_IGNORED_OR_SUBSTITUTED_ATTRIBUTES
    unsupported = answer.group(GroupTag.UNSUPPORTED)
    assert unsupported is not None
    assert unsupported["identify-actions"].values == ["flash", "speak"]
    assert "next poll" in str(answer.value(GroupTag.OPERATION, "status-message"))  # no push URL
    only_flash = world.first.identify("flash", uri=uri)
    assert only_flash.code == Status.SUCCESSFUL_OK_IGNORED_OR_SUBSTITUTED_ATTRIBUTES

    printing, token = _device_client(world, tenant)
    with printing:
        work = printing.work("mono-1", token=token)
        assert [(r.actions, r.message) for r in work.identify] == [
            (("display",), "hello"),
            (("display",), ""),  # nothing it performs was asked: the default
        ]
        assert work.identify[0].requested_by == "alice"
        assert printing.work("mono-1", token=token).identify == []
        # another tenant's device token does not reach this printer
        other, other_token = _device_client(world, world.second.tenant)
        with other:
            assert other.work("mono-1", token=other_token).identify == []

        # a request older than identify.TTL is dropped, not delivered late
        assert world.first.identify(message="too late", uri=uri).code == Status.SUCCESSFUL_OK
        with world.stack.db.session() as db:
            db.execute(
                update(IdentifyRequestRow)
                .where(IdentifyRequestRow.tenant_id == tenant.id)
                .values(created_at=utcnow() - identify.TTL - timedelta(minutes=1))
            )
        assert printing.work("mono-1", token=token).identify == []


def test_the_message_is_bounded() -> None:
    assert identify.clean_message("a\x1b[31mb\x07c\r\nd") == "a [31mb c d"
    long = identify.clean_message("é" * 100)
    assert len(long.encode()) <= identify.MAX_MESSAGE and long == "é" * 63
