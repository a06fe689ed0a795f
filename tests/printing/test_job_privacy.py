"""Whose jobs a caller reads (GET /printing/api/jobs, /jobs/{id}, /jobs/{id}/pages/{n}/preview):
a user their own; the tenant's administrator and a service's own token every job of the
tenant; another tenant nothing."""

from __future__ import annotations

from typing import Any

from tests.helpers.printing import Tenant, make_pdf


def test_a_user_reads_only_their_own_jobs(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    for name, admin in (("alice", False), ("bob", False), ("root", True)):
        stack.user(t.id, name, f"{name} password 1", admin=admin)
    alice, bob, root = (
        stack.api(stack.user_token(t.id, name, f"{name} password 1", scope))
        for name, scope in (("alice", "print"), ("bob", "print"), ("root", "print admin"))
    )
    made = alice.post(
        "/api/jobs",
        files={"file": ("mine.pdf", make_pdf(1), "application/pdf")},
        data={"printer_id": "color-1", "dpi": "150", "title": "alice's payslip"},
    )
    assert made.status_code == 202, made.text
    job_id = made.json()["job_id"]
    theirs = t.submit(make_pdf(1))["job_id"]  # the tenant's own client (a batch, say)

    assert [j["job_id"] for j in alice.get("/api/jobs").json()["jobs"]] == [job_id]
    assert alice.get(f"/api/jobs/{job_id}").json()["title"] == "alice's payslip"
    # bob sees neither her job nor its title, by list, by id or by its previews
    assert bob.get("/api/jobs").json()["jobs"] == []
    assert bob.get("/api/jobs", params={"mine": "false"}).json()["jobs"] == []
    for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/pages/1/preview"):
        refused = bob.get(path)
        assert refused.status_code == 404, refused.text
        assert "payslip" not in refused.text
    assert bob.get(f"/api/jobs/{theirs}").status_code == 404
    # the administrator and the tenant's client see every job of the tenant
    for caller in (root, t.api):
        listed = {j["job_id"] for j in caller.get("/api/jobs").json()["jobs"]}
        assert {job_id, theirs} <= listed
        assert caller.get(f"/api/jobs/{job_id}").status_code == 200
    # `mine` still narrows an administrator's list to their own
    assert root.get("/api/jobs", params={"mine": "true"}).json()["jobs"] == []
    for api in (alice, bob, root):
        api.close()
