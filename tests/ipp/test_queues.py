"""IPP Everywhere queues (issue 14): the admin API and `printcloud admin queue`, with the
URI and the line that adds each queue; tenant isolation; a printer a queue targets."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.helpers.browser import Browser
from tests.helpers.printing import Tenant


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "printcloud", "admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_queues_through_the_admin_api_and_the_cli(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    stack.user(t.id, "root", "admin password 1", admin=True)
    admin = stack.api(stack.user_token(t.id, "root", "admin password 1", "admin print"))
    port = stack.settings.port

    made = admin.post("/api/queues", json={"name": "office", "printer_id": "color-1"})
    assert made.status_code == 201, made.text
    queue = made.json()
    uri = f"ipp://127.0.0.1:{port}/printing/ipp/print/{t.id}/office"
    assert queue["uri"] == uri
    assert queue["add_linux"] == f"lpadmin -p office -E -v {uri} -m everywhere"
    assert queue["info"] == "COLOR-1" and not queue["follow_me"]
    assert len(queue["uuid"]) == 36
    follow = admin.post("/api/queues", json={"name": "anywhere"}).json()
    assert follow["follow_me"] and follow["printer_id"] is None

    again = admin.post("/api/queues", json={"name": "office", "printer_id": "mono-1"})
    assert again.status_code == 409 and again.json()["field"] == "name"
    bad = admin.post("/api/queues", json={"name": "a/b", "printer_id": "color-1"})
    assert bad.status_code == 400 and bad.json()["field"] == "name"
    unknown = admin.post("/api/queues", json={"name": "x", "printer_id": "nope"})
    assert unknown.status_code == 400 and unknown.json()["field"] == "printer_id"
    # a user of the tenant may list queues; only the administrator adds them
    assert t.api.post("/api/queues", json={"name": "mine"}).status_code == 403
    names = [q["name"] for q in t.api.get("/api/queues").json()["queues"]]
    assert names == ["anywhere", "office"]
    # a printer a queue prints on cannot be deleted from under it
    refused = admin.delete("/api/printers/color-1")
    assert refused.status_code == 409 and "office" in refused.json()["error_description"]

    # the print page shows each queue with the line that adds it
    with Browser(stack.base_url, credentials=(t.id, "root", "admin password 1")) as browser:
        page = browser.open("/printing/")
        assert page.status_code == 200, page.text
        assert f"lpadmin -p office -E -v {uri} -m everywhere" in page.text
        assert "follow-me" in page.text

    # another tenant sees none of them, and cannot delete them
    other = Tenant(stack)
    assert other.api.get("/api/queues").json()["queues"] == []
    stack.user(other.id, "root", "admin password 2", admin=True)
    other_admin = stack.api(stack.user_token(other.id, "root", "admin password 2", "admin"))
    assert other_admin.delete("/api/queues/office").status_code == 404
    assert other_admin.post("/api/queues", json={"name": "office"}).status_code == 201

    env = dict(stack.env)
    added = _cli(env, "queue", "add", "lobby", "--tenant", t.id, "--printer", "mono-1")
    assert added.returncode == 0, added.stderr
    lobby_uri = f"ipp://127.0.0.1:{port}/printing/ipp/print/{t.id}/lobby"
    assert f"lpadmin -p lobby -E -v {lobby_uri} -m everywhere" in added.stdout
    neither = _cli(env, "queue", "add", "x", "--tenant", t.id)
    assert neither.returncode == 2 and "--follow-me" in neither.stderr
    listed = json.loads(_cli(env, "--json", "queue", "list", "--tenant", t.id).stdout)
    assert [q["name"] for q in listed] == ["anywhere", "lobby", "office"]
    assert listed[1]["uri"] == lobby_uri
    assert "Add manually" in listed[1]["add_windows"]
    gone = _cli(env, "queue", "delete", "lobby", "--tenant", t.id)
    assert gone.returncode == 0, gone.stderr
    assert _cli(env, "queue", "delete", "lobby", "--tenant", t.id).returncode == 2
    assert admin.delete("/api/queues/office").status_code == 204
    assert admin.delete("/api/printers/color-1").status_code == 204
