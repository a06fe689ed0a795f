"""A small IPP client for the tests: requests built with the codec, sent over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from printcloud.ipp.encoding import decode, encode
from printcloud.ipp.message import Attribute, Group, GroupTag, Message, ValueTag
from printcloud.ipp.model import Operation


def http_uri(ipp_uri: str) -> str:
    return "http" + ipp_uri.removeprefix("ipp")


def request(
    operation: Operation,
    printer_uri: str,
    *,
    ops: list[Attribute] | None = None,
    job: list[Attribute] | None = None,
    request_id: int = 7,
    data: bytes = b"",
    user: str | None = "mallory",
) -> bytes:
    operation_group = Group(
        GroupTag.OPERATION,
        [
            Attribute("attributes-charset", ValueTag.CHARSET, "utf-8"),
            Attribute("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, "en"),
            Attribute("printer-uri", ValueTag.URI, printer_uri),
        ],
    )
    if user is not None:  # what a client says it is: never believed
        operation_group.add(Attribute("requesting-user-name", ValueTag.NAME, user))
    for attr in ops or []:
        operation_group.add(attr)
    groups = [operation_group]
    if job:
        groups.append(Group(GroupTag.JOB, job))
    return encode(Message(int(operation), request_id, groups, version=(2, 0), data=data))


def send(
    printer_uri: str, body: bytes, *, auth: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        http_uri(printer_uri),
        content=body,
        headers={"Content-Type": "application/ipp", **(headers or {})},
        auth=auth,
        timeout=60,
    )


def call(printer_uri: str, body: bytes, **kwargs: Any) -> Message:
    resp = send(printer_uri, body, **kwargs)
    assert resp.status_code == 200, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"] == "application/ipp"
    return decode(resp.content)


def job_values(message: Message) -> dict[str, Any]:
    group = message.group(GroupTag.JOB)
    assert group is not None, message
    return {a.name: (a.values if len(a.values) > 1 else a.value) for a in group}
