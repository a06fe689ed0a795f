"""IPP Everywhere queues (issue 14): the admin API and `printcloud admin queue`, with the
URI and the line that adds each queue; tenant isolation; a printer a queue targets."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.helpers.browser import Browser
from tests.helpers.cli import run_cli
from tests.helpers.printing import Tenant


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(env, "admin", *args)


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

    # PATCH: another printer (an info left at its default follows it), follow-me, back;
    # the URI and printer-uuid stay
    moved = admin.patch("/api/queues/office", json={"printer_id": "mono-1"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["printer_id"] == "mono-1" and moved.json()["info"] == "MONO-1"
    assert moved.json()["uri"] == uri and moved.json()["uuid"] == queue["uuid"]
    told = admin.patch("/api/queues/office", json={"info": "2nd floor", "job_privacy": "none"})
    assert told.json()["info"] == "2nd floor" and told.json()["job_privacy"] == "none"
    assert told.json()["printer_id"] == "mono-1"
    follows = admin.patch("/api/queues/office", json={"printer_id": None}).json()
    assert follows["follow_me"] and follows["info"] == "2nd floor"
    back = admin.patch("/api/queues/office", json={"printer_id": "color-1", "info": ""}).json()
    assert back["printer_id"] == "color-1" and back["info"] == "COLOR-1"
    for body, status, field in [
        ({"printer_id": "nope"}, 400, "printer_id"),
        ({"info": "two\nlines"}, 400, "info"),
    ]:
        answer = admin.patch("/api/queues/office", json=body)
        assert answer.status_code == status and answer.json()["field"] == field, answer.text
    assert admin.patch("/api/queues/none-such", json={"info": "x"}).status_code == 404
    assert t.api.patch("/api/queues/office", json={"info": "mine"}).status_code == 403

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
    assert other_admin.patch("/api/queues/office", json={"info": "x"}).status_code == 404
    # nor point a queue of theirs at a printer of this tenant (IDs are per tenant)
    stack.printer(t.id, "hall-9", client_id=t.dev_id)
    stolen = other_admin.post("/api/queues", json={"name": "theirs", "printer_id": "hall-9"})
    assert stolen.status_code == 400 and stolen.json()["field"] == "printer_id"
    other_admin.post("/api/queues", json={"name": "theirs"})
    stolen = other_admin.patch("/api/queues/theirs", json={"printer_id": "hall-9"})
    assert stolen.status_code == 400 and stolen.json()["field"] == "printer_id"
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
    edited = _cli(env, "--json", "queue", "edit", "lobby", "--tenant", t.id, "--follow-me")
    assert edited.returncode == 0, edited.stderr
    assert json.loads(edited.stdout)["follow_me"]
    assert json.loads(edited.stdout)["info"] == "lobby (follow-me)"
    edited = _cli(env, "queue", "edit", "lobby", "--tenant", t.id, "--info", "Front desk")
    assert edited.returncode == 0 and "Front desk" in edited.stdout, edited.stderr
    nothing = _cli(env, "queue", "edit", "lobby", "--tenant", t.id)
    assert nothing.returncode == 2 and "give what changes" in nothing.stderr
    both = _cli(env, "queue", "edit", "lobby", "--tenant", t.id, "--printer", "x", "--follow-me")
    assert both.returncode == 2 and "not both" in both.stderr
    gone = _cli(env, "queue", "delete", "lobby", "--tenant", t.id)
    assert gone.returncode == 0, gone.stderr
    assert _cli(env, "queue", "delete", "lobby", "--tenant", t.id).returncode == 2
    assert admin.delete("/api/queues/office").status_code == 204
    assert admin.delete("/api/printers/color-1").status_code == 204
