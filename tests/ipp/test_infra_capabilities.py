"""A registered IPP INFRA output device's capabilities become its printer's and its queues'
(issue 15, PWG 5100.18 Update-Output-Device-Attributes; docs/infra.md "Registered
capabilities"), over loopback HTTP: a monochrome, A4-only, one-sided device makes the
queue answer Get-Printer-Attributes with exactly that, job intake refuses what it
cannot print (IPP and REST), a color job converts gray at a resolution the device
takes, Fetch-Document offers only what it registered, and deregistering keeps them.
CUPS's `ipptool` checks the queue's answers too (tests/ipp/infra/queue/)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from printcloud.ipp import pwg
from printcloud.ipp.message import Attribute, Group, GroupTag, Message, ValueTag
from printcloud.ipp.model import Operation, Range, Resolution, Status
from printcloud.ipp.pwg import ColorSpace
from tests.conftest import require_command
from tests.helpers.print_stack import print_stacks
from tests.helpers.printing import Tenant, make_pdf
from tests.ipp.client import call, request
from tests.ipp.test_infra import InfraWorld, _device, _job_ops, _send, _subscribe, _wait_event

PASSWORD = "alice-password-1"
A4 = "iso_a4_210x297mm"
QUEUE_TESTS = Path(__file__).parent / "infra" / "queue"

#: A monochrome, A4-only, one-sided raster printer that also takes PDF.
MONO_A4_SIMPLEX = [
    Attribute(
        "document-format-supported",
        ValueTag.MIME_MEDIA_TYPE,
        ["application/pdf", "image/pwg-raster"],
    ),
    Attribute("color-supported", ValueTag.BOOLEAN, False),
    Attribute("print-color-mode-supported", ValueTag.KEYWORD, "monochrome"),
    Attribute("media-supported", ValueTag.KEYWORD, [A4, "custom_min_3x5in"]),
    Attribute("media-default", ValueTag.KEYWORD, A4),
    Attribute("media-ready", ValueTag.KEYWORD, A4),
    Attribute("sides-supported", ValueTag.KEYWORD, "one-sided"),
    Attribute(
        "printer-resolution-supported",
        ValueTag.RESOLUTION,
        [Resolution(300, 300), Resolution(600, 600)],
    ),
    Attribute(
        "pwg-raster-document-resolution-supported", ValueTag.RESOLUTION, Resolution(300, 300)
    ),
    Attribute("pwg-raster-document-type-supported", ValueTag.KEYWORD, ["black_1", "sgray_8"]),
    Attribute("copies-supported", ValueTag.RANGE_OF_INTEGER, Range(1, 99)),
    Attribute("printer-make-and-model", ValueTag.TEXT, "Mono A4 1000"),
]


@dataclass
class World(InfraWorld):
    #: the tenant administrator's API client
    boss: Any = None
    #: the test's own printer and its queue
    printer: str = ""
    queue_uri: str = ""


@pytest.fixture(
    scope="module", params=[("sqlite", "sql"), ("postgresql", "redis")], ids=lambda p: p[0]
)
def stack_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """On SQLite, and on PostgreSQL with Redis (the JSON column, the row's transaction)."""
    database, sessions = request.param
    with print_stacks(tmp_path_factory) as make_print_stack:
        stack = make_print_stack(workers=1, database=database, sessions=sessions)
        tenant = Tenant(stack)
        stack.user(tenant.id, "alice", PASSWORD)
        stack.user(tenant.id, "boss", PASSWORD, admin=True)
        boss = stack.api(stack.user_token(tenant.id, "boss", PASSWORD, "admin print"))
        token = stack.token(tenant.dev_id, tenant.dev_secret, "device")
        yield World(stack=stack, tenant=tenant, token=token, boss=boss)


@pytest.fixture
def world(stack_world: World, request: pytest.FixtureRequest) -> World:
    """A printer of its own for each test, configured color, and its queue."""
    name = f"p{abs(hash(request.node.name)) % 10**8}"
    t = stack_world.tenant
    stack_world.stack.printer(t.id, name, color=True, client_id=t.dev_id)
    made = stack_world.boss.post("/api/queues", json={"name": name, "printer_id": name})
    assert made.status_code == 201, made.text
    return World(**{**vars(stack_world), "queue_uri": made.json()["uri"], "printer": name})


def _queue(world: World) -> dict[str, Attribute]:
    """The queue's Get-Printer-Attributes answer (anonymous, as lpadmin asks)."""
    answer = call(world.queue_uri, request(Operation.GET_PRINTER_ATTRIBUTES, world.queue_uri))
    assert answer.code == Status.SUCCESSFUL_OK, answer
    group = answer.group(GroupTag.PRINTER)
    assert group is not None
    return {a.name: a for a in group}


def _register(world: World, device: str, attributes: list[Attribute]) -> Message:
    return _send(
        world,
        Operation.UPDATE_OUTPUT_DEVICE_ATTRIBUTES,
        printer=world.printer,
        ops=[_device(device)],
        groups=[Group(GroupTag.PRINTER, attributes)],
    )


FIDELITY = Attribute("ipp-attribute-fidelity", ValueTag.BOOLEAN, True)


def _validate(world: World, *job: Attribute, fidelity: bool = False) -> Message:
    pdf = Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, "application/pdf")
    ops = [pdf, FIDELITY] if fidelity else [pdf]
    body = request(Operation.VALIDATE_JOB, world.queue_uri, ops=ops, job=list(job))
    return call(world.queue_uri, body, auth=("alice", PASSWORD))


def _capabilities(world: World) -> dict[str, object] | None:
    listed = world.tenant.api.get("/api/printers").json()["printers"]
    found = next(p for p in listed if p["printer_id"] == world.printer)
    return found["capabilities"]  # type: ignore[no-any-return]


def test_a_mono_a4_simplex_device_becomes_the_queues_printer(world: World) -> None:
    t = world.tenant
    before = _queue(world)
    assert before["color-supported"].value is True
    assert "two-sided-long-edge" in before["sides-supported"].values
    assert _capabilities(world) is None
    device = f"urn:uuid:{uuid.uuid4()}"
    assert _register(world, device, MONO_A4_SIMPLEX).code == Status.SUCCESSFUL_OK

    # the queue's Get-Printer-Attributes: the device's, within printcloud's
    now = _queue(world)
    assert now["color-supported"].value is False
    assert now["print-color-mode-supported"].values == ["monochrome"]
    assert now["pwg-raster-document-type-supported"].values == ["black_1", "sgray_8"]
    assert now["media-supported"].values == [A4]
    assert now["media-default"].value == A4 and now["media-ready"].values == [A4]
    assert now["sides-supported"].values == ["one-sided"]
    assert now["printer-resolution-supported"].values == [
        Resolution(300, 300),
        Resolution(600, 600),
    ]
    assert now["printer-resolution-default"].value == Resolution(300, 300)
    assert now["copies-supported"].value == Range(1, 99)
    assert now["printer-make-and-model"].value == "Mono A4 1000"
    changed = "printer-config-change-time"
    assert now[changed].value >= before[changed].value
    caps = _capabilities(world)
    assert caps is not None and caps["color"] is False and caps["media"] == ["A4"]
    # a state update that leaves the capabilities as they were is no new configuration
    state = Attribute("printer-state-reasons", ValueTag.KEYWORD, "none")
    assert _register(world, device, [state]).code == Status.SUCCESSFUL_OK
    assert _capabilities(world) == caps  # registered_at included

    # job intake refuses what the device cannot print, naming it, when the client asks for
    # fidelity; without it, substitutes (RFC 8011 §4.1.7) and names it too
    for attribute, named in (
        (Attribute("sides", ValueTag.KEYWORD, "two-sided-long-edge"), "sides"),
        (Attribute("media", ValueTag.KEYWORD, "na_letter_8.5x11in"), "media"),
        (Attribute("copies", ValueTag.INTEGER, 100), "copies"),
    ):
        refused = _validate(world, attribute, fidelity=True)
        assert refused.code == Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED, refused
        unsupported = refused.group(GroupTag.UNSUPPORTED)
        assert unsupported is not None and unsupported[named].value == attribute.value
        assert named in refused.value(GroupTag.OPERATION, "status-message")
        substituted = _validate(world, attribute)
        assert substituted.code == Status.SUCCESSFUL_OK_IGNORED_OR_SUBSTITUTED_ATTRIBUTES
        unsupported = substituted.group(GroupTag.UNSUPPORTED)
        assert unsupported is not None and unsupported[named].value == attribute.value
    fine = _validate(
        world,
        Attribute("sides", ValueTag.KEYWORD, "one-sided"),
        Attribute("media", ValueTag.KEYWORD, A4),
        Attribute("copies", ValueTag.INTEGER, 99),
    )
    assert fine.code == Status.SUCCESSFUL_OK, fine
    pdf = Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, "application/pdf")
    two_sided = Attribute("sides", ValueTag.KEYWORD, "two-sided-long-edge")
    body = request(
        Operation.PRINT_JOB,
        world.queue_uri,
        ops=[pdf, FIDELITY],
        job=[two_sided],
        data=make_pdf(1),
    )
    printed = call(world.queue_uri, body, auth=("alice", PASSWORD))
    assert printed.code == Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED
    assert printed.group(GroupTag.JOB) is None  # no job made
    for fields, named in (({"duplex": "true"}, "duplex"), ({"media": "Letter"}, "media")):
        form = {"printer_id": world.printer, **fields}
        answer = t.api.post(
            "/api/jobs", files={"file": ("doc.pdf", make_pdf(1), "application/pdf")}, data=form
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == named
        assert named in answer.json()["error_description"]

    # a color job (the API's default) at 150 dpi: converted gray at 300 dpi, the nearest,
    # and recorded as black and white, saying why (the printer has no color). The device
    # takes PDF: the job is fetchable before its pages are made, beside (pass-through)
    subscription = _subscribe(world, printer=world.printer)
    job_id = t.submit(make_pdf(2), printer=world.printer, dpi="150")["job_id"]
    job = world.stack.wait_for(t.api, job_id, "waiting_for_printer")
    assert job["options"]["dpi"] == 300 and job["options"]["color"] is False
    assert job["options"]["gray_for_mono"] is True
    deadline = time.monotonic() + 60
    while not any(e["step"] == "S108" for e in job["history"]) and time.monotonic() < deadline:
        time.sleep(0.1)
        job = t.api.get(f"/api/jobs/{job_id}").json()
    converted = [e["detail"] for e in job["history"] if e["step"] == "S108"]
    history = job["history"]
    assert any("at 300 dpi, gray" in d for d in converted), history
    number = int(_wait_event(world, subscription, "job-fetchable", printer=world.printer)["job-id"])
    fetched = _send(world, Operation.FETCH_JOB, printer=world.printer, ops=_job_ops(device, number))
    assert fetched.value(GroupTag.JOB, "print-color-mode") == "monochrome"
    assert fetched.value(GroupTag.JOB, "printer-resolution") == Resolution(300, 300)

    # Fetch-Document: only what the device registered, of what it accepts now
    def fetch(*accepted: str) -> Message:
        return _send(
            world,
            Operation.FETCH_DOCUMENT,
            printer=world.printer,
            ops=_job_ops(
                device,
                number,
                Attribute("document-number", ValueTag.INTEGER, 1),
                Attribute("document-format-accepted", ValueTag.MIME_MEDIA_TYPE, list(accepted)),
            ),
        )

    refused = fetch("image/urf", "image/jpeg")
    assert refused.code == Status.CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED
    message = refused.value(GroupTag.OPERATION, "status-message")
    assert "application/pdf, image/pwg-raster" in message and "urf" not in message
    raster = fetch("image/urf", "image/pwg-raster")
    assert raster.code == Status.SUCCESSFUL_OK, raster
    assert raster.value(GroupTag.DOCUMENT, "document-format") == "image/pwg-raster"
    pages = list(pwg.read_pages(bytes(raster.data)))
    assert len(pages) == 2
    for page in pages:
        assert page.header.color_space == ColorSpace.SGRAY
        assert page.header.resolution == (300, 300)
    assert t.api.post(f"/api/jobs/{job_id}/cancel").status_code == 200

    # a registration that leaves nothing to print is refused, and changes nothing
    foolscap = Attribute("media-supported", ValueTag.KEYWORD, "na_foolscap_8.5x13in")
    wrong = _register(world, device, [foolscap])
    assert wrong.code == Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED
    unsupported = wrong.group(GroupTag.UNSUPPORTED)
    assert unsupported is not None and unsupported["media-supported"].value == foolscap.value
    kept = _send(
        world, Operation.GET_OUTPUT_DEVICE_ATTRIBUTES, printer=world.printer, ops=[_device(device)]
    ).group(GroupTag.PRINTER)
    assert kept is not None and kept["media-supported"].values == [A4, "custom_min_3x5in"]
    assert _queue(world)["media-supported"].values == [A4]

    # deregistered: the printer keeps what its device last registered
    out = _send(
        world, Operation.DEREGISTER_OUTPUT_DEVICE, printer=world.printer, ops=[_device(device)]
    )
    assert out.code == Status.SUCCESSFUL_OK
    after = _queue(world)
    assert after["color-supported"].value is False
    assert after["sides-supported"].values == ["one-sided"]
    assert _capabilities(world) == caps


def test_ipptool_sees_the_devices_capabilities_on_the_queue(world: World) -> None:
    """CUPS's ipptool reads the queue (Get-Printer-Attributes) and is refused a two-sided
    job (Validate-Job), after a device registered a mono A4 one-sided printer."""
    ipptool = require_command("ipptool")
    device = f"urn:uuid:{uuid.uuid4()}"
    assert _register(world, device, MONO_A4_SIMPLEX).code == Status.SUCCESSFUL_OK
    try:
        creds = f"alice:{quote(PASSWORD, safe='')}@"
        uri = world.queue_uri.replace("ipp://", f"ipp://{creds}", 1)
        done = subprocess.run(
            [ipptool, "-t", "-T", "60", uri, *sorted(str(p) for p in QUEUE_TESTS.glob("*.test"))],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert output.count("[PASS]") == 4 and "[FAIL]" not in output, output
    finally:
        _send(
            world, Operation.DEREGISTER_OUTPUT_DEVICE, printer=world.printer, ops=[_device(device)]
        )


def test_a_color_registration_makes_the_printer_color_again(world: World) -> None:
    """The next registration replaces what the last one left (here: color, duplex)."""
    device = f"urn:uuid:{uuid.uuid4()}"
    color = [
        Attribute("color-supported", ValueTag.BOOLEAN, True),
        Attribute("sides-supported", ValueTag.KEYWORD, ["one-sided", "two-sided-long-edge"]),
    ]
    assert _register(world, device, color).code == Status.SUCCESSFUL_OK
    try:
        now = _queue(world)
        assert now["color-supported"].value is True
        assert now["sides-supported"].values == ["one-sided", "two-sided-long-edge"]
        assert len(now["media-supported"].values) == 5  # all of printcloud's again
        job_id = world.tenant.submit(make_pdf(1), printer=world.printer, duplex="true")["job_id"]
        job = world.stack.wait_for(world.tenant.api, job_id, "waiting_for_printer")
        assert job["options"]["duplex"] is True  # a two-sided job is taken again
        assert world.tenant.api.post(f"/api/jobs/{job_id}/cancel").status_code == 200
    finally:
        _send(
            world, Operation.DEREGISTER_OUTPUT_DEVICE, printer=world.printer, ops=[_device(device)]
        )
