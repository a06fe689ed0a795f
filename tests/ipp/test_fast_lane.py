"""Get-Printer-Attributes on the fast lane (issue 14; `printing/ipp_fastlane.py`,
`printing/ipp_memo.py`), over HTTP against a real server.

A request with a query string always goes through the FastAPI route (the lane serves
only `POST …/ipp/print/{tenant}/{queue}` without one), so each answer of the lane is
compared with the route's answer to the same request: the same attributes in the same
order, for several `requested-attributes` selections, with the request's own
request-id. Only the clock attributes (`printer-current-time`, `printer-up-time`) may
differ between two answers. Then: a change of the printer's state (a held job on the
queue, then cancelled) shows up, and an unknown queue or tenant, or a printer-uri
naming another queue, answers exactly as the route does. No timing is asserted.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from printcloud.ipp.encoding import decode
from printcloud.ipp.message import Attribute, GroupTag, Message, ValueTag
from printcloud.ipp.model import Operation, Status
from tests.helpers.printing import make_pdf
from tests.ipp.client import call, http_uri, job_values, request
from tests.ipp.conftest import PASSWORD, USER, IppWorld

ALICE = (USER, PASSWORD)
CLOCKS = frozenset({"printer-current-time", "printer-up-time"})
SELECTIONS: list[list[str] | None] = [
    None,  # no requested-attributes: all but media-col-database
    ["all"],
    ["printer-description"],
    ["job-template"],
    ["printer-state", "printer-state-reasons", "queued-job-count"],
    ["media-col-database", "printer-uuid", "not-an-attribute"],
    ["document-format-supported", "printer-uri-supported", "urf-supported"],
]


def _gpa(uri: str, names: list[str] | None, request_id: int) -> bytes:
    ops = [] if names is None else [Attribute("requested-attributes", ValueTag.KEYWORD, names)]
    return request(Operation.GET_PRINTER_ATTRIBUTES, uri, ops=ops, request_id=request_id)


def _post(uri: str, body: bytes, *, route: bool = False) -> httpx.Response:
    url = http_uri(uri) + ("?through=route" if route else "")
    resp = httpx.post(url, content=body, headers={"Content-Type": "application/ipp"}, timeout=60)
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"] == "application/ipp"
    assert resp.headers["x-content-type-options"] == "nosniff"
    return resp


def _comparable(message: Message) -> list[tuple[Any, ...]]:
    """The answer as (group, name, tag, values), the clock attributes left out."""
    out: list[tuple[Any, ...]] = [(message.code, message.request_id, message.version)]
    for group in message.groups:
        for attr in group:
            if attr.name not in CLOCKS:
                out.append((group.tag, attr.name, tuple(attr.tags), tuple(attr.values)))
    return out


@pytest.mark.parametrize("names", SELECTIONS, ids=lambda n: ",".join(n or ["default"]))
def test_the_lane_answers_as_the_route(ipp_world: IppWorld, names: list[str] | None) -> None:
    uri = ipp_world.queue_uri
    for request_id in (1, 4242, 0x7FFFFFFF):
        body = _gpa(uri, names, request_id)
        routed = decode(_post(uri, body, route=True).content)
        for _ in range(3):  # the first may fill the memo of the process that answers
            fast = decode(_post(uri, body).content)
            assert fast.request_id == request_id
            assert _comparable(fast) == _comparable(routed)
        printer = fast.group(GroupTag.PRINTER)
        assert fast.code == Status.SUCCESSFUL_OK and printer is not None
        if names is not None and "printer-state" in names:
            assert {a.name for a in printer} == set(names)


def _queued(uri: str) -> int:
    answer = decode(_post(uri, _gpa(uri, ["queued-job-count", "printer-state"], 9)).content)
    printer = answer.group(GroupTag.PRINTER)
    assert printer is not None
    return int(printer["queued-job-count"].value)


def _wait_queued(uri: str, wanted: int) -> None:
    deadline = time.monotonic() + 60
    seen = _queued(uri)
    while seen != wanted:
        assert time.monotonic() < deadline, f"queued-job-count stayed {seen}, not {wanted}"
        time.sleep(0.1)
        seen = _queued(uri)


def test_a_printer_state_change_shows_up(ipp_world: IppWorld) -> None:
    uri = ipp_world.queue_uri
    before = _queued(uri)
    hold = Attribute("job-hold-until", ValueTag.KEYWORD, "indefinite")
    pdf = Attribute("document-format", ValueTag.MIME_MEDIA_TYPE, "application/pdf")
    printed = call(
        uri,
        request(Operation.PRINT_JOB, uri, ops=[pdf], job=[hold], data=make_pdf(1)),
        auth=ALICE,
    )
    assert printed.code == Status.SUCCESSFUL_OK
    number = job_values(printed)["job-id"]
    _wait_queued(uri, before + 1)  # held: active, counted
    job = [Attribute("job-id", ValueTag.INTEGER, number)]
    cancelled = call(uri, request(Operation.CANCEL_JOB, uri, ops=job), auth=ALICE)
    assert cancelled.code == Status.SUCCESSFUL_OK
    _wait_queued(uri, before)


def test_unknown_queues_answer_as_before(ipp_world: IppWorld) -> None:
    uri = ipp_world.queue_uri
    _queued(uri)  # the memo knows the real queue
    other_queue = uri.rsplit("/", 1)[0] + "/nope"
    other_tenant = uri.replace(ipp_world.tenant.id, "t000")
    for wrong in (other_queue, other_tenant):
        body = _gpa(wrong, None, 77)
        fast, routed = _post(wrong, body), _post(wrong, body, route=True)
        assert fast.content == routed.content
        assert decode(fast.content).code == Status.CLIENT_ERROR_NOT_FOUND
    # the known queue's path with a printer-uri naming another queue: refused, as before
    body = _gpa(other_queue, None, 78)
    fast, routed = _post(uri, body), _post(uri, body, route=True)
    assert fast.content == routed.content
    assert decode(fast.content).code == Status.CLIENT_ERROR_NOT_FOUND
    # a bad request on the lane's path gets the route's IPP answer
    garbage = b"\x02\x00\x00\x0b\x00\x00\x00\x01\x01\x47\xff\xff"
    assert _post(uri, garbage).content == _post(uri, garbage, route=True).content
