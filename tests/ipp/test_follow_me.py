"""A follow-me queue (issue 14, seeds 003 + 004 together): a job printed to it is held,
and its owner releases it by card at any printer of the tenant, which prints it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from printcloud.auth import service
from printcloud.device.agent import DeviceAgent, DeviceConfig
from printcloud.device.cards import CardReader
from printcloud.ipp.message import Attribute, ValueTag
from printcloud.ipp.model import Operation, Status
from tests.helpers.print_stack import PrintStack, print_stacks
from tests.helpers.printing import make_pdf
from tests.ipp.client import call, job_values, request

PASSWORD = "alice-password-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrintStack]:
    with print_stacks(tmp_path_factory) as make:
        yield make(workers=1)


def test_a_follow_me_job_prints_where_its_owner_badges_in(
    stack: PrintStack, tmp_path: Path
) -> None:
    tenant = stack.tenant()
    with stack.db.session() as s:  # card logins act as their user (seed 001)
        t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant)
        service.update_tenant_settings(s, tenant=t, actor="test", local_auth_cooperation=True)
    stack.user(tenant, "alice", PASSWORD)
    stack.user(tenant, "boss", PASSWORD, admin=True)
    dev_id, dev_secret = stack.client(tenant, kind="device", scope="device print")
    for printer in ("floor-1", "floor-2"):
        stack.printer(tenant, printer, client_id=dev_id)
    boss = stack.api(stack.user_token(tenant, "boss", PASSWORD, "admin print"))
    made = boss.post("/api/queues", json={"name": "anywhere"})
    assert made.status_code == 201 and made.json()["follow_me"], made.text
    uri = made.json()["uri"]

    pdf = Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, "application/pdf")
    name = Attribute("job-name", ValueTag.NAME, "follow me")
    printed = call(
        uri,
        request(Operation.PRINT_JOB, uri, ops=[pdf, name], data=make_pdf(2)),
        auth=("alice", PASSWORD),
    )
    assert printed.code == Status.SUCCESSFUL_OK
    number = job_values(printed)["job-id"]
    asks = request(
        Operation.GET_JOB_ATTRIBUTES, uri, ops=[Attribute("job-id", ValueTag.INTEGER, number)]
    )

    def ipp_state() -> dict[str, object]:
        return job_values(call(uri, asks, auth=("alice", PASSWORD)))

    deadline = time.monotonic() + 120
    while ipp_state()["job-state"] != 4:  # pending-held
        assert time.monotonic() < deadline, ipp_state()
        time.sleep(0.2)
    assert ipp_state()["job-hold-until"] == "indefinite"

    # alice badges in at the second printer: her held job is listed there and released
    config = DeviceConfig(
        server=stack.base_url,
        tenant_id=tenant,
        printer_id="floor-2",
        client_id=dev_id,
        client_secret=dev_secret,
        out_dir=tmp_path,
        poll_interval=0.2,
    )
    with CardReader(config) as reader:
        session = reader.register("04:A2:B3:C4:D6", "alice", PASSWORD)
        held = session.held()
        assert [j.title for j in held] == ["follow me"]
        session.release(held[0].job_id)
        session.logout()
    with DeviceAgent(config) as agent:
        deadline = time.monotonic() + 120
        while ipp_state()["job-state"] != 9:  # completed
            assert time.monotonic() < deadline, ipp_state()
            agent.poll_once()
            time.sleep(0.2)
    alice = stack.api(stack.user_token(tenant, "alice", PASSWORD, "print"))
    job = next(j for j in alice.get("/api/jobs").json()["jobs"] if j["title"] == "follow me")
    assert job["printer_id"] == "floor-2" and job["pages_printed"] == 2
