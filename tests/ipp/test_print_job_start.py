"""Print-Job answers once its job is committed; the job's workflow starts right after the
answer (`intake.start_soon`). A process that dies in between leaves a committed job
(print job and IPP job rows, one transaction) with no workflow: the next start adopts
it (`pipeline.adopt_orphans`) and it prints, and the queue reports it completed. The
workflow of a job answered live is handed what the intake recorded and does not read
it again; an adopted job's reads it first."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from printcloud.core.blobs import FileBlobStore
from printcloud.device.agent import DeviceAgent
from printcloud.ipp.message import Attribute, ValueTag
from printcloud.ipp.model import JobState, Operation, Status
from printcloud.printing import ipp_queue, pipeline, service
from printcloud.printing.models import IppJobRow
from printcloud.printing.sessions import job_data_key
from tests.helpers.printing import Tenant, make_pdf
from tests.ipp.client import call, job_values, request
from tests.ipp.conftest import PASSWORD, USER

PDF = Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, "application/pdf")


def _job_state(uri: str, number: int) -> Any:
    asked = request(
        Operation.GET_JOB_ATTRIBUTES,
        uri,
        ops=[Attribute("job-id", ValueTag.INTEGER, number)],
    )
    return job_values(call(uri, asked, auth=(USER, PASSWORD)))


def test_a_print_job_whose_workflow_never_started_is_adopted_at_the_next_start(
    make_print_stack: Any, tmp_path: Path
) -> None:
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    stack.user(t.id, USER, PASSWORD)
    stack.user(t.id, "root", "admin password", admin=True)
    admin = stack.api(stack.user_token(t.id, "root", "admin password", "admin print"))
    made = admin.post("/api/queues", json={"name": "q", "printer_id": "color-1"})
    assert made.status_code == 201, made.text
    uri = made.json()["uri"]

    # a Print-Job answered while the service runs: its workflow starts after the answer
    body = request(Operation.PRINT_JOB, uri, ops=[PDF], data=make_pdf(1))
    answered = call(uri, body, auth=(USER, PASSWORD))
    assert answered.code == Status.SUCCESSFUL_OK
    live = job_values(answered)
    assert live["job-state"] == JobState.PENDING

    # what Print-Job commits before it answers, as a process that died before starting
    # the workflow leaves it: the document, the print job and its IPP row
    stack.stop()
    job_id = service.new_job_id()
    FileBlobStore(stack.settings.data_dir / "blobs").put(job_data_key(job_id), make_pdf(2))
    with stack.db.session() as s:
        service.create_job(
            s,
            tenant_id=t.id,
            printer_id="color-1",
            owner=USER,
            client_id=t.app_id,
            title="died.pdf",
            source="upload",
            options=service.JobOptions(dpi=150),
            job_id=job_id,
            data_key=job_data_key(job_id),
            size=1,
            page_count=2,
        )
        s.flush()
        row = ipp_queue.new_job(
            s,
            tenant_id=t.id,
            queue="q",
            owner=USER,
            name="died.pdf",
            attributes={"values": {}, "document-format": "application/pdf"},
            job_id=job_id,
        )
        number = row.job_number
    stack.start()
    assert _job_state(uri, number)["job-state"] in (JobState.PENDING, JobState.PROCESSING)

    stop = threading.Event()
    agent: DeviceAgent = t.device("color-1", tmp_path, poll_interval=0.2)
    printer = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    printer.start()
    try:
        for job in (number, live["job-id"]):  # the adopted one, and the one answered live
            deadline = time.monotonic() + 120
            while (state := _job_state(uri, job)["job-state"]) != JobState.COMPLETED:
                assert not JobState(state).terminal, (job, state)
                assert time.monotonic() < deadline, f"job {job} stayed {state}"
                time.sleep(0.2)
    finally:
        stop.set()
        printer.join(timeout=60)
        agent.close()
    with stack.db.session() as s:
        adopted = service.get_job(s, tenant_id=t.id, job_id=job_id)
        assert (adopted.state, adopted.pages_printed) == ("printed", 2)
        answered_job = s.get(IppJobRow, live["job-id"])
        assert answered_job is not None and answered_job.job_id is not None
        live_id = answered_job.job_id
    # The live job's workflow was handed what the intake recorded (`pipeline.facts`): no
    # `printing.load` step; the adopted one had nothing to go on and read its job.
    with sqlite3.connect(stack.settings.data_dir / "dbos.sqlite3", timeout=30) as db:
        steps = {
            wanted: [
                name
                for (name,) in db.execute(
                    "SELECT function_name FROM operation_outputs WHERE workflow_uuid = ?",
                    (pipeline.workflow_id(wanted),),
                )
            ]
            for wanted in (live_id, job_id)
        }
    assert steps[live_id] and "printing.load" not in steps[live_id], steps
    assert "printing.load" in steps[job_id], steps
