"""`printing.client`: what each answer of the print service becomes for the caller.

The answers are a stand-in transport's; the real service is behind the device, docgen
and bench tests that use this client (test_print_path, test_held_release, test_batch_*).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from printcloud.core.http import error_of, error_text
from printcloud.printing.client import PrintClient, PrintServiceError, PrintServiceUnreachable

JOB = {"job_id": "j1", "printer_id": "p1", "state": "queued", "reason": None, "pages_printed": 0}


def client(answer: Callable[[httpx.Request], httpx.Response]) -> PrintClient:
    return PrintClient(
        "http://print.test/printing", http=httpx.Client(transport=httpx.MockTransport(answer))
    )


def test_submit_sends_the_pdf_and_settings_with_the_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=JOB)

    job = client(answer).submit(
        token="tok", printer_id="p1", pdf=b"%PDF-1.7", title="t", options={"copies": "2"}
    )
    assert job.job_id == "j1" and job.state == "queued"
    request = seen[0]
    assert request.url.path == "/printing/api/jobs"
    assert request.headers["Authorization"] == "Bearer tok"
    body = request.content
    assert b'name="printer_id"' in body and b'name="copies"' in body and b"%PDF-1.7" in body


def test_a_refusal_carries_status_code_and_reason() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "not_found", "error_description": "no job j9"})

    with pytest.raises(PrintServiceError) as caught:
        client(answer).show("j9", token="tok")
    error = caught.value
    assert not isinstance(error, PrintServiceUnreachable)
    assert (error.status, error.error, error.reason) == (404, "not_found", "no job j9")
    assert str(error) == "job j9: HTTP 404 (not_found: no job j9)"


def test_a_5xx_or_no_answer_is_unreachable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="upstream gone")

    with pytest.raises(PrintServiceUnreachable) as caught:
        client(down).work("p1", token="tok")
    assert caught.value.status == 503 and caught.value.reason == "upstream gone"

    def silent(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(PrintServiceUnreachable) as caught:
        client(silent).work("p1", token="tok")
    assert caught.value.status is None


def test_409_of_the_device_api_is_an_answer_not_an_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"error": "conflict", "error_description": "cancelled"})

    printing = client(answer)
    assert printing.started("j1", token="tok", printer_id="p1") is False
    assert printing.upload_preview("j1", 1, b"png", token="tok") is False
    assert (
        printing.result(
            "j1",
            token="tok",
            printer_id="p1",
            outcome="printed",
            reason=None,
            pages_printed=1,
            message="",
        )
        == "cancelled"
    )


def test_the_work_list_and_held_jobs_must_be_lists() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"jobs": {"not": "a list"}})

    with pytest.raises(PrintServiceError, match="work list"):
        client(answer).work("p1", token="tok")


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
