"""Tenant forms under limits in the batch flow (issue 11, item 3), over a real stack.

A tenant's form passes its upload's trial compile, then meets CRM data that
triggers a loop or a package import hidden from any text check. The batch
request ends `suspended` naming the limit, the tenant's admin reads why on the
settings page, and another tenant's batch completes while the bad form runs.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from printcloud.crm import service as crm_service
from tests.helpers.docgen import (
    DATA_LOOP,
    HIDDEN_IMPORT,
    MINE,
    PASSWORD,
    Docgen,
    Org,
    admin,
    docgen_runtime,
    invoice,
    setup_org,
)
from tests.helpers.docgen_admin import AdminBrowser
from tests.helpers.print_stack import PrintStack

CPU_SECONDS = 3


def upload(org: Org, name: str, source: str) -> None:
    with admin(org) as api:
        answer = api.post("/api/forms", json={"name": name, "kind": "invoice", "source": source})
        assert answer.status_code == 201, answer.text


def add_trigger(org: Org) -> None:
    """A CRM record whose data trips the forms' trigger (the third invoice of the batch)."""
    with org.stack.db.session() as s:
        crm_service.add_record(
            s,
            tenant_id=org.crm_tenant,
            record_set="invoices",
            data=invoice(
                "INV-003",
                "TRIGGER Industries",
                [{"description": "Staples", "quantity": 1, "unit_price": "2.50"}],
            ),
        )


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split()
            found += [int(child) for child in children]
            todo += [int(child) for child in children]
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def looping_child(stack: PrintStack, *, timeout: float = 90) -> int:
    """The form child process of the stack that is burning CPU (the triggered loop)."""
    assert stack.process is not None
    deadline = time.monotonic() + timeout
    while True:
        for pid in _descendants(stack.process.pid):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"printcloud-form-" in command and _cpu_seconds(pid) >= 1:
                    return pid
            except (FileNotFoundError, ProcessLookupError):
                continue
        assert time.monotonic() < deadline, stack.log()
        time.sleep(0.1)


def test_a_tenant_form_is_stopped_by_its_limits_and_others_are_served(
    make_print_stack: Any,
) -> None:
    stack = make_print_stack(
        workers=1, form_cpu_seconds=CPU_SECONDS, form_wall_seconds=600, form_processes=2
    )
    rt = docgen_runtime(stack)
    try:
        bad, other = setup_org(stack, rt), setup_org(stack, rt)
        add_trigger(bad)
        upload(bad, "looping", DATA_LOOP)  # the upload's sample data does not trigger it
        upload(bad, "hidden", HIDDEN_IMPORT)
        upload(bad, "ours", MINE)
        upload(other, "ours", MINE)

        looping = bad.batch(form="looping")
        child = looping_child(stack)
        # Frozen, the loop neither ends nor spends its budget: what follows happens while
        # the bad form is mid-document, whatever the machine's speed.
        os.kill(child, signal.SIGSTOP)
        try:
            served = other.batch(form="ours")
            done = other.wait(served, "completed", "suspended", "failed")
            assert done["state"] == "completed", done
            assert bad.request(looping)["state"] == "rendering"
        finally:
            os.kill(child, signal.SIGCONT)

        ended = bad.wait(looping, "completed", "suspended", "failed")
        assert ended["state"] == "suspended", ended
        assert ended["reason"] == (
            f"the form exceeded its {CPU_SECONDS} s CPU budget (document 3 of 3, form looping)"
        )
        assert ended["steps"][-1]["step"] == "S1519"

        hidden = bad.batch(form="hidden")
        ended = bad.wait(hidden, "completed", "suspended", "failed")
        assert ended["state"] == "suspended", ended
        assert "forms cannot import packages (@preview/cetz:0.3.0)" in (ended["reason"] or "")

        # The child that broke its budget was replaced: the tenant's good form prints.
        good = bad.batch(form="ours")
        assert bad.wait(good, "completed", "suspended", "failed")["state"] == "completed"

        # The tenant's admin reads why on docgen's settings page.
        pages = cast(
            Docgen,
            SimpleNamespace(stack=SimpleNamespace(base_url=stack.base_url), base_url=rt.base_url),
        )
        with AdminBrowser(pages, {"idp-a": (bad.tenant, "boss", PASSWORD)}) as browser:
            page = browser.open("/settings")
            assert page.status_code == 200, page.text
            assert f"the form exceeded its {CPU_SECONDS} s CPU budget" in page.text
            assert "forms cannot import packages (@preview/cetz:0.3.0)" in page.text
    finally:
        rt.http.close()
        rt.form_processes.close()
