"""The printer's push (S109), and the `printcloud` commands that run and administer printing:
`admin client create`, `admin printer add/list`, `device --once`, `admin job list/show`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from printcloud.device.agent import DeviceAgent, DeviceConfig, DeviceEvent
from tests.helpers.cli import run_cli
from tests.helpers.printing import Tenant, make_pdf


def test_a_pushed_print_request_wakes_the_printer(make_print_stack: Any, tmp_path: Path) -> None:
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    events: list[DeviceEvent] = []
    agent = DeviceAgent(
        DeviceConfig(
            server=stack.base_url,
            tenant_id=t.id,
            printer_id="mono-1",
            client_id=t.dev_id,
            client_secret=t.dev_secret,
            out_dir=tmp_path,
            poll_interval=600,  # it would wait ten minutes without the push
            listen="127.0.0.1:0",
        ),
        on_event=events.append,
    )
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while not t.api.get("/api/printers").json()["printers"][1]["push_url"]:
            assert time.monotonic() < deadline, "the printer never registered its push URL"
            time.sleep(0.05)
        job = t.submit(make_pdf(2), "mono-1")
        done = stack.wait_for(t.api, job["job_id"], "printed", timeout=60)
        assert done["pages_printed"] == 2
        assert any(e.kind == "push" and e.job_id == job["job_id"] for e in events)
        history = [e["detail"] for e in done["history"] if e["step"] == "S109"]
        assert "print request pushed" in history
    finally:
        stop.set()
        loop.join(timeout=10)
        agent.close()
    printers = {p["printer_id"]: p for p in t.api.get("/api/printers").json()["printers"]}
    assert printers["mono-1"]["push_url"] is None  # back to polling when the agent stops


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(env, *args)


def _in_a_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The device as a printer runs it: `python -m printcloud device` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "printcloud", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_printing_commands(make_print_stack: Any, tmp_path: Path) -> None:
    stack = make_print_stack(workers=2)
    env = dict(stack.env)
    t = Tenant(stack)

    made = _cli(
        env,
        "admin",
        "client",
        "create",
        "--tenant",
        t.id,
        "--name",
        "MFP 2F",
        "--kind",
        "device",
        "--scope",
        "device print",
        "--json",
    )
    assert made.returncode == 0, made.stderr
    device = json.loads(made.stdout)
    device_id = device.get("client_id") or device["client"]["client_id"]
    secret = device.get("client_secret") or device.get("secret")
    assert secret

    added = _cli(
        env,
        "admin",
        "printer",
        "add",
        "floor-2",
        "--tenant",
        t.id,
        "--client-id",
        device_id,
        "--mono",
        "--name",
        "Floor 2",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["color"] is False
    # what an IPP INFRA proxy needs (docs/infra.md)
    infra_uri = json.loads(added.stdout)["infra_uri"]
    assert infra_uri.startswith("ipp://") and infra_uri.endswith(f"/ipp/infra/{t.id}/floor-2")
    wrong = _cli(
        env, "admin", "printer", "add", "floor-3", "--tenant", t.id, "--client-id", t.app_id
    )
    assert wrong.returncode == 2 and "needs a device client" in wrong.stderr
    listed = json.loads(_cli(env, "admin", "printer", "list", "--tenant", t.id, "--json").stdout)
    assert {p["printer_id"] for p in listed} == {"color-1", "mono-1", "floor-2"}
    table = _cli({**env, "COLUMNS": "200"}, "admin", "printer", "list", "--tenant", t.id)
    assert table.returncode == 0, table.stderr
    assert "Offline: never connected" in table.stdout  # in words (core.words)

    job = t.submit(make_pdf(3), "floor-2")
    stack.wait_for(t.api, job["job_id"], "waiting_for_printer")
    printed = _in_a_process(
        {**env, "PRINTCLOUD_DEVICE_SECRET": secret},
        "device",
        "--server",
        stack.base_url,
        "--tenant",
        t.id,
        "--printer-id",
        "floor-2",
        "--client-id",
        device_id,
        "--out",
        str(tmp_path),
        "--once",
    )
    assert printed.returncode == 0, printed.stdout + printed.stderr
    assert "printed" in printed.stdout and "preview" in printed.stdout
    stack.wait_for(t.api, job["job_id"], "printed")

    jobs = json.loads(_cli(env, "admin", "job", "list", "--tenant", t.id, "--json").stdout)
    assert [j["state"] for j in jobs] == ["printed"]
    shown = json.loads(
        _cli(env, "admin", "job", "show", job["job_id"], "--tenant", t.id, "--json").stdout
    )
    workers = {h["step"]: h["worker"] for h in shown["history"]}
    assert workers["S107"] != workers["S108"]
    # The tables say it in plain words (core.words), the codes only in the JSON.
    listed = _cli(env, "admin", "job", "list", "--tenant", t.id).stdout
    assert "Printed" in listed
    table = _cli(env, "admin", "job", "show", job["job_id"], "--tenant", t.id).stdout
    assert "Document" in table and "Printed" in table  # (a narrow table wraps its cells)
    other = _cli(env, "admin", "job", "show", job["job_id"], "--tenant", "nobody")
    assert other.returncode == 2 and "unknown print job" in other.stderr
    bad = _cli(
        env,
        "device",
        "--tenant",
        t.id,
        "--printer-id",
        "floor-2",
        "--client-id",
        "x",
        "--client-secret",
        "y",
        "--fault",
        "paper_jam@2",
        "--once",
    )
    assert bad.returncode == 2 and "paper_jam" in bad.stderr
    assert os.path.isdir(tmp_path / job["job_id"])
