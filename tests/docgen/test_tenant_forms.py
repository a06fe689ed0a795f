"""A tenant's own forms (issue 3) over a real stack: uploaded through docgen's API,
checked by compiling, used by the batch flow when `parameters.form` names one, and
never seen by another tenant."""

from __future__ import annotations

from typing import Any

from tests.helpers.docgen import (
    MINE,
    Docgen,
    admin,
    blobs,
    docgen_runtime,
    setup_org,
)
from tests.helpers.docgen_admin import AdminBrowser, org, text_of


def test_a_tenant_form_is_checked_used_and_kept_to_its_tenant(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1)
    rt = docgen_runtime(stack)
    try:
        org = setup_org(stack, rt)
        other = setup_org(stack, rt)
        with admin(org) as api:
            # a form that fails to compile: 400 with the compiler's message
            broken = api.post(
                "/api/forms", json={"name": "broken", "kind": "invoice", "source": "#let x = \n"}
            )
            assert broken.status_code == 400, broken.text
            assert "expected expression" in broken.text, broken.text
            # a built-in name may not be shadowed
            shadow = api.post(
                "/api/forms", json={"name": "invoice", "kind": "invoice", "source": MINE}
            )
            assert shadow.status_code == 400 and "built-in" in shadow.text, shadow.text
            # a good one, sent as multipart
            kept = api.post(
                "/api/forms",
                data={"name": "ours", "kind": "invoice"},
                files={"source": ("ours.typ", MINE.encode(), "text/plain")},
            )
            assert kept.status_code == 201, kept.text
            listed = api.get("/api/forms").json()
            assert [f["name"] for f in listed["forms"]] == ["ours"]
            assert listed["builtin"] == ["invoice", "statement"]

        # used by a batch
        request_id = org.batch(form="ours")
        done = org.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "completed", done
        assert any("form ours" in step["detail"] for step in done["steps"]), done
        assert all(p.read_bytes().startswith(b"%PDF") for p in blobs(stack, request_id))

        # another tenant neither sees nor uses it
        with admin(other) as api:
            assert api.get("/api/forms").json()["forms"] == []
            assert api.delete("/api/forms/ours").status_code == 404
        request_id = other.batch(form="ours")
        done = other.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "suspended", done
        assert "unknown form 'ours'" in (done["reason"] or ""), done

        # removed: a batch naming it is suspended
        with admin(org) as api:
            assert api.delete("/api/forms/ours").status_code == 204
            assert api.get("/api/forms").json()["forms"] == []
        request_id = org.batch(form="ours")
        done = org.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "suspended", done
    finally:
        rt.http.close()


def test_the_settings_page_uploads_lists_and_deletes_forms(docgen: Docgen) -> None:
    a = org(docgen.stack)
    with AdminBrowser(docgen, {"idp-a": a.credentials}) as browser:
        page = browser.open("/settings")
        assert page.status_code == 200, page.text
        refused = browser.submit(
            page, "/settings/forms", name="broken", kind="invoice", source="#let x = \n"
        )
        assert refused.status_code == 400
        assert "expected expression" in text_of(refused, "error")
        page = browser.submit(page, "/settings/forms", name="ours", kind="invoice", source=MINE)
        assert page.status_code == 200, page.text
        assert "<code>ours</code>" in page.text
        page = browser.submit(page, "/settings/forms/ours/delete")
        assert page.status_code == 200 and "<code>ours</code>" not in page.text
