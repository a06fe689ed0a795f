"""`printing.client` against a real print service: what each answer becomes.

A print stack (`printcloud serve` in a subprocess, real HTTP on loopback) with a tenant,
its submitting client, its device client and a held job; the device, docgen and bench
tests use the same client through longer stories (test_print_path, test_held_release,
test_batch_*).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from printcloud.core.http import error_of, error_text
from printcloud.printing.client import PrintClient, PrintServiceError, PrintServiceUnreachable
from tests.conftest import free_port
from tests.helpers.printing import Tenant, make_pdf


def test_the_client_against_a_real_print_service(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    user = stack.token(t.app_id, t.app_secret, "print")
    device = stack.token(t.dev_id, t.dev_secret, "device print")
    with PrintClient(f"{stack.base_url}/printing") as printing:
        # SVC001: the upload with settings, the job as accepted, then seen and listed
        job = printing.submit(
            token=user,
            printer_id="mono-1",
            pdf=make_pdf(2),
            title="client test",
            options={"copies": "2", "hold": "true"},
        )
        assert job.job_id and job.printer_id == "mono-1"
        deadline = time.monotonic() + 60  # the job's workflow holds it: poll for that
        while (seen := printing.show(job.job_id, token=user)).state != "held":
            assert time.monotonic() < deadline, seen
            time.sleep(0.1)
        assert seen.job_id == job.job_id
        assert job.job_id in {j.job_id for j in printing.list_jobs(token=user)}
        # the device API: a held job is no work for the printer yet
        assert printing.work("mono-1", token=device).jobs == []
        # a refusal carries the status, the wire code and the service's reason
        with pytest.raises(PrintServiceError) as unknown:
            printing.show("no-such-job", token=user)
        assert not isinstance(unknown.value, PrintServiceUnreachable)
        assert unknown.value.status == 404 and unknown.value.error == "not_found"
        with pytest.raises(PrintServiceError) as bad:
            printing.submit(token=user, printer_id="mono-1", pdf=b"not a pdf")
        assert bad.value.status == 400 and "PDF" in bad.value.reason
        # cancel once; a second time is the service's 409, a refusal too
        assert printing.cancel(job.job_id, token=user).state == "cancelled"
        with pytest.raises(PrintServiceError) as twice:
            printing.cancel(job.job_id, token=user)
        assert twice.value.status == 409
        # the device API answers 409 for a job that is over: an answer, not an error
        assert printing.started(job.job_id, token=device, printer_id="mono-1") is False


def test_no_answer_is_unreachable() -> None:
    with (
        PrintClient(f"http://127.0.0.1:{free_port()}/printing") as printing,
        pytest.raises(PrintServiceUnreachable) as caught,
    ):
        printing.work("p1", token="tok")
    assert caught.value.status is None


def test_the_error_helpers_read_json_answers_and_fall_back_to_text() -> None:
    oauth = httpx.Response(400, json={"error": "invalid_request", "error_description": "why"})
    assert error_of(oauth) == ("invalid_request", "why")
    assert error_text(oauth) == "why"
    code_only = httpx.Response(401, content=json.dumps({"error": "invalid_token"}).encode())
    assert error_text(code_only) == "invalid_token"
    html = httpx.Response(502, text="<h1>Bad gateway</h1>")
    assert error_of(html) == ("", "")
    assert error_text(html, limit=6) == "<h1>Ba"
    assert error_text(httpx.Response(500)) == "HTTP 500"
