"""CRM jobs and schedules over the CRM API: create, link to docgen, wait for their runs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


def link(api: httpx.Client, docgen_tenant_id: str, key: str) -> None:
    r = api.put("/api/docgen-link", json={"docgen_tenant_id": docgen_tenant_id, "secret_key": key})
    assert r.status_code == 200, r.text


def job(api: httpx.Client, **changes: Any) -> str:
    body: dict[str, Any] = {
        "name": f"job {uuid.uuid4().hex[:6]}",
        "start_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "recurrence": "daily",
        "timezone": "Europe/Paris",
        "print": {"printer_id": "printer-1", "color": False, "copies": 2, "duplex": True},
        "form": "invoice",
        "query": {"record_set": "invoices", "filters": [], "order": ["-total"]},
    }
    body.update(changes)
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["job_id"])


def wait(check: Callable[[], Any], *, timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def finished(api: httpx.Client, job_id: str, count: int = 1) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        done = [r for r in runs(api, job_id) if r["outcome"] != "running"]
        return done if len(done) >= count else None

    found: list[dict[str, Any]] = wait(check, what=f"{count} finished run(s) of {job_id}")
    return found


def runs(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/jobs/{job_id}/runs")
    assert r.status_code == 200, r.text
    return list(r.json()["runs"])
